"""storage/ against the real API server: plans, binding, doctor, release, and every refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from rig import cluster as cp
from rig import kwait
from rig.paths import REPO
from storage import apply, doctor, errors, plan, release, specs, wait
from tests import objects
from tests.controlplane import rbac
from tests.objects import ClusterObjects


def _sharedvol(
    cluster: cp.ClusterHandle, *args: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipelines", *args, "--kubeconfig", str(kubeconfig or cluster.kubeconfig)]
    return subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)


def test_provision_static_on_a_local_path_cluster_gives_a_bound_rwx_claim(
    api: Any, cluster: cp.ClusterHandle, namespace: str, local_path_class: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "shared"))
    out = _sharedvol(cluster, "provision", "shared", "-n", namespace, "--size", "2Gi", "--static", "--no-prepare")

    assert out.returncode == 0, out.stderr
    assert "plan for claim" in out.stdout and ": static" in out.stdout
    assert f"claim {namespace}/shared is Bound to PersistentVolume sharedvol.{namespace}.shared" in out.stdout
    core = client.CoreV1Api(api)
    claim = core.read_namespaced_persistent_volume_claim("shared", namespace)
    pv = core.read_persistent_volume(claim.spec.volume_name)
    assert claim.status.phase == "Bound" and claim.status.access_modes == ["ReadWriteMany"]
    assert (pv.spec.claim_ref.namespace, pv.spec.claim_ref.name) == (namespace, "shared")
    assert pv.spec.persistent_volume_reclaim_policy == "Retain"
    assert pv.spec.host_path.path == f"/var/lib/sharedvol/{namespace}/shared"
    term = pv.spec.node_affinity.required.node_selector_terms[0].match_expressions[0]
    assert term.values == [cluster.node_names[0]]


def test_a_rerun_finds_the_claim_and_creates_nothing(
    api: Any, namespace: str, local_path_class: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "again"))
    req = plan.Request("again", namespace, "1Gi", static=True)
    first = apply.apply(api, plan.make(api, req), timeout=30)
    second = apply.apply(api, plan.make(api, req), timeout=30)

    assert first.created == [f"PersistentVolume/sharedvol.{namespace}.again", "PersistentVolumeClaim/again"]
    assert second.created == []
    assert first.phase == second.phase == "Bound"


def test_with_an_nfs_csi_class_the_plan_is_dynamic_and_doctor_explains_the_waiting_claim(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    nfs = cluster_objects.storage_class(objects.nfs_class()).metadata.name
    p = plan.make(api, plan.Request("data", namespace, "1Gi", storage_class=nfs))
    assert p.strategy == "dynamic" and p.claim is not None
    assert p.claim["spec"]["storageClassName"] == nfs

    result = apply.apply(api, p, wait=False)
    assert result.created == ["PersistentVolumeClaim/data"] and result.phase == "Pending"
    kwait.until(  # the PV controller's event, however loaded the machine
        client.CoreV1Api(api).list_namespaced_event,
        lambda e: e.reason == "ExternalProvisioning",
        namespace,
        field_selector="involvedObject.name=data",
        timeout=120,
        what="ExternalProvisioning event",
    )
    with pytest.raises(errors.BindError, match=r"was not Bound after 1 s \(ExternalProvisioning"):
        wait.wait_bound(api, namespace, "data", timeout=1)
    report = doctor.diagnose(api, namespace)
    [d] = report.pending
    assert (d.name, d.cause) == ("data", "no-provisioner")
    assert f"waits for the external provisioner {objects.NFS_PROVISIONER}" in d.explanation
    assert d.fix.startswith("kubectl apply -k k8s/nfs")


def test_doctor_explains_a_pending_rwx_claim_on_local_path_and_names_the_fix(
    api: Any, cluster: cp.ClusterHandle, namespace: str, local_path_class: str
) -> None:
    claim = specs.rwx_claim("kfp-shared", namespace, "3Gi", local_path_class)
    client.CoreV1Api(api).create_namespaced_persistent_volume_claim(namespace, claim)

    out = _sharedvol(cluster, "doctor", "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert f"Pending claim {namespace}/kfp-shared (ReadWriteMany, class '{local_path_class}')" in out.stdout
    assert "serves only ReadWriteOnce" in out.stdout
    assert f"sharedvol provision kfp-shared -n {namespace} --size 3Gi --static" in out.stdout
    assert "A run gets: static" in out.stdout


def test_release_deletes_the_claim_and_the_pv_or_keeps_the_pv_with_its_data(
    api: Any, cluster: cp.ClusterHandle, namespace: str, local_path_class: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    for name in ("gone", "kept"):
        cluster_objects.track_pv(specs.static_pv_name(namespace, name))
        apply.apply(api, plan.make(api, plan.Request(name, namespace, "1Gi", static=True)), timeout=30)

    gone = release.release(api, "gone", namespace)
    kept = release.release(api, "kept", namespace, keep_data=True)

    assert gone.volume_action == "deleted"
    assert "sharedvol does not delete files" in gone.describe()
    for name in ("gone", "kept"):  # the claims are gone (deleted, or on their way out)
        try:
            assert core.read_namespaced_persistent_volume_claim(name, namespace).metadata.deletion_timestamp
        except client.ApiException as e:
            assert e.status == 404
    try:
        assert core.read_persistent_volume(gone.volume).metadata.deletion_timestamp is not None
    except client.ApiException as e:
        assert e.status == 404
    assert kept.volume_action == "kept"
    assert kept.data == f"{cluster.node_names[0]}:/var/lib/sharedvol/{namespace}/kept"
    again = apply.apply(api, plan.make(api, plan.Request("kept", namespace, "1Gi", static=True)), timeout=30)
    assert again.volume == kept.volume and again.phase == "Bound"


def test_a_missing_namespace_class_or_node_is_one_clear_line(cluster: cp.ClusterHandle, namespace: str) -> None:
    cases = [
        (
            ["provision", "x", "-n", "no-such-ns"],
            "namespace 'no-such-ns' does not exist: create it: kubectl create namespace",
        ),
        (
            ["provision", "x", "-n", namespace, "--class", "no-such-class"],
            "StorageClass 'no-such-class' does not exist",
        ),
        (
            ["provision", "x", "-n", namespace, "--static", "--node", "no-such-node"],
            "node 'no-such-node' does not exist",
        ),
        (["provision", "x", "-n", namespace, "--size", "0"], "size '0' is not positive"),
        (["provision", "Bad_Name", "-n", namespace], "claim name 'Bad_Name' is not a valid Kubernetes name"),
        (["provision", "x", "-n", namespace, "--static", "--host-path", "/"], "host path '/' would put volumes"),
        (["provision", "x", "-n", namespace, "--nfs", "server-only"], "NFS export 'server-only' is not SERVER:/PATH"),
    ]
    for args, message in cases:
        out = _sharedvol(cluster, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sharedvol provision: error: "), out.stderr
        assert message in lines[0]
    assert (
        client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
        .list_namespaced_persistent_volume_claim(namespace)
        .items
        == []
    )


def test_a_pv_bound_to_another_claim_is_a_conflict_and_nothing_is_created(
    api: Any, namespace: str, local_path_class: str, cluster_objects: ClusterObjects
) -> None:
    taken = specs.StaticVolume(specs.static_pv_name(namespace, "mine"), "elsewhere", "theirs", "1Gi", host_path="/x")
    cluster_objects.pv(specs.static_pv(taken))
    with pytest.raises(errors.ConflictError, match="is bound to claim elsewhere/theirs"):
        apply.apply(api, plan.make(api, plan.Request("mine", namespace, "1Gi", static=True)), timeout=10)
    assert client.CoreV1Api(api).list_namespaced_persistent_volume_claim(namespace).items == []


def test_a_claim_that_exists_with_other_access_modes_is_a_conflict(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    nfs = cluster_objects.storage_class(objects.nfs_class()).metadata.name
    rwo = specs.rwx_claim("data", namespace, "1Gi", nfs)
    rwo["spec"]["accessModes"] = ["ReadWriteOnce"]
    client.CoreV1Api(api).create_namespaced_persistent_volume_claim(namespace, rwo)
    with pytest.raises(errors.ConflictError, match=r"exists with access modes \['ReadWriteOnce'\], not ReadWriteMany"):
        apply.apply(api, plan.make(api, plan.Request("data", namespace, "1Gi", storage_class=nfs)), wait=False)


def test_a_user_who_may_only_make_claims_gets_the_claim_of_a_class_made(
    api: Any, cluster: cp.ClusterHandle, namespace: str, cluster_objects: ClusterObjects
) -> None:
    nfs = cluster_objects.storage_class(objects.nfs_class(objects.unique("nfs"))).metadata.name
    name = f"claims-from-a-class-{namespace}"
    rules = [
        {"apiGroups": [""], "resources": ["persistentvolumeclaims", "events"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["create"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list"]},
    ]
    with rbac.acting_as(cluster, api, namespace, name, rules) as kubeconfig:
        out = _sharedvol(
            cluster, "provision", "shared", "-n", namespace, "--class", nfs, "--timeout", "2", kubeconfig=kubeconfig
        )
    # no NFS driver runs here: the claim is made and stays Pending (before, listing PVs was refused first)
    assert out.stderr.strip().splitlines()[-1].startswith("sharedvol provision: error: claim "), out.stderr
    assert "was not Bound after 2 s" in out.stderr
    claim = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("shared", namespace)
    assert claim.spec.storage_class_name == nfs


def test_without_permission_to_create_pvs_provision_fails_clearly_and_leaves_nothing(
    api: Any, cluster: cp.ClusterHandle, namespace: str, local_path_class: str
) -> None:
    name = f"claims-only-{namespace}"
    rules = [
        {
            "apiGroups": [""],
            "resources": ["persistentvolumeclaims", "events", "namespaces", "nodes", "persistentvolumes"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["create", "delete"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list"]},
    ]
    with rbac.acting_as(cluster, api, namespace, name, rules) as kubeconfig:
        out = _sharedvol(cluster, "provision", "shared", "-n", namespace, "--static", kubeconfig=kubeconfig)
    assert out.returncode == 2
    assert "error: not allowed to create PersistentVolume" in out.stderr
    assert "ask a cluster admin" in out.stderr
    core = client.CoreV1Api(api)
    assert core.list_namespaced_persistent_volume_claim(namespace).items == []
    with pytest.raises(client.ApiException) as e:
        core.read_persistent_volume(specs.static_pv_name(namespace, "shared"))
    assert e.value.status == 404


def test_a_pv_made_for_a_claim_that_could_not_be_created_is_deleted_again(
    api: Any, cluster: cp.ClusterHandle, namespace: str, local_path_class: str
) -> None:
    name = f"pvs-only-{namespace}"
    rules = [
        {"apiGroups": [""], "resources": ["persistentvolumeclaims", "namespaces", "nodes"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "create", "delete"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list"]},
    ]
    with rbac.acting_as(cluster, api, namespace, name, rules, account="admin-ish") as kubeconfig:
        out = _sharedvol(cluster, "provision", "half", "-n", namespace, "--static", kubeconfig=kubeconfig)
    assert out.returncode == 2
    assert "error: not allowed to create claim" in out.stderr
    core = client.CoreV1Api(api)
    try:
        assert core.read_persistent_volume(specs.static_pv_name(namespace, "half")).metadata.deletion_timestamp
    except client.ApiException as e:
        assert e.status == 404


def test_a_claim_that_does_not_bind_in_time_is_reported_with_the_time_asked_for_and_what_was_left(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    nfs = cluster_objects.storage_class(objects.nfs_class()).metadata.name
    with pytest.raises(errors.BindError) as e:
        apply.apply(api, plan.make(api, plan.Request("slow", namespace, "1Gi", storage_class=nfs)), timeout=1.5)
    assert f"claim {namespace}/slow was not Bound after 1.5 s" in str(e.value)
    assert f"left in place: PersistentVolumeClaim/slow (remove with: sharedvol release slow -n {namespace})" in str(
        e.value
    )


def test_a_static_volume_goes_to_a_node_open_to_pods_not_to_a_cordoned_one(
    api: Any, cluster: cp.ClusterHandle, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    first, second = cluster.node_names[:2]
    core.patch_node(first, {"spec": {"unschedulable": True}})  # kubectl cordon
    try:
        chosen = plan.make(api, plan.Request("data", namespace, "1Gi", static=True))
    finally:
        core.patch_node(first, {"spec": {"unschedulable": None}})
    assert chosen.volume is not None and chosen.volume.node == second
