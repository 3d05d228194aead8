"""train-resnet and test-resnet started from the table's values: what ``sharedvol train|test`` and the components run.

The values are the :mod:`steps.params` table's (``amp`` ``auto``/``on``/``off``, ``num_workers`` -1 for the
device's choice) plus the step's own settings (``run_dir``, ``data_root``...); the device's environment is set
before torch is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from steps import devices, params

if TYPE_CHECKING:
    from steps.schemas import EvalResult, TrainSummary

T = TypeVar("T")
# The table's values that the configs take in another form.
_CONVERT: dict[str, Callable[[Any], Any]] = {"amp": params.amp_setting, "num_workers": params.workers_setting}


def train(values: Mapping[str, Any]) -> TrainSummary:
    """Train with the :class:`steps.config.TrainConfig` of ``values`` (entries it has no field for are ignored).

    Raises:
        ConfigError: a value the table refuses (``amp``, ``num_workers``), or what training raises.
    """
    devices.apply_env(values.get("device", params.DEFAULTS.device))
    from steps import config as step_config
    from steps import train_resnet

    return train_resnet.train(config(step_config.TrainConfig, values))


def evaluate(values: Mapping[str, Any]) -> EvalResult:
    """Evaluate with the :class:`steps.test_resnet.TestConfig` of ``values`` (entries it has no field for are ignored).

    Raises:
        ConfigError: a value the table refuses (``num_workers``), or what evaluation raises.
    """
    devices.apply_env(values.get("device", params.DEFAULTS.device))
    from steps import test_resnet

    return test_resnet.evaluate(config(test_resnet.TestConfig, values))


def config(cls: type[T], values: Mapping[str, Any]) -> T:
    """The config dataclass ``cls`` of ``values``: its fields that ``values`` has, converted from the table's form.

    Raises:
        ConfigError: a value the table refuses (``amp``, ``num_workers``).
    """
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    given = {name: _CONVERT.get(name, _same)(values[name]) for name in names if name in values}
    return cls(**given)


def _same(value: Any) -> Any:
    return value
