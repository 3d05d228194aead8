"""Stopping a node leaves nothing mounted under its directory (the kubelet bind-mounts its root directory onto itself;
before, that mount stayed, and the directory could not be removed: "Device or resource busy")."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rig.node import teardown


def _mounted_under(directory: Path) -> list[str]:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return [m for m in mounts if m == str(directory) or m.startswith(f"{directory}/")]


def test_cleanup_unmounts_the_kubelet_root_bind_mount_and_the_volumes_under_it(tmp_path: Path) -> None:
    root = tmp_path / "kubelet"
    volume = root / "pods" / "uid" / "volumes" / "shared"
    volume.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(volume)], check=True)
    assert len(_mounted_under(root)) == 2
    (tmp_path / "node.env").write_text("CONTAINERD_ADDRESS=/run/sharedvol-node/containerd.sock\n")

    teardown.cleanup(tmp_path)

    assert _mounted_under(root) == []
    assert not (tmp_path / "node.env").exists()  # make image imports only into a node that runs
    subprocess.run(["rm", "-rf", str(root)], check=True)
    assert not root.exists()
