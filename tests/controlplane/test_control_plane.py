"""The test control plane itself behaves like a cluster: binding, provisioning events, scheduling, RBAC."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client, config

from rig import cluster as cp
from rig import kwait
from tests import objects
from tests.objects import ClusterObjects


def _host_pv(name: str, storage_class: str, *, claim_ref: dict | None = None, node: str | None = None) -> dict:
    spec: dict[str, Any] = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteMany"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": storage_class,
        "hostPath": {"path": f"/var/lib/sharedvol-test/{name}", "type": "DirectoryOrCreate"},
    }
    if claim_ref:
        spec["claimRef"] = claim_ref
    if node:
        spec["nodeAffinity"] = {
            "required": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
                ]
            }
        }
    return {"metadata": {"name": name, "labels": {"sharedvol.io/test": "true"}}, "spec": spec}


def _pod(name: str, claim: str | None = None) -> dict:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}]}
    if claim:
        spec["volumes"] = [{"name": "shared", "persistentVolumeClaim": {"claimName": claim}}]
        spec["containers"][0]["volumeMounts"] = [{"name": "shared", "mountPath": "/mnt/shared"}]
    return {"metadata": {"name": name}, "spec": spec}


def test_a_claim_against_a_pre_bound_static_pv_becomes_bound(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    pv_name = f"static-{uuid.uuid4().hex[:8]}"
    cluster_objects.pv(_host_pv(pv_name, "", claim_ref={"namespace": namespace, "name": "data"}))
    core.create_namespaced_persistent_volume_claim(namespace, objects.claim("data", "", volume_name=pv_name))

    claim = kwait.claim_phase(core, namespace, "data")
    assert claim.spec.volume_name == pv_name
    assert claim.status.access_modes == ["ReadWriteMany"]


def test_a_claim_of_an_external_provisioner_class_waits_with_an_external_provisioning_event(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    sc = cluster_objects.storage_class(objects.nfs_class()).metadata.name
    core.create_namespaced_persistent_volume_claim(namespace, objects.claim("shared", sc))

    event = kwait.event(core, namespace, "ExternalProvisioning", "shared")
    assert objects.NFS_PROVISIONER in event.message
    claim = core.read_namespaced_persistent_volume_claim("shared", namespace)
    assert claim.status.phase == "Pending"
    assert claim.metadata.annotations["volume.kubernetes.io/storage-provisioner"] == objects.NFS_PROVISIONER


def test_a_wait_for_first_consumer_claim_binds_only_after_its_pod_is_scheduled_onto_a_kwok_node(
    api: Any, cluster: cp.ClusterHandle, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    wffc = objects.storage_class(
        "kubernetes.io/no-provisioner", name=objects.unique("wffc"), mode="WaitForFirstConsumer"
    )
    sc = cluster_objects.storage_class(wffc).metadata.name
    node = cluster.node_names[0]
    pv_name = f"local-{uuid.uuid4().hex[:8]}"
    cluster_objects.pv(_host_pv(pv_name, sc, node=node))
    core.create_namespaced_persistent_volume_claim(namespace, objects.claim("late", sc))

    kwait.event(core, namespace, "WaitForFirstConsumer", "late")
    assert core.read_namespaced_persistent_volume_claim("late", namespace).status.phase == "Pending"

    core.create_namespaced_pod(namespace, _pod("consumer", claim="late"))
    claim = kwait.claim_phase(core, namespace, "late")
    assert claim.spec.volume_name == pv_name
    pod = kwait.until(
        core.list_namespaced_pod,
        lambda p: bool(p.spec.node_name),
        namespace,
        what="pod",
        **kwait.named("consumer"),
    )
    assert pod.spec.node_name == node


def test_a_pod_on_a_kwok_node_reaches_running(api: Any, cluster: cp.ClusterHandle, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, _pod("runner"))
    pod = kwait.until(
        core.list_namespaced_pod,
        lambda p: p.status.phase == "Running",
        namespace,
        what="pod runner",
        **kwait.named("runner"),
    )
    assert pod.spec.node_name in cluster.node_names


def test_every_kwok_node_is_ready(api: Any, cluster: cp.ClusterHandle) -> None:
    core = client.CoreV1Api(api)
    for name in cluster.node_names:
        node = kwait.until(
            core.list_node,
            lambda n: any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or []),
            what=f"node {name}",
            **kwait.named(name),
        )
        assert node.metadata.labels["kubernetes.io/hostname"] == name


def test_an_rbac_limited_service_account_is_denied_what_it_may_not_do(
    api: Any, cluster: cp.ClusterHandle, namespace: str
) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "claim-reader"},
            "rules": [{"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "claim-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "claim-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    kubeconfig = cluster.service_account_kubeconfig(namespace, "reader")
    limited = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))

    assert limited.list_namespaced_persistent_volume_claim(namespace).items == []
    with pytest.raises(client.ApiException) as denied:
        limited.create_persistent_volume(_host_pv(f"denied-{uuid.uuid4().hex[:8]}", ""))
    assert denied.value.status == 403
    with pytest.raises(client.ApiException) as secrets:
        limited.list_namespaced_secret(namespace)
    assert secrets.value.status == 403
    can_i = cluster.kubectl("auth", "can-i", "create", "persistentvolumes", kubeconfig=kubeconfig, check=False)
    assert can_i.stdout.strip() == "no"
