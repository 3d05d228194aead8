"""Errors the pipeline layer raises for expected failures: each says what is wrong and how to fix it."""

from __future__ import annotations

from sharedvol import errors as base


class PipelineError(base.Error):
    """An expected failure in compile, submit, run or demo; the message is one line for the user."""


class BadParameterError(PipelineError):
    """A pipeline parameter (size, class, image, GPU count...) that cannot work."""


class KfpApiError(PipelineError):
    """The KFP API refused a call or could not be reached."""


class RunFailedError(PipelineError):
    """A pipeline run ended in a state other than success."""


class DemoFailedError(PipelineError):
    """A task of the local demo run failed, or the run left files missing."""


class KfpAuthError(KfpApiError):
    """The KFP API answered 401 or 403."""


class KfpUnreachableError(KfpApiError):
    """The KFP API could not be reached (connection refused, DNS, TLS, timeout)."""


class RunTimeoutError(PipelineError):
    """A run did not end before the deadline (it may still be running)."""


class StorageUnavailableError(PipelineError):
    """No storage the run can use: the message says what was tried and why it failed."""


class NoTrainingNodeError(PipelineError):
    """No Ready node can run train-resnet (none matches the node selector, or none offers the GPUs it asks for)."""
