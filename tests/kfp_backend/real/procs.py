"""Process helpers of the KFP backend: the machine's address, stopping a process group, ``make kfp-down``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests import cluster as cp

STOP_GRACE_S = 10.0


def machine_address() -> str:
    """The machine's address on its default route, as the node reports it (a UDP connect to a unicast
    documentation address sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("198.51.100.1", 9))
        return str(s.getsockname()[0])


def stop_pid(pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group ``pid`` leads, then SIGKILL it after a grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            return
        if popen is None and not cp._alive(pid):
            return
        time.sleep(0.1)  # a process group has no wait() to block on
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait()


def down(workdir: Path) -> int:
    """Stop the processes recorded in ``workdir/pids`` (``make kfp-down``)."""
    pids = workdir / "pids"
    if not pids.exists():
        print(f"no KFP backend recorded in {pids}")
        return 0
    for line in reversed(pids.read_text().splitlines()):
        pid, name = int(line.split()[0]), line.split(maxsplit=1)[1]
        stop_pid(pid)
        print(f"stopped {name} (pid {pid})")
    pids.unlink()
    remove_database(workdir)
    return 0


def remove_database(workdir: Path) -> None:
    """Remove the database directory ``workdir/mariadb`` links to (it lives outside the work directory)."""
    link = workdir / "mariadb"
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)
        link.unlink()
