"""Directories on the shared volume pinned by identity: one swapped while a step runs is refused at its next write.

A check of names at a step's start (no links where it writes) holds only for that moment: anyone who can write
the volume can rename ``checkpoints/`` away seconds later and put a link to another directory in its place. So
each directory a step writes into is pinned (its device and inode) when the step checks it, or when the step
makes it, and every write, prune and rename there first compares the directory found by name with the pin.
"""

from __future__ import annotations

import os
import stat

from steps import errors

_pinned: dict[str, tuple[int, int]] = {}  # directory path -> (st_dev, st_ino), for this process
_expected: set[str] = set()  # directories a step will make: pinned when first found


def reset(root: str) -> None:
    """Forget every pin at or below ``root`` (a step starting there pins again)."""
    root = os.path.abspath(root)
    for path in [p for p in (*_pinned, *_expected) if p == root or p.startswith(root + os.sep)]:
        _pinned.pop(path, None)
        _expected.discard(path)


def pin(path: str, *, follow: bool = False) -> None:
    """Pin directory ``path`` as it is now; it must be a directory, and not a link unless ``follow``.

    ``follow`` is for a directory the user named (``--run-dir`` may be a link of theirs).

    Raises:
        RunDirError: it is a link (without ``follow``) or not a directory.
    """
    path = os.path.abspath(path)
    _pinned[path] = _identity(path, follow=follow)


def expect(path: str) -> None:
    """Pin directory ``path`` when a write first finds it (a step makes it later); pinned now when it is one.

    Something else there (a file) is left to the writer, which says what it found.
    """
    path = os.path.abspath(path)
    if not os.path.lexists(path):
        _expected.add(path)
    elif os.path.isdir(path) and not os.path.islink(path):
        pin(path)


def check(directory: str) -> None:
    """Before a write in ``directory``: it and each pinned directory above it must still be the pinned ones.

    Raises:
        RunDirError: one was swapped (for a link, or for another directory) since it was pinned.
    """
    directory = os.path.abspath(directory)
    if directory in _expected and directory not in _pinned:
        _pinned[directory] = _identity(directory, follow=False)
        _expected.discard(directory)
    path = directory
    while True:
        if path in _pinned and _identity(path, follow=True) != _pinned[path]:
            raise errors.RunDirError(
                f"{path} was replaced while the step ran (by a link or another directory); nothing more is written",
                hint="something else writes this run directory: stop it, then rerun the step on a new --run-dir",
            )
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _identity(path: str, *, follow: bool) -> tuple[int, int]:
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as e:
        raise errors.RunDirError(f"cannot check {path}: {e.strerror}", hint="check the run directory") from e
    if not stat.S_ISDIR(st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise errors.RunDirError(
            f"{path} is {what}; refused: a step writes only into directories of its own",
            hint="remove it, then rerun the step (or use a new --run-dir)",
        )
    return st.st_dev, st.st_ino
