"""Work a step leaves running while it goes on: deleting the files of epochs a new manifest no longer names.

A publish returns at its commit point; the old epoch's files (about 90 MB, whose deletion waits on the
filesystem's journal) are deleted on a thread while training continues. :func:`wait` is called before the
next publish and when training ends, so deletions never overlap a publish and are done before the step exits
(the thread is not a daemon: the interpreter also waits for it at exit). A process killed meanwhile leaves
files no manifest names, which the next start deletes (:func:`steps.checkpoint.prune`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_running: list[threading.Thread] = []


def start(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``fn(*args, **kwargs)`` on a thread of its own."""
    thread = threading.Thread(target=fn, args=args, kwargs=kwargs, name="sharedvol-background")
    thread.start()
    _running.append(thread)


def wait() -> None:
    """Wait until everything :func:`start` started has finished."""
    while _running:
        _running.pop().join()
