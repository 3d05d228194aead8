"""The run's training folder on the shared volume (``<run>/train``) and mmengine's private work directory.

mmengine writes by name, following whatever is there: the config it dumps (opened for writing over what is there)
and each run's ``<timestamp>/`` logs. So it works in a private directory of this machine, never on the volume,
and :func:`keep_logs` publishes its config and log into ``train/`` at the end. ``train/`` itself is checked
first (:func:`check_tree`): a link, a FIFO or a device planted there is refused by name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from steps import dataplane, errors

log = logging.getLogger(__name__)
LOCK = ".sharedvol-train.lock"
MAX_LOG_BYTES = 64 * 2**20  # a log kept on the volume: its last 64 MiB
MAX_ENTRIES = 10_000  # a run adds a handful per training (config, a timestamped log folder)
MAX_DEPTH = 4  # train/<timestamp>/vis_data/<file>


def check_tree(root: str) -> None:
    """Refuse a tree under ``root`` holding a symbolic link, or a file with other hard links, or too many entries.

    ``root`` itself is checked by :meth:`steps.dataplane.RunLayout.check_own`; a missing ``root`` passes.

    Raises:
        RunDirError: naming the first link found (or the count), and how to fix it.
    """
    seen = 0
    pending = [(root, 0)]
    while pending:
        folder, depth = pending.pop()
        try:
            entries = os.scandir(folder)  # read as it goes: a million entries are never held at once
        except FileNotFoundError:
            continue
        except OSError as e:
            raise errors.RunDirError(f"cannot list {folder}: {e.strerror}", hint="check the run directory") from e
        with entries:
            for entry in entries:
                seen += 1
                if seen > MAX_ENTRIES:
                    raise errors.RunDirError(
                        f"{root} holds more than {MAX_ENTRIES} entries: not a run's training folder",
                        hint="clean it up, or use a new --run-dir",
                    )
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise _refused(entry.path, "a symbolic link")
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    raise _refused(entry.path, "not a regular file or a directory (a FIFO, a socket or a device)")
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    raise _refused(entry.path, f"a file with {st.st_nlink - 1} other hard link(s)")
                if stat.S_ISDIR(st.st_mode) and depth + 1 < MAX_DEPTH:
                    pending.append((entry.path, depth + 1))


def _refused(path: str, what: str) -> errors.RunDirError:
    return errors.RunDirError(
        f"{path} is {what}; refused: training writes there, and would write wherever it leads",
        hint="remove it (a run's training folder is made by sharedvol), or use a new --run-dir",
    )


@contextlib.contextmanager
def exclusive(work_dir: str) -> Iterator[None]:
    """Hold ``work_dir``'s lock for the block: one training per run directory at a time.

    Two trainings of one run would prune each other's files half-written. The lock is ``flock(2)`` on
    :data:`LOCK` (over NFS the kernel maps it to an NFS lock); the kernel drops it when the process ends, however
    it ends. A filesystem without locks is trained on without one, with a warning.

    Raises:
        RunDirError: another process holds it.
    """
    path = os.path.join(work_dir, LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise errors.RunDirError(f"cannot open {path}: {e.strerror}", hint="check the run directory") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused(path, "not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                log.warning("%s: no lock on this filesystem (%s); training without one", path, e.strerror)
            else:
                raise errors.RunDirError(
                    f"another train-resnet is training in {os.path.dirname(work_dir)} (it holds {path})",
                    hint="wait until it ends, or use another --run-dir",
                ) from e
        yield
    finally:
        os.close(fd)


def keep_logs(work_dir: str, train_url: str) -> None:
    """Publish mmengine's config (``<name>.py``) and log (``<timestamp>.log``) from ``work_dir`` into ``train_url``.

    Each is published like every file sharedvol writes (a fresh temporary name, then a rename), never written
    through a name found there. A failure is logged, not raised: the training's own outcome stands.
    """
    found = sorted(Path(work_dir).glob("*.py")) + sorted(Path(work_dir).glob("*/*.log"))
    for path in found:
        try:
            data = path.read_bytes()[-MAX_LOG_BYTES:]
            dataplane.publish_bytes(f"{train_url.rstrip('/')}/{path.name}", data)
        except (OSError, errors.StepError) as e:
            log.warning("%s was not kept in %s: %s", path.name, train_url, e)
