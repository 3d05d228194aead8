"""The step parameters, defined once: name, flag, help, unit, type, rules and default of each.

Every place that takes a training parameter derives it from :class:`StepParams`: the ``sharedvol
train``/``test`` flags (:func:`add_arguments`), :class:`steps.train_resnet.TrainConfig`'s defaults, and above
this floor the pipeline's signature, its component inputs and the ``compile/submit/run/demo`` flags
(``pipelines.params``, which adds the pipeline-only parameters in the same form).

No ``from __future__ import annotations``: a field's ``type`` is the class itself (``int``, ``float``...),
which is what argparse and KFP need.
"""

import argparse
import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from steps import errors

DEVICES = ("auto", "cpu", "cuda")
AMP = ("auto", "on", "off")
AUGMENT = ("auto", "stock", "batched")
AUTO_WORKERS = -1  # num_workers: the device decides


@dataclass(frozen=True)
class Param:
    """What one parameter means to people and to command lines (a dataclass field's ``metadata["param"]``).

    Attributes:
        help: one line for ``--help`` and the docs, without the default.
        flag: the command-line flag; empty (default): the field's name as a flag (``batch_size``: ``--batch-size``),
            which :func:`meta` fills in.
        unit: the unit of the value (``images``), or ``""``.
        metavar: the value's placeholder in ``--help``; ``""``: argparse's default.
        choices: the allowed values; empty: any value of the type.
        minimum: the smallest allowed number; None: no bound.
        maximum: the largest allowed number; None: no bound.
        positive: the value must be above 0 (for floats, where ``minimum`` cannot say it).
        nonempty: a string that must not be blank.
        as_string: sent to KFP as a string of digits (an accelerator count; the SDK's rule).
    """

    help: str
    flag: str = ""
    unit: str = ""
    metavar: str = ""
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: float | None = None
    positive: bool = False
    nonempty: bool = False
    as_string: bool = False


# Upper bounds: what a run can use, far above what it needs; a value past them fails at once, not deep in a step.
MAX_EPOCHS = 100_000  # what the documents on the volume admit (steps.schemas.MAX_EPOCHS)
MAX_BATCH = 65_536  # above CIFAR-10's 50,000 training images
MAX_LR = 1e6
MAX_WORKERS = 256


def param(default: Any, **meta: Any) -> Any:
    """A dataclass field with ``default`` and its :class:`Param` (the keyword arguments) as metadata."""
    return field(default=default, metadata={"param": Param(**meta)})


@dataclass(frozen=True)
class StepParams:
    """The parameters of prepare-data, train-resnet and test-resnet, with the defaults the pipeline runs with.

    Attributes:
        epochs: epochs to train in total (a resumed run continues up to this number). Default 20.
        batch_size: images per iteration, in training and in testing. Default 128 (the stock config's 8x16).
        lr: SGD learning rate (momentum 0.9, weight decay 1e-4 as in the stock config). Default 0.1.
        seed: random seed for mmengine's ``randomness``. Default 0.
        device: ``auto`` (CUDA when visible), ``cpu`` or ``cuda``. Default ``auto``.
        amp: mixed precision (mmengine ``AmpOptimWrapper``): ``auto`` (on with CUDA: bf16 where the GPU supports
            it, else fp16; off on the CPU), ``on`` (CUDA only) or ``off``. Default ``auto``.
        augment: ``stock`` (mmcls's per-image crop and flip in the loader), ``batched`` (the same on the device,
            :mod:`steps.augment`) or ``auto`` (batched with CUDA, stock on the CPU). Default ``auto``.
        num_workers: data-loader worker processes per step; -1: the device decides (min(8, cores) with CUDA,
            0 on the CPU). Default -1.
        data_source: ``download`` (official CIFAR-10, MD5-checked), ``synthetic``, ``synthetic:TRAIN:TEST`` or a
            directory holding ``cifar-10-batches-py``. Default ``download``.
    """

    epochs: int = param(20, help="training epochs", unit="epochs", metavar="N", minimum=1, maximum=MAX_EPOCHS)
    batch_size: int = param(
        128, help="images per iteration (train and test)", unit="images", metavar="N", minimum=1, maximum=MAX_BATCH
    )
    lr: float = param(0.1, help="SGD learning rate", positive=True, maximum=MAX_LR)
    seed: int = param(0, help="random seed", metavar="N", minimum=0, maximum=2**32 - 1)
    device: str = param("auto", help="auto (CUDA when visible), cpu or cuda", choices=DEVICES)
    amp: str = param(
        "auto",
        help="mixed precision: auto (on with CUDA: bf16 where supported, else fp16), on (CUDA only) or off",
        choices=AMP,
    )
    augment: str = param(
        "auto",
        help="stock: per-image in the loader; batched: on the device; auto: batched with CUDA, stock on the CPU",
        choices=AUGMENT,
    )
    num_workers: int = param(
        AUTO_WORKERS,
        help="data-loader worker processes; -1: min(8, cores) with CUDA, 0 on the CPU",
        metavar="N",
        minimum=AUTO_WORKERS,
        maximum=MAX_WORKERS,
    )
    data_source: str = param(
        "download",
        help="download | synthetic[:TRAIN:TEST] | a directory holding cifar-10-batches-py",
        metavar="SOURCE",
        nonempty=True,
    )

    def validate(self) -> "StepParams":
        """Refuse values that cannot work, naming the flag; return self.

        Raises:
            ConfigError: a value below its minimum, a non-positive learning rate, an unknown choice.
        """
        check(self)
        return self


DEFAULTS = StepParams()
# Which parameters each step takes (train-resnet and test-resnet; prepare-data takes data_source).
TRAINING = ("epochs", "batch_size", "lr", "seed", "device", "amp", "augment", "num_workers")
TESTING = ("batch_size", "device", "num_workers")
# The CPU demo (`sharedvol demo`): a few epochs of small batches in-process, minutes on a laptop (on the CPU,
# amp and augment "auto" mean off and stock).
DEMO = StepParams(epochs=2, batch_size=32, lr=0.05, device="cpu", num_workers=0)


def fields(params: Any, only: Iterable[str] | None = None) -> list[dataclasses.Field[Any]]:
    """The fields of a parameter dataclass (class or instance) that carry a :class:`Param`, in order."""
    wanted = set(only) if only is not None else None
    return [f for f in dataclasses.fields(params) if "param" in f.metadata and (wanted is None or f.name in wanted)]


def meta(f: dataclasses.Field[Any]) -> Param:
    """The :class:`Param` of a field, its flag filled in."""
    m: Param = f.metadata["param"]
    return m if m.flag else dataclasses.replace(m, flag="--" + f.name.replace("_", "-"))


def check(params: Any) -> None:
    """Check every parameter of ``params`` against its :class:`Param` rules.

    Raises:
        ConfigError: naming the flag, the value and the rule.
    """
    for f in fields(params):
        check_value(f, getattr(params, f.name))


def check_value(f: dataclasses.Field[Any], value: Any) -> None:
    """Check one parameter's ``value`` against its field's :class:`Param` rules.

    Raises:
        ConfigError: naming the flag, the value and the rule.
    """
    m = meta(f)
    if m.choices and value not in m.choices:
        raise errors.ConfigError(f"{m.flag} {value!r} is unknown", hint=f"use {', '.join(m.choices)}")
    if m.nonempty and not str(value).strip():
        raise errors.ConfigError(f"{m.flag} is empty", hint=f"e.g. {m.flag} {f.default}")
    if f.name == "data_source" and isinstance(value, str):
        synthetic_sizes(value)
    if f.type is bool or isinstance(value, str):
        return
    if m.minimum is not None and value < m.minimum:
        raise errors.ConfigError(
            f"{m.flag} must be at least {m.minimum}, got {value}", hint=f"e.g. {m.flag} {f.default}"
        )
    if m.maximum is not None and value > m.maximum:
        raise errors.ConfigError(
            f"{m.flag} must be at most {m.maximum}, got {value}", hint=f"e.g. {m.flag} {f.default}"
        )
    if m.positive and not (math.isfinite(value) and value > 0):
        raise errors.ConfigError(f"{m.flag} must be a positive number, got {value}", hint=f"e.g. {m.flag} {f.default}")


SYNTHETIC_IMAGES = (10, 60_000)  # a synthetic split: at least one image per class, at most all of CIFAR-10


def synthetic_sizes(source: str) -> tuple[int, int] | None:
    """The (train, test) sizes of a ``synthetic:TRAIN:TEST`` data source; None for any other source.

    Raises:
        ConfigError: not two whole numbers, or a size outside :data:`SYNTHETIC_IMAGES`.
    """
    if not source.startswith("synthetic:"):
        return None
    parts = source.split(":")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 6 for p in parts[1:]):
        raise errors.ConfigError(
            f"data source {source[:80]!r} is not synthetic:TRAIN:TEST", hint="e.g. synthetic:512:128"
        )
    low, high = SYNTHETIC_IMAGES
    train, test = int(parts[1]), int(parts[2])
    for split, n in (("TRAIN", train), ("TEST", test)):
        if not low <= n <= high:
            raise errors.ConfigError(
                f"data source {source!r}: {split} {n} is out of range", hint=f"use between {low} and {high} images"
            )
    return train, test


def amp_setting(amp: str) -> bool | None:
    """``TrainConfig.amp`` for the table's ``amp``: None for ``auto`` (the device decides), True for on, False for off.

    Raises:
        ConfigError: not auto, on or off.
    """
    check_value(_field("amp"), amp)
    return {"auto": None, "on": True, "off": False}[amp]


def workers_setting(num_workers: int) -> int | None:
    """``TrainConfig``/``TestConfig.num_workers`` for the table's ``num_workers``: None for -1 (the device decides).

    Raises:
        ConfigError: below -1.
    """
    check_value(_field("num_workers"), num_workers)
    return None if num_workers == AUTO_WORKERS else int(num_workers)


def _field(name: str) -> dataclasses.Field[Any]:
    (f,) = fields(StepParams, (name,))
    return f


def add_arguments(parser: argparse.ArgumentParser | Any, defaults: Any, only: Iterable[str] | None = None) -> None:
    """Add one flag per parameter of ``defaults`` (a parameter dataclass instance) to ``parser``.

    The flag's ``dest`` is the field name, its default the value in ``defaults``, its help the table's help
    with the default after it. ``only``: these field names (default all).
    """
    for f in fields(defaults, only):
        m, default = meta(f), getattr(defaults, f.name)
        text = m.help
        kwargs: dict[str, Any] = {"dest": f.name, "default": default}
        if f.type is bool:
            parser.add_argument(
                m.flag,
                action=argparse.BooleanOptionalAction,
                help=f"{text} (default {'on' if default else 'off'})",
                **kwargs,
            )
            continue
        unit = f" {m.unit}" if m.unit else ""
        shown = "empty" if default == "" else f"{default}{unit}"
        kwargs["help"] = f"{text} (default {shown})"
        kwargs["type"] = f.type
        if m.choices:
            kwargs["choices"] = m.choices
        if m.metavar:
            kwargs["metavar"] = m.metavar
        parser.add_argument(m.flag, **kwargs)
