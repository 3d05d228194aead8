"""The fallback provisioner installed for real (``kubectl apply -k k8s/fallback``) on the real node, running the
locally built provisioner image: its DaemonSet's pod on the node becomes Ready through its /healthz probe and serves
that node, claims shaped like KFP's own bind, two pods share a file through one, and deleting the claim archives its
directory on the node as the class says."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig import cluster as cp
from rig import images, kwait
from rig.node import nodeconfig as nc
from storage import heartbeat, ownership, specs
from tests.node import pods
from tests.node.session import NodeHandle

FALLBACK = cp.REPO / "k8s" / "fallback"
NAMESPACE = "sharedvol-system"
CLASS = "sharedvol-hostpath"
LEDGER = Path("/var/lib/sharedvol/.sharedvol")  # the service's pending records, under k8s/fallback's basePath


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


@pytest.fixture(scope="module")
def fallback(node: NodeHandle, node_api: Any) -> Iterator[Any]:
    """k8s/fallback applied as users apply it; its provisioner pod once Ready; everything deleted after."""
    from kubernetes import client

    # A ledger a run as root left (this machine had one): the init container hands it to the service's user.
    # Before it did, every claim failed with "Permission denied: '.sharedvol'" and the re-check died on it.
    LEDGER.mkdir(parents=True, exist_ok=True)
    os.chown(LEDGER, 0, 0)
    LEDGER.chmod(0o700)
    node.kubectl("apply", "-k", str(FALLBACK))
    core = client.CoreV1Api(node_api)
    try:
        pod = kwait.until(
            core.list_namespaced_pod,
            _ready,
            NAMESPACE,
            timeout=180,
            what="the sharedvol-provisioner pod Ready",
            label_selector="app.kubernetes.io/name=sharedvol-provisioner",
        )
        yield pod
    finally:
        node.kubectl("delete", "-k", str(FALLBACK), "--ignore-not-found", "--wait=true", "--timeout=120s")


def test_the_provisioner_pod_of_k8s_fallback_runs_the_local_image_as_uid_1000_and_is_ready_through_its_probe(
    fallback: Any,
) -> None:
    daemonset = yaml.safe_load((FALLBACK / "daemonset.yaml").read_text())
    assert daemonset["kind"] == "DaemonSet"
    (declared,) = daemonset["spec"]["template"]["spec"]["containers"]
    assert declared["image"] == images.PROVISIONER_IMAGE
    (container,) = fallback.spec.containers
    assert container.image == images.PROVISIONER_IMAGE
    assert container.readiness_probe.http_get.path == "/healthz"
    (status,) = fallback.status.container_statuses
    assert status.ready and status.restart_count == 0
    assert fallback.spec.security_context.run_as_user in (None, 1000)
    assert container.security_context.run_as_user == 1000 and container.security_context.run_as_non_root
    assert fallback.spec.node_name == nc.NODE_NAME


def test_the_provisioner_of_k8s_fallback_serves_the_node_its_pod_runs_on(fallback: Any, node: NodeHandle) -> None:
    (container,) = fallback.spec.containers
    (node_name,) = [e.value_from.field_ref.field_path for e in container.env if e.name == "SHAREDVOL_NODE_NAME"]
    assert node_name == "spec.nodeName"
    printed = node.kubectl("-n", NAMESPACE, "exec", fallback.metadata.name, "--", "printenv", "SHAREDVOL_NODE_NAME")
    assert printed.stdout.strip() == nc.NODE_NAME


def test_the_init_container_of_k8s_fallback_hands_a_ledger_left_by_root_to_the_provisioners_user(
    fallback: Any,
) -> None:
    assert (LEDGER.stat().st_uid, LEDGER.stat().st_gid) == (1000, 1000)


def test_the_provisioner_of_k8s_fallback_renews_its_nodes_heartbeat_so_doctor_sees_it_running(
    fallback: Any, node_api: Any
) -> None:
    from kubernetes import client

    lease = kwait.until(
        client.CoordinationV1Api(node_api).list_namespaced_lease,
        lambda lease: lease.spec.renew_time is not None,
        NAMESPACE,
        timeout=60,
        what="the heartbeat Lease",
        **kwait.named(heartbeat.lease_name(nc.NODE_NAME)),
    )
    assert lease.metadata.annotations[heartbeat.SERVES] == "sharedvol.io/hostpath"
    assert lease.metadata.annotations[heartbeat.NODE] == nc.NODE_NAME
    assert heartbeat.fallback_running(node_api) is True


def _kfp_claim(name: str, namespace: str) -> dict[str, Any]:
    body = specs.rwx_claim(name, namespace, "5Gi", CLASS)
    body["metadata"].pop("labels")  # KFP's claims carry no sharedvol labels
    return body


def _share_pod(name: str, claim: str, script: str) -> dict[str, Any]:
    return pods.step_pod(name, [script], claim=claim, command=["/bin/bash", "-ec"])


@pytest.mark.parametrize(
    "claim",
    [f"{uuid.uuid4()}-sharedvol", "resnet18-cifar10-x7k2p-kfp-workspace"],
    ids=["kfp-createpvc", "kfp-workspace"],
)
def test_a_kfp_shaped_claim_binds_two_pods_share_a_file_through_it_and_deleting_it_archives_its_directory(
    fallback: Any, node_api: Any, node_namespace: str, run_pod: pods.PodRunner, claim: str
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(node_api)
    core.create_namespaced_persistent_volume_claim(node_namespace, _kfp_claim(claim, node_namespace))
    token = uuid.uuid4().hex
    write = f"echo {token} > {pods.MOUNT}/handoff.txt && id -u"
    writer = run_pod.run(_share_pod("writer", claim, write), timeout=180)
    assert (writer.phase, writer.exit_code) == ("Succeeded", 0), writer.logs
    reader = run_pod.run(_share_pod("reader", claim, f"cat {pods.MOUNT}/handoff.txt"), timeout=180)
    assert (reader.phase, reader.exit_code) == ("Succeeded", 0), reader.logs
    assert reader.logs.strip() == token

    bound = core.read_namespaced_persistent_volume_claim(claim, node_namespace)
    assert bound.status.phase == "Bound" and bound.status.access_modes == ["ReadWriteMany"]
    pv = core.read_persistent_volume(bound.spec.volume_name)
    assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "sharedvol.io/hostpath"
    assert pv.metadata.annotations[ownership.VOLUME_UID] == pv.metadata.uid  # its RBAC lets it mark the PV
    directory = Path(pv.spec.host_path.path)
    storage_class = yaml.safe_load((FALLBACK / "storageclass.yaml").read_text())
    assert directory.parent == Path(storage_class["parameters"]["basePath"])
    assert storage_class["parameters"]["onDelete"] == "archive"  # what the rest of this test checks happens
    archived = directory.with_name(f"archived-{directory.name}")
    try:
        assert (directory / "handoff.txt").read_text().strip() == token
        assert (directory / "handoff.txt").stat().st_uid == 1000

        for name in ("writer", "reader"):
            core.delete_namespaced_pod(name, node_namespace, grace_period_seconds=0)
            run_pod.wait_deleted(name, 60)
        core.delete_namespaced_persistent_volume_claim(claim, node_namespace)
        kwait.gone(core.list_persistent_volume, pv.metadata.name, timeout=120)

        assert not directory.exists()
        assert (archived / "handoff.txt").read_text().strip() == token
    finally:
        shutil.rmtree(archived, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
