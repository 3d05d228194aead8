"""k8s/nfs: every kustomization accepted by the real API server, the install working as far as a control plane
without kubelets can show, and the "test your environment" check's scripts run for real."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig import kwait
from rig.cluster import ClusterHandle
from rig.paths import REPO
from storage import doctor, plan
from tests.objects import NFS_PROVISIONER, server_ready

NFS = REPO / "k8s" / "nfs"
KUSTOMIZATIONS = ["k8s/nfs", "k8s/nfs/driver", "k8s/nfs/server", "k8s/nfs/external-export", "k8s/nfs/check"]
NAMESPACES = {
    "sharedvol-nfs": NFS / "driver" / "namespace.yaml",
    "sharedvol-nfs-check": NFS / "check" / "namespace.yaml",
}
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}


def render(cluster: ClusterHandle, path: str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize path`` renders."""
    out = cluster.kubectl("kustomize", str(REPO / path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def containers(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (workload/container name, container) of the workloads among ``objects``, init containers included."""
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            spec = obj["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []) + spec["containers"]:
                yield f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}", c


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The object of ``kind`` named ``name``; fails when there is not exactly one."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def installed(cluster: ClusterHandle) -> Iterator[ClusterHandle]:
    """The namespaces the kustomizations write into, created for real; everything of k8s/nfs removed after."""
    for manifest in NAMESPACES.values():
        cluster.kubectl("apply", "-f", str(manifest))
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "-k", str(NFS / "check"), "--ignore-not-found", "--wait=true", "--timeout=90s")
        cluster.kubectl("delete", "-k", str(NFS), "--ignore-not-found", "--wait=true", "--timeout=90s")
        for ns in NAMESPACES:
            cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=90s")
        released = cluster.kubectl("get", "pv", "-o", "yaml").stdout
        for pv in yaml.safe_load(released)["items"]:
            if (pv["spec"].get("claimRef") or {}).get("namespace") == "sharedvol-nfs-check":
                cluster.kubectl("delete", "pv", pv["metadata"]["name"], "--ignore-not-found")


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_every_nfs_kustomization_is_accepted_by_the_api_server_in_a_server_side_dry_run(
    installed: ClusterHandle, path: str
) -> None:
    out = installed.kubectl("apply", "-k", str(REPO / path), "--dry-run=server")
    applied = [line for line in out.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(render(installed, path)), out.stdout
    assert "Warning" not in out.stderr, out.stderr


@pytest.mark.parametrize("path", ["k8s/nfs", "k8s/nfs/check"])
def test_every_image_is_pinned_to_a_version_tag_never_latest(cluster: ClusterHandle, path: str) -> None:
    images = {name: c["image"] for name, c in containers(render(cluster, path))}
    assert images
    for name, image in images.items():
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert re.fullmatch(r"v?\d+(\.\d+)*", tag), f"{name}: {image} is not pinned to a version tag"


@pytest.mark.parametrize("path", ["k8s/nfs", "k8s/nfs/check"])
def test_every_container_requests_cpu_and_memory_and_has_a_memory_limit(cluster: ClusterHandle, path: str) -> None:
    for name, c in containers(render(cluster, path)):
        resources = c.get("resources", {})
        assert set(resources.get("requests", {})) >= {"cpu", "memory"}, name
        assert "memory" in resources.get("limits", {}), name


def test_the_storage_class_serves_rwx_nfs_4_1_from_the_in_cluster_server_service(cluster: ClusterHandle) -> None:
    objects = render(cluster, "k8s/nfs")
    sc = one(objects, "StorageClass", "sharedvol-nfs")
    service = one(objects, "Service", "nfs-server")
    assert sc["provisioner"] == "nfs.csi.k8s.io"
    assert sc["parameters"]["server"] == f"nfs-server.{service['metadata']['namespace']}.svc.cluster.local"
    assert sc["parameters"]["share"] == "/"
    assert "nfsvers=4.1" in sc["mountOptions"]
    assert sc["reclaimPolicy"] == "Delete"
    assert sc["volumeBindingMode"] == "Immediate"
    assert sc["allowVolumeExpansion"] is True
    assert sc["parameters"]["subDir"] == "${pvc.metadata.namespace}-${pvc.metadata.name}-${pv.metadata.name}"
    assert [p["port"] for p in service["spec"]["ports"]] == [2049]


def test_the_class_on_delete_and_mount_permissions_are_the_ones_the_readme_documents(cluster: ClusterHandle) -> None:
    sc = one(render(cluster, "k8s/nfs"), "StorageClass", "sharedvol-nfs")
    section = (REPO / "docs" / "nfs.md").read_text()
    assert sc["parameters"]["onDelete"] == "archive"
    assert "| `onDelete` |" in section and "`archive`" in section
    assert f"`{sc['parameters']['mountPermissions']}`" in section


def test_the_csi_pods_use_host_networking_with_cluster_dns_so_nodes_resolve_the_server(cluster: ClusterHandle) -> None:
    objects = render(cluster, "k8s/nfs")
    for kind, name in (("DaemonSet", "csi-nfs-node"), ("Deployment", "csi-nfs-controller")):
        spec = one(objects, kind, name)["spec"]["template"]["spec"]
        assert spec["hostNetwork"] is True, name
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet", name
    node = one(objects, "DaemonSet", "csi-nfs-node")["spec"]["template"]["spec"]
    assert node["tolerations"] == [{"operator": "Exists"}]
    driver = one(objects, "CSIDriver", "nfs.csi.k8s.io")["spec"]
    assert driver["attachRequired"] is False and driver["fsGroupPolicy"] == "File"
    plugins = {c["image"] for _, c in containers(objects) if c["name"] == "nfs"}
    assert len(plugins) == 1 and next(iter(plugins)).startswith("registry.k8s.io/sig-storage/nfsplugin:v4.13.")


def test_the_external_export_overlay_drops_the_server_and_points_the_class_at_the_export(
    cluster: ClusterHandle,
) -> None:
    objects = render(cluster, "k8s/nfs/external-export")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "nfs-server") not in kinds and ("Service", "nfs-server") not in kinds
    assert {("DaemonSet", "csi-nfs-node"), ("Deployment", "csi-nfs-controller")} <= kinds
    patch = yaml.safe_load((NFS / "external-export" / "storageclass-patch.yaml").read_text())
    sc = one(objects, "StorageClass", "sharedvol-nfs")
    assert sc["parameters"]["server"] == patch["parameters"]["server"]
    assert sc["parameters"]["share"] == patch["parameters"]["share"]
    assert sc["parameters"]["onDelete"] == "archive"


def act_as_the_csi_provisioner(api: Any, namespace: str, claim: str) -> str:
    """Create the PV csi-driver-nfs would create for ``claim`` (no CSI driver runs on this control plane)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    pvc = core.read_namespaced_persistent_volume_claim(claim, namespace)
    name = f"pvc-{pvc.metadata.uid}"
    server = "nfs-server.sharedvol-nfs.svc.cluster.local"
    core.create_persistent_volume(
        {
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": NFS_PROVISIONER}},
            "spec": {
                "capacity": {"storage": pvc.spec.resources.requests["storage"]},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "sharedvol-nfs",
                "mountOptions": ["nfsvers=4.1", "hard"],
                "claimRef": {"namespace": namespace, "name": claim, "uid": pvc.metadata.uid},
                "csi": {
                    "driver": NFS_PROVISIONER,
                    "volumeHandle": f"{server}##{namespace}-{claim}-{name}#",
                    "volumeAttributes": {"server": server, "share": "/", "subdir": f"{namespace}-{claim}-{name}"},
                },
            },
        }
    )
    return name


def test_applied_the_nfs_pods_are_placed_on_every_node_and_the_check_claim_waits_for_the_csi_provisioner(
    installed: ClusterHandle, api: Any
) -> None:
    # What this proves: the API server admits every manifest, the scheduler places the node plugin on every node,
    # the check claim waits for the CSI provisioner, and doctor and the plan pick the class. kwok nodes run no
    # container, so "Running" and a Job's success are kwok's, and the PV below stands in for the CSI
    # provisioner: real pods of k8s/nfs/server and k8s/nfs/check run in the real-node tier (tests/node/).
    from kubernetes import client

    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    installed.kubectl("apply", "-k", str(NFS))
    for node in installed.node_names:
        kwait.until(
            core.list_namespaced_pod,
            lambda p, node=node: p.spec.node_name == node and p.status.phase == "Running",
            "sharedvol-nfs",
            label_selector="app.kubernetes.io/name=csi-nfs-node",
            what=f"csi-nfs-node pod on {node}",
        )
    for name in ("nfs-server", "csi-nfs-controller"):
        kwait.until(
            core.list_namespaced_pod,
            lambda p: p.status.phase == "Running",
            "sharedvol-nfs",
            label_selector=f"app.kubernetes.io/name={name}",
            what=f"{name} pod",
        )

    installed.kubectl("apply", "-k", str(NFS / "check"))
    ns = "sharedvol-nfs-check"
    event = kwait.until(
        core.list_namespaced_event,
        lambda e: e.involved_object.name == "nfs-check" and e.reason == "ExternalProvisioning",
        ns,
        what="ExternalProvisioning event of claim nfs-check",
    )
    assert NFS_PROVISIONER in event.message
    assert core.read_namespaced_persistent_volume_claim("nfs-check", ns).status.phase == "Pending"

    # with the class installed and what doctor checks of it Ready (the pods' Ready status counted by their
    # controllers, the server's EndpointSlice), doctor and the plan choose dynamic RWX on it, and explain the claim
    apps = client.AppsV1Api(api)
    for list_fn, name, ready in (
        (apps.list_namespaced_deployment, "csi-nfs-controller", lambda d: (d.status.ready_replicas or 0) >= 1),
        (apps.list_namespaced_daemon_set, "csi-nfs-node", lambda d: (d.status.number_ready or 0) >= 1),
    ):
        kwait.until(list_fn, ready, "sharedvol-nfs", what=name, **kwait.named(name))
    server_ready(api, True)
    report = doctor.diagnose(api, ns)
    assert report.nfs_health is not None and report.nfs_health.working is True, report.nfs_health
    assert report.strategy == "dynamic"
    assert report.strategy_reasons == ["StorageClass sharedvol-nfs is installed (CSI NFS driver)"]
    (waiting,) = report.pending
    assert (waiting.name, waiting.cause, waiting.storage_class) == ("nfs-check", "no-provisioner", "sharedvol-nfs")
    chosen = plan.make(api, plan.Request(name="data", namespace=ns, size="1Gi"))
    assert (chosen.strategy, chosen.storage_class) == ("dynamic", "sharedvol-nfs")
    assert chosen.claim is not None and chosen.claim["spec"]["accessModes"] == ["ReadWriteMany"]

    pv = act_as_the_csi_provisioner(api, ns, "nfs-check")
    bound = kwait.claim_phase(core, ns, "nfs-check")
    assert bound.spec.volume_name == pv and bound.status.access_modes == ["ReadWriteMany"]
    for job in ("nfs-check-write", "nfs-check-read"):
        kwait.until(
            batch.list_namespaced_job,
            lambda j: (j.status.succeeded or 0) >= 1,
            ns,
            **kwait.named(job),
            timeout=60,
            what=f"job {job}",
        )
    nodes = {
        p.metadata.labels["sharedvol.io/role"]: p.spec.node_name
        for p in core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/name=nfs-check").items
    }
    assert set(nodes) == {"write", "read"}  # where they ran is the VM tier's to check: the read pod only prefers
    # another node than the writer, and the scheduler stops counting a writer kwok has already finished


def check_script(role: str) -> tuple[str, dict[str, str]]:
    """The shell script and the literal environment of the check Job ``role`` ("write" or "read")."""
    jobs = list(yaml.safe_load_all((NFS / "check" / "jobs.yaml").read_text()))
    job = next(j for j in jobs if j["metadata"]["name"] == f"nfs-check-{role}")
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return container["args"][0], env


def run_check(role: str, shared: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script, defaults = check_script(role)
    full = {**os.environ, **defaults, "SHARED_DIR": str(shared), "NODE_NAME": f"node-{role}", "POD_NAME": role, **env}
    return subprocess.run(["/bin/sh", "-c", script], env=full, capture_output=True, text=True, timeout=60, check=False)


def test_the_check_reader_accepts_what_the_check_writer_wrote(tmp_path: Path) -> None:
    wrote = run_check("write", tmp_path)
    assert wrote.returncode == 0, wrote.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.txt"]
    read = run_check("read", tmp_path)
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "OK: read on node-read: sharedvol-nfs-check written by write on node-write"


def test_the_check_reader_fails_naming_the_file_when_the_writer_never_wrote(tmp_path: Path) -> None:
    read = run_check("read", tmp_path, WAIT_SECONDS="0")
    assert read.returncode == 1
    assert f"{tmp_path}/check.txt did not appear in 0 s" in read.stderr


def test_the_check_reader_fails_on_unexpected_content(tmp_path: Path) -> None:
    (tmp_path / "check.txt").write_text("something else\n")
    read = run_check("read", tmp_path)
    assert read.returncode == 1
    assert "unexpected content" in read.stderr
