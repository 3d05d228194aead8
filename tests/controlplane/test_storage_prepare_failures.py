"""When the pod that hands a static volume to the steps' user cannot do it: one line naming the pod and the fix,
exit code 2, the pod deleted, the claim left Bound for a rerun; bad flags refused before anything is made."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from rig.cluster import ClusterHandle
from storage import apply, errors, plan, prepare, specs
from tests.controlplane import prepare_kubelet, rbac
from tests.controlplane.serving import SharedvolCli
from tests.objects import ClusterObjects


def _one_line(out: Any) -> str:
    """The one error line (the last; lines before it are progress, none a warning, an error or a traceback)."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("sharedvol provision: error: "), out.stderr
    assert not any(w in line for line in lines[:-1] for w in ("error", "WARNING", "Traceback")), out.stderr
    return str(lines[-1])


def _pods(api: Any, namespace: str) -> list[str]:
    return [p.metadata.name for p in client.CoreV1Api(api).list_namespaced_pod(namespace).items]


def _bound(api: Any, namespace: str, name: str) -> bool:
    return client.CoreV1Api(api).read_namespaced_persistent_volume_claim(name, namespace).status.phase == "Bound"


def test_an_image_the_node_cannot_pull_fails_fast_with_one_line_naming_the_pod_and_the_fixes(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects, cluster: ClusterHandle
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "shared"))
    with prepare_kubelet.playing_kubelet(api, namespace, prepare_kubelet.pull_failure_event) as ran:
        out = sharedvol(
            "provision", "shared", "-n", namespace, "--static", "--prepare-image", "nope:1", "--timeout", "600"
        )

    line = _one_line(out)
    assert len(ran) == 1
    assert (
        f"pod {namespace}/sharedvol-prepare-shared on node {cluster.node_names[0]} cannot start: image nope:1 "
        'cannot be pulled (Failed: Failed to pull image "nope:1": rpc error:' in line
    )
    assert "load nope:1 into that node's runtime" in line and "--prepare-image" in line and "--no-prepare" in line
    assert f"claim {namespace}/shared stays Bound to sharedvol.{namespace}.shared: run this again once fixed" in line
    assert _pods(api, namespace) == []
    assert _bound(api, namespace, "shared")


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_a_container_waiting_in_a_pull_failure_fails_fast(
    api: Any, namespace: str, cluster_objects: ClusterObjects, reason: str
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "backoff"))
    p = plan.make(api, plan.Request("backoff", namespace, "1Gi", static=True))
    settings = prepare.Settings(image="private.example/sharedvol:9", timeout_s=600)
    with (
        prepare_kubelet.playing_kubelet(api, namespace, prepare_kubelet.waiting(reason)),
        pytest.raises(errors.PrepareError) as e,
    ):
        apply.apply(api, p, timeout=60, prepare=settings)

    assert f"cannot start: image private.example/sharedvol:9 cannot be pulled ({reason}: " in str(e.value)
    assert _pods(api, namespace) == []


def test_a_pod_whose_chown_fails_is_one_line_with_the_exit_code_and_the_log_tail(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "squashed"))
    p = plan.make(api, plan.Request("squashed", namespace, "1Gi", static=True))
    log_tail = "chown: changing ownership of '/mnt/shared':\nOperation not permitted\n"
    act = prepare_kubelet.fail(1, log_tail)
    with prepare_kubelet.playing_kubelet(api, namespace, act), pytest.raises(errors.PrepareError) as e:
        apply.apply(api, p, timeout=60, prepare=prepare.Settings())

    message = str(e.value)
    assert "\n" not in message
    assert (
        f"failed to hand PersistentVolume sharedvol.{namespace}.squashed to 1000:1000 (exit code 1 (Error): "
        "chown: changing ownership of '/mnt/shared': Operation not permitted)" in message
    )
    assert "--no-prepare" in message
    assert _pods(api, namespace) == []
    pv = client.CoreV1Api(api).read_persistent_volume(specs.static_pv_name(namespace, "squashed"))
    assert "sharedvol.io/prepared" not in (pv.metadata.annotations or {})


def test_a_pod_that_never_ends_fails_at_the_deadline_and_is_deleted(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "stuck"))
    p = plan.make(api, plan.Request("stuck", namespace, "1Gi", static=True))
    with pytest.raises(errors.PrepareError) as e:  # kwok keeps it Running: nobody runs the chown
        apply.apply(api, p, timeout=60, prepare=prepare.Settings(timeout_s=10))

    assert f"pod {namespace}/sharedvol-prepare-stuck on node " in str(e.value)
    assert "did not end in 10 s (phase Running: " in str(e.value)
    assert _pods(api, namespace) == []
    assert _bound(api, namespace, "stuck")


def test_without_rights_on_pods_the_line_names_the_rights_and_no_prepare_and_the_claim_stays_bound(
    api: Any, sharedvol: SharedvolCli, cluster: ClusterHandle, namespace: str, cluster_objects: ClusterObjects
) -> None:
    name = f"no-pods-{namespace}"
    rules = [
        {"apiGroups": [""], "resources": ["namespaces", "nodes", "events"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": [""],
            "resources": ["persistentvolumeclaims", "persistentvolumes"],
            "verbs": ["get", "list", "watch", "create", "delete", "patch"],
        },
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list"]},
    ]
    cluster_objects.track_pv(specs.static_pv_name(namespace, "shared"))
    with rbac.acting_as(cluster, api, namespace, name, rules) as kubeconfig:
        out = sharedvol("provision", "shared", "-n", namespace, "--static", kubeconfig=kubeconfig)

    line = _one_line(out)
    assert f"not allowed to create pod {namespace}/sharedvol-prepare-shared" in line
    assert f"needs the rights to create, get, watch and delete pods (and list events) in namespace {namespace}" in line
    assert "docs/storage.md" in line and "--no-prepare" in line
    assert _bound(api, namespace, "shared")


def test_a_namespace_enforcing_restricted_pod_security_is_one_line_naming_baseline_and_no_prepare(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    client.CoreV1Api(api).patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    cluster_objects.track_pv(specs.static_pv_name(namespace, "shared"))

    line = _one_line(sharedvol("provision", "shared", "-n", namespace, "--static"))

    assert "violates PodSecurity" in line
    assert f"namespace {namespace} enforces the restricted Pod Security level" in line
    assert f"kubectl label ns {namespace} pod-security.kubernetes.io/enforce=baseline --overwrite" in line
    assert "--no-prepare" in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--owner", "steps"], "--owner 'steps' is not UID:GID in numbers: e.g. --owner 1000:1000"),
        (["--owner", "1000"], "--owner '1000' is not UID:GID in numbers"),
        (["--owner", "1000:99999999999"], "--owner '1000:99999999999' is not UID:GID in numbers"),
        (["--owner=-1:5"], "--owner '-1:5' is not UID:GID in numbers"),
        (["--prepare-image", ""], "--prepare-image '' is not an image reference"),
        (["--prepare-image", "a b"], "--prepare-image 'a b' is not an image reference"),
    ],
)
def test_a_bad_owner_or_prepare_image_is_refused_before_anything_is_made(
    api: Any, sharedvol: SharedvolCli, namespace: str, flags: list[str], message: str
) -> None:
    line = _one_line(sharedvol("provision", "x", "-n", namespace, "--static", *flags))

    assert message in line
    assert client.CoreV1Api(api).list_namespaced_persistent_volume_claim(namespace).items == []
    with pytest.raises(client.ApiException) as e:
        client.CoreV1Api(api).read_persistent_volume(specs.static_pv_name(namespace, "x"))
    assert e.value.status == 404
