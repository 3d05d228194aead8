"""The pipeline's run parameters: the steps' table plus what only the pipeline has, and what derives from it.

:class:`RunParameters` extends :class:`steps.params.StepParams` with the pipeline-only parameters, in the
same form (a field with its flag, help and unit). From this one table come the pipeline function's signature
(:func:`signature`), the arguments each component task gets (:func:`task_arguments`), the run-parameter flags
of ``compile``, ``submit``, ``run`` and ``demo`` (:func:`steps.params.add_arguments`) and the docs' flag table.

No ``from __future__ import annotations``: the fields' types are classes, which the signature hands to KFP.
"""

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from pipelines import errors
from steps import errors as steps_errors
from steps import params as steps_params
from steps.params import param
from storage import errors as storage_errors
from storage import validate as storage_validate

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ACCELERATOR_LIMIT = re.compile(r"^\d+$", re.ASCII)  # kfp.dsl.PipelineTask.set_accelerator_limit's rule


MAX_GPUS = 64  # per pod: more than any one node holds


@dataclasses.dataclass(frozen=True)
class RunParameters(steps_params.StepParams):
    """The pipeline's run-time parameters and their defaults (settable per run in the KFP UI or by ``submit``).

    The step parameters (epochs, batch_size, lr, seed, device, amp, augment, num_workers, data_source) are
    :class:`steps.params.StepParams`'s; these are the pipeline's own.

    Attributes:
        volume_size: the claim's ``spec.resources.requests.storage``. Default ``10Gi``.
        gpu_count: ``nvidia.com/gpu`` limit of train-resnet; 0 trains on CPU. Default 1. Sent to KFP as a
            string of digits (the SDK's accelerator-limit rule): KFP's driver reads a parameterized
            accelerator count only as a string and silently drops a number (docs/pipeline.md).
        keep_volume: skip delete-volume. Default False.
        run_dir_name: the run directory's name under ``<volume>/runs/``; empty: the KFP run id. Default empty.
    """

    volume_size: str = param("10Gi", help="the claim's size, a Kubernetes quantity", metavar="SIZE")
    gpu_count: int = param(
        1,
        flag="--gpus",
        help="nvidia.com/gpu limit of train-resnet; 0 trains on the CPU",
        metavar="N",
        minimum=0,
        maximum=MAX_GPUS,
        as_string=True,
    )
    keep_volume: bool = param(False, help="keep the claim after the run (no delete-volume)")
    run_dir_name: str = param("", help="run directory under /mnt/shared/runs; empty: the KFP run id", metavar="NAME")

    def validate(self) -> "RunParameters":
        """Refuse values that cannot work, naming the flag; return self.

        Raises:
            BadParameterError: a value the table's rules refuse, a bad size or run directory name.
        """
        try:
            steps_params.check(self)
        except steps_errors.ConfigError as e:
            raise errors.BadParameterError(e.message, hint=e.hint) from e
        check_volume_size(self.volume_size)
        check_run_name(self.run_dir_name)
        return self

    def replace(self, **changes: Any) -> "RunParameters":
        """A copy with ``changes`` applied (unknown names are an error)."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = set(changes) - set(names)
        if unknown:
            raise errors.BadParameterError(
                f"unknown pipeline parameter(s) {', '.join(sorted(unknown))}", hint=f"known: {', '.join(names)}"
            )
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The parameters as KFP ``runtime_config.parameters`` (``gpu_count`` as a string of digits)."""
        return {f.name: kfp_value(f, getattr(self, f.name)) for f in steps_params.fields(self)}


def kfp_type(f: dataclasses.Field[Any]) -> Any:
    """The annotation KFP gets for a parameter field (``str`` for an accelerator count)."""
    return str if steps_params.meta(f).as_string else f.type


def kfp_value(f: dataclasses.Field[Any], value: Any) -> Any:
    """The value KFP gets for a parameter field (a string of digits for an accelerator count)."""
    return gpu_count_parameter(value) if steps_params.meta(f).as_string else value


def signature(defaults: RunParameters) -> inspect.Signature:
    """The pipeline function's signature: one parameter per field, KFP's type, ``defaults`` as defaults."""
    return inspect.Signature(
        [
            inspect.Parameter(
                f.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=kfp_value(f, getattr(defaults, f.name)),
                annotation=kfp_type(f),
            )
            for f in steps_params.fields(defaults)
        ],
        return_annotation=None,
    )


def task_arguments(component: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The run parameters among ``component``'s inputs, by name, from ``values`` (name -> pipeline channel)."""
    names = {f.name for f in steps_params.fields(RunParameters)}
    return {n: values[n] for n in inspect.signature(component).parameters if n in names}


def from_args(args: Any, base: RunParameters | None = None) -> RunParameters:
    """``base`` (default: the table's defaults) with the parameter flags in ``args`` applied, validated."""
    changes = {f.name: getattr(args, f.name) for f in steps_params.fields(RunParameters) if hasattr(args, f.name)}
    return (base or RunParameters()).replace(**changes).validate()


def check_volume_size(size: str, *, what: str = "volume_size") -> str:
    """Refuse a size the claim cannot have (:func:`storage.validate.quantity_bytes`: a quantity of at least 1Mi).

    Raises:
        BadParameterError: naming ``what``, the value and storage's reason.
    """
    try:
        storage_validate.quantity_bytes(size, what=what)
    except storage_errors.InvalidRequestError as e:
        raise errors.BadParameterError(e.message, hint=e.hint) from e
    return size


def gpu_count_parameter(count: int | str) -> str:
    """The pipeline's ``gpu_count`` parameter value: a non-negative integer as a string of digits.

    Raises:
        BadParameterError: not a non-negative integer (the SDK's rule for accelerator limits).
    """
    text = str(count).strip()
    if isinstance(count, bool) or not _ACCELERATOR_LIMIT.match(text):
        raise errors.BadParameterError(
            f"gpu_count {count!r} is not a non-negative integer", hint="0 trains on CPU, 1 asks for one GPU"
        )
    return str(int(text))


def check_run_name(name: str) -> str:
    """Refuse a run name that is not one safe path component (empty is allowed: the KFP run id is used)."""
    if name and not _RUN_NAME.match(name):
        raise errors.BadParameterError(
            f"run name {name!r} cannot name a directory",
            hint="use at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name
