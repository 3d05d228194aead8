"""`sharedvol serve` running as a process against the real API server: claims of its class bind, deleted
claims are reclaimed as the class says, a killed service leaves one PV, and k8s/fallback's RBAC is enough.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from rig import cluster as cp
from rig import kwait
from rig.paths import REPO
from storage import ownership
from storage.provisioner import volumes
from tests import objects
from tests.controlplane.serving import PROVISIONER, Service, fallback_class
from tests.objects import ClusterObjects


@pytest.fixture
def service(serve: Callable[..., Service]) -> Service:
    """One running service, as the tests pass it: --health-port 0 --text-logs."""
    return serve()


def _bound(api: Any, namespace: str, name: str, timeout: float = 60) -> Any:
    core = client.CoreV1Api(api)
    return kwait.claim_phase(core, namespace, name, timeout=timeout)


def _create_claim(api: Any, namespace: str, name: str, storage_class: str, size: str = "1Gi") -> Any:
    """Create ``objects.claim(name, storage_class)`` of ``size`` in ``namespace``; the claim as the API returns it."""
    return client.CoreV1Api(api).create_namespaced_persistent_volume_claim(
        namespace, objects.claim(name, storage_class, size=size)
    )


def test_an_immediate_claim_of_the_fallback_class_binds_to_a_writable_hostpath_volume(
    api: Any, namespace: str, cluster_objects: ClusterObjects, service: Service
) -> None:
    sc = fallback_class(cluster_objects)
    made = _create_claim(api, namespace, "shared", sc, "3Gi")
    claim = _bound(api, namespace, "shared")
    cluster_objects.track_pv(claim.spec.volume_name)
    # the claim may bind before the service marks its PV and posts the Event (the PV controller binds as soon as the
    # PV exists): the Event comes last, so watch for it before reading the PV
    kwait.event(client.CoreV1Api(api), namespace, "ProvisioningSucceeded", "shared")

    pv = client.CoreV1Api(api).read_persistent_volume(claim.spec.volume_name)
    assert pv.metadata.name == f"pvc-{made.metadata.uid}"
    assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    assert pv.spec.claim_ref.uid == made.metadata.uid
    assert pv.spec.access_modes == ["ReadWriteMany"] and pv.spec.capacity["storage"] == "3Gi"
    assert (
        pv.spec.host_path.path == f"/var/lib/sharedvol/{volumes.directory_name(namespace, 'shared', made.metadata.uid)}"
    )
    assert pv.metadata.annotations[ownership.VOLUME_UID] == pv.metadata.uid
    directory = service.node_dir(pv.spec.host_path.path)
    assert directory.is_dir() and directory.stat().st_mode & 0o777 == 0o777


def test_a_wait_for_first_consumer_claim_binds_on_the_node_its_pod_is_scheduled_to(
    api: Any, cluster: cp.ClusterHandle, namespace: str, cluster_objects: ClusterObjects, service: Service
) -> None:
    sc = fallback_class(cluster_objects, mode="WaitForFirstConsumer")
    _create_claim(api, namespace, "late", sc)
    core = client.CoreV1Api(api)
    kwait.event(core, namespace, "WaitForFirstConsumer", "late")
    assert core.read_namespaced_persistent_volume_claim("late", namespace).spec.volume_name is None

    pod = {
        "metadata": {"name": "train"},
        "spec": {
            "containers": [
                {"name": "c", "image": "sharedvol:0.1.0", "volumeMounts": [{"name": "v", "mountPath": "/mnt/shared"}]}
            ],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "late"}}],
        },
    }
    core.create_namespaced_pod(namespace, pod)
    claim = _bound(api, namespace, "late")
    cluster_objects.track_pv(claim.spec.volume_name)
    node = claim.metadata.annotations["volume.kubernetes.io/selected-node"]
    pv = core.read_persistent_volume(claim.spec.volume_name)
    assert pv.spec.node_affinity.required.node_selector_terms[0].match_expressions[0].values == [node]
    scheduled = kwait.until(
        core.list_namespaced_pod, lambda p: bool(p.spec.node_name), namespace, **kwait.named("train")
    )
    assert scheduled.spec.node_name == node and node in cluster.node_names


@pytest.mark.parametrize(
    "name",
    [f"{uuid.uuid4()}-sharedvol", "resnet18-cifar10-x7k2p-kfp-workspace"],
    ids=["kfp-createpvc", "kfp-workspace"],
)
def test_claims_shaped_like_kfps_own_bind(
    api: Any, namespace: str, cluster_objects: ClusterObjects, service: Service, name: str
) -> None:
    sc = fallback_class(cluster_objects)
    _create_claim(api, namespace, name, sc, "20Gi")  # KFP's claims carry no sharedvol labels: nor does objects.claim
    claim = _bound(api, namespace, name)
    cluster_objects.track_pv(claim.spec.volume_name)
    assert claim.status.access_modes == ["ReadWriteMany"]


def test_deleting_a_claim_deletes_archives_or_keeps_its_directory_as_the_class_says(
    api: Any, namespace: str, cluster_objects: ClusterObjects, service: Service
) -> None:
    core = client.CoreV1Api(api)
    dirs = {}
    for on_delete in ("delete", "archive", "retain"):
        sc = fallback_class(cluster_objects, on_delete=on_delete)
        _create_claim(api, namespace, on_delete, sc)
        claim = _bound(api, namespace, on_delete)
        path = service.node_dir(core.read_persistent_volume(claim.spec.volume_name).spec.host_path.path)
        (path / "latest.pth").write_bytes(b"weights")
        dirs[on_delete] = (claim.spec.volume_name, path)
        core.delete_namespaced_persistent_volume_claim(on_delete, namespace)
    for volume, _ in dirs.values():
        kwait.gone(core.list_persistent_volume, volume, timeout=60)

    assert not dirs["delete"][1].exists()
    archived = dirs["archive"][1].with_name(f"archived-{dirs['archive'][1].name}")
    assert not dirs["archive"][1].exists() and (archived / "latest.pth").read_bytes() == b"weights"
    assert (dirs["retain"][1] / "latest.pth").read_bytes() == b"weights"


def test_a_retain_class_keeps_the_volume_and_its_data(
    api: Any, namespace: str, cluster_objects: ClusterObjects, service: Service
) -> None:
    core = client.CoreV1Api(api)
    sc = fallback_class(cluster_objects, reclaim="Retain")
    _create_claim(api, namespace, "keep", sc)
    volume = _bound(api, namespace, "keep").spec.volume_name
    cluster_objects.track_pv(volume)
    core.delete_namespaced_persistent_volume_claim("keep", namespace)
    released = kwait.until(
        core.list_persistent_volume, lambda pv: pv.status.phase == "Released", what=volume, **kwait.named(volume)
    )
    assert released.metadata.deletion_timestamp is None
    assert service.node_dir(released.spec.host_path.path).is_dir()


@pytest.mark.parametrize("step", ["directory", "event", "volume", "touch"])
def test_a_service_killed_after_each_step_of_provisioning_and_restarted_leaves_exactly_one_bound_pv(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service], step: str
) -> None:
    core = client.CoreV1Api(api)
    sc = fallback_class(cluster_objects)
    first = serve(env={"SHAREDVOL_CRASH_AT": step})
    made = _create_claim(api, namespace, "crash", sc)
    assert first.proc is not None
    assert first.proc.wait(timeout=120) == 137, first.output()  # it died right after that step, as if killed
    assert f"SHAREDVOL_CRASH_AT={step}" in first.output()
    serve()
    claim = _bound(api, namespace, "crash")
    cluster_objects.track_pv(claim.spec.volume_name)
    ours = [
        pv
        for pv in core.list_persistent_volume().items
        if pv.spec.claim_ref and pv.spec.claim_ref.uid == made.metadata.uid
    ]
    assert [pv.metadata.name for pv in ours] == [claim.spec.volume_name]
    assert ours[0].status.phase == "Bound" and ours[0].metadata.deletion_timestamp is None
    dirs = sorted(p.name for p in (first.root / "var" / "lib" / "sharedvol").iterdir() if "crash" in p.name)
    assert dirs == [Path(ours[0].spec.host_path.path).name]
    records = first.root / "var" / "lib" / "sharedvol" / ".sharedvol"
    # the pending record goes too (the PV exists): a file-system condition, no API object to watch
    deadline = time.monotonic() + 60
    while records.exists() and any(records.iterdir()):
        assert time.monotonic() < deadline, sorted(p.name for p in records.iterdir())
        time.sleep(0.2)


def test_kubectl_apply_k_fallback_passes_a_server_side_dry_run(cluster: cp.ClusterHandle) -> None:
    # Namespaced objects are validated only inside an existing namespace: make it for real, for this test.
    cluster.kubectl("apply", "-f", str(REPO / "k8s" / "fallback" / "namespace.yaml"))
    try:
        out = cluster.kubectl("apply", "-k", str(REPO / "k8s" / "fallback"), "--dry-run=server")
    finally:
        cluster.kubectl("delete", "namespace", "sharedvol-system", "--wait=true", "--timeout=120s")
    assert "storageclass.storage.k8s.io/sharedvol-hostpath created (server dry run)" in out.stdout
    assert "daemonset.apps/sharedvol-provisioner created (server dry run)" in out.stdout


def test_the_rbac_of_k8s_fallback_lets_the_service_work_and_denies_secrets(
    api: Any, cluster: cp.ClusterHandle, namespace: str, tmp_path: Path
) -> None:
    fallback = str(REPO / "k8s" / "fallback")
    cluster.kubectl("apply", "-k", fallback)
    volume = ""
    try:
        kubeconfig = cluster.service_account_kubeconfig("sharedvol-system", "sharedvol-provisioner")
        as_service = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        with pytest.raises(client.ApiException) as denied:
            as_service.list_secret_for_all_namespaces()
        assert denied.value.status == 403
        with pytest.raises(client.ApiException) as denied_ns:
            as_service.list_namespaced_secret("sharedvol-system")
        assert denied_ns.value.status == 403

        svc = Service(kubeconfig, tmp_path / "node", env={"SHAREDVOL_NAMESPACE": "sharedvol-system"}).start()
        try:
            _create_claim(api, namespace, "kfp-run", "sharedvol-hostpath")
            pod = {
                "metadata": {"name": "step"},
                "spec": {
                    "containers": [{"name": "c", "image": "sharedvol:0.1.0"}],
                    "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "kfp-run"}}],
                },
            }
            client.CoreV1Api(api).create_namespaced_pod(namespace, pod)
            claim = _bound(api, namespace, "kfp-run")
            volume = claim.spec.volume_name
            lease = kwait.until(
                client.CoordinationV1Api(api).list_namespaced_lease,
                lambda lease: lease.spec.renew_time is not None,
                "sharedvol-system",
                what="the heartbeat Lease",
                **kwait.named("sharedvol-provisioner"),
            )
            assert lease.metadata.annotations["sharedvol.io/provisioner"] == PROVISIONER
        finally:
            svc.kill(signal.SIGTERM)
        assert claim.spec.storage_class_name == "sharedvol-hostpath"
        # RBAC: nothing it did was refused (kopf's own transport retries while it shuts down are not RBAC's business)
        refused = [line for line in svc.log.read_text().splitlines() if "forbidden" in line.lower() or " 403" in line]
        assert refused == []
    finally:
        # wait until it is all gone: later tests must not see a fallback provisioner installed
        cluster.kubectl("delete", "-k", fallback, "--wait=true", "--timeout=120s", check=False)
        if volume:
            cluster.kubectl("delete", "pv", volume, "--wait=false", check=False)
