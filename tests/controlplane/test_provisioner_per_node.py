"""`sharedvol serve` as k8s/fallback runs it: one instance per node (``--node-name``), each with its own stand-in
node filesystem. A claim's volume is made by the instance of the node it goes on, and only there; its deletion is
handled there too; each instance renews its own heartbeat Lease."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from rig import cluster as cp
from rig import kwait
from storage import heartbeat
from storage.provisioner import features, volumes
from tests import objects
from tests.controlplane.serving import Service, fallback_class
from tests.objects import ClusterObjects


@pytest.fixture
def per_node(cluster: cp.ClusterHandle, tmp_path: Path) -> Iterator[dict[str, Service]]:
    """One running service per kwok node, each serving only its node, each with its own node filesystem."""
    services = {
        node: Service(cluster.kubeconfig, tmp_path / node, "--node-name", node).start() for node in cluster.node_names
    }
    try:
        yield services
    finally:
        for svc in services.values():
            svc.kill(signal.SIGTERM)


def _consumer(claim: str, node: str) -> dict[str, Any]:
    """A pod that uses ``claim``, scheduled to ``node`` by the scheduler (a nodeSelector, not nodeName)."""
    return {
        "metadata": {"name": f"use-{claim}"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [{"name": "c", "image": "sharedvol:0.1.0"}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def test_a_claims_directory_is_made_only_by_the_instance_on_the_node_its_first_pod_is_scheduled_to(
    api: Any, cluster: cp.ClusterHandle, namespace: str, cluster_objects: ClusterObjects, per_node: dict[str, Service]
) -> None:
    core = client.CoreV1Api(api)
    sc = fallback_class(cluster_objects, mode="WaitForFirstConsumer")
    made = {}
    for node in cluster.node_names:
        claim = f"on-{node}"
        core.create_namespaced_persistent_volume_claim(namespace, objects.claim(claim, sc))
        core.create_namespaced_pod(namespace, _consumer(claim, node))
        bound = kwait.claim_phase(core, namespace, claim, timeout=60)
        cluster_objects.track_pv(bound.spec.volume_name)
        made[node] = core.read_persistent_volume(bound.spec.volume_name)

    for node, pv in made.items():
        assert volumes.node_of(pv) == node
        others = [svc for other, svc in per_node.items() if other != node]
        assert per_node[node].node_dir(pv.spec.host_path.path).is_dir()
        assert [svc.node_dir(pv.spec.host_path.path).exists() for svc in others] == [False] * len(others)
        kwait.event(core, namespace, "ProvisioningSucceeded", f"on-{node}")  # it may come after the claim binds
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name=on-{node}").items
        # one instance posted them, once each (Events are listed by name, not by time)
        assert sorted(e.reason for e in events if e.reason.startswith("Provisioning")) == [
            "Provisioning",
            "ProvisioningSucceeded",
        ], [(e.reason, e.message) for e in events]


def test_a_claims_volume_is_reclaimed_by_the_instance_of_its_node_only(
    api: Any, cluster: cp.ClusterHandle, namespace: str, cluster_objects: ClusterObjects, per_node: dict[str, Service]
) -> None:
    core = client.CoreV1Api(api)
    node = cluster.node_names[-1]
    sc = fallback_class(cluster_objects, on_delete="archive", node=node)
    core.create_namespaced_persistent_volume_claim(namespace, objects.claim("pinned", sc))
    bound = kwait.claim_phase(core, namespace, "pinned", timeout=60)
    path = core.read_persistent_volume(bound.spec.volume_name).spec.host_path.path
    # the same path on another node, as kubelet's DirectoryOrCreate would leave it: not that instance's to touch
    elsewhere = next(svc for other, svc in per_node.items() if other != node).node_dir(path)
    elsewhere.mkdir(parents=True)
    (per_node[node].node_dir(path) / "latest.pth").write_bytes(b"weights")

    core.delete_namespaced_persistent_volume_claim("pinned", namespace)
    kwait.gone(core.list_persistent_volume, bound.spec.volume_name, timeout=60)

    here = per_node[node].node_dir(path)
    assert (here.with_name(f"archived-{here.name}") / "latest.pth").read_bytes() == b"weights"
    assert not here.exists()
    assert elsewhere.is_dir() and not elsewhere.with_name(f"archived-{elsewhere.name}").exists()


def test_each_instance_renews_its_own_heartbeat_lease(cluster: cp.ClusterHandle, api: Any, tmp_path: Path) -> None:
    namespace = f"heartbeat-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    env = {"SHAREDVOL_NAMESPACE": namespace}
    services = [
        Service(cluster.kubeconfig, tmp_path / node, "--node-name", node, env=env).start()
        for node in cluster.node_names
    ]
    try:
        leases = client.CoordinationV1Api(api)
        for node in cluster.node_names:
            lease = kwait.until(
                leases.list_namespaced_lease, lambda lease: lease.spec.renew_time is not None, namespace,
                what=f"the Lease of {node}", **kwait.named(heartbeat.lease_name(node)),
            )  # fmt: skip
            assert lease.metadata.annotations == {heartbeat.SERVES: "sharedvol.io/hostpath", heartbeat.NODE: node}
        services[0].kill(signal.SIGTERM)  # a clean stop deletes its own Lease only
        kwait.gone(leases.list_namespaced_lease, heartbeat.lease_name(cluster.node_names[0]), namespace, timeout=30)
        remaining = [lease.metadata.name for lease in leases.list_namespaced_lease(namespace).items]
        assert remaining == [heartbeat.lease_name(node) for node in cluster.node_names[1:]]
        assert heartbeat.running(api, "sharedvol.io/hostpath") is True
    finally:
        for svc in services:
            svc.kill(signal.SIGTERM)
        core.delete_namespace(namespace)


def _logged(svc: Service, needle: str, timeout: float = 60) -> None:
    """Wait until the service's log holds ``needle`` (a file, not an API object: read with a deadline)."""
    deadline = time.monotonic() + timeout
    while needle not in svc.output():
        assert time.monotonic() < deadline, f"{needle!r} not logged in {timeout:.0f} s:\n{svc.output()[-2000:]}"
        time.sleep(0.2)


def test_a_claim_refused_before_its_node_is_known_is_reported_by_the_instance_on_the_first_ready_node_only(
    api: Any, cluster: cp.ClusterHandle, namespace: str, cluster_objects: ClusterObjects, per_node: dict[str, Service]
) -> None:
    sc = fallback_class(cluster_objects, colour="blue")  # an unknown parameter: refused before any node is chosen
    made = client.CoreV1Api(api).create_namespaced_persistent_volume_claim(namespace, objects.claim("refused", sc))
    first, *others = sorted(cluster.node_names)

    event = kwait.event(client.CoreV1Api(api), namespace, "ProvisioningFailed", "refused", timeout=60)
    assert "parameters.colour: is unknown" in event.message
    _logged(per_node[first], "refused: StorageClass")
    for node in others:  # it tried too, and failed alike, but said nothing on the claim
        _logged(per_node[node], f"{made.metadata.uid}: attempt 1 failed")
        assert "refused: StorageClass" not in per_node[node].output()


def test_a_claim_whose_selected_node_does_not_exist_is_reported_by_the_instance_on_the_first_ready_node_only(
    api: Any, cluster: cp.ClusterHandle, namespace: str, cluster_objects: ClusterObjects, per_node: dict[str, Service]
) -> None:
    sc = fallback_class(cluster_objects, mode="WaitForFirstConsumer")
    body = objects.claim("ghost", sc)
    body["metadata"]["annotations"] = {features.SELECTED_NODE: "no-such-node"}  # no instance serves that node
    client.CoreV1Api(api).create_namespaced_persistent_volume_claim(namespace, body)
    first, *others = sorted(cluster.node_names)

    event = kwait.event(client.CoreV1Api(api), namespace, "ProvisioningFailed", "ghost", timeout=60)

    assert "the node the scheduler chose for it, no-such-node, does not exist" in event.message
    _logged(per_node[first], "ghost: the node the scheduler chose")
    for node in others:
        assert "ghost: the node the scheduler chose" not in per_node[node].output()
