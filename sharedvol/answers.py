"""Answers of servers (KFP's, ML Metadata, the Kubernetes API) read with a cap on size and on time.

A server that sends without end cannot fill this machine's memory, and one that sends a byte now and then cannot
hold a command: a run's details, an ML Metadata answer, a task's last log lines or a page of claims are kilobytes
to megabytes, read in seconds; the caps are far above any true answer and far below what would hurt.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import urllib3

CAP = 64 * 2**20
KUBE_CAP = 256 * 2**20  # a list of a namespace's Events can be large
CHUNK = 2**16
DEADLINE_S = 300.0  # one answer, from its first byte to its last


class TooLarge(ValueError):
    """An answer longer than its cap (``str()``: what was read, and the cap)."""


def read(chunks: Iterable[bytes], what: str, cap: int = CAP, deadline_s: float = DEADLINE_S) -> bytes:
    """The concatenated ``chunks`` (decoded bytes, as they arrive); stops reading past ``cap`` or ``deadline_s``.

    Each chunk's wait is the caller's read timeout; the deadline bounds them all together.

    Raises:
        TooLarge: more than ``cap`` bytes arrived, or the answer was still coming after ``deadline_s`` seconds.
    """
    parts, size = [], 0
    ends = time.monotonic() + deadline_s
    for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise TooLarge(f"the answer to {what} is larger than {cap // 2**20} MiB")
        if time.monotonic() > ends:
            raise TooLarge(f"the answer to {what} was still coming after {deadline_s:g} s ({size} bytes)")
        parts.append(chunk)
    return b"".join(parts)


def arriving(response: Any) -> Iterator[bytes]:
    """The body of a urllib3 ``response`` (``requests``' ``raw``) as it arrives: each part as soon as it is there.

    ``stream(n)`` waits until ``n`` bytes came: a byte every few seconds would keep one part coming for hours.
    """
    while chunk := response.read1(CHUNK, decode_content=True):
        yield chunk


def whole(response: Any, what: str, *, cap: int = CAP, deadline_s: float = DEADLINE_S) -> urllib3.HTTPResponse:
    """A urllib3 ``response`` (opened with ``preload_content=False``) read whole within ``cap`` and ``deadline_s``.

    Returns a response holding the body, as a client that reads answers whole expects; the connection is released.

    Raises:
        TooLarge: as :func:`read`.
    """
    try:
        body = read(arriving(response), what, cap, deadline_s)
    finally:
        response.release_conn()
    return urllib3.HTTPResponse(body=body, headers=response.headers, status=response.status, reason=response.reason)
