"""Every wait of storage/ lists again when its watch is answered 410 Gone, and still sees the end it waits for.

A watch from an expired resourceVersion gets 410 Gone: as the HTTP status, or as a 200 stream holding one ERROR
event with code 410. Both are forced here by a proxy (tests/faultproxy.py) between the code under test and the
real API server. Each test lets the object reach its end only once the proxy saw the wait list (or read) again
and watch again, so passing proves the relist, and the recorded requests show it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client, config

from rig import cluster as cp
from rig import kwait
from storage import apply, kube, plan, podwait, release, specs, wait
from tests.controlplane import prepare_kubelet
from tests.faultproxy import HOW, FaultProxy
from tests.objects import ClusterObjects

RELISTED = ["list", "watch 410", "list", "watch"]
HOLD = "sharedvol.io/test-hold"


@pytest.fixture
def proxy(cluster: cp.ClusterHandle) -> Iterator[FaultProxy]:
    """The fault proxy in front of the cluster's API server, forwarding with the admin's credentials."""
    with FaultProxy(config.new_client_from_config(str(cluster.kubeconfig))) as p:
        yield p


def _in_background(proxy: FaultProxy, fn: Callable[[], Any]) -> tuple[ThreadPoolExecutor, Future[Any]]:
    pool = ThreadPoolExecutor(1)
    future = pool.submit(fn)
    future.add_done_callback(lambda _: proxy.wake())
    return pool, future


def _relisted(proxy: FaultProxy, resource: str, future: Future[Any], run: list[str] = RELISTED) -> None:
    """Wait until ``resource``'s requests hold ``run``; fail with the wait's own error when it ended first."""
    if not proxy.wait_for_run(resource, run, timeout=120, give_up=future.done):
        error = future.exception() if future.done() else None
        said = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}" if error else "still waiting"
        pytest.fail(f"no {run} in the {resource} requests {proxy.verbs(resource)}; the wait: {said}")


@pytest.mark.parametrize("how", HOW)
def test_wait_bound_lists_again_after_its_watch_is_answered_410_and_still_sees_the_claim_bound(
    api: Any, proxy: FaultProxy, namespace: str, cluster_objects: ClusterObjects, how: str
) -> None:
    core = client.CoreV1Api(api)
    pv_name = f"relist-{uuid.uuid4().hex[:8]}"
    # Pre-bound to a PV that does not exist yet: it stays Pending until the test makes the PV.
    core.create_namespaced_persistent_volume_claim(
        namespace, specs.rwx_claim("data", namespace, "1Gi", "", volume_name=pv_name)
    )
    proxy.fail_watches("persistentvolumeclaims", how)

    pool, future = _in_background(proxy, lambda: wait.wait_bound(proxy.client(), namespace, "data", timeout=120))
    with pool:
        _relisted(proxy, "persistentvolumeclaims", future)
        cluster_objects.pv(_volume(pv_name, namespace, "data"))
        kwait.until(  # the PV controller has seen the volume ...
            core.list_persistent_volume, lambda pv: pv.status.phase in ("Available", "Bound"), **kwait.named(pv_name)
        )
        core.patch_namespaced_persistent_volume_claim(  # ... and binds the claim when it syncs it, now
            "data", namespace, {"metadata": {"annotations": {"test/sync": "1"}}}
        )
        assert future.result(timeout=120) == ("Bound", pv_name, "")


@pytest.mark.parametrize("how", HOW)
def test_release_keep_data_lists_again_after_its_watch_is_answered_410_and_still_sees_the_claim_gone(
    api: Any, proxy: FaultProxy, namespace: str, cluster_objects: ClusterObjects, how: str
) -> None:
    core = client.CoreV1Api(api)
    cluster_objects.track_pv(specs.static_pv_name(namespace, "held"))
    made = apply.apply(api, plan.make(api, plan.Request("held", namespace, "1Gi", static=True)), timeout=60)
    assert made.phase == "Bound"
    held = core.read_namespaced_persistent_volume_claim("held", namespace)
    core.patch_namespaced_persistent_volume_claim(  # deleting it leaves it Terminating until the test lets go
        "held", namespace, {"metadata": {"finalizers": [*(held.metadata.finalizers or []), HOLD]}}
    )
    proxy.fail_watches("persistentvolumeclaims", how)

    pool, future = _in_background(proxy, lambda: release.release(proxy.client(), "held", namespace, keep_data=True))
    with pool:
        try:
            _relisted(proxy, "persistentvolumeclaims", future)
        finally:
            _let_go(
                core.read_namespaced_persistent_volume_claim,
                core.patch_namespaced_persistent_volume_claim,
                "held",
                namespace,
            )
        released = future.result(timeout=120)
    assert released.volume_action == "kept"  # not "kept (the claim is still in use ...)": the wait saw it gone
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_persistent_volume_claim("held", namespace)
    assert gone.value.status == 404


@pytest.mark.parametrize("how", HOW)
def test_the_pod_wait_reads_the_pod_again_after_its_watch_is_answered_410_and_still_sees_it_succeed(
    api: Any, cluster: cp.ClusterHandle, proxy: FaultProxy, namespace: str, how: str
) -> None:
    core = client.CoreV1Api(api)
    pod = core.create_namespaced_pod(namespace, _pod("short", cluster.node_names[0]))
    running = kwait.until(
        core.list_namespaced_pod, lambda p: p.status.phase == "Running", namespace, field_selector="metadata.name=short"
    )
    proxy.fail_watches("pods", how)

    through = client.CoreV1Api(proxy.client())
    ended = lambda: podwait.wait_ended(through, namespace, "short", pod.metadata.uid, timeout=120)  # noqa: E731
    pool, future = _in_background(proxy, ended)
    with pool:
        _relisted(proxy, "pods", future, ["get", "watch 410", "get", "watch"])
        prepare_kubelet.succeed(core, running)  # the kubelet's part: the container exited 0
        assert future.result(timeout=120).outcome == "Succeeded"


@pytest.mark.parametrize("how", HOW)
def test_watch_volume_lists_again_after_its_watch_is_answered_410_and_still_sees_the_volume_available(
    api: Any, proxy: FaultProxy, cluster_objects: ClusterObjects, how: str
) -> None:
    pv_name = f"relist-{uuid.uuid4().hex[:8]}"
    proxy.fail_watches("persistentvolumes", how)
    through = client.CoreV1Api(proxy.client())

    def available() -> bool:
        return kube.watch_volume(through, pv_name, lambda pv: pv.status.phase == "Available", timeout=120)

    pool, future = _in_background(proxy, available)
    with pool:
        _relisted(proxy, "persistentvolumes", future)
        cluster_objects.pv(_volume(pv_name, "", ""))
        assert future.result(timeout=120) is True


@pytest.mark.parametrize("how", HOW)
def test_apply_waits_for_a_pv_being_deleted_lists_again_after_410_and_then_makes_it_anew(
    api: Any, proxy: FaultProxy, namespace: str, cluster_objects: ClusterObjects, how: str
) -> None:
    core = client.CoreV1Api(api)
    p = plan.make(api, plan.Request("again", namespace, "1Gi", static=True))
    pv_name = specs.static_pv_name(namespace, "again")
    old = _volume(pv_name, "", "")
    old["metadata"]["finalizers"] = [HOLD]  # deleting it leaves it Terminating until the test lets go
    old_uid = cluster_objects.pv(old).metadata.uid
    core.delete_persistent_volume(pv_name)
    proxy.fail_watches("persistentvolumes", how)

    pool, future = _in_background(proxy, lambda: apply.apply(proxy.client(), p, timeout=60))
    with pool:
        try:
            _relisted(proxy, "persistentvolumes", future)
        finally:
            _let_go(core.read_persistent_volume, core.patch_persistent_volume, pv_name)
        made = future.result(timeout=120)
    assert made.phase == "Bound"
    assert f"PersistentVolume/{pv_name}" in made.created
    assert core.read_persistent_volume(pv_name).metadata.uid != old_uid


def _volume(name: str, namespace: str, claim: str) -> dict[str, Any]:
    """A 1Gi RWX hostPath PV of no class, reserved for claim ``namespace/claim`` when one is named."""
    spec: dict[str, Any] = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "",
        "persistentVolumeReclaimPolicy": "Retain",
        "hostPath": {"path": f"/tmp/{name}"},
    }
    if claim:
        spec["claimRef"] = {"namespace": namespace, "name": claim}
    return {"metadata": {"name": name}, "spec": spec}


def _pod(name: str, node: str) -> dict[str, Any]:
    container = {"name": "main", "image": "sharedvol:0.1.0", "command": ["true"]}
    return {"metadata": {"name": name}, "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [container]}}


def _let_go(read: Callable[..., Any], patch: Callable[..., Any], *names: str) -> None:
    """Remove the test's finalizer from the object ``read(*names)`` (a JSON patch that tests its position first).

    A controller may change the list between the read and the patch (the patch's test fails: 422): read again.
    """
    for _attempt in range(5):
        finalizers = read(*names).metadata.finalizers or []
        if HOLD not in finalizers:
            return
        path = f"/metadata/finalizers/{finalizers.index(HOLD)}"
        try:
            patch(*names, [{"op": "test", "path": path, "value": HOLD}, {"op": "remove", "path": path}])
            return
        except client.ApiException as e:
            if e.status != 422:
                raise
    raise AssertionError(f"could not remove finalizer {HOLD} from {names}")
