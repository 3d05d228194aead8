"""The one reader for every file the steps read from the volume: a regular file, within its cap, never blocking.

Anything on the shared volume may have been written by another step, a retried pod, a full disk or someone with
write access to the share (docs/threat-model.md). So a read never trusts the name it opens:

- a local file is opened with ``O_NONBLOCK`` (a FIFO put in its place cannot block the open) and checked on the
  open descriptor (``fstat``): anything but a regular file (a FIFO, a device such as ``/dev/zero`` behind a
  symlink, a socket, a directory) is refused before a byte is read;
- so is a file of the kernel's ``/proc`` or ``/sys`` (its device is theirs): such files say they are regular and
  of size 0, yet ``/proc/kmsg`` blocks when read and others never end or hold secrets (``/proc/self/environ``);
- the descriptor stays non-blocking (a regular file ignores ``O_NONBLOCK``): a pseudo file elsewhere (tracefs,
  debugfs) that would block answers "would block" instead, and is refused;
- its size is checked against the cap of its kind of document before anything is allocated, and the read stops
  one byte past that size: a file that yields more than its size says (a zero-size kernel file on a filesystem
  of its own, such as cgroupfs, or a file that grows while it is read) is refused;
- other filesystems (``memory://``, object stores) are asked for the object's type and size first, then read with
  the same bound.

What is read is then parsed under a depth cap and checked against its schema (:mod:`steps.documents`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
from collections.abc import Iterator
from typing import Any

from sharedvol.errors import one_line
from steps import dataplane, errors

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
# The caps of each kind of document (bytes). JSON documents are small: the largest, a manifest with 2,000 loss
# points, is about 60 KiB. A CIFAR-10 batch file is about 30 MiB; the weights of ResNet-18 about 45 MiB.
JSON_CAP = 4 * MIB
BATCH_CAP = 256 * MIB
META_CAP = 1 * MIB
CHECKPOINT_CAP = 4 * GIB

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
}


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words (``a FIFO``, ``a character device``...)."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def printable(text: str, limit: int) -> str:
    """``text`` on one line: control characters escaped, at most ``limit`` characters (a name from a hostile file)."""
    escaped = one_line(text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def shown(url: str) -> str:
    """``url`` as one printable line for a message (a path may hold a newline)."""
    return printable(url, 1024)


@functools.cache
def _kernel_devices() -> frozenset[int]:
    """The devices of ``/proc`` and ``/sys``: their "regular" files may block, never end, or hold secrets."""
    found = set()
    for root in ("/proc", "/sys"):
        with contextlib.suppress(OSError):
            found.add(os.stat(root).st_dev)
    return frozenset(found)


def _not_regular(url: str, what: str, hint: str) -> errors.RunDirError:
    return errors.RunDirError(f"{shown(url)} is {what}, not a regular file; refused unread", hint=hint)


def _too_big(url: str, size: int, cap: int, hint: str) -> errors.RunDirError:
    return errors.RunDirError(
        f"{shown(url)} is {size} bytes, more than the {cap} bytes such a file may have", hint=hint
    )


@contextlib.contextmanager
def open_regular(
    url: str, *, cap: int, hint: str = "rerun the step that writes it", missing_hint: str = ""
) -> Iterator[tuple[Any, int]]:
    """Open ``url`` for reading as a regular file of at most ``cap`` bytes; yields the binary stream and its size.

    The stream of a local file is non-blocking: a read that would block returns None (see :func:`read`).

    Raises:
        RunDirError: missing, not a regular file (checked on the descriptor, without blocking), a file of
            ``/proc`` or ``/sys``, larger than ``cap``, or unreadable.
    """
    missing_hint = missing_hint or hint
    if dataplane.is_local(url):
        path = dataplane.local_path(url)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise errors.RunDirError(f"{shown(url)} does not exist", hint=missing_hint) from e
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.EISDIR):
                raise errors.RunDirError(
                    f"{shown(url)} is not a file (a path on the way is a file, or it is a directory)",
                    hint="point --run-dir at a run directory",
                ) from e
            raise errors.RunDirError(
                f"cannot read {shown(url)}: {e.strerror or e}", hint="check the run directory"
            ) from e
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(url, kind_of(st.st_mode), hint)
            if st.st_dev in _kernel_devices():
                raise _not_regular(url, "a file of the kernel (/proc or /sys)", hint)
            if st.st_size > cap:
                raise _too_big(url, st.st_size, cap, hint)
            f = os.fdopen(fd, "rb", buffering=0)  # still non-blocking: see the module's docstring
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f, st.st_size
        return
    fs, path = dataplane.filesystem(url)
    try:
        info = fs.info(path)
    except FileNotFoundError as e:
        raise errors.RunDirError(f"{shown(url)} does not exist", hint=missing_hint) from e
    except OSError as e:
        raise errors.RunDirError(f"cannot read {shown(url)}: {e.strerror or e}", hint="check the run directory") from e
    if info.get("type") != "file":
        raise _not_regular(url, f"a {info.get('type', 'thing')}", hint)
    size = info.get("size")
    if not isinstance(size, int) or size < 0 or size > cap:
        raise _too_big(url, size if isinstance(size, int) else -1, cap, hint)
    try:
        with fs.open(path, "rb") as f:
            yield f, size
    except FileNotFoundError as e:
        raise errors.RunDirError(f"{shown(url)} does not exist", hint=missing_hint) from e


def read(url: str, *, cap: int, hint: str = "rerun the step that writes it", missing_hint: str = "") -> bytes:
    """All bytes of the regular file ``url``, at most ``cap`` of them (see :func:`open_regular`).

    Raises:
        RunDirError: as :func:`open_regular`; or the file yields more bytes than its size (a kernel file that says
            it is empty, or a file that grew while it was read), or its read would block.
    """
    with open_regular(url, cap=cap, hint=hint, missing_hint=missing_hint) as (f, size):
        try:
            data = _read_at_most(f, size + 1)
        except BlockingIOError as e:
            raise _not_regular(url, "a file whose read would block (a kernel or device file)", hint) from e
        except OSError as e:
            raise errors.RunDirError(
                f"cannot read {shown(url)}: {e.strerror or e}", hint="check the run directory"
            ) from e
    if len(data) > size:
        raise errors.RunDirError(
            f"{shown(url)} yields more bytes than its size ({size}) says: a kernel file, or one that changed while "
            "it was read; refused",
            hint=hint,
        )
    return data


def _read_at_most(f: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = f.read(min(left, dataplane.CHUNK))
        if chunk is None:  # a non-blocking descriptor with nothing to read yet
            raise BlockingIOError(errno.EAGAIN, "the read would block")
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
