"""Stopping a real node (rig/node/realnode.py) and ``make node-down``: kubelet and kube-proxy first, then every pod
sandbox through the CRI, then every other process by pid; then the kubelet's mounts and the machine's claim.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from rig import cluster as cp

RUN_DIR = Path(os.environ.get("SHAREDVOL_NODE_RUN_DIR", "/run/sharedvol-node"))
FIRST = ("kube-proxy", "kubelet")  # stopped before the pods are removed, so nothing restarts them


def claim_machine(workdir: Path) -> None:
    """Make ``workdir``'s node the machine's one node: ``RUN_DIR/owner`` holds its directory and the pid starting it.

    The file is created atomically (two node-ups at once: one wins). An existing claim stands while the process that
    made it or the processes of its ``pids`` file run (a node still starting has no pids file yet); else it is stale
    and replaced.

    Raises:
        ControlPlaneError: another node runs, or is starting, on this machine.
    """
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    owner = RUN_DIR / "owner"
    for _ in range(2):
        try:
            fd = os.open(owner, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            lines = owner.read_text().splitlines() or [""]
            other = Path(lines[0].strip())
            starter = int(lines[1]) if len(lines) > 1 and lines[1].strip().isdigit() else 0
            if other != workdir and (cp.alive_pids(other) or (starter and cp._alive(starter))):
                raise cp.ControlPlaneError(
                    f"a real node is already running on this machine, from {other}: stop it first "
                    f"(make node-down NODE_DIR={other}); there can be one per machine"
                ) from None
            owner.unlink(missing_ok=True)  # stale, or ours from an earlier start
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{workdir}\n{os.getpid()}\n")
        return
    raise cp.ControlPlaneError(f"could not claim the machine for a node ({owner} keeps coming back)")


def remove_pods(bin_dir: Path, socket_path: Path) -> None:
    """Stop and remove every pod sandbox (containers, network namespace, address) through the CRI."""
    crictl = [str(bin_dir / "crictl"), "--runtime-endpoint", f"unix://{socket_path}", "--timeout", "30s"]
    out = subprocess.run([*crictl, "rmp", "--all", "--force"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"[node] crictl rmp failed ({out.returncode}): {out.stderr.strip()}", file=sys.stderr)


def cleanup(workdir: Path) -> None:
    """Unmount what the kubelet left mounted under the node directory, remove node.env, and release the machine."""
    kubelet_root = str(workdir / "kubelet")
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    # The kubelet bind-mounts its root directory onto itself (to make it rshared): that one too, last.
    ours = (m for m in mounts if m == kubelet_root or m.startswith(kubelet_root + "/"))
    for target in sorted(ours, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)
    # node.env says a node runs here (scripts/node/image.sh imports into it when present).
    (workdir / "node.env").unlink(missing_ok=True)
    owner = RUN_DIR / "owner"
    with contextlib.suppress(OSError):
        if Path((owner.read_text().splitlines() or [""])[0].strip()) == workdir:
            owner.unlink()


def down(workdir: Path) -> int:
    """``make node-down``: stop the node recorded in ``workdir`` (pods first), by pid."""
    pids_file = workdir / "pids"
    if not pids_file.exists():
        print(f"no node recorded in {pids_file}")
        return 0
    entries = [(int(line.split()[0]), line.split(maxsplit=1)[1]) for line in pids_file.read_text().splitlines()]
    for pid, name in [e for e in entries if e[1] in FIRST]:
        cp.stop_pid(pid)
        print(f"stopped {name} (pid {pid})")
    env_file = workdir / "node.env"
    env = cp.read_env(env_file) if env_file.exists() else {}
    if env and Path(env["CONTAINERD_ADDRESS"]).exists():
        remove_pods(Path(env["BIN_DIR"]), Path(env["CONTAINERD_ADDRESS"]))
        print("removed every pod sandbox")
    for pid, name in reversed([e for e in entries if e[1] not in FIRST]):
        cp.stop_pid(pid)
        print(f"stopped {name} (pid {pid})")
    pids_file.unlink()
    cleanup(workdir)
    return 0
