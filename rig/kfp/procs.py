"""Process helpers of the KFP backend: the machine's address, stopping a process group, ``make kfp-down``."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from rig import cluster as cp


def machine_address() -> str:
    """The machine's address on its default route, as the node reports it (a UDP connect to a unicast
    documentation address sends nothing).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("198.51.100.1", 9))
        return str(s.getsockname()[0])


def stop_pid(pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group ``pid`` leads, then SIGKILL it after a grace period (as the control plane does)."""
    cp.stop_pid(pid, popen)


def down(workdir: Path) -> int:
    """Stop the processes recorded in ``workdir/pids`` (``make kfp-down``)."""
    if cp.stop_recorded(workdir / "pids", "KFP backend"):
        remove_database(workdir)
    return 0


def remove_database(workdir: Path) -> None:
    """Remove the database directory ``workdir/mariadb`` links to (it lives outside the work directory)."""
    link = workdir / "mariadb"
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)
        link.unlink()
