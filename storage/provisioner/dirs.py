"""The volumes' directories on the node, touched only relative to an open base directory, never through a link.

Every operation works on one name inside the base path's open descriptor (``dir_fd``) and never follows a
symlink: a volume directory replaced by a link to another claim's directory (or to ``/etc``) is removed or
renamed as the link it is, never entered. The base path itself is the admin's (a class's ``basePath``) and
is resolved once.

Pending records: before making a claim's directory the service writes ``<base>/.sharedvol/pending-<uid>``
(the claim and the directory); it removes it once the claim's PV exists. A record whose claim is gone and
that has no PV names an orphan directory (the service was killed between the two): the re-check removes it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

from storage import errors
from storage.provisioner import settings as settings_mod

log = logging.getLogger("sharedvol.provisioner")
LEDGER = ".sharedvol"
RECORD_BYTES = 4096  # a pending record is a few hundred bytes; anything larger is not ours
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Pending:
    """A pending record: the claim whose directory was made before its PV.

    Attributes:
        namespace: the claim's namespace.
        name: the claim's name.
        uid: the claim's UID.
        directory: the directory's name under the base path.
    """

    namespace: str
    name: str
    uid: str
    directory: str


class Base:
    """A base path, open: its descriptor and what this process calls it."""

    def __init__(self, fd: int, node_path: str) -> None:
        self.fd, self.node_path = fd, node_path

    def make(self, name: str) -> str:
        """Make directory ``name`` (or find it), mode 0777 so any pod user sharing the claim can write; say what.

        Raises:
            InvalidRequestError: ``name`` exists and is not a directory (a planted symlink or a file).
        """
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=self.fd)
        try:
            fd = os.open(name, _NOFOLLOW_DIR, dir_fd=self.fd)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise errors.InvalidRequestError(
                f"{self.node_path}/{name} exists and is not a directory (a symlink or a file)",
                hint="remove it on the node; sharedvol never follows a link out of its directory",
            ) from e
        try:
            os.fchmod(fd, 0o777)  # the base directory itself stays as the admin made it
        finally:
            os.close(fd)
        return f"{self.node_path}/{name}"

    def reclaim(self, name: str, on_delete: str) -> str:
        """Apply ``on_delete`` (delete, archive, retain) to entry ``name``; what was done, for the log."""
        where = f"{self.node_path}/{name}"
        try:
            st = os.lstat(name, dir_fd=self.fd)
        except FileNotFoundError:
            return f"{where} does not exist: nothing to {on_delete}"
        if on_delete == "retain":
            return f"kept {where}"
        try:
            return self._remove(name, where, on_delete, stat.S_ISDIR(st.st_mode))
        except FileNotFoundError:  # another service, or a person, removed it meanwhile
            return f"{where} went away meanwhile: nothing to {on_delete}"

    def _remove(self, name: str, where: str, on_delete: str, is_dir: bool) -> str:
        if on_delete == "archive":
            target = f"archived-{name}"
            with contextlib.suppress(FileNotFoundError):
                os.lstat(target, dir_fd=self.fd)
                target = f"{target}-{int(time.time())}"
            os.rename(name, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)  # renames a link, never its target
            return f"archived {where} as {self.node_path}/{target}"
        if is_dir:
            try:
                remove_tree(self.fd, name)
            except PermissionError as e:
                path = f"{self.node_path}/{e.filename}"
                raise errors.ForbiddenError(
                    f"cannot delete {path}: {e.strerror} (made by another user than the service's, and {where} is "
                    "partly deleted)",
                    hint=f"remove it on the node (sudo rm -rf {self.node_path}/{name}), or archive instead (onDelete: "
                    "archive); the service then finishes the reclaim",
                ) from e
            return f"deleted {where}"
        os.unlink(name, dir_fd=self.fd)
        return f"{where} was not a directory (a symlink or a file): removed it, not what it points to"

    def begin(self, pending: Pending) -> None:
        """Write the pending record of ``pending`` (before its directory is made)."""
        ledger = self._ledger()
        try:
            body = json.dumps(pending.__dict__).encode()
            fd = os.open(
                f"pending-{pending.uid}",
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=ledger,
            )
            try:
                os.write(fd, body)
            finally:
                os.close(fd)
        finally:
            os.close(ledger)

    def done(self, uid: str) -> None:
        """Remove the pending record of claim ``uid`` (its PV exists, or its orphan directory is gone)."""
        ledger = self._ledger()
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"pending-{uid}", dir_fd=ledger)
        finally:
            os.close(ledger)

    def pending(self) -> list[Pending]:
        """The pending records (unreadable or malformed ones are logged and skipped)."""
        ledger = self._ledger()
        found = []
        try:
            for entry in os.listdir(ledger):
                if not entry.startswith("pending-"):
                    continue
                try:
                    found.append(_read_record(ledger, entry))
                except (OSError, ValueError, TypeError, KeyError, RecursionError) as e:
                    log.warning("%s/%s/%s: not a pending record (%s); leaving it", self.node_path, LEDGER, entry, e)
        finally:
            os.close(ledger)
        return found

    def _ledger(self) -> int:
        """The ledger directory, open (made when missing).

        Raises:
            PrepareError: it cannot be made or opened: not writable by this user (left by a run as another
                user), a file, or a symlink (never followed).
        """
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(LEDGER, 0o700, dir_fd=self.fd)
            return os.open(LEDGER, _NOFOLLOW_DIR | os.O_NONBLOCK, dir_fd=self.fd)
        except OSError as e:
            where = f"{self.node_path}/{LEDGER}"
            try:
                st = os.lstat(LEDGER, dir_fd=self.fd)
                what = f"{_kind(st.st_mode)} of uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}"
            except OSError:
                what = "missing"
            raise errors.PrepareError(
                f"cannot use its ledger {where} ({what}): {e.strerror or e}",
                hint=f"on the node, make it a directory owned by the service's user (uid {os.getuid()}): "
                f"chown -h {os.getuid()} {where} (k8s/fallback's init container does), or remove it",
            ) from e


def _kind(mode: int) -> str:
    """What a file mode is, in a word."""
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a symlink" if stat.S_ISLNK(mode) else "a file"


def _read_record(ledger: int, entry: str) -> Pending:
    """Read one pending record: a regular file (checked on the open descriptor), at most RECORD_BYTES."""
    fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=ledger)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        raw = os.read(fd, RECORD_BYTES + 1)
        if len(raw) > RECORD_BYTES:
            raise ValueError(f"larger than {RECORD_BYTES} bytes")
        data = json.loads(raw)
    finally:
        os.close(fd)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    record = Pending(**{k: str(data[k]) for k in ("namespace", "name", "uid", "directory")})
    if "/" in record.directory or record.directory in ("", ".", "..") or entry != f"pending-{record.uid}":
        raise ValueError("names another directory")
    return record


@contextlib.contextmanager
def opened(config: settings_mod.Settings, node_path: str) -> Iterator[Base | None]:
    """The base path ``node_path`` open as a :class:`Base`; None when it is not mounted in this process.

    On a node this service does not run on, kubelet makes the directory (hostPath DirectoryOrCreate, root,
    0755) and the service cannot reclaim it.
    """
    local = os.path.realpath(config.local_path(node_path))
    try:
        fd = os.open(local, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        log.warning("base path %s is not mounted here (%s); kubelet makes volumes there", node_path, e.strerror)
        yield None
        return
    try:
        yield Base(fd, node_path)
    finally:
        os.close(fd)


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(top: int, name: str) -> None:
    """Remove directory ``name`` of directory descriptor ``top`` with everything in it, never following a link.

    Iterative, with one directory open at a time: any depth (a pod can nest its volume thousands of directories
    deep; ``shutil.rmtree`` recurses, and stopped at about a thousand with a RecursionError, retried for ever).
    It goes back up by ``..``, checking that it reaches the directory it came from.

    Raises:
        OSError: a file cannot be removed, or the tree was moved while it was removed (ESTALE).
    """
    fd = os.open(name, _DIRECTORY, dir_fd=top)
    below: list[tuple[str, tuple[int, int]]] = []  # the names walked down, each with its parent's (device, inode)
    try:
        while True:
            try:
                child = _clear_files(fd)
            except OSError as e:  # named by its path below ``name``, for the one line the service reports
                where = "/".join([name, *(b[0] for b in below), str(e.filename or "")]).rstrip("/")
                raise OSError(e.errno, e.strerror, where) from e
            if child is not None:
                here = os.fstat(fd)
                down = os.open(child, _DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = down
                below.append((child, (here.st_dev, here.st_ino)))
                continue
            if not below:
                break
            child, parent = below.pop()
            up = os.open("..", _DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = up
            seen = os.fstat(fd)
            if (seen.st_dev, seen.st_ino) != parent:
                raise OSError(errno.ESTALE, f"{child}'s directory was moved while it was removed")
            os.rmdir(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=top)


def _clear_files(fd: int) -> str | None:
    """Unlink every entry of directory ``fd`` but directories (links included, as links); the first directory."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            os.unlink(entry.name, dir_fd=fd)
    return None
