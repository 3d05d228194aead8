"""The base of every expected sharedvol failure: one line for the user, what is wrong and how to fix it."""

from __future__ import annotations


class Error(Exception):
    """An expected failure; ``str()`` is one line for the user: what is wrong, then how to fix it.

    Args:
        message: what is wrong, naming the value, file or object.
        hint: how to fix it; empty when the message says it all.
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return one_line(f"{self.message}: {self.hint}" if self.hint else self.message)


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (a path or a name from outside may hold a newline)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
