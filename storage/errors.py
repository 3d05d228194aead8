"""The errors storage/ raises for expected failures: each says what is wrong and how to fix it."""

from __future__ import annotations


class StorageError(Exception):
    """An expected failure; ``str()`` is one line for the user: what is wrong, then how to fix it."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message
