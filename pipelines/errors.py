"""Errors the pipeline layer raises for expected failures: each says what is wrong and how to fix it."""

from __future__ import annotations


class PipelineError(Exception):
    """An expected failure in compile, submit, run or demo; the message is one line for the user."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class BadParameterError(PipelineError):
    """A pipeline parameter (size, class, image, GPU count...) that cannot work."""


class KfpApiError(PipelineError):
    """The KFP API refused a call or could not be reached."""


class RunFailedError(PipelineError):
    """A pipeline run ended in a state other than success."""
