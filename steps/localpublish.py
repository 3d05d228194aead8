"""Publishing a local file written by a native writer (``torch.save``, ``safetensors.save_file``): stage, fill, commit.

:func:`stage` creates the hidden temporary file, :func:`fill` has the writer fill it, hashes it (BLAKE3 over a
memory map of the page cache, every core) and fsyncs it, :func:`commit` renames it (the commit point). The
steps are separate so that two files can be filled at once on two threads while every step a kill can land on
(creating a temporary file, renaming it) stays on one thread, in a fixed order (:mod:`steps.checkpoint`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from steps import errors, pins
from steps.dataplane import (
    TMP_MARK,
    Published,
    fsync_dir,
    is_local,
    local_path,
    new_hasher,
    publish,
    publish_bytes,
    write_error,
)

Data = bytes | bytearray | memoryview | Callable[[IO[bytes]], object]


@dataclass
class Staged:
    """A local file being published: its hidden temporary file, then its digest and size once filled."""

    url: str
    tmp: str
    file: Any = None
    blake3: str = ""
    size: int = 0


def stage(url: str) -> Staged:
    """Create (and keep open) the hidden temporary file for the local ``url``: the first step of a publish.

    Raises:
        RunDirError: the directory cannot be created or written.
    """
    path = local_path(url)
    parent, name = os.path.split(path)
    tmp = os.path.join(parent, f".{name}{TMP_MARK}{uuid.uuid4().hex[:8]}")
    try:
        os.makedirs(parent or ".", exist_ok=True)
        pins.check(parent or ".")
        # created by this call alone (a FIFO or a link planted at the name is never opened), kept open until filled
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        return Staged(url, tmp, os.fdopen(fd, "w+b"))  # closed by fill
    except OSError as e:
        discard_local(tmp)
        raise write_error(url, e) from e


def fill(staged: Staged, data: Data, hash_threads: int | None = None) -> Staged:
    """Write ``data`` into the staged file, hash it (BLAKE3 over a memory map of the page cache) and fsync it.

    The hash and the fsync go through the descriptor written, never a reopening by name.

    ``data`` is the bytes, or a function that writes the file into the open stream it is given
    (:func:`steps.safeload.write_safetensors`): straight from the tensors' memory, and into this file only, so a
    killed writer leaves nothing but the temporary file :func:`steps.dataplane.remove_temporaries` knows.
    ``hash_threads``: as :func:`steps.dataplane.new_hasher`. On failure the temporary file is removed.

    Raises:
        RunDirError: the write failed (full disk included).
    """
    try:
        with staged.file as f:  # hashed and synced through the descriptor written, never reopened by name
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            staged.size = os.fstat(f.fileno()).st_size
            hasher = new_hasher(hash_threads)
            if staged.size:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as pages:
                    hasher.update(pages)
            staged.blake3 = hasher.hexdigest()
            os.fsync(f.fileno())
    except OSError as e:
        discard_local(staged.tmp)
        raise write_error(staged.url, e) from e
    except Exception as e:  # a stream writer may report a full disk in its own exception type
        full = _disk_full(staged.tmp, e)
        discard_local(staged.tmp)
        if full:
            raise write_error(staged.url, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from e
        raise
    except BaseException:
        discard_local(staged.tmp)
        raise
    return staged


def _disk_full(path: str, e: Exception) -> bool:
    """Whether a native writer's exception ``e`` comes from a full disk (its text, or no space left beside ``path``)."""
    text = str(e)
    if "No space left" in text or "os error 28" in text or "Disk quota exceeded" in text:
        return True
    try:
        return shutil.disk_usage(os.path.dirname(path) or ".").free < (1 << 20)
    except OSError:
        return False


def commit(staged: Staged, content_name: Callable[[str], str] | None = None) -> Published:
    """Rename the filled temporary file to its URL (or to ``content_name(digest)`` beside it): the commit point.

    Raises:
        RunDirError: the rename failed.
    """
    path = local_path(staged.url)
    if content_name is not None:
        path = os.path.join(os.path.dirname(path), content_name(staged.blake3))
    try:
        pins.check(os.path.dirname(path) or ".")
        os.replace(staged.tmp, path)
        fsync_dir(path)
    except OSError as e:
        discard_local(staged.tmp)
        raise write_error(staged.url, e) from e
    except errors.StepError:
        discard_local(staged.tmp)
        raise
    return Published(path, staged.blake3, staged.size)


def publish_local(url: str, data: Data, *, content_name: Callable[[str], str] | None = None) -> Published:
    """Like :func:`steps.dataplane.publish`, for a local file: :func:`stage`, :func:`fill`, :func:`commit`.

    On a filesystem that is not local it is :func:`steps.dataplane.publish`.

    Raises:
        RunDirError: as :func:`steps.dataplane.publish`.
    """
    if is_local(url):
        return commit(fill(stage(url), data), content_name)
    if callable(data):
        return publish(url, data, content_name=content_name)
    return publish_bytes(url, data, content_name=content_name)


def discard_local(path: str) -> None:
    """Remove the local file ``path`` if it exists."""
    with contextlib.suppress(OSError):
        os.remove(path)


DIR_TMP = ".tmp-dir-"
_RENAME_EXCHANGE = 2  # renameat2's flag: swap two paths atomically


def publish_dir(dir_url: str, files: dict[str, bytes]) -> None:
    """Publish a whole directory of ``files`` (name -> bytes) at one commit point.

    Locally every file is written and fsynced into a hidden sibling directory, which then takes the place of
    ``dir_url`` by one atomic exchange (``renameat2(RENAME_EXCHANGE)``; where the filesystem lacks it, two renames
    with the old directory set aside first). A full disk or a kill before that leaves the previous directory
    whole, never a mix; leftovers are removed at the next publish. Elsewhere (object stores have no directories to
    rename) the files are published one by one.

    Raises:
        RunDirError: a write failed (full disk included); the previous directory is unchanged.
    """
    if not is_local(dir_url):
        for name, data in files.items():
            publish_bytes(f"{dir_url.rstrip('/')}/{name}", data)
        return
    target = os.path.abspath(local_path(dir_url))
    parent, base = os.path.split(target)
    _remove_leftovers(parent, base)
    staging = os.path.join(parent, f".{base}{DIR_TMP}{uuid.uuid4().hex[:8]}")
    try:
        os.makedirs(staging)
        for name, data in files.items():
            with open(os.path.join(staging, name), "xb") as f:  # a private directory: no temporary names needed
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        fsync_dir(os.path.join(staging, "."))
        pins.check(parent)
        if os.path.isdir(target) and not os.path.islink(target):
            if not _exchange(staging, target):
                aside = os.path.join(parent, f".{base}{DIR_TMP}old-{uuid.uuid4().hex[:8]}")
                os.replace(target, aside)
                os.replace(staging, target)
                staging = aside
        else:
            os.replace(staging, target)
            staging = ""
        fsync_dir(target)
    except OSError as e:
        raise write_error(dir_url, e) from e
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)


def _exchange(a: str, b: str) -> bool:
    """Swap the paths ``a`` and ``b`` atomically; False where the filesystem (or the C library) cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


def _remove_leftovers(parent: str, base: str) -> None:
    """Remove the hidden directories a killed :func:`publish_dir` of ``base`` left in ``parent``."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if name.startswith(f".{base}{DIR_TMP}"):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
