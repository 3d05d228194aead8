"""test-resnet: evaluate the published checkpoint on the test split and write ``eval/eval_result.json``.

test-resnet follows the run's checkpoint manifest to the safetensors weights, reads them once while hashing
them, and refuses a size or digest mismatch; safetensors cannot run code, and mmengine gets the verified
tensors through the ``sharedvol-verified://`` scheme (it never opens a file). Metrics go to the JSON file,
never parsed out of logs.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import pydantic
from mmcls.utils import register_all_modules
from mmengine.runner import Runner

from steps import (
    checkpoint,
    config,
    data,
    dataplane,
    devices,
    documents,
    errors,
    hooks,
    mmcls_ext,
    modelcheck,
    params,
    safeload,
    schemas,
)

log = logging.getLogger(__name__)


@dataclass
class TestConfig:
    """Settings of one evaluation.

    Attributes:
        run_dir: the run directory (path or fsspec URL) holding ``checkpoints/latest.json``.
        data_root: the directory holding ``cifar-10-batches-py``.
        batch_size: images per forward pass. Default 64.
        device: ``auto``, ``cpu`` or ``cuda``.
        num_workers: data-loader worker processes. None (default): as train-resnet decides for the device.
        checkpoint: another checkpoint manifest (``.../checkpoints/latest.json``) to evaluate. Default: the run's.
    """

    __test__ = False  # not a pytest test class

    run_dir: str
    data_root: str
    batch_size: int = 64
    device: str = "auto"
    num_workers: int | None = None
    checkpoint: str | None = None


def evaluate(cfg: TestConfig) -> schemas.EvalResult:
    """Verify, load and evaluate the checkpoint; publish ``eval/eval_result.json``.

    Raises:
        IntegrityError: nothing was published, the weights do not match the manifest (nothing is loaded), they
            are not the model's tensors or not finite, or what the evaluation measured is not a result (a loss
            that is not a number; nothing is published).
        ConfigError, DatasetError, RunDirError, SchemaError: see their docstrings.
    """
    if not 1 <= cfg.batch_size <= params.MAX_BATCH:
        raise errors.ConfigError(
            f"--batch-size must be between 1 and {params.MAX_BATCH}, got {cfg.batch_size}", hint="e.g. 64"
        )
    if cfg.num_workers is not None and cfg.num_workers < 0:
        raise errors.ConfigError(f"--num-workers must be 0 or more, got {cfg.num_workers}", hint="e.g. 0")
    layout = dataplane.RunLayout(cfg.run_dir)
    layout.check_own()
    dataplane.remove_temporaries(layout.path("eval"))  # a killed evaluation's
    manifest = checkpoint.require_manifest(cfg.checkpoint or layout.checkpoint)
    device = devices.resolve(cfg.device)
    dataset = data.validate(cfg.data_root)
    buf = checkpoint.read_verified(manifest, manifest.weights)
    state_dict, _ = safeload.weights_from_buffer(buf, manifest.file_url(manifest.weights))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sharedvol-test-") as scratch:
        details = _run_test(cfg, device, scratch, state_dict, manifest, dataset)
    matrix = details["confusion_matrix"]
    names = list(dataset.classes)
    per_class = {
        name: round(row[i] / sum(row), 6) if sum(row) else 0.0
        for i, (name, row) in enumerate(zip(names, matrix, strict=True))
    }
    try:
        result = schemas.EvalResult(
            checkpoint=manifest.url,
            checkpoint_blake3=manifest.weights.blake3,
            epoch=manifest.epoch,
            dataset_root=cfg.data_root,
            dataset_source=dataset.source,
            split="test",
            size=int(details["size"]),
            top1=round(details["top1"], 6),
            top5=round(details["top5"], 6),
            loss=round(details["loss"], 6),
            class_names=names,
            per_class_accuracy=per_class,
            confusion_matrix=matrix,
            device="cuda" if device == "cuda" else "cpu",
            wall_time_s=round(time.monotonic() - started, 3),
        )
    except pydantic.ValidationError as e:
        what = f"evaluating {schemas.printable(manifest.url, 1024)} gave a result that is not one"
        raise errors.IntegrityError(
            schemas.error(what, e).message,
            hint="the weights diverged (a loss that is not a number?); rerun train-resnet, e.g. with a lower --lr; "
            "nothing was published",
        ) from e
    documents.write(layout.eval_result, result)
    log.info(
        "evaluated %s on %d test images: top-1 %.2f %%, top-5 %.2f %%, loss %.4f -> %s",
        manifest.url, result.size, 100 * result.top1, 100 * result.top5, result.loss, layout.eval_result,
    )  # fmt: skip
    return result


def _run_test(
    cfg: TestConfig,
    device: str,
    work_dir: str,
    state_dict: dict[str, Any],
    manifest: checkpoint.Manifest,
    dataset: schemas.DatasetManifest,
) -> dict[str, Any]:
    register_all_modules(init_default_scope=True)
    train_cfg = config.TrainConfig(
        run_dir=cfg.run_dir, data_root=cfg.data_root, batch_size=cfg.batch_size, num_workers=cfg.num_workers
    )
    c = config.build_config(train_cfg, device=device, work_dir=work_dir, dataset=dataset)
    c.custom_hooks = []
    c.train_dataloader = c.train_cfg = c.optim_wrapper = c.param_scheduler = None
    c.test_evaluator = {"type": "SharedvolEvaluation", "num_classes": 10}
    c.load_from = hooks.offer(manifest.weights.name, {"state_dict": state_dict, "meta": {"epoch": manifest.epoch}})
    runner = Runner.from_cfg(c)
    modelcheck.check_weights(runner.model, state_dict, manifest.file_url(manifest.weights))
    runner.test()
    metric = next(m for m in runner.test_evaluator.metrics if isinstance(m, mmcls_ext.SharedvolEvaluation))
    return metric.details
