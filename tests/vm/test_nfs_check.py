"""``kubectl apply -k k8s/nfs`` on two nodes, as README shows it: the server on the host's node, the CSI driver built
here from its source tags, and ``kubectl apply -k k8s/nfs/check`` with its pods on the VM node, whose kernel mounts
the share (the host's kernel has no NFS client)."""

from __future__ import annotations

from typing import Any

import pytest

from rig.node import nodeconfig as nc
from rig.vm import guest, vmnode
from storage import doctor, plan
from tests.vm.nfs import EXPORT_DIR, NFS, NFS_NAMESPACE

CHECK_NAMESPACE = "sharedvol-nfs-check"


def _pods(core: Any, namespace: str, selector: str) -> list[Any]:
    """The pods of ``selector`` that are not being deleted (a replaced one may still be terminating)."""
    items = core.list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in items if p.metadata.deletion_timestamp is None]


def test_the_server_runs_on_the_host_node_and_the_csi_pods_on_the_vm_node(nfs_installed: None, vm_api: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(vm_api)
    where = {
        name: {p.spec.node_name for p in _pods(core, NFS_NAMESPACE, f"app.kubernetes.io/name={name}")}
        for name in ("nfs-server", "csi-nfs-controller", "csi-nfs-node")
    }
    assert where == {
        "nfs-server": {nc.NODE_NAME},
        "csi-nfs-controller": {guest.VM_NODE_NAME},
        "csi-nfs-node": {guest.VM_NODE_NAME},
    }


def test_the_driver_runs_the_images_built_here_from_the_manifests_tags(nfs_installed: None, vm_api: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(vm_api)
    running = {
        s.image: s.image_id
        for name in ("csi-nfs-controller", "csi-nfs-node")
        for p in _pods(core, NFS_NAMESPACE, f"app.kubernetes.io/name={name}")
        for s in p.status.container_statuses or []
    }
    built = vmnode.built_image_ids()
    assert running and all(running[image] == built[image] for image in running), (running, built)


@pytest.fixture(scope="module")
def check_applied(nfs_installed: None, vm_node: vmnode.VMNode, vm_api: Any) -> Any:
    """``kubectl apply -k k8s/nfs/check``, then README's wait for both Jobs."""
    vm_node.kubectl("apply", "-k", str(NFS / "check"))
    out = vm_node.kubectl(
        "-n", CHECK_NAMESPACE, "wait", "--for=condition=complete", "job/nfs-check-write", "job/nfs-check-read",
        "--timeout=10m", check=False,
    )  # fmt: skip
    yield out
    vm_node.kubectl("delete", "-k", str(NFS / "check"), "--ignore-not-found", "--wait=false", check=False)


def test_the_check_jobs_complete_with_their_pods_on_the_vm_node(check_applied: Any, vm_api: Any) -> None:
    from kubernetes import client

    assert check_applied.returncode == 0, check_applied.stderr
    core = client.CoreV1Api(vm_api)
    nodes = {p.spec.node_name for p in _pods(core, CHECK_NAMESPACE, "app.kubernetes.io/name=nfs-check")}
    assert nodes == {guest.VM_NODE_NAME}


def test_the_read_job_reads_what_the_write_job_wrote(check_applied: Any, vm_node: vmnode.VMNode) -> None:
    logs = vm_node.kubectl("-n", CHECK_NAMESPACE, "logs", "job/nfs-check-read").stdout
    assert f"OK: read on {guest.VM_NODE_NAME}: sharedvol-nfs-check written by nfs-check-write-" in logs


def test_the_check_file_is_on_the_server_nodes_disk_in_the_claims_directory(check_applied: Any, vm_api: Any) -> None:
    from kubernetes import client

    pvc = client.CoreV1Api(vm_api).read_namespaced_persistent_volume_claim("nfs-check", CHECK_NAMESPACE)
    directory = EXPORT_DIR / f"{CHECK_NAMESPACE}-nfs-check-{pvc.spec.volume_name}"
    assert (directory / "check.txt").read_text().startswith("sharedvol-nfs-check written by nfs-check-write-"), sorted(
        p.name for p in EXPORT_DIR.iterdir()
    )
    assert f" on {guest.VM_NODE_NAME}" in (directory / "check.txt").read_text()


def test_the_node_plugin_on_the_vm_node_mounted_the_check_claim_from_the_servers_service_name(
    check_applied: Any, vm_node: vmnode.VMNode
) -> None:
    logs = vm_node.kubectl(
        "-n", NFS_NAMESPACE, "logs", "daemonset/csi-nfs-node", "-c", "nfs", "--tail=-1"
    ).stdout  # fmt: skip
    mounted = [line for line in logs.splitlines() if " succeeded" in line and "nfs-check" in line]
    assert mounted, logs[-3000:]
    assert all(" mount nfs-server.sharedvol-nfs.svc.cluster.local:/" in line for line in mounted), mounted


def test_doctor_and_the_plan_choose_sharedvol_nfs_where_it_mounts(nfs_installed: None, vm_api: Any) -> None:
    report = doctor.diagnose(vm_api)
    assert (report.strategy, report.strategy_reasons) == (
        "dynamic",
        ["StorageClass sharedvol-nfs is installed (CSI NFS driver)"],
    )
    chosen = plan.make(vm_api, plan.Request(name="data", namespace="default", size="1Gi"))
    assert (chosen.strategy, chosen.storage_class) == ("dynamic", "sharedvol-nfs")
