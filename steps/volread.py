"""The one reader for every file the steps read from the volume: a regular file, within its cap, never blocking.

Anything on the shared volume may have been written by another step, a retried pod, a full disk or someone with
write access to the share (docs/threat-model.md). So a read never trusts the name it opens:

- a local file is opened with ``O_NONBLOCK`` (a FIFO put in its place cannot block the open) and checked on the
  open descriptor (``fstat``): anything but a regular file (a FIFO, a device such as ``/dev/zero`` behind a
  symlink, a socket, a directory) is refused before a byte is read;
- its size is checked against the cap of its kind of document before anything is allocated, and the read stops
  one byte past the cap (a file that grows while it is read is refused too);
- other filesystems (``memory://``, object stores) are asked for the object's type and size first, then read with
  the same bound.

What is read is then parsed under a depth cap and checked against its schema (:mod:`steps.documents`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import Any

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


def _not_regular(url: str, what: str, hint: str) -> errors.RunDirError:
    return errors.RunDirError(f"{url} is {what}, not a regular file; refused unread", hint=hint)


def _too_big(url: str, size: int, cap: int, hint: str) -> errors.RunDirError:
    return errors.RunDirError(f"{url} is {size} bytes, more than the {cap} bytes such a file may have", hint=hint)


@contextlib.contextmanager
def open_regular(
    url: str, *, cap: int, hint: str = "rerun the step that writes it", missing_hint: str = ""
) -> Iterator[tuple[Any, int]]:
    """Open ``url`` for reading as a regular file of at most ``cap`` bytes; yields the binary stream and its size.

    Raises:
        RunDirError: missing, not a regular file (checked on the descriptor, without blocking), larger than
            ``cap``, or unreadable.
    """
    missing_hint = missing_hint or hint
    if dataplane.is_local(url):
        path = dataplane.local_path(url)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise errors.RunDirError(f"{url} does not exist", hint=missing_hint) from e
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.EISDIR):
                raise errors.RunDirError(
                    f"{url} is not a file (a path on the way is a file, or it is a directory)",
                    hint="point --run-dir at a run directory",
                ) from e
            raise errors.RunDirError(f"cannot read {url}: {e.strerror or e}", hint="check the run directory") from e
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(url, kind_of(st.st_mode), hint)
            if st.st_size > cap:
                raise _too_big(url, st.st_size, cap, hint)
            os.set_blocking(fd, True)
            f = os.fdopen(fd, "rb", buffering=0)
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
        raise errors.RunDirError(f"{url} does not exist", hint=missing_hint) from e
    except OSError as e:
        raise errors.RunDirError(f"cannot read {url}: {e.strerror or e}", hint="check the run directory") from e
    if info.get("type") != "file":
        raise _not_regular(url, f"a {info.get('type', 'thing')}", hint)
    size = info.get("size")
    if not isinstance(size, int) or size < 0 or size > cap:
        raise _too_big(url, size if isinstance(size, int) else -1, cap, hint)
    try:
        with fs.open(path, "rb") as f:
            yield f, size
    except FileNotFoundError as e:
        raise errors.RunDirError(f"{url} does not exist", hint=missing_hint) from e


def read(url: str, *, cap: int, hint: str = "rerun the step that writes it", missing_hint: str = "") -> bytes:
    """All bytes of the regular file ``url``, at most ``cap`` of them (see :func:`open_regular`).

    Raises:
        RunDirError: as :func:`open_regular`, or the file grew past ``cap`` while it was read.
    """
    with open_regular(url, cap=cap, hint=hint, missing_hint=missing_hint) as (f, _size):
        try:
            data = _read_at_most(f, cap + 1)
        except OSError as e:
            raise errors.RunDirError(f"cannot read {url}: {e.strerror or e}", hint="check the run directory") from e
    if len(data) > cap:
        raise _too_big(url, len(data), cap, hint)
    return data


def _read_at_most(f: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = f.read(min(left, dataplane.CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
