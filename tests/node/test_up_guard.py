"""A second cluster-up or node-up where one is running says so and stops, and leaves the running one alone
(before, a second ``make cluster-up`` overwrote the pids file and orphaned the running control plane)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rig import cluster as cp
from rig.node import realnode, teardown


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHAREDVOL_CONTROLPLANE_BIN": str(cp.binary_dir())}
    cmd = [sys.executable, "-m", "rig.cluster", *args]
    return subprocess.run(cmd, cwd=cp.REPO, capture_output=True, text=True, env=env, check=False)


def _running(pid: int) -> bool:
    """True while ``pid`` is a live, non-zombie process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_second_cluster_up_in_the_same_directory_refuses_and_keeps_the_first_one_stoppable(tmp_path) -> None:
    first = _cli("up", "--dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    pids = (tmp_path / "pids").read_text()
    started = [(int(line.split()[0]), line.split()[1]) for line in pids.splitlines()]
    try:
        second = _cli("up", "--dir", str(tmp_path))
        assert second.returncode == 1
        assert f"already running from {tmp_path}" in second.stderr
        assert (tmp_path / "pids").read_text() == pids
        assert [name for pid, name in started if _running(pid)] == [
            "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
        ]  # fmt: skip
    finally:
        down = _cli("down", "--dir", str(tmp_path))
        orphans = [(pid, name) for pid, name in started if _running(pid)]
        for pid, _ in orphans:  # whatever down did not know about: killed here, by pid, so nothing leaks
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    assert down.returncode == 0, down.stderr
    assert orphans == []


def test_a_second_node_on_the_machine_refuses_to_start_and_names_the_running_one(node, tmp_path) -> None:
    second = realnode.RealNode(workdir=tmp_path / "second", bin_dir=node.bin_dir)
    with pytest.raises(cp.ControlPlaneError, match=f"already running on this machine, from {node.workdir}"):
        second.start()
    assert not (tmp_path / "second" / "pids").exists()
    assert node.kubectl("get", "node", "sharedvol-node").returncode == 0


def test_a_node_still_starting_elsewhere_holds_the_machine_before_it_has_any_pid_file(tmp_path, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    monkeypatch.setattr(teardown, "RUN_DIR", run_dir)
    other = tmp_path / "starting"  # no pids file yet: its node-up process (alive: this one) is still starting it
    run_dir.mkdir()
    (run_dir / "owner").write_text(f"{other}\n{os.getpid()}\n")

    with pytest.raises(cp.ControlPlaneError, match=f"already running on this machine, from {other}"):
        teardown.claim_machine(tmp_path / "second")

    (run_dir / "owner").write_text(f"{other}\n999999999\n")  # its starter is gone and it left no live pids: stale
    teardown.claim_machine(tmp_path / "second")
    assert (run_dir / "owner").read_text().splitlines() == [str(tmp_path / "second"), str(os.getpid())]
