"""train-resnet: ResNet-18 on CIFAR-10 with mmcls + mmengine, in the shape of mmengine's tools/train.py.

args -> config (mmcls's stock ``resnet18_8xb16_cifar10`` + overrides, :mod:`steps.config`) -> ``--cfg-options``
-> ``Runner.from_cfg`` -> ``runner.train()``. After every epoch the weights and the training state are published
behind one manifest (:mod:`steps.checkpoint`), so a retried step resumes from the last finished epoch; at the
end ``train/summary.json`` says what training did.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from steps import checkpoint, dataplane, devices, documents, errors, params

log = logging.getLogger(__name__)

SUMMARY_SCHEMA = "sharedvol.train_summary"
SUMMARY_VERSION = 2
SEED_MAX = 2**32 - 1
AUGMENT = params.AUGMENT
_D = params.DEFAULTS  # the defaults of every step parameter (steps.params)


@dataclass
class TrainConfig:
    """Settings of one training run.

    Attributes:
        run_dir: the run directory (path or fsspec URL); mmengine's work_dir is ``<run_dir>/train`` when local.
        data_root: the directory holding ``cifar-10-batches-py``.
        epochs, batch_size, lr, seed, device: as :class:`steps.params.StepParams` (meaning, unit and default).
        amp: mixed precision (mmengine ``AmpOptimWrapper``: bfloat16 where the GPU supports it, else float16 with
            dynamic loss scaling); CUDA only. None (default): on with CUDA, off on the CPU. The table's ``auto``,
            ``on``, ``off`` map to None, True, False (:func:`steps.params.amp_setting`).
        num_workers: data-loader worker processes. None (default): min(8, cores) with CUDA, 0 on the CPU
            (in-process: fastest on small CPU nodes). The table's -1 maps to None
            (:func:`steps.params.workers_setting`).
        augment: ``stock`` (mmcls's per-image RandomCrop + RandomFlip in the loader), ``batched`` (the same
            augmentation on the device, :mod:`steps.augment`) or ``auto`` (default: batched with CUDA, stock on CPU).
        log_interval: iterations between progress lines. Default 10.
        keep_checkpoints: epochs whose checkpoint files stay on the volume (1 = only the latest). Default 1.
        cfg_options: ``key=value`` overrides merged into the config last (mmengine ``--cfg-options``).
    """

    run_dir: str
    data_root: str
    epochs: int = _D.epochs
    batch_size: int = _D.batch_size
    lr: float = _D.lr
    seed: int = _D.seed
    device: str = _D.device
    amp: bool | None = params.amp_setting(_D.amp)
    num_workers: int | None = params.workers_setting(_D.num_workers)
    augment: str = _D.augment
    log_interval: int = 10
    keep_checkpoints: int = 1
    cfg_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Refuse settings that cannot work, naming the argument.

        Raises:
            ConfigError: naming the setting and a value that works.
        """
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}", "e.g. --epochs 2"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}", "e.g. 32"),
            (math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}", "e.g. 0.05"),
            (0 <= self.seed <= SEED_MAX, f"--seed must be between 0 and {SEED_MAX}, got {self.seed}", "e.g. 0"),
            (self.device in devices.DEVICES, f"--device {self.device!r} is unknown", "use auto, cpu or cuda"),
            (
                self.num_workers is None or self.num_workers >= 0,
                f"--num-workers must be 0 or more, got {self.num_workers}",
                "e.g. 0",
            ),
            (self.augment in AUGMENT, f"--augment {self.augment!r} is unknown", "use auto, stock or batched"),
            (self.log_interval >= 1, f"--log-interval must be at least 1, got {self.log_interval}", "e.g. 10"),
            (self.keep_checkpoints >= 1, f"--keep-checkpoints must be at least 1, got {self.keep_checkpoints}", "1"),
        ]
        for ok, message, hint in checks:
            if not ok:
                raise errors.ConfigError(message, hint=hint)


@dataclass
class TrainSummary:
    """What training did (``train/summary.json``, schema ``sharedvol.train_summary`` v2)."""

    epochs: int
    iterations: int
    loss_per_epoch: list[float]
    final_loss: float
    wall_time_s: float
    epoch_seconds: list[float]
    images_per_s: float
    images_seen: int
    resumed_from_epoch: int
    device: str
    checkpoint: str
    checkpoint_blake3: str
    config: dict[str, Any]
    curves: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The summary as a schema-versioned JSON document."""
        return {"schema": SUMMARY_SCHEMA, "schema_version": SUMMARY_VERSION, **asdict(self)}


def train(cfg: TrainConfig) -> TrainSummary:
    """Train, publishing a checkpoint after each epoch; a rerun on the same run directory resumes.

    Raises:
        ConfigError, DatasetError, RunDirError, IntegrityError, SchemaError: see their docstrings.
    """
    from steps import config, data

    cfg.validate()
    device = devices.resolve(cfg.device)
    dataset = data.validate(cfg.data_root)
    layout = dataplane.RunLayout(cfg.run_dir)
    work_dir = dataplane.local_path(layout.train_dir) if dataplane.is_local(cfg.run_dir) else _scratch()
    _check_writable(work_dir)
    c = config.build_config(cfg, device=device, work_dir=work_dir)
    removed = checkpoint.prune(layout.checkpoint_dir, keep=cfg.keep_checkpoints)
    if removed:
        log.info("removed what an interrupted run left in %s: %s", layout.checkpoint_dir, ", ".join(removed))
    manifest = checkpoint.read_manifest(layout.checkpoint)
    if manifest and manifest.epoch > cfg.epochs:
        raise errors.ConfigError(
            f"{layout.checkpoint} already holds {manifest.epoch} epochs, more than --epochs {cfg.epochs}",
            hint=f"pass --epochs {manifest.epoch} or more, or use a new run directory",
        )
    if manifest:
        c.load_from, c.resume = _offer_resume(manifest), True
    return _run(c, cfg, layout, device, dataset.train_size, manifest)


def _scratch() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="sharedvol-train-")


def _check_writable(work_dir: str) -> None:
    try:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        probe = Path(work_dir) / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise errors.RunDirError(
            f"run directory {work_dir} is not writable ({e.strerror})",
            hint="mount the shared volume read-write for this user, or pass another --run-dir",
        ) from e


def _offer_resume(manifest: checkpoint.Manifest) -> str:
    """The verified, safely loaded training state of ``manifest``, as a URL mmengine's resume loads."""
    from steps import hooks, safeload

    state_buf = checkpoint.read_verified(manifest, manifest.resume)
    weights_buf = checkpoint.read_verified(manifest, manifest.weights)
    state = safeload.resume_from_buffer(state_buf, manifest.file_url(manifest.resume))
    weights, _ = safeload.weights_from_buffer(weights_buf, manifest.file_url(manifest.weights))
    state["state_dict"] = weights  # the training state is saved without them: they live in one file only
    log.info("resuming from epoch %d (%s, digest verified)", manifest.epoch, manifest.resume.name)
    return hooks.offer(manifest.resume.name, state)


def _run(
    c: Any, cfg: TrainConfig, layout: dataplane.RunLayout, device: str, size: int, before: checkpoint.Manifest | None
) -> TrainSummary:
    from mmcls.utils import register_all_modules
    from mmengine.runner import Runner

    from steps import hooks, mmcls_ext  # noqa: F401  (registers the dataset, the metric and the hook)

    register_all_modules(init_default_scope=True)
    started = time.monotonic()
    try:
        runner = Runner.from_cfg(c)
        hook = next(h for h in runner.hooks if isinstance(h, hooks.SharedvolTrainHook))
        runner.train()
    except (TypeError, ValueError, KeyError, AssertionError, AttributeError) as e:
        if not cfg.cfg_options:
            raise
        raise errors.ConfigError(
            f"training with --cfg-options {cfg.cfg_options} failed: {type(e).__name__}: {e}",
            hint="check those values against the stock config",
        ) from e
    wall = time.monotonic() - started
    manifest = hook.published or before  # a rerun after the last epoch was published trains nothing
    if manifest is None or manifest.epoch != cfg.epochs:
        raise errors.RunDirError(f"training ended without publishing epoch {cfg.epochs}", hint="rerun train-resnet")
    losses = manifest.loss_per_epoch
    summary = TrainSummary(
        epochs=manifest.epoch,
        iterations=runner.iter,
        loss_per_epoch=[round(x, 6) for x in losses],
        final_loss=round(losses[-1], 6) if losses else float("nan"),
        wall_time_s=round(wall, 3),
        epoch_seconds=hook.epoch_seconds,
        images_per_s=round(hook.images / hook.train_seconds, 2) if hook.train_seconds else 0.0,
        images_seen=hook.images,
        resumed_from_epoch=before.epoch if before else 0,
        device=device,
        checkpoint=layout.checkpoint,
        checkpoint_blake3=manifest.weights.blake3,
        config={**{k: v for k, v in asdict(cfg).items() if k not in ("run_dir", "data_root")}, "train_size": size},
        curves=manifest.curves,
    )
    documents.write_json(layout.summary, summary.to_json())
    log.info(
        "trained %d epochs (%d iterations) in %.1f s, %.1f images/s, final loss %.4f; checkpoint %s",
        summary.epochs, summary.iterations, wall, summary.images_per_s, summary.final_loss, layout.checkpoint,
    )  # fmt: skip
    return summary
