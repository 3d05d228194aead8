"""provision and release against the real API server when others act at the same time or just before."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from kubernetes import client

from rig import kwait
from storage import apply, doctor, errors, plan, release, specs, wait
from tests import objects
from tests.objects import ClusterObjects


def _reserve_pv(cluster_objects: ClusterObjects, pv_name: str, namespace: str, claim: str) -> None:
    """A 1Gi RWX hostPath PV (Retain, no class) reserved for claim ``namespace/claim`` by its claimRef."""
    cluster_objects.pv(
        {
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": f"/var/lib/sharedvol/{pv_name}", "type": "DirectoryOrCreate"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )


def _static(api: Any, name: str, namespace: str, **kw: Any) -> apply.Result:
    return apply.apply(api, plan.make(api, plan.Request(name, namespace, "1Gi", static=True, **kw)), timeout=60)


def test_release_keep_data_then_provision_of_the_same_name_binds_the_same_volume_again(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "kept"))
    first = _static(api, "kept", namespace)
    kept = release.release(api, "kept", namespace, keep_data=True)
    assert kept.volume_action == "kept"
    core = client.CoreV1Api(api)
    with pytest.raises(client.ApiException) as gone:  # release waited until the old claim was gone
        core.read_namespaced_persistent_volume_claim("kept", namespace)
    assert gone.value.status == 404
    pv = core.read_persistent_volume(first.volume)
    assert pv.spec.claim_ref.uid is None and pv.spec.claim_ref.name == "kept"

    again = _static(api, "kept", namespace)
    assert (again.phase, again.volume, again.created) == ("Bound", first.volume, ["PersistentVolumeClaim/kept"])


def test_a_pv_left_released_by_a_claim_deleted_with_kubectl_binds_to_a_new_claim_of_its_name(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "again"))
    first = _static(api, "again", namespace)
    core = client.CoreV1Api(api)
    old = core.read_namespaced_persistent_volume_claim("again", namespace)
    core.delete_namespaced_persistent_volume_claim("again", namespace)
    kwait.until(
        core.list_persistent_volume,
        lambda pv: pv.status.phase == "Released",
        what=first.volume,
        **kwait.named(first.volume),
    )
    again = _static(api, "again", namespace)
    assert (again.phase, again.volume) == ("Bound", first.volume)
    assert core.read_persistent_volume(first.volume).spec.claim_ref.uid != old.metadata.uid


def test_provisions_of_one_name_at_once_all_succeed_with_one_bound_claim_on_one_live_pv(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    for name in ("race-0", "race-1", "race-2"):
        cluster_objects.track_pv(specs.static_pv_name(namespace, name))
        barrier = threading.Barrier(4)
        results: list[Any] = []

        def one(name: str = name, barrier: threading.Barrier = barrier, results: list[Any] = results) -> None:
            p = plan.make(api, plan.Request(name, namespace, "1Gi", static=True))
            barrier.wait()
            try:
                results.append(apply.apply(api, p, timeout=60))
            except Exception as e:  # collected and asserted below
                results.append(e)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert all(isinstance(r, apply.Result) and r.phase == "Bound" for r in results), results
        claim = core.read_namespaced_persistent_volume_claim(name, namespace)
        pv = core.read_persistent_volume(claim.spec.volume_name)
        assert pv.metadata.deletion_timestamp is None and pv.status.phase == "Bound"
        assert pv.spec.claim_ref.uid == claim.metadata.uid
        assert sum(1 for r in results if any(c.startswith("PersistentVolume/") for c in r.created)) == 1


def test_an_old_claims_failed_binding_does_not_fail_a_new_claim_of_the_same_name(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    # A static claim with no volume: the PV controller says FailedBinding on it.
    old = core.create_namespaced_persistent_volume_claim(namespace, specs.rwx_claim("x", namespace, "1Gi", ""))
    kwait.until(
        core.list_namespaced_event,
        lambda e: e.reason == "FailedBinding",
        namespace,
        field_selector="involvedObject.name=x",
        what="FailedBinding on the old claim",
    )
    core.delete_namespaced_persistent_volume_claim("x", namespace)
    assert wait.wait_gone(api, namespace, "x", old.metadata.uid, timeout=60)
    cluster_objects.track_pv(specs.static_pv_name(namespace, "x"))
    result = _static(api, "x", namespace)
    assert result.phase == "Bound"


def test_doctor_does_not_blame_a_new_claim_for_an_old_claims_provisioning_failure(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    nfs = cluster_objects.storage_class(objects.nfs_class()).metadata.name
    core = client.CoreV1Api(api)
    old = core.create_namespaced_persistent_volume_claim(namespace, specs.rwx_claim("y", namespace, "1Gi", nfs))
    core.create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": "y."},
            "involvedObject": {
                "kind": "PersistentVolumeClaim",
                "name": "y",
                "namespace": namespace,
                "uid": old.metadata.uid,
            },
            "reason": "ProvisioningFailed",
            "message": "the old claim's failure",
            "type": "Warning",
        },
    )
    core.delete_namespaced_persistent_volume_claim("y", namespace)
    assert wait.wait_gone(api, namespace, "y", old.metadata.uid, timeout=60)
    core.create_namespaced_persistent_volume_claim(namespace, specs.rwx_claim("y", namespace, "1Gi", nfs))
    [d] = doctor.diagnose(api, namespace).pending
    assert d.cause != "provisioning-failed" and "the old claim's failure" not in d.explanation


def test_a_claim_deleted_while_provision_waits_ends_the_wait_at_once_with_that_reason(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    nfs = cluster_objects.storage_class(objects.nfs_class()).metadata.name  # never binds here
    core = client.CoreV1Api(api)
    outcome: list[Any] = []

    def provision() -> None:
        try:
            apply.apply(api, plan.make(api, plan.Request("doomed", namespace, "1Gi", storage_class=nfs)), timeout=90)
        except errors.StorageError as e:
            outcome.append(e)

    t = threading.Thread(target=provision)
    t.start()
    kwait.until(core.list_namespaced_persistent_volume_claim, lambda c: True, namespace, **kwait.named("doomed"))
    core.delete_namespaced_persistent_volume_claim("doomed", namespace)
    t.join(timeout=45)  # far less than the 90 s timeout
    assert not t.is_alive(), "provision still waits for a claim that is gone"
    [e] = outcome
    assert isinstance(e, errors.BindError)
    assert f"claim {namespace}/doomed was deleted while waiting for it to bind" in str(e)
    assert "left in place" not in str(e)


def test_claims_whose_namespace_and_name_join_to_the_same_text_get_different_pvs(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    base = namespace[:50]
    made = [base + "-x", base]
    for ns in made:
        if ns != namespace:
            core.create_namespace({"metadata": {"name": ns, "labels": {"sharedvol.io/test": "true"}}})
    try:
        for ns in made:
            kwait.until(core.list_namespaced_service_account, lambda sa: True, ns, **kwait.named("default"))
        pairs = [(base + "-x", "y"), (base, "x-y"), (base, "x." + "a" * 240), (base, "x." + "a" * 241)]
        volumes = []
        for ns, name in pairs:
            cluster_objects.track_pv(specs.static_pv_name(ns, name))
            volumes.append(_static(api, name, ns).volume)
        assert len(set(volumes)) == len(pairs)
        for (ns, name), volume in zip(pairs, volumes, strict=True):
            ref = core.read_persistent_volume(volume).spec.claim_ref
            assert (ref.namespace, ref.name) == (ns, name)
    finally:
        for ns in made:
            if ns != namespace:
                core.delete_namespace(ns)


def test_a_rerun_with_another_nfs_export_or_host_path_is_a_conflict(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "nfs"))
    cluster_objects.track_pv(specs.static_pv_name(namespace, "hp"))
    apply.apply(api, plan.make(api, plan.Request("nfs", namespace, "1Gi", nfs="10.0.0.5:/exports/a")), timeout=60)
    with pytest.raises(
        errors.ConflictError, match=r"exists on NFS 10.0.0.5:/exports/a, not on NFS 10.0.0.6:/exports/b"
    ):
        apply.apply(api, plan.make(api, plan.Request("nfs", namespace, "1Gi", nfs="10.0.0.6:/exports/b")), timeout=60)
    _static(api, "hp", namespace)
    with pytest.raises(
        errors.ConflictError, match=r"exists on hostPath .*:/var/lib/sharedvol/.*, not on hostPath .*:/data/sv/"
    ):
        _static(api, "hp", namespace, host_path_base="/data/sv")


def test_provision_right_after_release_waits_for_the_old_pv_to_go_and_binds_a_new_live_one(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "again"))
    first = _static(api, "again", namespace)
    old_uid = client.CoreV1Api(api).read_persistent_volume(first.volume).metadata.uid
    release.release(api, "again", namespace)
    again = _static(api, "again", namespace)
    pv = client.CoreV1Api(api).read_persistent_volume(again.volume)
    assert again.phase == "Bound" and pv.metadata.uid != old_uid and pv.metadata.deletion_timestamp is None


def test_a_stale_failed_binding_on_a_claim_its_volume_is_reserved_for_does_not_end_the_wait(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    # Seen after `release --keep-data`: the PV controller, still holding the volume's old claimRef (the old claim's
    # UID) in its cache, posts "already bound to a different claim" on the new claim, then binds it once it sees the
    # volume's updated claimRef. The event is stale when the live volume is reserved for this very claim.
    core = client.CoreV1Api(api)
    pv_name = f"stale-{uuid.uuid4().hex[:8]}"
    claim = specs.rwx_claim("kept", namespace, "1Gi", "")
    claim["spec"]["volumeName"] = pv_name
    made = core.create_namespaced_persistent_volume_claim(namespace, claim)
    core.create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": "kept."},
            "involvedObject": {
                "kind": "PersistentVolumeClaim",
                "namespace": namespace,
                "name": "kept",
                "uid": made.metadata.uid,
            },
            "reason": "FailedBinding",
            "message": f'volume "{pv_name}" already bound to a different claim.',
            "type": "Warning",
            "source": {"component": "persistentvolume-controller"},
        },
    )
    _reserve_pv(cluster_objects, pv_name, namespace, "kept")
    assert wait.wait_bound(api, namespace, "kept", timeout=60, nudge=True)[:2] == ("Bound", pv_name)


def test_a_failed_binding_on_a_claim_whose_volume_is_reserved_for_another_still_ends_the_wait_at_once(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    pv_name = f"taken-{uuid.uuid4().hex[:8]}"
    _reserve_pv(cluster_objects, pv_name, namespace, "someone-else")
    claim = specs.rwx_claim("mine", namespace, "1Gi", "")
    claim["spec"]["volumeName"] = pv_name
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    started = time.monotonic()
    with pytest.raises(errors.BindError, match="will not bind: FailedBinding"):
        wait.wait_bound(api, namespace, "mine", timeout=60, nudge=True)
    # At once: not after the 30 s the wait gives a volume to bind to the claim (it is reserved for another).
    assert time.monotonic() - started < 25


@pytest.mark.parametrize("keep_data", [False, True], ids=["release", "release-keep-data"])
def test_releasing_a_claim_that_names_another_namespaces_volume_leaves_that_volume_and_its_claim_alone(
    api: Any, namespace: str, other_namespace: str, cluster_objects: ClusterObjects, keep_data: bool
) -> None:
    core = client.CoreV1Api(api)
    cluster_objects.track_pv(specs.static_pv_name(namespace, "victim"))
    victim = _static(api, "victim", namespace)
    bound_uid = core.read_persistent_volume(victim.volume).spec.claim_ref.uid
    core.create_namespaced_persistent_volume_claim(  # anyone who can create claims can name any volume
        other_namespace, specs.rwx_claim("hostile", other_namespace, "1Gi", "", volume_name=victim.volume)
    )

    done = release.release(api, "hostile", other_namespace, keep_data=keep_data)

    assert done.volume_action == f"left alone (bound to claim {namespace}/victim of UID {bound_uid}, not this claim)"
    pv = core.read_persistent_volume(victim.volume)
    assert pv.metadata.deletion_timestamp is None and pv.spec.claim_ref.uid == bound_uid
    assert pv.spec.persistent_volume_reclaim_policy == "Retain"
    assert core.read_namespaced_persistent_volume_claim("victim", namespace).status.phase == "Bound"
