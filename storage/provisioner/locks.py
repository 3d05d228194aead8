"""One worker at a time per object.

Kopf's handler of a claim's event and the periodic re-check run in different threads and may both take up the same
claim (or PV) at once; each then made the PV, one with a refused create, and the claim got two ``Provisioning`` and
two ``ProvisioningSucceeded`` Events (or a ``ProvisioningFailed``).

A fixed set of locks, one picked by the object's key: no table that grows with the objects seen.
"""

from __future__ import annotations

import threading
import zlib

STRIPES = 64
_LOCKS = tuple(threading.Lock() for _ in range(STRIPES))


def held(key: str) -> threading.Lock:
    """The lock of object ``key`` (e.g. ``claim/<namespace>/<name>``); use it as ``with locks.held(key):``."""
    return _LOCKS[zlib.crc32(key.encode()) % STRIPES]
