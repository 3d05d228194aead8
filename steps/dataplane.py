"""The data-plane contract: where each step reads and writes inside a run directory, and how.

Every file another step reads is published atomically (written to a temporary name in the same
directory, flushed, fsynced, renamed), with its sha256 computed while the bytes are written and
stored beside it. Readers hash while they read and refuse a mismatch. All I/O goes through fsspec,
so a run directory can be a mounted volume (``/mnt/shared/runs/r1``), ``file://``, ``memory://``
or an object store.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import fsspec

from steps import errors

DIGEST_SUFFIX = ".sha256"
CHUNK = 1 << 20


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

    @property
    def train_dir(self) -> str:
        """Mmengine's work_dir: logs, ``epoch_N.pth``, ``last_checkpoint``."""
        return self.path("train")

    @property
    def checkpoint(self) -> str:
        """The checkpoint test-resnet must use, published atomically."""
        return self.path("checkpoints", "latest.pth")

    @property
    def checkpoint_digest(self) -> str:
        """The sha256 digest file of :attr:`checkpoint`."""
        return self.checkpoint + DIGEST_SUFFIX

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


def _fs(url: str) -> tuple[Any, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


class _Hasher:
    """sha256 on a background thread: hashlib releases the GIL, so hashing overlaps with serialization and I/O."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, name="sharedvol-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self.sha.update(chunk)

    def update(self, chunk: Any) -> None:
        """Queue ``chunk`` (bytes, or a view the caller will not change again) for hashing."""
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        """Wait for every queued chunk and return the digest."""
        self._queue.put(None)
        self._thread.join()
        return self.sha.hexdigest()


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes what passes through it on the way to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.hasher = _Hasher()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.target.write(view)
        self.hasher.update(bytes(view))  # a copy: the caller may reuse its buffer after we return
        self.size += len(view)
        return len(view)


@dataclass(frozen=True)
class Published:
    """What :func:`publish` wrote: the final URL, its sha256 and its size in bytes."""

    url: str
    sha256: str
    size: int


def publish(url: str, write: Callable[[IO[bytes]], object], *, digest: bool = True) -> Published:
    """Write a file atomically: ``write(stream)`` fills a temporary file, which is then renamed to ``url``.

    The sha256 is computed while the bytes are written (no second pass) and, when ``digest`` is set,
    published beside the file as ``<url>.sha256``. A writer killed at any point leaves the previously
    published file intact and nothing under the published name but whole files.

    Raises:
        RunDirError: the directory cannot be created or written.
    """
    fs, path = _fs(url)
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:8]}" if parent else f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(tmp, "wb") as raw:
            hashing = _HashingWriter(raw)
            buffered = io.BufferedWriter(hashing, buffer_size=CHUNK)
            write(buffered)
            buffered.flush()
            raw.flush()
            # memory:// and object stores have no file descriptor: nothing to sync there
            with contextlib.suppress(AttributeError, OSError, io.UnsupportedOperation):
                os.fsync(raw.fileno())
        sha = hashing.hasher.hexdigest()
        if digest:
            _write_small(fs, f"{path}{DIGEST_SUFFIX}", f"{sha}  {name}\n".encode())
        fs.mv(tmp, path)
        _fsync_dir(url, parent)
    except PermissionError as e:
        _discard(fs, tmp)
        raise errors.RunDirError(
            f"cannot write {url}: permission denied",
            hint="mount the shared volume writable for this user (check fsGroup / runAsUser) or pick another --run-dir",
        ) from e
    except OSError as e:
        _discard(fs, tmp)
        raise errors.RunDirError(f"cannot write {url}: {e.strerror or e}", hint="check the run directory") from e
    return Published(url, sha, hashing.size)


def _write_small(fs: Any, path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def _discard(fs: Any, tmp: str) -> None:
    try:
        if fs.exists(tmp):
            fs.rm(tmp)
    except OSError:
        pass


def _fsync_dir(url: str, parent: str) -> None:
    if not is_local(url) or not parent:
        return
    try:
        fd = os.open(parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish_bytes(url: str, data: bytes, *, digest: bool = True) -> Published:
    """Publish ``data`` at ``url`` atomically (see :func:`publish`)."""
    return publish(url, lambda f: f.write(data), digest=digest)


def publish_file(src: str, url: str) -> Published:
    """Copy the local or fsspec file ``src`` to ``url`` atomically, hashing on the way."""

    def copy(out: IO[bytes]) -> None:
        with fsspec.open(src, "rb") as f:
            while chunk := f.read(CHUNK):
                out.write(chunk)

    return publish(url, copy)


def published_digest(url: str) -> str:
    """The sha256 published beside ``url``.

    Raises:
        IntegrityError: there is no digest file, or it is not a sha256.
    """
    fs, path = _fs(url + DIGEST_SUFFIX)
    try:
        text = fs.cat_file(path).decode().strip()
    except FileNotFoundError as e:
        raise errors.IntegrityError(
            f"{url} has no digest file {url}{DIGEST_SUFFIX}",
            hint="it was not published by train-resnet; rerun training for this run directory",
        ) from e
    sha = text.split()[0] if text else ""
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise errors.IntegrityError(f"{url}{DIGEST_SUFFIX} does not hold a sha256 digest", hint="rerun training")
    return sha


def read_verified(url: str) -> bytes:
    """The bytes of ``url``, hashed while read and checked against its published digest.

    Raises:
        IntegrityError: the file is missing or its bytes do not match the digest.
    """
    expected = published_digest(url)
    fs, path = _fs(url)
    try:
        with fs.open(path, "rb") as f:
            data = f.read()  # one read into one buffer: the verified bytes are the bytes the caller loads
    except FileNotFoundError as e:
        raise errors.IntegrityError(f"{url} is missing", hint="rerun training for this run directory") from e
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise errors.IntegrityError(
            f"{url} does not match its digest (sha256 {actual[:12]}..., expected {expected[:12]}...)",
            hint="the file was changed or truncated after publishing; rerun training, and never load it as is",
        )
    return bytes(data)


@contextmanager
def opened_for_reading(url: str) -> Iterator[IO[bytes]]:
    """``url`` opened for binary reading, with a clear error when it is missing."""
    fs, path = _fs(url)
    try:
        f = fs.open(path, "rb")
    except FileNotFoundError as e:
        raise errors.RunDirError(f"{url} does not exist", hint="run the step that writes it first") from e
    with f:
        yield f


@contextmanager
def unpickling_allowed() -> Iterator[None]:
    """Let torch fully unpickle (``weights_only=False``) inside the block: only for bytes whose digest was verified.

    mmengine 0.10.7 checkpoints hold objects torch >= 2.6 refuses to load with ``weights_only=True``, and
    mmengine does not pass the flag itself; the environment switch is the one way in.
    """
    previous = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = previous


# ----- schema-versioned JSON documents


def write_json(url: str, doc: dict[str, Any]) -> Published:
    """Publish ``doc`` as indented JSON at ``url`` atomically."""
    return publish_bytes(url, (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode())


def read_json(
    url: str, *, schema: str, versions: tuple[int, ...], required: dict[str, type | tuple[type, ...]]
) -> dict[str, Any]:
    """Read a JSON document of ``schema`` and check its version and required fields.

    Args:
        url: where the document is.
        schema: the expected value of the document's ``schema`` field.
        versions: the ``schema_version`` values this code reads.
        required: field name -> expected Python type(s).

    Raises:
        SchemaError: missing, truncated, foreign, of another version, or missing a field.
    """
    fs, path = _fs(url)
    try:
        raw = fs.cat_file(path)
    except FileNotFoundError as e:
        raise errors.SchemaError(f"{url} does not exist", hint="run the step that writes it first") from e
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise errors.SchemaError(
            f"{url} is not valid JSON (truncated or corrupt: {e})", hint="rerun the step that writes it"
        ) from e
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise errors.SchemaError(
            f"{url} is not a {schema} document (schema: {found!r})", hint="point at the file sharedvol wrote"
        )
    version = doc.get("schema_version")
    if version not in versions:
        raise errors.SchemaError(
            f"{url} has schema_version {version!r}; this sharedvol reads {', '.join(map(str, versions))}",
            hint="use the sharedvol version that wrote it, or rerun that step with this one",
        )
    for key, kind in required.items():
        if not isinstance(doc.get(key), kind):
            raise errors.SchemaError(
                f"{url} lacks field {key!r} of the right type",
                hint="the file is damaged; rerun the step that writes it",
            )
    return doc
