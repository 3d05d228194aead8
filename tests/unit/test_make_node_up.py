"""``make node-up NODES=N`` (docs/tests.md): what it starts for each N, planned with ``make -n``."""

from __future__ import annotations

import subprocess

import pytest

from rig.paths import REPO


def _plan(nodes: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-n", "node-up", f"NODES={nodes}"], cwd=REPO, capture_output=True, text=True, check=False
    )


PLANS = [("1", []), ("2", ["up --node-dir"]), ("3", ["up --node-dir", "up --index 2"])]


@pytest.mark.parametrize(("nodes", "vms"), PLANS)
def test_node_up_starts_the_real_node_and_one_vm_per_node_past_the_first(nodes: str, vms: list[str]) -> None:
    plan = _plan(nodes)

    assert plan.returncode == 0, plan.stderr
    assert "rig.node.realnode up" in plan.stdout
    started = [line.split("rig.vm.vmnode ", 1)[1] for line in plan.stdout.splitlines() if "rig.vm.vmnode up" in line]
    assert len(started) == len(vms) and all(s.startswith(v) for s, v in zip(started, vms, strict=True)), started
