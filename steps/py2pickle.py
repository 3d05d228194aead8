"""Pickles written the way CIFAR-10's official Python-2 batch files were: protocol 2 with Python 2's string opcodes."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Any

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
    """Pickle ``obj`` the way the official Python-2 batch files are pickled, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
