"""The data-plane contract: where each step reads and writes inside a run directory, and how.

Every file another step reads is published with exactly one commit point: written to a hidden temporary
name in the same directory, flushed, fsynced and renamed. Whatever a reader must trust carries a BLAKE3
digest that is committed by the same rename: JSON documents hold their own digest (:mod:`steps.documents`),
checkpoints are content-addressed files named by a small manifest (:mod:`steps.checkpoint`). A writer
killed at any point leaves the previous version readable. All I/O goes through fsspec, so a run
directory can be a mounted volume (``/mnt/shared/runs/r1``), ``file://``, ``memory://`` or an object store.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import blake3
import fsspec

from steps import errors, pins

CHUNK = 8 << 20
TMP_MARK = ".tmp-"
# where a run directory can be: a local path, fsspec's memory, object stores (each needs its fsspec package).
# Not http(s), ftp or archives (read-only, or no deadline on a server that never answers), nor chained URLs.
PROTOCOLS = frozenset({"file", "local", "memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


@dataclass(frozen=True)
class RunLayout:
    """The files of one run under its root directory (docs/dataplane.md).

    Args:
        root: the run directory, a path or URL (``/mnt/shared/runs/r1``, ``file:///...``, ``memory://r1``).
    """

    root: str

    def path(self, *parts: str) -> str:
        """``root`` joined with ``parts`` by ``/``."""
        return "/".join([self.root.rstrip("/"), *parts])

    PARTS = ("train", "checkpoints", "eval", "metrics")

    def check_own(self) -> None:
        """Refuse a run directory whose parts are symbolic links.

        A writer of ``train/``, ``checkpoints/``, ``eval/`` or ``metrics/`` would list, prune and publish wherever
        a link planted on the volume points.

        Raises:
            RunDirError: naming the link.
        """
        if not is_local(self.root):
            return
        if not os.path.realpath(local_path(self.root) or "/").strip("/"):  # "", "/", "//", "/..", a link to /
            raise errors.RunDirError(
                f"--run-dir {self.root!r} is empty or the filesystem's root: "
                "a run's parts would be /train, /checkpoints",
                hint="name a directory of its own, e.g. --run-dir /mnt/shared/runs/r1",
            )
        for part in self.PARTS:
            where = local_path(self.path(part))
            if os.path.islink(where):
                raise errors.RunDirError(
                    f"{where} is a symbolic link (to {os.readlink(where)[:200]}); refused: a run's parts are its own",
                    hint="remove the link (a run directory is made by sharedvol), or use a new --run-dir",
                )
        root = local_path(self.root)
        pins.reset(root)  # pinned as they are now: swapped later, the next write there is refused
        if os.path.isdir(root):
            pins.pin(root, follow=True)
        elif not os.path.lexists(root):
            pins.expect(root)
        for part in self.PARTS:
            pins.expect(local_path(self.path(part)))

    @property
    def train_dir(self) -> str:
        """Mmengine's work_dir: its logs and the config it ran."""
        return self.path("train")

    @property
    def checkpoint_dir(self) -> str:
        """``checkpoints/``: content-addressed weights and resume files, and the manifest naming them."""
        return self.path("checkpoints")

    @property
    def checkpoint(self) -> str:
        """``checkpoints/latest.json``: the manifest test-resnet and a resumed train-resnet follow."""
        return self.path("checkpoints", "latest.json")

    @property
    def summary(self) -> str:
        """``train/summary.json``: what training did."""
        return self.path("train", "summary.json")

    @property
    def eval_result(self) -> str:
        """``eval/eval_result.json``: what evaluation measured."""
        return self.path("eval", "eval_result.json")

    @property
    def metrics_dir(self) -> str:
        """``metrics/``: what produce-metrics emits."""
        return self.path("metrics")


def is_local(url: str) -> bool:
    """Whether ``url`` names the local filesystem (a plain path or ``file://``)."""
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    """The local filesystem path of a plain path or ``file://`` URL."""
    return url.removeprefix("file://")


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of ``url``.

    Raises:
        RunDirError: the URL's protocol needs a package that is not installed, or is unknown.
    """
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol not in PROTOCOLS:
        raise errors.RunDirError(
            f"{url}: a run directory cannot be on {protocol}://", hint="use a path, file://, memory:// or s3:// URL"
        )
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as e:
        protocol = url.split("://", 1)[0]
        package = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(protocol)
        how = f"install it: pip install {package}" if package else "install the fsspec backend for it"
        raise errors.RunDirError(f"{url}: the {protocol}:// filesystem needs a package", hint=how) from e
    except (ValueError, TypeError) as e:
        raise errors.RunDirError(f"{url}: {e}", hint="use a path, file://, memory:// or s3:// URL") from e


def refuse_file_on_the_way(url: str) -> None:
    """Raise when a local ``url`` cannot exist because a directory on its way is a regular file.

    Raises:
        RunDirError: naming that file.
    """
    if not is_local(url):
        return
    path = os.path.dirname(os.path.abspath(local_path(url)))
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    if path and not os.path.isdir(path):
        raise errors.RunDirError(f"{path} is a file, not a directory", hint="point --run-dir at a run directory")


def exists(url: str) -> bool:
    """Whether something is at ``url`` (locally: a dangling symbolic link counts; a reader will say what it is).

    Raises:
        RunDirError: it cannot be told (a directory on the way that this user may not search).
    """
    if is_local(url):
        try:
            os.lstat(local_path(url))
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as e:
            raise errors.RunDirError(
                f"cannot tell whether {url} exists: {e.strerror}", hint="check the run directory"
            ) from e
        return True
    fs, path = filesystem(url)
    return bool(fs.exists(path))


def new_hasher(threads: int | None = None) -> Any:
    """A BLAKE3 hasher using ``threads`` threads for large updates (default: every core)."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO if threads is None else threads)


def pair_threads() -> int:
    """Hashing threads for each of two files hashed at once: half the usable cores (at least one).

    Two hashers asking for every core at once oversubscribe them.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // 2)


def write_error(url: str, e: OSError) -> errors.RunDirError:
    """The one-line error for a failed write of ``url``."""
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        return errors.RunDirError(
            f"no space left on the volume writing {url}",
            hint="free space or use a bigger volume (docs/dataplane.md gives the budget); "
            "nothing half-written was kept",
        )
    if isinstance(e, PermissionError):
        return errors.RunDirError(
            f"cannot write {url}: permission denied",
            hint="mount the shared volume writable for this user (check fsGroup / runAsUser) or pick another --run-dir",
        )
    return errors.RunDirError(f"cannot write {url}: {e.strerror or e}", hint="check the run directory")


@dataclass(frozen=True)
class Published:
    """What :func:`publish` wrote: the final URL, its BLAKE3 digest (hex) and its size in bytes."""

    url: str
    blake3: str
    size: int


def publish(
    url: str, write: Callable[[IO[bytes]], object], *, content_name: Callable[[str], str] | None = None
) -> Published:
    """Write a file atomically: ``write(stream)`` fills a temporary file, which is then renamed to ``url``.

    The digest is computed on the bytes as they pass (no second pass). The rename is the one commit point:
    a writer killed before it leaves the previous file and a hidden ``.<name>.tmp-*`` file, which
    :func:`remove_temporaries` deletes at the next start. With ``content_name`` the file is renamed to
    ``content_name(digest)`` in ``url``'s directory instead (a content-addressed file).

    Raises:
        RunDirError: the directory cannot be created or written, or the disk is full (nothing is left behind).
    """
    fs, path = filesystem(url)
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    tmp = f"{parent}/.{name}{TMP_MARK}{uuid.uuid4().hex[:8]}" if parent else f".{name}{TMP_MARK}{uuid.uuid4().hex[:8]}"
    hashing = _HashingWriter()
    try:
        if parent:
            fs.makedirs(parent, exist_ok=True)
        local = is_local(url)
        if local:
            pins.check(parent or ".")
        with fs.open(tmp, "wb") as raw:
            hashing.target = raw
            buffered = io.BufferedWriter(hashing, buffer_size=CHUNK)
            write(buffered)
            buffered.flush()
            raw.flush()
            # memory:// and object stores have no file descriptor: nothing to sync there; a failed fsync (a full
            # disk, NFS's delayed write errors) is a failed publish
            with contextlib.suppress(AttributeError, io.UnsupportedOperation):
                os.fsync(raw.fileno())
        if content_name is not None:
            final = content_name(hashing.hasher.hexdigest())
            path = f"{parent}/{final}" if parent else final
            url = f"{url.rsplit('/', 1)[0]}/{final}" if "/" in url else final
        if local:
            pins.check(parent or ".")  # again: writing took a while
            os.replace(tmp, path)  # rename(2): a directory planted at the final name is an error, never entered
        else:
            fs.mv(tmp, path)
        fsync_dir(url)
    except OSError as e:
        discard(fs, tmp)
        raise write_error(url, e) from e
    except BaseException:
        discard(fs, tmp)
        raise
    return Published(url, hashing.hasher.hexdigest(), hashing.size)


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes what passes through it on the way to ``target``."""

    def __init__(self) -> None:
        self.target: Any = None
        self.hasher = new_hasher()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.hasher.update(view)  # before the write returns: the caller may reuse its buffer afterwards
        self.target.write(view)
        self.size += len(view)
        return len(view)


def publish_bytes(
    url: str, data: bytes | bytearray | memoryview, *, content_name: Callable[[str], str] | None = None
) -> Published:
    """Publish ``data`` at ``url`` atomically (see :func:`publish`), in chunks hashed as they are written."""
    view = memoryview(data).cast("B")

    def write(f: IO[bytes]) -> None:
        for start in range(0, len(view), CHUNK):
            f.write(view[start : start + CHUNK])

    return publish(url, write, content_name=content_name)


def both(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Run two functions on two threads; return both results once both are done, or raise the first error."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sharedvol-io") as pool:
        futures = [pool.submit(first), pool.submit(second)]
        errors_seen = [f.exception() for f in futures]  # waits for both: no write is left running
    for error in errors_seen:
        if error is not None:
            raise error
    return futures[0].result(), futures[1].result()


def discard(fs: Any, path: str) -> None:
    """Remove ``path`` if it exists; a failure to remove is not an error (the next start cleans up).

    A directory there (planted with a temporary file's name) is left alone: fsspec refuses it with ValueError.
    """
    with contextlib.suppress(OSError, ValueError):
        if fs.exists(path):
            fs.rm(path)


def fsync_dir(url: str) -> None:
    """Make a rename in ``url``'s directory durable (local filesystems only)."""
    if not is_local(url):
        return
    parent = os.path.dirname(local_path(url))
    try:
        fd = os.open(parent or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_temporaries(dir_url: str) -> list[str]:
    """Delete the temporary files a killed writer left in ``dir_url``; returns their names."""
    fs, path = filesystem(dir_url)
    try:
        names = [p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:  # unreadable, or a loop of links
        raise write_error(dir_url, e) from e
    left = sorted(n for n in names if n.startswith(".") and TMP_MARK in n)
    if left and is_local(dir_url):
        pins.check(path)
    for name in left:
        discard(fs, f"{path}/{name}")
    return left


def read_bytes(url: str, *, missing_hint: str = "run the step that writes it first") -> bytes:
    """All bytes of ``url``, with one clear error when it is missing or unreadable.

    Raises:
        RunDirError: missing, a directory, or unreadable.
    """
    fs, path = filesystem(url)
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError as e:
        raise errors.RunDirError(f"{url} does not exist", hint=missing_hint) from e
    except (IsADirectoryError, NotADirectoryError) as e:
        raise errors.RunDirError(f"{url} is not a file (a path on the way is a file or it is a directory)",
                                 hint="point --run-dir at a run directory") from e  # fmt: skip
    except OSError as e:
        raise errors.RunDirError(f"cannot read {url}: {e.strerror or e}", hint="check the run directory") from e
