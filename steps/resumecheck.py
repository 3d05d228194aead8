"""A resume file's state checked against the model and the optimizer built for this run, before mmengine loads it.

mmengine loads a resume leniently: missing weights keep their random start, and the optimizer's hyperparameters
(momentum, weight decay, Nesterov...) and the seed come back from the file, whatever the config says. A file with
other values than the run's (made or mixed up by anyone who can write the volume) would go on training silently
re-configured, and an optimizer state of the wrong shape fails deep inside torch. So, before the load:

- the weights are exactly the model's tensors (:func:`steps.modelcheck.check_weights`), finite;
- the parameter groups are the built optimizer's: as many, each of its size, indices 0..N-1 once each;
- every per-parameter state tensor (a momentum buffer...) has its parameter's shape and is finite;
- every hyperparameter other than the rate (which the schedule sets, :class:`steps.hooks.SharedvolTrainHook`) is
  the built optimizer's; when the run's settings were changed on purpose (``--allow-changed-settings``) the new
  ones replace the file's, and a log line says which.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from steps import errors, modelcheck

log = logging.getLogger(__name__)

SCHEDULED = frozenset({"params", "lr", "initial_lr"})  # set by the schedule after the load, not compared


def check(model: Any, optimizer: Any, state: dict[str, Any], source: str, *, reconfigured: bool) -> None:
    """Refuse (or, ``reconfigured``, adopt the run's hyperparameters into) the resume ``state`` read from ``source``.

    Raises:
        IntegrityError: naming the first tensor, group or value that is not this run's.
    """
    modelcheck.check_weights(model, state.get("state_dict") or {}, f"the weights beside {source}")
    saved = state.get("optimizer")
    if not isinstance(saved, dict):
        raise _bad(source, "it holds no optimizer state")
    groups, built = saved.get("param_groups"), optimizer.param_groups
    if not isinstance(groups, list) or len(groups) != len(built):
        count = len(groups) if isinstance(groups, list) else 0
        raise _bad(source, f"its optimizer has {count} parameter groups, this run's {len(built)}")
    params = [p for group in built for p in group["params"]]
    indices: list[Any] = []
    for number, (group, mine) in enumerate(zip(groups, built, strict=True)):
        if not isinstance(group, dict) or len(group.get("params") or []) != len(mine["params"]):
            raise _bad(
                source, f"its parameter group {number} does not hold this run's {len(mine['params'])} parameters"
            )
        indices += group["params"]
        _hyperparameters(group, mine, number, source, reconfigured)
    if sorted(indices) != list(range(len(params))):
        raise _bad(source, f"its parameter groups do not number this run's {len(params)} parameters once each")
    _per_parameter(saved.get("state"), params, source)


def _hyperparameters(saved: dict[str, Any], mine: dict[str, Any], number: int, source: str, adopt: bool) -> None:
    keys = (set(saved) | set(mine)) - SCHEDULED
    changed = sorted(k for k in keys if type(saved.get(k)) is not type(mine.get(k)) or saved.get(k) != mine.get(k))
    if not changed:
        return
    what = ", ".join(f"{k} {saved.get(k)!r} (this run: {mine.get(k)!r})" for k in changed)
    if not adopt:
        raise _bad(source, f"its optimizer was set otherwise than this run's settings give: {what}")
    log.warning("parameter group %d: the changed settings take effect: %s", number, what)
    for k in changed:
        if k in mine:
            saved[k] = mine[k]
        else:
            saved.pop(k, None)


def _per_parameter(state: Any, params: list[Any], source: str) -> None:
    import torch

    if not isinstance(state, dict):
        raise _bad(source, "its optimizer state is not a table of parameters")
    for index, values in state.items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(values, dict):
            raise _bad(source, f"its optimizer holds state for parameter {index!r}, which this run does not have")
        for name, value in values.items():
            if not isinstance(value, torch.Tensor):
                if isinstance(value, float) and not math.isfinite(value):
                    raise _bad(source, f"its optimizer's {name!r} of parameter {index} is {value}")
                continue
            if value.dim() and tuple(value.shape) != tuple(params[index].shape):
                shape, want = tuple(value.shape), tuple(params[index].shape)
                raise _bad(source, f"its optimizer's {name!r} of parameter {index} is {shape}, the parameter {want}")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise _bad(source, f"its optimizer's {name!r} of parameter {index} is not finite")


def _bad(source: str, why: str) -> errors.IntegrityError:
    return errors.IntegrityError(
        f"cannot resume from {source}: {why}",
        hint="the run directory's checkpoint was changed or mixed up; train again on a new --run-dir",
    )
