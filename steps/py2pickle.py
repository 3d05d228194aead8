"""Pickles written the way CIFAR-10's official Python-2 batch files were: protocol 2 with Python 2's string opcodes."""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import uuid
from pathlib import Path
from typing import Any

from steps import dataplane, pins

_PurePythonPickler: Any = pickle._Pickler  # the C pickler cannot be taught new opcodes


class _Python2Pickler(_PurePythonPickler):
    """Protocol 2 with Python 2's ``str`` opcodes for bytes, as the official batch files were written.

    Such strings load as ``str`` with ``encoding='latin1'`` and as ``bytes`` with ``encoding='bytes'``,
    exactly like the official files (Python 3's own protocol-2 bytes would load as bytes either way).
    """

    dispatch = _PurePythonPickler.dispatch.copy()

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def dump(path: Path, obj: dict[bytes, Any]) -> None:
    """Pickle ``obj`` the way the official Python-2 batch files are pickled, atomically.

    The pickle goes into a hidden temporary file of a fresh name beside ``path``, created by this call alone
    (``O_CREAT|O_EXCL|O_NOFOLLOW``: a FIFO or symbolic link planted there is never opened, waited on or followed),
    is fsynced, then renamed over ``path``. A killed writer's temporary file is never in the next one's way;
    :func:`steps.dataplane.remove_temporaries` knows its name.

    Raises:
        RunDirError: the file cannot be written (full disk included); no temporary file is left.
    """
    tmp = path.with_name(f".{path.name}{dataplane.TMP_MARK}{uuid.uuid4().hex[:8]}")
    try:
        pins.check(str(path.parent))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                _Python2Pickler(f, protocol=2).dump(obj)
                f.flush()
                os.fsync(f.fileno())
            pins.check(str(path.parent))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        dataplane.fsync_dir(str(path))
    except OSError as e:
        raise dataplane.write_error(str(path), e) from e
