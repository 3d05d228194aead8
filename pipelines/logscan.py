"""Finding why a task failed in its log: the last line that names an exception."""

from __future__ import annotations

import re
from collections.abc import Iterable

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# "steps.errors.DatasetError: ...", "RuntimeError: ...", "KeyboardInterrupt: ..." (module path optional).
EXCEPTION_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Interrupt)\b.*?:\s*\S")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes."""
    return ANSI.sub("", text)


def last_error_line(lines: Iterable[str]) -> str:
    """The last line naming an exception (colour codes removed), or ``""``."""
    found = ""
    for line in lines:
        plain = strip_ansi(line)
        if EXCEPTION_LINE.match(plain):
            found = plain.strip()
    return found
