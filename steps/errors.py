"""The errors steps/ raises for expected failures: each says what is wrong and how to fix it."""

from __future__ import annotations

from sharedvol import errors as base


class StepError(base.Error):
    """An expected failure; ``str()`` is one line for the user: what is wrong, then how to fix it."""


class DatasetError(StepError):
    """The dataset is missing, incomplete or not in CIFAR-10's on-disk format."""


class RunDirError(StepError):
    """The run directory cannot be read or written."""


class IntegrityError(StepError):
    """A file's bytes do not match its published sha256 digest."""


class SchemaError(StepError):
    """A JSON document is truncated, foreign, or of a schema version this code does not read."""


class ConfigError(StepError):
    """A step argument that cannot work (negative epochs, unknown device, AMP without CUDA...)."""
