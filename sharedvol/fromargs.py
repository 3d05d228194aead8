"""Settings dataclasses filled from parsed command-line flags: every CLI's flags-to-settings step, written once."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def build(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """An instance of the dataclass ``cls`` whose fields come from ``given``, else from the flags in ``args``.

    A field takes the flag whose ``dest`` is its name; a field that no flag names keeps its default. ``given``
    holds the fields that are not a flag's value as it is (a converted value, a flag of another name).

    Args:
        cls: a dataclass.
        args: the parsed flags.
        **given: field values that win over ``args``.

    Raises:
        TypeError: ``given`` names no field of ``cls``, or a field without a default has no value (both are
            programming errors, not user input).
    """
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(given) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values.update(given)
    return cls(**values)
