"""`sharedvol serve` against hostile claims, classes and volumes: each gets an Event, none stops the service."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
from kubernetes import client

from rig import cluster as cp
from rig import kwait
from rig.paths import REPO
from storage import ownership
from storage.provisioner import handlers, recheck, settings
from tests import objects
from tests.controlplane.serving import PROVISIONER, Service, fallback_class
from tests.objects import ClusterObjects

STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"


def _create_claim(api: Any, namespace: str, name: str, storage_class: str, **kw: Any) -> Any:
    """Create ``objects.claim(name, storage_class, **kw)`` in ``namespace``; the claim as the API returns it."""
    return client.CoreV1Api(api).create_namespaced_persistent_volume_claim(
        namespace, objects.claim(name, storage_class, **kw)
    )


def _bound(api: Any, namespace: str, name: str) -> Any:
    return kwait.claim_phase(client.CoreV1Api(api), namespace, name, timeout=90)


def _failed(api: Any, namespace: str, name: str) -> Any:
    """The service's own ProvisioningFailed Event about claim ``name`` (the PV controller posts some too)."""
    return kwait.until(
        client.CoreV1Api(api).list_namespaced_event,
        lambda e: e.reason == "ProvisioningFailed" and e.source is not None and e.source.component == PROVISIONER,
        namespace,
        timeout=90,
        what=f"sharedvol serve's ProvisioningFailed event about {name}",
        field_selector=f"involvedObject.name={name}",
    )


def _alive(svc: Service) -> None:
    assert svc.proc is not None and svc.proc.poll() is None, svc.output()
    assert "Traceback" not in svc.output()


@pytest.fixture
def long_namespace(api: Any) -> Iterator[str]:
    """A namespace with a 63-character name (the longest legal), deleted after the test."""
    name = f"long-{uuid.uuid4().hex[:6]}-".ljust(63, "n")
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name, "labels": {"sharedvol.io/test": "true"}}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


def test_a_claim_without_a_class_that_names_our_provisioner_gets_an_event_at_start_and_while_running(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    core = client.CoreV1Api(api)
    forged = objects.claim("forged", "", annotations={STORAGE_PROVISIONER: PROVISIONER})
    core.create_namespaced_persistent_volume_claim(namespace, forged)  # there before the service starts
    svc = serve()
    assert "spec.storageClassName: is empty" in _failed(api, namespace, "forged").message
    forged["metadata"]["name"] = "forged-later"
    core.create_namespaced_persistent_volume_claim(namespace, forged)  # and one while it runs
    _failed(api, namespace, "forged-later")
    sc = fallback_class(cluster_objects)
    _create_claim(api, namespace, "good", sc)
    cluster_objects.track_pv(_bound(api, namespace, "good").spec.volume_name)
    _alive(svc)


def test_a_253_character_claim_in_a_63_character_namespace_binds_and_survives_a_restart(
    api: Any, long_namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    sc = fallback_class(cluster_objects)
    name = ("c" * 120 + "." + "d" * 131)[:253]
    first = serve()
    made = _create_claim(api, long_namespace, name, sc)
    claim = _bound(api, long_namespace, name)
    cluster_objects.track_pv(claim.spec.volume_name)
    path = client.CoreV1Api(api).read_persistent_volume(claim.spec.volume_name).spec.host_path.path
    leaf = Path(path).name
    assert len(leaf) <= 127 and leaf.endswith(made.metadata.uid[:8]) and first.node_dir(path).is_dir()
    # the claim may bind before the Event is posted (the PV controller binds as soon as the PV exists): watch for it
    kwait.event(client.CoreV1Api(api), long_namespace, "ProvisioningSucceeded", name)
    first.kill()
    second = serve()
    _create_claim(api, long_namespace, "after-restart", sc)
    cluster_objects.track_pv(_bound(api, long_namespace, "after-restart").spec.volume_name)
    _alive(second)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"basePath": "/data/sv\x00x"}, "parameters.basePath"),
        ({"basePath": "/data/sv\nx"}, "parameters.basePath"),
        ({"fsType": "xfs"}, "parameters.fsType"),
    ],
    ids=["nul-in-base-path", "newline-in-base-path", "unknown-parameter"],
)
def test_a_malformed_class_gets_an_event_naming_the_class_and_field_and_others_still_bind(
    api: Any,
    namespace: str,
    cluster_objects: ClusterObjects,
    serve: Callable[..., Service],
    params: dict[str, str],
    field: str,
) -> None:
    svc = serve()
    bad = fallback_class(cluster_objects, **params)
    _create_claim(api, namespace, "bad", bad)
    assert f"StorageClass {bad}: {field}:" in _failed(api, namespace, "bad").message
    good = fallback_class(cluster_objects)
    _create_claim(api, namespace, "good", good)
    cluster_objects.track_pv(_bound(api, namespace, "good").spec.volume_name)
    _alive(svc)


def test_claim_and_class_features_the_service_does_not_implement_are_refused_by_name(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    serve()
    sc = fallback_class(cluster_objects)
    _create_claim(api, namespace, "block", sc, spec={"volumeMode": "Block"})
    assert "spec.volumeMode: Block is not supported" in _failed(api, namespace, "block").message
    limited = {"resources": {"requests": {"storage": "1Gi"}, "limits": {"storage": "1Gi"}}}
    _create_claim(api, namespace, "limited", sc, spec=limited)
    assert "spec.resources.limits" in _failed(api, namespace, "limited").message
    name = f"opts-{uuid.uuid4().hex[:6]}"
    cluster_objects.storage_class({"metadata": {"name": name}, "provisioner": PROVISIONER, "mountOptions": ["noatime"]})
    _create_claim(api, namespace, "opts", name)
    assert f"StorageClass {name}: mountOptions" in _failed(api, namespace, "opts").message
    # a class that does not exist, with the annotation written by hand (the PV controller writes it only for a
    # class it knows): refused naming the class
    _create_claim(api, namespace, "ghost", objects.unique("ghost"), annotations={STORAGE_PROVISIONER: PROVISIONER})
    assert "does not exist" in _failed(api, namespace, "ghost").message


def test_a_volume_directory_replaced_by_a_symlink_is_reclaimed_as_a_link_and_the_other_claims_data_stays(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    core = client.CoreV1Api(api)
    svc = serve()
    sc = fallback_class(cluster_objects)
    paths = {}
    for name in ("victim", "attacker"):
        _create_claim(api, namespace, name, sc)
        volume = _bound(api, namespace, name).spec.volume_name
        cluster_objects.track_pv(volume)
        paths[name] = (volume, svc.node_dir(core.read_persistent_volume(volume).spec.host_path.path))
    (paths["victim"][1] / "weights").write_text("victim's")
    attacker = paths["attacker"][1]
    attacker.rmdir()
    attacker.symlink_to(paths["victim"][1])
    core.delete_namespaced_persistent_volume_claim("attacker", namespace)
    kwait.gone(core.list_persistent_volume, paths["attacker"][0], timeout=90)
    assert (paths["victim"][1] / "weights").read_text() == "victim's"
    assert not attacker.is_symlink()
    _alive(svc)


def test_a_directory_left_by_a_service_killed_before_its_pv_is_removed_once_the_claim_is_gone(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    core = client.CoreV1Api(api)
    sc = fallback_class(cluster_objects)
    first = serve(env={"SHAREDVOL_CRASH_AT": "directory"})
    made = _create_claim(api, namespace, "orphan", sc)
    assert first.proc is not None and first.proc.wait(timeout=120) == 137, first.output()
    base = first.root / "var" / "lib" / "sharedvol"
    left = [p for p in base.iterdir() if p.name.endswith(made.metadata.uid[:8])]
    assert len(left) == 1 and left[0].is_dir()
    core.delete_namespaced_persistent_volume_claim("orphan", namespace)
    second = serve()
    ledger = base / ".sharedvol"
    # the sweep removes the directory first and its pending record after it: wait for both
    cp.wait_for(
        lambda: not left[0].exists() and not list(ledger.iterdir()),
        f"removal of {left[0]} and its record",
        60,
        alive=lambda: _alive(second),
        where=f"the service's log: {second.log}",
    )
    _alive(second)


def test_a_hand_made_pv_that_copies_a_service_pv_is_never_reclaimed(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    core = client.CoreV1Api(api)
    svc = serve()
    sc = fallback_class(cluster_objects)
    _create_claim(api, namespace, "original", sc)
    bound = _bound(api, namespace, "original")
    kwait.event(core, namespace, "ProvisioningSucceeded", "original")  # posted after the PV is marked: copy it then
    original = core.read_persistent_volume(bound.spec.volume_name)
    cluster_objects.track_pv(original.metadata.name)
    data = svc.node_dir(original.spec.host_path.path)
    (data / "keep").write_text("precious")
    # An admin copies it, name aside, all labels and annotations (its volume-uid too), path and claim: Released.
    copy_uid = str(uuid.uuid4())
    copy = f"pvc-{copy_uid}"
    body = {
        "metadata": {
            "name": copy,
            "labels": dict(original.metadata.labels),
            "annotations": dict(original.metadata.annotations),
        },
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": sc,
            "hostPath": {"path": original.spec.host_path.path},
            "claimRef": {"namespace": namespace, "name": "gone", "uid": copy_uid},
        },
    }
    cluster_objects.pv(body)
    refused = kwait.event(core, "default", "ReclaimRefused", copy, timeout=90)
    assert "made or copied by hand" in refused.message
    assert core.read_persistent_volume(copy).metadata.deletion_timestamp is None
    assert (data / "keep").read_text() == "precious"
    assert original.metadata.annotations[ownership.VOLUME_UID] == original.metadata.uid


def test_serve_with_a_token_the_api_server_refuses_says_so_in_one_line(
    cluster: cp.ClusterHandle, tmp_path: Path
) -> None:
    ca = cluster.workdir / "certs" / "apiserver.crt"
    bad = cp.write_kubeconfig(
        tmp_path / "bad.kubeconfig", cluster.server, "not-a-token", ca if ca.exists() else None, "bad"
    )
    out = subprocess.run(
        [sys.executable, "-m", "pipelines", "serve", "--kubeconfig", str(bad), "--health-port", "0", "--text-logs"],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stdout + out.stderr
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "refused the service's credentials (401 Unauthorized)" in lines[0], lines


def test_serve_whose_token_is_revoked_while_it_runs_stops_in_one_line(
    api: Any, cluster: cp.ClusterHandle, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    from kubernetes.client import RbacAuthorizationV1Api

    account = f"serve-{uuid.uuid4().hex[:6]}"
    kubeconfig = cluster.service_account_kubeconfig(namespace, account)
    binding = {
        "metadata": {"name": account, "labels": {"sharedvol.io/test": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    rbac = RbacAuthorizationV1Api(api)
    rbac.create_cluster_role_binding(binding)
    try:
        sc = fallback_class(cluster_objects)
        svc = serve(kubeconfig=kubeconfig)
        _create_claim(api, namespace, "before", sc)
        cluster_objects.track_pv(_bound(api, namespace, "before").spec.volume_name)  # the token works

        client.CoreV1Api(api).delete_namespaced_service_account(account, namespace)  # its tokens die with it
        assert svc.proc is not None
        code = svc.proc.wait(timeout=120)  # the next re-check (1 s here) is refused
    finally:
        rbac.delete_cluster_role_binding(account)

    log = svc.output()
    assert code != 0 and "Traceback" not in log, log
    last = log.strip().splitlines()[-1]
    assert "refused the service's credentials (401 Unauthorized) while it ran" in last, log
    assert "give it a valid token" in last


def test_an_unusable_ledger_is_named_on_the_claim_and_the_claim_binds_once_it_is_fixed(
    api: Any, namespace: str, cluster_objects: ClusterObjects, serve: Callable[..., Service]
) -> None:
    # What a run as another user, or a planted file, leaves: the service cannot keep its pending records. Before the
    # fix the orphan sweep raised out of the re-check, which then never ran again: the claim stayed Pending for good.
    sc = fallback_class(cluster_objects)
    svc = serve()
    ledger = svc.node_dir("/var/lib/sharedvol") / ".sharedvol"
    ledger.write_text("not a directory")
    _create_claim(api, namespace, "blocked", sc)
    message = _failed(api, namespace, "blocked").message
    assert "cannot use its ledger /var/lib/sharedvol/.sharedvol (a file of uid" in message
    assert "chown -h" in message
    ledger.unlink()
    cluster_objects.track_pv(_bound(api, namespace, "blocked").spec.volume_name)  # the next re-check
    _alive(svc)


def test_a_failed_claim_updated_again_and_again_is_tried_at_its_backoffs_pace_not_at_each_update(
    api: Any, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    forged = objects.claim("flood", "", annotations={STORAGE_PROVISIONER: PROVISIONER})  # fails: no class
    body = core.create_namespaced_persistent_volume_claim(namespace, forged).to_dict()
    serving = settings.Settings(kubeconfig="unused", recheck_s=60.0)
    memo = kopf.Memo(core=core, settings=serving, recheck=recheck.Recheck(serving))
    kopf_body = api.sanitize_for_serialization(core.read_namespaced_persistent_volume_claim("flood", namespace))

    for _ in range(30):  # what kopf hands the handler for each of 30 updates of the claim by its owner
        handlers.on_claim(body=kopf_body, type="MODIFIED", memo=memo)

    failed = [
        e
        for e in core.list_namespaced_event(namespace).items
        if e.reason == "ProvisioningFailed" and e.involved_object.name == "flood"
    ]
    assert len(failed) == 1 and memo.recheck.failures[body["metadata"]["uid"]][0] == 1
