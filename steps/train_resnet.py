"""train-resnet: ResNet-18 on CIFAR-10 with mmcls + mmengine, in the shape of mmengine's tools/train.py.

args -> config (composed from mmcls's stock ``resnet18_8xb16_cifar10``) -> ``--cfg-options`` ->
``Runner.from_cfg`` -> ``runner.train()``. After every epoch the checkpoint is published atomically as
``checkpoints/latest.pth`` with its sha256, so a retried step resumes from it; at the end
``train/summary.json`` says what training did.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from steps import dataplane, errors, params

log = logging.getLogger(__name__)

STOCK_CONFIG = "resnet/resnet18_8xb16_cifar10.py"
SUMMARY_SCHEMA = "sharedvol.train_summary"
DEVICES = ("auto", "cpu", "cuda")
_D = params.DEFAULTS  # the defaults of every step parameter (steps.params)


@dataclass
class TrainConfig:
    """Settings of one training run.

    Attributes:
        run_dir: the run directory (path or fsspec URL); mmengine's work_dir is ``<run_dir>/train`` when local.
        data_root: the directory holding ``cifar-10-batches-py``.
        epochs, batch_size, lr, seed, device, amp, num_workers: as :class:`steps.params.StepParams` (meaning,
            unit and default); ``amp`` is mmengine's ``AmpOptimWrapper``, float16, dynamic loss scale.
        log_interval: iterations between progress lines. Default 10.
        cfg_options: ``key=value`` overrides merged into the config last (mmengine ``--cfg-options``).
    """

    run_dir: str
    data_root: str
    epochs: int = _D.epochs
    batch_size: int = _D.batch_size
    lr: float = _D.lr
    seed: int = _D.seed
    device: str = _D.device
    amp: bool = _D.amp
    num_workers: int = _D.num_workers
    log_interval: int = 10
    cfg_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Refuse settings that cannot work, naming the argument.

        Raises:
            ConfigError: a non-positive epoch count, batch size or learning rate, an unknown device, negative workers.
        """
        if self.epochs < 1:
            raise errors.ConfigError(f"--epochs must be at least 1, got {self.epochs}", hint="e.g. --epochs 2")
        if self.batch_size < 1:
            raise errors.ConfigError(f"--batch-size must be at least 1, got {self.batch_size}", hint="e.g. 32")
        if not self.lr > 0:
            raise errors.ConfigError(f"--lr must be positive, got {self.lr}", hint="e.g. --lr 0.05")
        if self.device not in DEVICES:
            raise errors.ConfigError(f"--device {self.device!r} is unknown", hint="use auto, cpu or cuda")
        if self.num_workers < 0:
            raise errors.ConfigError(f"--num-workers must be 0 or more, got {self.num_workers}", hint="e.g. 0")
        if self.log_interval < 1:
            raise errors.ConfigError(f"--log-interval must be at least 1, got {self.log_interval}", hint="e.g. 10")


@dataclass
class TrainSummary:
    """What training did (``train/summary.json``, schema ``sharedvol.train_summary`` v1)."""

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
    checkpoint_sha256: str
    config: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The summary as a schema-versioned JSON document."""
        return {"schema": SUMMARY_SCHEMA, "schema_version": 1, **asdict(self)}


def resolve_device(requested: str) -> str:
    """``cpu`` or ``cuda`` for a requested device.

    Raises:
        ConfigError: CUDA was asked for and none is visible.
    """
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise errors.ConfigError(
            "--device cuda but no CUDA device is visible",
            hint="run on a GPU node (the pipeline requests nvidia.com/gpu) or pass --device cpu",
        )
    return requested


def stock_config_path() -> Path:
    """The stock ``resnet18_8xb16_cifar10.py`` inside the installed mmcls package."""
    import mmcls

    return Path(mmcls.__file__).parent / ".mim" / "configs" / STOCK_CONFIG


def build_config(cfg: TrainConfig, *, device: str, work_dir: str) -> Any:
    """The mmengine Config for ``cfg`` on ``device`` (``cpu`` or ``cuda``): pure, needs no GPU.

    Raises:
        ConfigError: AMP on a CPU, or a ``cfg_options`` key mmengine refuses.
    """
    from mmengine.config import Config

    if cfg.amp and device != "cuda":
        raise errors.ConfigError("--amp needs a CUDA device", hint="drop --amp on CPU, or run with --device cuda")
    c = Config.fromfile(str(stock_config_path()))
    c.work_dir = work_dir
    c.launcher = "none"
    for loader in ("train_dataloader", "test_dataloader", "val_dataloader"):
        dl = c[loader]
        dl.dataset.type = "SharedvolCIFAR10"
        dl.dataset.data_prefix = cfg.data_root
        dl.batch_size = cfg.batch_size
        dl.num_workers = cfg.num_workers
        dl.persistent_workers = cfg.num_workers > 0
    # No validation during training: test-resnet evaluates the published checkpoint.
    c.val_dataloader = c.val_cfg = c.val_evaluator = None
    c.train_cfg = {"by_epoch": True, "max_epochs": cfg.epochs}
    optimizer = {"type": "SGD", "lr": cfg.lr, "momentum": 0.9, "weight_decay": 1e-4}
    if cfg.amp:
        c.optim_wrapper = {
            "type": "AmpOptimWrapper",
            "dtype": "float16",
            "loss_scale": "dynamic",
            "optimizer": optimizer,
        }
    else:
        c.optim_wrapper = {"type": "OptimWrapper", "optimizer": optimizer}
    # The stock schedule steps at epochs 100 and 150 of 200: keep those proportions.
    c.param_scheduler = {
        "type": "MultiStepLR",
        "by_epoch": True,
        "milestones": [max(1, cfg.epochs // 2), max(1, cfg.epochs * 3 // 4)],
        "gamma": 0.1,
    }
    c.default_hooks.logger.interval = cfg.log_interval
    c.default_hooks.checkpoint = {"type": "CheckpointHook", "interval": 1, "max_keep_ckpts": 2}
    c.custom_hooks = [{"type": "SharedvolTrainHook", "run_dir": cfg.run_dir, "priority": "LOWEST"}]
    c.randomness = {"seed": cfg.seed, "deterministic": False}
    c.env_cfg.cudnn_benchmark = device == "cuda"
    c.env_cfg.dist_cfg = {"backend": "nccl" if device == "cuda" else "gloo"}
    c.device = device
    c.visualizer.vis_backends = [{"type": "LocalVisBackend"}]
    if cfg.cfg_options:
        try:
            c.merge_from_dict(cfg.cfg_options)
        except (KeyError, TypeError, AttributeError) as e:
            raise errors.ConfigError(
                f"--cfg-options {cfg.cfg_options} cannot be merged: {e}", hint="check the keys"
            ) from e
    return c


def train(cfg: TrainConfig) -> TrainSummary:
    """Train, publishing ``latest.pth`` after each epoch; a rerun on the same run directory resumes.

    Raises:
        ConfigError, DatasetError, RunDirError, IntegrityError: see their docstrings.
    """
    from steps import data

    cfg.validate()
    device = resolve_device(cfg.device)
    dataset = data.validate(cfg.data_root)
    layout = dataplane.RunLayout(cfg.run_dir)
    with tempfile.TemporaryDirectory(prefix="sharedvol-train-") as scratch:
        work_dir = dataplane.local_path(layout.train_dir) if dataplane.is_local(cfg.run_dir) else scratch
        _check_writable(work_dir)
        c = build_config(cfg, device=device, work_dir=work_dir)
        resume_from = _verified_local_checkpoint(layout, scratch)
        if resume_from:
            c.load_from, c.resume = resume_from, True
        return _run(c, cfg, layout, device, dataset.train_size, resume_from)


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


def _verified_local_checkpoint(layout: dataplane.RunLayout, scratch: str) -> str | None:
    """A private local copy of the published checkpoint, verified; None when nothing was published yet."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(layout.checkpoint)
    if not fs.exists(path):
        return None
    payload = dataplane.read_verified(layout.checkpoint)  # refuses a checkpoint that does not match its digest
    local = Path(scratch) / "resume.pth"
    local.write_bytes(payload)
    log.info("resuming from %s (digest verified)", layout.checkpoint)
    return str(local)


def _run(
    c: Any, cfg: TrainConfig, layout: dataplane.RunLayout, device: str, train_size: int, resume: str | None
) -> TrainSummary:
    from mmcls.utils import register_all_modules
    from mmengine.runner import Runner

    from steps import hooks, mmcls_ext  # noqa: F401  (registers the dataset and the hook)

    register_all_modules(init_default_scope=True)
    runner = Runner.from_cfg(c)
    hook = next(h for h in runner.hooks if isinstance(h, hooks.SharedvolTrainHook))
    started = time.monotonic()
    with dataplane.unpickling_allowed():  # the checkpoint's digest was verified before
        runner.train()
    wall = time.monotonic() - started
    losses = hook.loss_per_epoch
    if not hook.published:
        raise errors.RunDirError(
            f"training of {cfg.epochs} epochs finished but no checkpoint was published in {layout.checkpoint}",
            hint="the run directory already holds a run of at least that many epochs; raise --epochs or use a new run",
        )
    summary = TrainSummary(
        epochs=hook.last_epoch,
        iterations=runner.iter,
        loss_per_epoch=[round(x, 6) for x in losses],
        final_loss=round(losses[-1], 6) if losses else float("nan"),
        wall_time_s=round(wall, 3),
        epoch_seconds=hook.epoch_seconds,
        images_per_s=round(hook.images / hook.train_seconds, 2) if hook.train_seconds else 0.0,
        images_seen=hook.images,
        resumed_from_epoch=hook.first_epoch,
        device=device,
        checkpoint=layout.checkpoint,
        checkpoint_sha256=hook.published.sha256,
        config={
            **{k: v for k, v in asdict(cfg).items() if k not in ("run_dir", "data_root")},
            "train_size": train_size,
        },
    )
    dataplane.write_json(layout.summary, summary.to_json())
    log.info(
        "trained %d epochs (%d iterations) in %.1f s, %.1f images/s, final loss %.4f; checkpoint %s",
        summary.epochs, summary.iterations, wall, summary.images_per_s, summary.final_loss, layout.checkpoint,
    )  # fmt: skip
    return summary
