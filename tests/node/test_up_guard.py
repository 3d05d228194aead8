"""A second cluster-up or node-up where one is running says so and stops, and leaves the running one alone
(before, a second ``make cluster-up`` overwrote the pids file and orphaned the running control plane)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import cluster as cp
from tests.node import realnode


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHAREDVOL_CONTROLPLANE_BIN": str(cp.binary_dir())}
    cmd = [sys.executable, "-m", "tests.cluster", *args]
    return subprocess.run(cmd, cwd=cp.REPO, capture_output=True, text=True, env=env, check=False)


def test_a_second_cluster_up_in_the_same_directory_refuses_and_keeps_the_first_one_stoppable(tmp_path) -> None:
    first = _cli("up", "--dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    pids = (tmp_path / "pids").read_text()
    try:
        second = _cli("up", "--dir", str(tmp_path))
        assert second.returncode == 1
        assert f"already running from {tmp_path}" in second.stderr
        assert (tmp_path / "pids").read_text() == pids
        assert [name for _, name in cp.alive_pids(tmp_path)] == [
            "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
        ]  # fmt: skip
    finally:
        down = _cli("down", "--dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert all(not cp._alive(int(line.split()[0])) for line in pids.splitlines())


def test_a_second_node_on_the_machine_refuses_to_start_and_names_the_running_one(node, tmp_path) -> None:
    second = realnode.RealNode(workdir=tmp_path / "second", bin_dir=node.bin_dir)
    with pytest.raises(cp.ControlPlaneError, match=f"already running on this machine, from {node.workdir}"):
        second.start()
    assert not (tmp_path / "second" / "pids").exists()
    assert node.kubectl("get", "node", "sharedvol-node").returncode == 0
