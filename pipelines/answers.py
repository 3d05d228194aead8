"""Answers of the KFP servers read with a cap: a server that sends without end cannot fill this machine's memory.

A run's details, an ML Metadata answer or a task's last log lines are kilobytes; :data:`CAP` is far above any
true answer and far below what would hurt.
"""

from __future__ import annotations

from collections.abc import Iterable

CAP = 64 * 2**20
CHUNK = 2**16


class TooLarge(ValueError):
    """An answer longer than its cap (``str()``: what was read, and the cap)."""


def read(chunks: Iterable[bytes], what: str, cap: int = CAP) -> bytes:
    """The concatenated ``chunks`` (decoded bytes, as they arrive); stops reading once past ``cap``.

    Raises:
        TooLarge: more than ``cap`` bytes arrived.
    """
    parts, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise TooLarge(f"the answer to {what} is larger than {cap // 2**20} MiB")
        parts.append(chunk)
    return b"".join(parts)
