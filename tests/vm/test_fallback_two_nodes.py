"""The fallback provisioner on two nodes: ``kubectl apply -k k8s/fallback`` runs its DaemonSet's pod on the host
node and on the VM node, each making the volumes of its own node. A claim of sharedvol-hostpath
(WaitForFirstConsumer) whose first pod is scheduled to the VM node gets its directory on the VM node, writable by the
pod's non-root user, and nothing on the host; one whose pod goes to the host node stays on the host node. Deleting
the VM's claim archives its directory there, as the class says.

The VM's file system is read through a pod on the VM node that mounts its /var/lib/sharedvol (hostPath, read-only);
the host's is read directly."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rig import cluster as cp
from rig import images, kwait
from rig.node import nodeconfig as nc
from rig.vm import guest, vmnode
from storage import heartbeat
from storage.provisioner import volumes
from tests.node import pods
from tests.vm.nfs import BUSYBOX

FALLBACK = cp.REPO / "k8s" / "fallback"
NAMESPACE = "sharedvol-system"
CLASS = "sharedvol-hostpath"
BASE = Path("/var/lib/sharedvol")  # k8s/fallback's basePath, on each node
TOLERATE = [{"key": vmnode.NO_NFS, "operator": "Exists", "effect": "NoSchedule"}]


@dataclass
class Claimed:
    """A claim of sharedvol-hostpath, where its volume went, and how its first pod ended."""

    name: str
    node: str  # the node its first pod was scheduled to
    volume: Any  # its PV
    pod: pods.PodResult

    @property
    def directory(self) -> Path:
        """The volume's directory on its node."""
        return Path(self.volume.spec.host_path.path)


@dataclass
class TwoNodes:
    """What the fixture made: a namespace and one claim used on each node."""

    namespace: str
    on_vm: Claimed
    on_host: Claimed
    runner: pods.PodRunner


def _consumer(name: str, claim: str, node: str, image: str) -> dict[str, Any]:
    """The claim's first pod, as uid 1000, scheduled by the scheduler to ``node``: it writes into the claim."""
    body = pods.step_pod(
        name, [f"echo written-on-{node} > {pods.MOUNT}/out.txt && id -u"], claim=claim, image=image,
        command=["/bin/sh", "-c"],
    )  # fmt: skip
    body["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    body["spec"]["tolerations"] = TOLERATE
    return body


def _vm_view(name: str, script: str) -> dict[str, Any]:
    """A pod on the VM node that sees the VM's /var/lib/sharedvol (read-only) at /vm and runs ``script``."""
    body = pods.step_pod(name, [script], image=BUSYBOX, command=["/bin/sh", "-c"], uid=0)
    body["spec"]["nodeSelector"] = {"kubernetes.io/hostname": guest.VM_NODE_NAME}
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "base", "mountPath": "/vm", "readOnly": True}]
    body["spec"]["volumes"] = [{"name": "base", "hostPath": {"path": str(BASE), "type": "Directory"}}]
    return body


def _claim(core: Any, runner: pods.PodRunner, namespace: str, name: str, node: str, image: str) -> Claimed:
    claim = {
        "metadata": {"name": name},
        "spec": {
            "storageClassName": CLASS, "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}},
        },
    }  # fmt: skip
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    result = runner.run(_consumer(f"use-{name}", name, node, image), timeout=600)
    bound = kwait.claim_phase(core, namespace, name, timeout=60)
    scheduled = core.read_namespaced_pod(f"use-{name}", namespace).spec.node_name
    return Claimed(name, scheduled, core.read_persistent_volume(bound.spec.volume_name), result)


@pytest.fixture(scope="module")
def two_nodes(vm_node: vmnode.VMNode, vm_api: Any) -> Iterator[TwoNodes]:
    """k8s/fallback applied, its pods Ready on both nodes; a claim used on the VM node, then one on the host node."""
    from kubernetes import client

    core, apps = client.CoreV1Api(vm_api), client.AppsV1Api(vm_api)
    vm_node.kubectl("apply", "-k", str(FALLBACK))
    namespace = f"fallback-two-{uuid.uuid4().hex[:6]}"
    made: list[Path] = []
    try:
        kwait.until(
            apps.list_namespaced_daemon_set, lambda d: (d.status.number_ready or 0) == 2, NAMESPACE, timeout=600,
            what="k8s/fallback's pods Ready on both nodes", **kwait.named("sharedvol-provisioner"),
        )  # fmt: skip
        core.create_namespace({"metadata": {"name": namespace}})
        kwait.until(
            core.list_namespaced_service_account, lambda sa: True, namespace, what="ServiceAccount default",
            field_selector="metadata.name=default",
        )  # fmt: skip
        runner = pods.PodRunner(vm_api, namespace)
        on_vm = _claim(core, runner, namespace, "on-vm", guest.VM_NODE_NAME, BUSYBOX)
        on_host = _claim(core, runner, namespace, "on-host", nc.NODE_NAME, images.STEP_IMAGE)
        made += [on_vm.directory, on_host.directory]
        yield TwoNodes(namespace, on_vm, on_host, runner)
    finally:
        core.delete_namespace(namespace, grace_period_seconds=0)
        vm_node.kubectl("delete", "-k", str(FALLBACK), "--ignore-not-found", "--wait=true", "--timeout=300s")
        for directory in made:  # on the host; the VM's disk is a snapshot, dropped when it stops
            for path in (directory, directory.with_name(f"archived-{directory.name}")):
                shutil.rmtree(path, ignore_errors=True)


def test_k8s_fallback_runs_one_provisioner_per_node_each_with_its_own_heartbeat(
    two_nodes: TwoNodes, vm_api: Any
) -> None:
    from kubernetes import client

    provisioners = (
        client.CoreV1Api(vm_api)
        .list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=sharedvol-provisioner")
        .items
    )
    assert sorted(p.spec.node_name for p in provisioners) == sorted([nc.NODE_NAME, guest.VM_NODE_NAME])
    leases = client.CoordinationV1Api(vm_api)
    for node in (nc.NODE_NAME, guest.VM_NODE_NAME):
        kwait.until(
            leases.list_namespaced_lease, lambda lease: lease.spec.renew_time is not None, NAMESPACE, timeout=120,
            what=f"the heartbeat Lease of {node}", **kwait.named(heartbeat.lease_name(node)),
        )  # fmt: skip
    assert heartbeat.fallback_running(vm_api) is True


def test_a_claim_whose_first_pod_is_on_the_vm_node_binds_to_a_volume_on_the_vm_node_and_the_pod_writes_into_it(
    two_nodes: TwoNodes,
) -> None:
    claimed = two_nodes.on_vm
    assert claimed.node == guest.VM_NODE_NAME
    assert volumes.node_of(claimed.volume) == guest.VM_NODE_NAME
    assert (claimed.pod.phase, claimed.pod.logs.strip()) == ("Succeeded", "1000"), claimed.pod


def test_the_vm_claims_directory_is_on_the_vm_node_made_by_its_provisioner_and_not_on_the_host(
    two_nodes: TwoNodes,
) -> None:
    leaf = two_nodes.on_vm.directory.name
    seen = two_nodes.runner.run(
        _vm_view("look-on-vm", f"stat -c '%u %a' /vm/{leaf} && cat /vm/{leaf}/out.txt"), timeout=300
    )
    assert seen.phase == "Succeeded", seen
    # uid 1000, mode 777: the provisioner made it for the step image's user (the kubelet would make it root's, 755)
    assert seen.logs.splitlines() == ["1000 777", f"written-on-{guest.VM_NODE_NAME}"]
    assert not two_nodes.on_vm.directory.exists()


def test_a_claim_whose_first_pod_is_on_the_host_node_stays_on_the_host_node(two_nodes: TwoNodes) -> None:
    claimed = two_nodes.on_host
    assert claimed.node == nc.NODE_NAME and volumes.node_of(claimed.volume) == nc.NODE_NAME
    assert claimed.pod.phase == "Succeeded", claimed.pod
    assert (claimed.directory / "out.txt").read_text() == f"written-on-{nc.NODE_NAME}\n"
    assert (claimed.directory.stat().st_uid, claimed.directory.stat().st_mode & 0o777) == (1000, 0o777)


def test_deleting_the_vm_claim_archives_its_directory_on_the_vm_node(two_nodes: TwoNodes, vm_api: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(vm_api)
    core.delete_namespaced_pod("use-on-vm", two_nodes.namespace, grace_period_seconds=0)
    two_nodes.runner.wait_deleted("use-on-vm", 120)
    core.delete_namespaced_persistent_volume_claim("on-vm", two_nodes.namespace)
    kwait.gone(core.list_persistent_volume, two_nodes.on_vm.volume.metadata.name, timeout=300)
    leaf = two_nodes.on_vm.directory.name
    seen = two_nodes.runner.run(
        _vm_view("look-after-delete", f"cat /vm/archived-{leaf}/out.txt; ls /vm/{leaf} 2>&1 || true"), timeout=300
    )
    assert seen.phase == "Succeeded", seen
    assert seen.logs.splitlines()[0] == f"written-on-{guest.VM_NODE_NAME}"
    assert "No such file or directory" in seen.logs.splitlines()[1]
