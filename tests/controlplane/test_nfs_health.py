"""Whether sharedvol-nfs works, as doctor and ``--storage auto`` see it on the real control plane: the driver's
objects missing, Ready, scaled to zero, cluster DNS without an endpoint, and a user who may not read them."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from rig import kwait
from rig.cluster import ClusterHandle
from storage import classes, nfshealth, plan
from tests import objects
from tests.controlplane import rbac
from tests.controlplane.serving import SharedvolCli
from tests.objects import ClusterObjects

NS = nfshealth.NAMESPACE
INSTALL = "kubectl apply -k k8s/nfs"
DNS_NOT_CHECKED = (
    "cluster DNS: no Service labelled k8s-app=kube-dns in kube-system, so whether nodes resolve "
    f"{objects.NFS_SERVER} is not checked"
)
WORKING_REASONS = ["StorageClass sharedvol-nfs is installed (CSI NFS driver)"]


def doctor_json(sharedvol: SharedvolCli, namespace: str, **kw: Any) -> dict[str, Any]:
    out = sharedvol("doctor", "-n", namespace, "--json", **kw)
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def dry_run(sharedvol: SharedvolCli, namespace: str, *storage: str, **kw: Any) -> list[str]:
    """The plan lines of ``sharedvol provision data --dry-run`` (auto unless ``storage`` says otherwise)."""
    out = sharedvol("provision", "data", "-n", namespace, *storage, "--no-prepare", "--dry-run", **kw)
    assert out.returncode == 0, out.stderr
    return out.stdout[: out.stdout.index("[")].splitlines()


def the_class_alone(cluster_objects: ClusterObjects) -> None:
    """StorageClass sharedvol-nfs as k8s/nfs makes it, and nothing else of k8s/nfs."""
    cluster_objects.storage_class(objects.nfs_class(classes.NFS_CLASS, parameters={"server": objects.NFS_SERVER}))


def test_with_the_class_alone_doctor_names_each_missing_part_and_auto_plans_static_saying_why(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    the_class_alone(cluster_objects)
    problems = [
        f"the CSIDriver nfs.csi.k8s.io is missing ({INSTALL})",
        f"the CSI controller (Deployment csi-nfs-controller) is missing ({INSTALL})",
        f"the CSI node plugin (DaemonSet csi-nfs-node) is missing ({INSTALL})",
        f"the NFS server's Service {NS}/nfs-server (parameters.server) is missing (kubectl -n {NS} get svc,pods)",
    ]
    not_working = "sharedvol-nfs is installed but not working: " + "; ".join(problems)

    report = doctor_json(sharedvol, namespace)
    assert report["nfs_health"] == {
        "working": False,
        "problems": problems,
        "unknown": [],
        "not_checked": [DNS_NOT_CHECKED],
    }
    assert report["strategy"] == "static"
    assert report["strategy_reasons"][:2] == [
        not_working,
        "no class can serve ReadWriteMany now (considered: sharedvol-nfs (nfs.csi.k8s.io: RWX yes, but not working))",
    ]
    text = sharedvol("doctor", "-n", namespace).stdout
    assert "  sharedvol-nfs health: not working\n" + "".join(f"    problem: {p}\n" for p in problems) in text

    lines = dry_run(sharedvol, namespace)
    assert lines[0] == f"plan for claim {namespace}/data: static"
    assert f"  why: {not_working}" in lines

    # named, it is still used, with the warning
    lines = dry_run(sharedvol, namespace, "--storage", "nfs")
    assert lines[0] == f"plan for claim {namespace}/data: dynamic"
    assert f"  why: warning: {not_working}; its claims may stay Pending until that is fixed" in lines

    # another RWX class is what auto gives a compiled pipeline instead
    other = cluster_objects.storage_class(objects.storage_class("cephfs.csi.ceph.com")).metadata.name
    assert plan.auto_class(api) == (
        other,
        [not_working, f"StorageClass {other} serves RWX (CephFS CSI)"],
    )


def test_with_the_driver_and_server_ready_doctor_says_sharedvol_nfs_works_and_auto_plans_it(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    with objects.nfs_installed(api, cluster_objects):
        report = doctor_json(sharedvol, namespace)
        assert report["nfs_health"] == {
            "working": True,
            "problems": [],
            "unknown": [],
            "not_checked": [DNS_NOT_CHECKED],
        }
        assert (report["strategy"], report["strategy_reasons"]) == ("dynamic", WORKING_REASONS)
        assert "  sharedvol-nfs health: working\n" in sharedvol("doctor", "-n", namespace).stdout
        lines = dry_run(sharedvol, namespace)
    assert lines[:2] == [
        f"plan for claim {namespace}/data: dynamic",
        "  create claim data (20Gi, ReadWriteMany) of StorageClass sharedvol-nfs",
    ]


def test_the_controller_and_the_server_scaled_to_zero_are_reported_and_auto_passes_sharedvol_nfs_over(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    apps = client.AppsV1Api(api)
    with objects.nfs_installed(api, cluster_objects):
        for name in (nfshealth.CONTROLLER, "nfs-server"):
            apps.patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": 0}})
        kwait.until(
            apps.list_namespaced_deployment,
            lambda d: not d.status.ready_replicas,
            NS,
            what=nfshealth.CONTROLLER,
            **kwait.named(nfshealth.CONTROLLER),
        )
        objects.server_ready(api, False)
        health = nfshealth.check(api, objects.NFS_PROVISIONER, {"server": objects.NFS_SERVER})
        lines = dry_run(sharedvol, namespace)
    assert health.problems == [
        f"the CSI controller (Deployment {NS}/csi-nfs-controller) has no Ready pod "
        f"(kubectl -n {NS} describe deployment csi-nfs-controller)",
        f"the NFS server is down: the NFS server's Service {NS}/nfs-server has no ready endpoint "
        f"(kubectl -n {NS} get pods,endpointslices -l kubernetes.io/service-name=nfs-server)",
    ]
    assert lines[0] == f"plan for claim {namespace}/data: static"
    assert f"  why: sharedvol-nfs is installed but not working: {'; '.join(health.problems)}" in lines


def test_a_csi_driver_nfs_installed_before_in_another_namespace_counts_as_the_driver(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    # docs/nfs.md: with csi-driver-nfs already installed, only the class is applied (here pointed at an export)
    apps, storage = client.AppsV1Api(api), client.StorageV1Api(api)
    storage.create_csi_driver({"metadata": {"name": objects.NFS_PROVISIONER}, "spec": {"attachRequired": False}})
    try:
        apps.create_namespaced_deployment(namespace, objects.workload("Deployment", nfshealth.CONTROLLER, replicas=1))
        apps.create_namespaced_daemon_set(namespace, objects.workload("DaemonSet", nfshealth.NODE_PLUGIN))
        cluster_objects.storage_class(objects.nfs_class(classes.NFS_CLASS, parameters={"server": "10.0.0.5"}))
        kwait.until(
            apps.list_namespaced_daemon_set,
            lambda d: (d.status.number_ready or 0) >= 1,
            namespace,
            what=nfshealth.NODE_PLUGIN,
            **kwait.named(nfshealth.NODE_PLUGIN),
        )
        kwait.until(
            apps.list_namespaced_deployment,
            lambda d: (d.status.ready_replicas or 0) >= 1,
            namespace,
            what=nfshealth.CONTROLLER,
            **kwait.named(nfshealth.CONTROLLER),
        )
        health = nfshealth.check(api, objects.NFS_PROVISIONER, {"server": "10.0.0.5"})
        chosen = plan.make(api, plan.Request(name="data", namespace=namespace, size="1Gi"))
    finally:
        storage.delete_csi_driver(objects.NFS_PROVISIONER)
        # gone now, not with the namespace later: the next test looks for them in every namespace
        apps.delete_namespaced_deployment(nfshealth.CONTROLLER, namespace)
        apps.delete_namespaced_daemon_set(nfshealth.NODE_PLUGIN, namespace)
    assert health.to_json() == {
        "working": True,
        "problems": [],
        "unknown": [],
        "not_checked": ["the NFS server 10.0.0.5 is outside the cluster: not checked from here"],
    }
    assert (chosen.strategy, chosen.storage_class, chosen.reasons) == ("dynamic", "sharedvol-nfs", WORKING_REASONS)


def test_cluster_dns_without_a_ready_endpoint_is_a_problem_for_a_server_named_in_the_cluster_not_for_an_ip(
    api: Any, cluster_objects: ClusterObjects
) -> None:
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    dns = objects.unique("kube-dns")
    with objects.nfs_installed(api, cluster_objects):
        core.create_namespaced_service(
            "kube-system",
            {
                "metadata": {"name": dns, "labels": {"k8s-app": "kube-dns"}},
                "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
            },
        )
        try:
            in_cluster = nfshealth.check(api, objects.NFS_PROVISIONER, {"server": objects.NFS_SERVER})
            by_ip = nfshealth.check(api, objects.NFS_PROVISIONER, {"server": "10.0.0.5"})
            discovery.create_namespaced_endpoint_slice(
                "kube-system",
                {
                    "metadata": {
                        "name": dns,
                        "labels": {
                            "kubernetes.io/service-name": dns,
                            "endpointslice.kubernetes.io/managed-by": "sharedvol-tests",
                        },
                    },
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["10.244.0.53"], "conditions": {"ready": True}}],
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
                },
            )
            answering = nfshealth.check(api, objects.NFS_PROVISIONER, {"server": objects.NFS_SERVER})
        finally:
            core.delete_namespaced_service(dns, "kube-system")
            discovery.delete_collection_namespaced_endpoint_slice(
                "kube-system", label_selector=f"kubernetes.io/service-name={dns}"
            )
    assert in_cluster.problems == [
        f"cluster DNS (Service kube-system/{dns}) has no ready endpoint, so nodes cannot resolve "
        f"{objects.NFS_SERVER} (kubectl -n kube-system get pods -l k8s-app=kube-dns)"
    ]
    assert by_ip.to_json() == {
        "working": True,
        "problems": [],
        "unknown": [],
        "not_checked": ["the NFS server 10.0.0.5 is outside the cluster: not checked from here"],
    }
    assert answering.to_json() == {"working": True, "problems": [], "unknown": [], "not_checked": []}


def test_a_user_who_may_not_read_the_driver_objects_gets_unknown_and_auto_still_plans_sharedvol_nfs(
    api: Any, cluster: ClusterHandle, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    the_class_alone(cluster_objects)  # broken, but this user cannot see that
    read = ["get", "list", "watch"]
    rules = [
        {
            "apiGroups": [""],
            "resources": ["persistentvolumeclaims", "persistentvolumes", "pods", "events", "namespaces", "nodes"],
            "verbs": read,
        },
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": read},
    ]
    with rbac.acting_as(cluster, api, namespace, f"nfs-reader-{namespace}", rules) as kubeconfig:
        report = doctor_json(sharedvol, namespace, kubeconfig=kubeconfig)
        lines = dry_run(sharedvol, namespace, kubeconfig=kubeconfig)
    assert report["nfs_health"] == {
        "working": None,
        "problems": [],
        "unknown": [
            "not allowed to read CSIDriver nfs.csi.k8s.io",
            "not allowed to read the CSI controller (Deployment csi-nfs-controller)",
            "not allowed to read the CSI node plugin (DaemonSet csi-nfs-node)",
            f"not allowed to read the NFS server's Service {NS}/nfs-server",
            "not allowed to read the cluster DNS Services (k8s-app=kube-dns in kube-system)",
        ],
        "not_checked": [],
    }
    assert (report["strategy"], report["strategy_reasons"]) == ("dynamic", WORKING_REASONS)
    assert lines[0] == f"plan for claim {namespace}/data: dynamic"
    assert f"  why: {WORKING_REASONS[0]}" in lines
