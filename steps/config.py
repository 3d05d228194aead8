"""The mmengine config train-resnet and test-resnet run: mmcls's stock ResNet-18 CIFAR-10 config plus overrides.

Pure: builds a ``Config`` without a GPU and without touching the run directory. ``--cfg-options`` are
checked against the config before they are merged: a key the config does not have (and that the object
it configures does not accept) or a value of the wrong type is refused naming the key.
"""

from __future__ import annotations

import inspect
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steps import devices, errors, params, schemas

STOCK_CONFIG = "resnet/resnet18_8xb16_cifar10.py"
SEED_MAX = 2**32 - 1
GAMMA = 0.1  # the learning rate is multiplied by this at each milestone
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
        allow_changed_settings: resume a run although the settings that shape training (learning rate, batch size,
            seed, augmentation, AMP, dataset, ``cfg_options``) differ from the ones its checkpoint records; the new
            ones take effect. Default False: such a resume is refused, naming each difference.
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
    allow_changed_settings: bool = False

    def validate(self) -> None:
        """Refuse settings that cannot work, naming the argument.

        Raises:
            ConfigError: naming the setting and a value that works.
        """
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}", "e.g. --epochs 2"),
            (
                self.epochs <= params.MAX_EPOCHS,
                f"--epochs must be at most {params.MAX_EPOCHS}, got {self.epochs}",
                "20",
            ),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}", "e.g. 32"),
            (
                self.batch_size <= params.MAX_BATCH,
                f"--batch-size must be at most {params.MAX_BATCH}, got {self.batch_size}",
                "e.g. 128",
            ),
            (math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}", "e.g. 0.05"),
            (self.lr <= params.MAX_LR, f"--lr must be at most {params.MAX_LR:g}, got {self.lr:g}", "e.g. 0.05"),
            (0 <= self.seed <= SEED_MAX, f"--seed must be between 0 and {SEED_MAX}, got {self.seed}", "e.g. 0"),
            (self.device in devices.DEVICES, f"--device {self.device!r} is unknown", "use auto, cpu or cuda"),
            (
                self.num_workers is None or 0 <= self.num_workers <= params.MAX_WORKERS,
                f"--num-workers must be between 0 and {params.MAX_WORKERS}, got {self.num_workers}",
                "e.g. 0",
            ),
            (self.augment in params.AUGMENT, f"--augment {self.augment!r} is unknown", "use auto, stock or batched"),
            (self.log_interval >= 1, f"--log-interval must be at least 1, got {self.log_interval}", "e.g. 10"),
            (self.keep_checkpoints >= 1, f"--keep-checkpoints must be at least 1, got {self.keep_checkpoints}", "1"),
        ]
        for ok, message, hint in checks:
            if not ok:
                raise errors.ConfigError(message, hint=hint)


def stock_config_path() -> Path:
    """The stock ``resnet18_8xb16_cifar10.py`` inside the installed mmcls package."""
    import mmcls

    return Path(mmcls.__file__).parent / ".mim" / "configs" / STOCK_CONFIG


def milestones(epochs: int) -> list[int]:
    """LR decay epochs at 1/2 and 3/4 of ``epochs`` (the stock 100 and 150 of 200), distinct and in [1, epochs - 1]."""
    return sorted({m for m in (epochs // 2, epochs * 3 // 4) if 1 <= m < epochs})


@dataclass(frozen=True)
class DeviceDefaults:
    """What the device decides when the user did not (``None`` settings of :class:`TrainConfig`).

    Attributes:
        workers: loader worker processes: min(8, cores) with CUDA, 0 on the CPU.
        pin_memory: page-locked loader batches (CUDA).
        amp: mixed precision (CUDA).
        amp_dtype: ``bfloat16`` where the GPU supports it, else ``float16`` (with dynamic loss scaling).
        augment: ``batched`` (on the device) with CUDA, ``stock`` on the CPU.
        channels_last: model and batches in ``torch.channels_last`` (CUDA).
    """

    workers: int
    pin_memory: bool
    amp: bool
    amp_dtype: str
    augment: str
    channels_last: bool


def device_defaults(
    cfg: TrainConfig, device: str, *, bf16: bool | None = None, cores: int | None = None
) -> DeviceDefaults:
    """The settings ``cfg`` leaves to the device, resolved for ``device``.

    ``bf16`` (the GPU supports bfloat16) and ``cores`` default to what this machine has.
    """
    cuda = device == "cuda"
    if bf16 is None:
        import torch

        bf16 = cuda and torch.cuda.is_bf16_supported()
    cores = cores or os.cpu_count() or 1
    return DeviceDefaults(
        workers=cfg.num_workers if cfg.num_workers is not None else (min(8, cores) if cuda else 0),
        pin_memory=cuda,
        amp=cfg.amp if cfg.amp is not None else cuda,
        amp_dtype="bfloat16" if bf16 else "float16",
        augment=cfg.augment if cfg.augment != "auto" else ("batched" if cuda else "stock"),
        channels_last=cuda,
    )


def build_config(
    cfg: TrainConfig,
    *,
    device: str,
    work_dir: str,
    bf16: bool | None = None,
    cores: int | None = None,
    dataset: schemas.DatasetManifest | None = None,
) -> Any:
    """The mmengine Config for ``cfg`` on ``device`` (``cpu`` or ``cuda``).

    ``bf16`` and ``cores``: see :func:`device_defaults`. ``dataset``: the validated dataset; its files' sizes and
    digests are what the loaders accept (:class:`steps.mmcls_ext.SharedvolCIFAR10`).

    Raises:
        ConfigError: AMP on a CPU, or a ``cfg_options`` key or value the config refuses.
    """
    from mmengine.config import Config

    if cfg.amp and device != "cuda":
        raise errors.ConfigError("--amp needs a CUDA device", hint="drop --amp on CPU, or run with --device cuda")
    d = device_defaults(cfg, device, bf16=bf16, cores=cores)
    c = Config.fromfile(str(stock_config_path()))
    c.work_dir = work_dir
    # mmengine names a run's visualizer after the experiment, by default the config file and the second it started,
    # and hands an existing visualizer of that name to a later runner: two runners in one process and one second
    # (a train then a test, or two tests) would share the first one's save_dir, deleted by then.
    c.experiment_name = f"sharedvol-{uuid.uuid4().hex[:12]}"
    c.launcher = "none"
    for loader in ("train_dataloader", "test_dataloader", "val_dataloader"):
        dl = c[loader]
        dl.dataset.type = "SharedvolCIFAR10"
        dl.dataset.data_prefix = cfg.data_root
        if dataset is not None:
            dl.dataset.expected = {name: ref.model_dump() for name, ref in dataset.files.items()}
        dl.batch_size = cfg.batch_size
        dl.num_workers = d.workers
        dl.persistent_workers = d.workers > 0
        dl.pin_memory = d.pin_memory
    if d.augment == "batched":  # the same augmentation, on the device: the loader only packs uint8 images
        c.train_dataloader.dataset.type = "SharedvolCIFAR10Tensors"
        c.train_dataloader.dataset.pipeline = []
        c.train_dataloader.collate_fn = {"type": "sharedvol_cifar_collate"}
        c.data_preprocessor = {**c.data_preprocessor, "type": "SharedvolCifarPreprocessor", "pad": 4, "flip_prob": 0.5,
                               "channels_last": d.channels_last}  # fmt: skip
    # No validation during training: test-resnet evaluates the published checkpoint.
    c.val_dataloader = c.val_cfg = c.val_evaluator = None
    c.train_cfg = {"by_epoch": True, "max_epochs": cfg.epochs}
    optimizer = {"type": "SGD", "lr": cfg.lr, "momentum": 0.9, "weight_decay": 1e-4}
    if d.amp:
        c.optim_wrapper = {
            "type": "AmpOptimWrapper",
            "dtype": d.amp_dtype,
            "loss_scale": "dynamic",
            "optimizer": optimizer,
        }
    else:
        c.optim_wrapper = {"type": "OptimWrapper", "optimizer": optimizer}
    c.param_scheduler = {"type": "MultiStepLR", "by_epoch": True, "milestones": milestones(cfg.epochs), "gamma": GAMMA}
    c.default_hooks.logger.interval = cfg.log_interval
    # sharedvol's hook saves and publishes every epoch (one commit point); mmengine writes no checkpoint itself.
    c.default_hooks.checkpoint = None
    c.custom_hooks = [
        {
            "type": "SharedvolTrainHook",
            "run_dir": cfg.run_dir,
            "keep_checkpoints": cfg.keep_checkpoints,
            "channels_last": d.channels_last,
            "metadata": {"format": "sharedvol.weights", "config": STOCK_CONFIG},
            "schedule": {"lr": cfg.lr, "milestones": milestones(cfg.epochs), "gamma": GAMMA},
            "priority": "LOWEST",
        }
    ]
    c.randomness = {"seed": cfg.seed, "deterministic": False}
    c.env_cfg.cudnn_benchmark = device == "cuda"
    c.env_cfg.dist_cfg = {"backend": "nccl" if device == "cuda" else "gloo"}
    c.device = device
    c.visualizer.vis_backends = [{"type": "LocalVisBackend"}]
    if cfg.cfg_options:
        check_cfg_options(c, cfg.cfg_options)
        c.merge_from_dict(cfg.cfg_options)
    return c


def check_cfg_options(c: Any, options: dict[str, Any]) -> None:
    """Refuse an unknown key or a value of the wrong type in ``options``.

    A key is known when the config has it, or when the object it configures takes that argument
    (``model.head.topk``: ``LinearClsHead`` takes ``topk``). A value must have the config's type.

    Raises:
        ConfigError: naming the key.
    """
    tree = c.to_dict()
    for key, value in options.items():
        _not_owned(key)
        node: Any = tree
        parts = key.split(".")
        for i, part in enumerate(parts):
            here = ".".join(parts[: i + 1])
            last = i == len(parts) - 1
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isascii() and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif last and isinstance(node, dict) and _accepts(node.get("type"), part):
                node = value
            else:
                raise errors.ConfigError(
                    f"--cfg-options {key}: the config has no {here}",
                    hint="check the spelling against the stock resnet18_8xb16_cifar10 config",
                )
        if not _same_kind(node, value):
            raise errors.ConfigError(
                f"--cfg-options {key}={value!r}: expected a {type(node).__name__} like {node!r}",
                hint="give a value of the config's type",
            )


# Keys sharedvol sets itself: each reads or writes files on the volume (resume state, checkpoints, weights to
# start from) that only its own verified readers and one-commit-point writer may touch.
OWNED = ("resume", "load_from", "work_dir", "custom_hooks", "default_hooks.checkpoint")
LOADS_FILES = ("init_cfg", "pretrained", "checkpoint")


def _not_owned(key: str) -> None:
    parts = key.split(".")
    owned = next((o for o in OWNED if key == o or key.startswith(o + ".")), None)
    loads = next((p for p in parts if p in LOADS_FILES), None)
    if owned or loads:
        raise errors.ConfigError(
            f"--cfg-options {key}: {owned or loads} is sharedvol's to set (it reads or writes files on the volume "
            "that only sharedvol's verified readers and writers may touch)",
            hint="leave it out: sharedvol resumes from the run directory's published checkpoint by itself",
        )


def _same_kind(old: Any, new: Any) -> bool:
    if old is None or new is None or isinstance(old, (dict, list, tuple)):
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float))
    return isinstance(new, type(old))


def _accepts(type_name: Any, argument: str) -> bool:
    """Whether the registered class ``type_name`` takes ``argument`` in its constructor."""
    if not isinstance(type_name, str):
        return False
    from mmcls import registry
    from mmengine.registry import Registry

    for reg in vars(registry).values():
        if isinstance(reg, Registry):
            found = reg.get(type_name)
            if found is not None:
                return _takes(found, argument)
    return False


def _takes(cls: type, argument: str) -> bool:
    """Whether constructing ``cls`` accepts ``argument``, following ``**kwargs`` up to the base classes."""
    for klass in cls.__mro__:
        if klass is object:
            return False
        params = inspect.signature(klass.__init__).parameters  # type: ignore[misc]
        if argument in params:
            return True
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return False
    return False
