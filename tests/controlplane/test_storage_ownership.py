"""One owner per volume: release, provision and doctor agree with a running `sharedvol serve` on who owns what."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from rig import kwait
from storage import errors, ownership, release, specs
from storage.provisioner import features, volumes
from tests.controlplane.serving import PROVISIONER, Service, SharedvolCli, fallback_class
from tests.objects import ClusterObjects


def _running(serve: Callable[..., Service], api: Any, namespace: str) -> Service:
    """A service whose heartbeat Lease is up in ``namespace`` ("": where one started by hand puts it, ``default``)."""
    svc = serve(env={"SHAREDVOL_NAMESPACE": namespace})
    kwait.until(
        client.CoordinationV1Api(api).list_namespaced_lease,
        lambda lease: lease.spec.renew_time is not None,
        namespace or "default",
        what="the heartbeat Lease",
        timeout=60,
        **kwait.named("sharedvol-provisioner"),
    )
    return svc


def _volume_path(api: Any, svc: Service, namespace: str, name: str) -> tuple[str, Any]:
    claim = kwait.claim_phase(client.CoreV1Api(api), namespace, name, timeout=90)
    pv = client.CoreV1Api(api).read_persistent_volume(claim.spec.volume_name)
    return pv.metadata.name, svc.node_dir(pv.spec.host_path.path)


def _archived_service_volume_with_weights(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service], sharedvol: SharedvolCli
) -> tuple[str, str, Path]:
    """Claim ``data`` of a class with onDelete archive, provisioned by a running service, its volume holding
    ``epoch_1.pth``: the class, the PV and the directory on the node."""
    svc = _running(serve, api, namespace)
    sc = fallback_class(cluster_objects, on_delete="archive")
    assert sharedvol("provision", "data", "-n", namespace, "--class", sc, "--size", "1Gi").returncode == 0
    volume, path = _volume_path(api, svc, namespace, "data")
    (path / "epoch_1.pth").write_bytes(b"weights")
    return sc, volume, path


@pytest.mark.parametrize("on_delete", ["delete", "archive"])
def test_release_keep_data_of_a_claim_the_service_made_keeps_the_data_whatever_the_class_says(
    api: Any,
    namespace: str,
    cluster_objects: ClusterObjects,
    serve: Callable[..., Service],
    sharedvol: SharedvolCli,
    on_delete: str,
) -> None:
    svc = _running(serve, api, namespace)
    sc = fallback_class(cluster_objects, on_delete=on_delete)
    made = sharedvol("provision", "data", "-n", namespace, "--class", sc, "--size", "1Gi")
    assert made.returncode == 0, made.stderr
    volume, path = _volume_path(api, svc, namespace, "data")
    cluster_objects.track_pv(volume)
    (path / "epoch_1.pth").write_bytes(b"weights")

    kept = sharedvol("release", "data", "-n", namespace, "--keep-data")

    assert kept.returncode == 0, kept.stderr
    rebind = f"sharedvol provision data -n {namespace} --size 1Gi --class {sc}"
    assert f"PersistentVolume {volume}: kept" in kept.stdout and f"`{rebind}` binds it again" in kept.stdout
    again = sharedvol(*rebind.split()[1:])  # the command exactly as printed
    assert again.returncode == 0, again.stderr
    assert kwait.claim_phase(client.CoreV1Api(api), namespace, "data", timeout=90).spec.volume_name == volume
    assert (path / "epoch_1.pth").read_bytes() == b"weights"


def test_a_kept_volume_bound_again_and_then_released_plainly_is_reclaimed_by_the_service_as_its_class_says(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service], sharedvol: SharedvolCli
) -> None:
    sc, volume, path = _archived_service_volume_with_weights(api, namespace, cluster_objects, serve, sharedvol)
    assert sharedvol("release", "data", "-n", namespace, "--keep-data").returncode == 0
    assert sharedvol("provision", "data", "-n", namespace, "--class", sc, "--size", "1Gi").returncode == 0
    assert kwait.claim_phase(client.CoreV1Api(api), namespace, "data", timeout=90).spec.volume_name == volume

    released = sharedvol("release", "data", "-n", namespace)  # the claim now is another one (a new UID)

    assert released.returncode == 0, released.stderr
    kwait.gone(client.CoreV1Api(api).list_persistent_volume, volume, timeout=90)  # it stayed Released before
    assert (path.with_name(f"archived-{path.name}") / "epoch_1.pth").read_bytes() == b"weights"


def test_a_plain_release_of_a_claim_the_service_made_lets_the_service_reclaim_it_as_its_class_says(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service], sharedvol: SharedvolCli
) -> None:
    sc, volume, path = _archived_service_volume_with_weights(api, namespace, cluster_objects, serve, sharedvol)

    released = sharedvol("release", "data", "-n", namespace)

    assert released.returncode == 0, released.stderr
    assert f"handed to sharedvol serve (StorageClass {sc})" in released.stdout
    kwait.gone(client.CoreV1Api(api).list_persistent_volume, volume, timeout=90)
    assert (path.with_name(f"archived-{path.name}") / "epoch_1.pth").read_bytes() == b"weights"


def test_provision_of_a_class_whose_provisioner_is_not_running_is_refused_before_anything_is_made(
    api: Any, namespace: str, cluster_objects: ClusterObjects, sharedvol: SharedvolCli
) -> None:
    sc = fallback_class(cluster_objects)  # sharedvol.io/hostpath, and no service runs

    out = sharedvol("provision", "data", "-n", namespace, "--class", sc, "--size", "1Gi")

    assert out.returncode == 2 and "its provisioner (`sharedvol serve`) is not running" in out.stderr
    assert client.CoreV1Api(api).list_namespaced_persistent_volume_claim(namespace).items == []


def test_a_static_provision_refused_for_a_read_write_once_claim_of_that_name_leaves_no_pv(
    api: Any, namespace: str, sharedvol: SharedvolCli
) -> None:
    rwo = specs.rwx_claim("data", namespace, "1Gi", "")
    rwo["spec"]["accessModes"] = ["ReadWriteOnce"]
    client.CoreV1Api(api).create_namespaced_persistent_volume_claim(namespace, rwo)

    out = sharedvol("provision", "data", "-n", namespace, "--static", "--no-prepare", "--timeout", "20")

    assert out.returncode != 0 and "not ReadWriteMany" in out.stderr
    names = {pv.metadata.name for pv in client.CoreV1Api(api).list_persistent_volume().items}
    assert specs.static_pv_name(namespace, "data") not in names


def test_doctor_says_a_service_started_by_hand_runs_and_its_headline_agrees_with_the_class_list(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service], sharedvol: SharedvolCli
) -> None:
    cluster_objects.storage_class(
        {
            "metadata": {"name": "sharedvol-hostpath"},
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "parameters": {"basePath": "/var/lib/sharedvol"},
        }
    )
    _running(serve, api, "")  # started as by hand, with no settings: its Lease goes to namespace default

    report = sharedvol("doctor", "--json")
    text = sharedvol("doctor")

    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["fallback_provisioner_running"] is True
    assert "not running" not in text.stdout
    assert "no class can serve ReadWriteMany" not in text.stdout


def _made_not_yet_marked(api: Any, namespace: str, cluster_objects: ClusterObjects) -> client.V1PersistentVolume:
    """Claim ``data`` bound to the PV a service makes for it, caught between making and marking it (no service)."""
    core = client.CoreV1Api(api)
    sc = fallback_class(cluster_objects)
    claim = core.create_namespaced_persistent_volume_claim(namespace, specs.rwx_claim("data", namespace, "1Gi", sc))
    pv = cluster_objects.pv(volumes.pv_for(claim, features.ClassConfig(name=sc), "node-0", PROVISIONER))
    kwait.claim_phase(core, namespace, "data", timeout=90)
    return pv


def test_release_keep_data_of_a_service_volume_not_yet_marked_changes_nothing_and_says_why(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    pv = _made_not_yet_marked(api, namespace, cluster_objects)

    with pytest.raises(errors.ConflictError) as refused:
        release.release(api, "data", namespace, keep_data=True, timeout=3)

    assert f"PersistentVolume {pv.metadata.name} is still being made by sharedvol serve" in str(refused.value)
    core = client.CoreV1Api(api)
    assert core.read_namespaced_persistent_volume_claim("data", namespace).metadata.deletion_timestamp is None
    now = core.read_persistent_volume(pv.metadata.name)
    assert now.spec.persistent_volume_reclaim_policy == "Delete" and now.spec.claim_ref.uid == pv.spec.claim_ref.uid
    assert ownership.KEPT_BY not in (now.metadata.annotations or {})


def _until_in(thread: threading.Thread, function: str, timeout: float = 60) -> None:
    """Until ``thread`` runs ``function`` (read from its stack: a Python call has no event to watch)."""
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or 0)
        while frame is not None:
            if frame.f_code.co_name == function:
                return
            frame = frame.f_back
        time.sleep(0.01)
    raise AssertionError(f"the release never reached {function}()")


def test_release_keep_data_of_a_service_volume_waits_for_its_mark_then_keeps_it_as_the_service_made_it(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    pv = _made_not_yet_marked(api, namespace, cluster_objects)
    done: list[release.Released] = []
    releasing = threading.Thread(target=lambda: done.append(release.release(api, "data", namespace, keep_data=True)))
    releasing.start()
    _until_in(releasing, "watch_volume")

    mark = {"metadata": {"annotations": {ownership.VOLUME_UID: pv.metadata.uid}}}  # what the service does next
    client.CoreV1Api(api).patch_persistent_volume(pv.metadata.name, mark)
    releasing.join(timeout=90)

    assert done and done[0].volume_action == "kept", done
    kept = client.CoreV1Api(api).read_persistent_volume(pv.metadata.name)
    assert kept.spec.persistent_volume_reclaim_policy == "Retain"
    assert (kept.metadata.annotations or {}).get(ownership.KEPT_BY) == "release"


def test_a_volume_kept_while_a_pod_still_used_its_claim_binds_again_with_the_command_release_printed(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service], sharedvol: SharedvolCli
) -> None:
    core = client.CoreV1Api(api)
    _, volume, path = _archived_service_volume_with_weights(api, namespace, cluster_objects, serve, sharedvol)
    pod = {
        "metadata": {"name": "user"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.37.0"}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    core.create_namespaced_pod(namespace, pod)
    kwait.until(core.list_namespaced_pod, lambda p: p.status.phase == "Running", namespace, **kwait.named("user"))

    kept = sharedvol("release", "data", "-n", namespace, "--keep-data", timeout=240)
    assert kept.returncode == 0 and "still in use by a pod" in kept.stdout, kept.stdout + kept.stderr
    [rebind] = [line.split("`")[1] for line in kept.stdout.splitlines() if "binds it again" in line]
    core.delete_namespaced_pod("user", namespace, grace_period_seconds=0)
    kwait.gone(core.list_namespaced_persistent_volume_claim, "data", namespace, timeout=90)

    again = sharedvol(*rebind.split()[1:])  # before, a new empty volume: the kept one still named the old claim

    assert again.returncode == 0, again.stderr
    assert kwait.claim_phase(core, namespace, "data", timeout=90).spec.volume_name == volume
    assert (path / "epoch_1.pth").read_bytes() == b"weights"
