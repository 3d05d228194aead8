"""The static hostPath fallback on two nodes: the volume ``sharedvol run --static`` makes lives on one node, and every
pod of the run that uses its claim is scheduled there, though the pods could run on either node."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rig import cluster as cp
from rig import kwait
from rig.node import nodeconfig as nc
from rig.vm import vmnode
from storage import apply, plan
from tests.node import pods
from tests.vm.nfs import BUSYBOX

# The pods tolerate the host node's no-NFS taint, so the scheduler may put them on either node.
TOLERATE = [{"key": vmnode.NO_NFS, "operator": "Exists", "effect": "NoSchedule"}]


def _import_busybox(node_dir: Path) -> None:
    """busybox:1.37.0 into the host node's containerd too (it is on the VM's image disk already)."""
    images = Path(subprocess.run([str(vmnode.SCRIPTS / "images.sh")], capture_output=True, text=True, check=True)
                  .stdout.strip().splitlines()[-1])  # fmt: skip
    address = cp.read_env(node_dir / "node.env")["CONTAINERD_ADDRESS"]
    with (images / "busybox.tar").open("rb") as tar:
        subprocess.run(["ctr", "--address", address, "-n", "k8s.io", "images", "import", "-"], stdin=tar, check=True,
                       capture_output=True)  # fmt: skip


@pytest.fixture(scope="module")
def pinned(vm_node: vmnode.VMNode, vm_api: Any) -> Iterator[dict[str, Any]]:
    """A static hostPath claim planned for the host node, and three pods that use it, run to completion."""
    from kubernetes import client

    _import_busybox(vm_node.node_dir)
    core = client.CoreV1Api(vm_api)
    namespace = f"static-pin-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    kwait.until(
        core.list_namespaced_service_account, lambda sa: True, namespace, what="ServiceAccount default",
        field_selector="metadata.name=default",
    )  # fmt: skip
    chosen = plan.make(
        vm_api, plan.Request(name="run", namespace=namespace, size="1Gi", static=True, node=nc.NODE_NAME)
    )
    try:
        apply.apply(vm_api, chosen, timeout=120)
        runner = pods.PodRunner(vm_api, namespace)
        results, nodes = [], set()
        for i in range(3):
            body = pods.step_pod(f"step-{i}", [f"echo step-{i} >> /mnt/shared/steps.txt"], claim="run", image=BUSYBOX,
                                 command=["sh", "-c"], uid=0)  # fmt: skip
            body["spec"]["tolerations"] = TOLERATE
            results.append(runner.run(body, timeout=300))
            nodes.add(core.read_namespaced_pod(f"step-{i}", namespace).spec.node_name)
        assert chosen.volume is not None and chosen.volume.host_path
        yield {"nodes": nodes, "results": results, "dir": Path(chosen.volume.host_path)}
    finally:
        core.delete_namespace(namespace, grace_period_seconds=0)
        if chosen.volume is not None:
            core.delete_persistent_volume(chosen.volume.pv_name)
            shutil.rmtree(Path(str(chosen.volume.host_path)).parent, ignore_errors=True)


def test_every_pod_of_a_static_hostpath_claim_runs_on_the_node_that_holds_it(pinned: dict[str, Any]) -> None:
    assert [r.phase for r in pinned["results"]] == ["Succeeded"] * 3, pinned["results"]
    assert pinned["nodes"] == {nc.NODE_NAME}


def test_what_the_pods_wrote_is_in_the_directory_on_that_node(pinned: dict[str, Any]) -> None:
    assert (pinned["dir"] / "steps.txt").read_text().splitlines() == ["step-0", "step-1", "step-2"]
