"""Run a Python module and kill it at its N-th file write, rename or removal under a directory (fault injection).

    KILLPOINT_ROOT=/run KILLPOINT_AT=3 [KILLPOINT_MODE=kill|torn] python -m tests.ml.killpoints MODULE ARGS...
    ... python -m tests.ml.killpoints -c CODE ARGS...

Events are seen through Python's audit hooks (``open`` for writing, ``os.rename`` (also ``os.replace`` and
``shutil.move``), ``os.remove``), so the code under test is not changed. At the N-th event under the root the
process ends with ``os._exit(137)``, as after SIGKILL: no ``finally``, no ``atexit``, no flush. With
``torn``, a rename's source is first cut to half its size: the writer died while writing that file.
mmengine's own timestamped log directories are not counted. A run that ends normally prints
``killpoints: <count>`` on stderr, so a test knows when it has tried every point.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
from typing import Any

ROOT = os.path.abspath(os.environ.get("KILLPOINT_ROOT", "/nonexistent")) + os.sep
AT = int(os.environ.get("KILLPOINT_AT", "0"))
MODE = os.environ.get("KILLPOINT_MODE", "kill")
LOG_DIR = re.compile(r"/train/\d{8}_\d{6}(/|$)")
KILLED = 137
_count = 0


def _written(event: str, args: tuple[Any, ...]) -> str | None:
    if not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return None
    if event == "open":
        _, mode, flags = args
        writing = isinstance(mode, str) and any(c in mode for c in "wax+")
        if mode is None and isinstance(flags, int):
            writing = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        return os.fsdecode(args[0]) if writing else None
    if event in ("os.rename", "os.remove"):
        return os.fsdecode(args[0])
    return None


def _hook(event: str, args: tuple[Any, ...]) -> None:
    global _count
    path = _written(event, args)
    if path is None:
        return
    path = os.path.abspath(path)
    if not path.startswith(ROOT) or LOG_DIR.search(path):
        return
    _count += 1
    if _count == AT:
        if MODE == "torn" and event == "os.rename" and os.path.isfile(path):
            os.truncate(path, os.path.getsize(path) // 2)
        sys.stderr.write(f"killpoint {AT}: {event} {path}\n")
        sys.stderr.flush()
        os._exit(KILLED)


def main() -> None:
    """Install the hook and run ``sys.argv[1]`` (or ``-c CODE``) as ``__main__`` with the remaining arguments."""
    inline = sys.argv[1] == "-c"
    target = sys.argv[2] if inline else sys.argv[1]
    sys.argv = [target, *sys.argv[3 if inline else 2 :]]
    sys.addaudithook(_hook)
    code = 0
    try:
        if inline:
            exec(compile(target, "<killpoints>", "exec"), {"__name__": "__main__"})
        else:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    sys.stderr.write(f"killpoints: {_count}\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
