"""A static hostPath volume is handed to the steps' user (uid 1000) by one short root pod that can only chown.

The control plane's nodes are kwok's: the test plays the kubelet's part (tests/controlplane/prepare_kubelet.py),
so what is checked here is what the API server sees: the pod's exact spec, where it is scheduled, that it is
waited for and deleted, the stamp on the PV that makes a rerun cheap, and what happens around it.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from rig import kwait
from rig.cluster import ClusterHandle
from storage import apply, plan, prepare, specs, wait
from tests import objects
from tests.controlplane import prepare_kubelet
from tests.controlplane.serving import SharedvolCli
from tests.objects import ClusterObjects

CONTAINER = {
    "name": "prepare",
    "image": "sharedvol:0.1.0",
    "imagePullPolicy": "IfNotPresent",
    "command": [
        "/bin/sh",
        "-c",
        'chown "$1" "$3" && chmod "$2" "$3"',
        "sharedvol-prepare",
        "1000:1000",
        "0775",
        "/mnt/shared",
    ],
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
    },
    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    "terminationMessagePolicy": "FallbackToLogsOnError",
    "volumeMounts": [{"name": "volume", "mountPath": "/mnt/shared"}],
}


DEFAULT = prepare.Settings()


def _subset(have: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    return {k: have.get(k) for k in want}


def _pods(api: Any, namespace: str) -> list[str]:
    return [p.metadata.name for p in client.CoreV1Api(api).list_namespaced_pod(namespace).items]


def _static(api: Any, namespace: str, name: str, settings: prepare.Settings | None = DEFAULT) -> apply.Result:
    p = plan.make(api, plan.Request(name, namespace, "1Gi", static=True))
    return apply.apply(api, p, timeout=60, prepare=settings)


def _running(core: Any, namespace: str, name: str) -> Any:
    return kwait.until(core.list_namespaced_pod, lambda p: p.status.phase == "Running", namespace, **kwait.named(name))


def test_provision_static_hands_the_volume_root_to_uid_1000_by_one_root_pod_that_can_only_chown_then_deletes_it(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects, cluster: ClusterHandle
) -> None:
    pv_name = specs.static_pv_name(namespace, "shared")
    cluster_objects.track_pv(pv_name)
    with prepare_kubelet.playing_kubelet(api, namespace) as ran:
        out = sharedvol("provision", "shared", "-n", namespace, "--static", "--node", cluster.node_names[1])

    assert out.returncode == 0, out.stderr
    [pod] = ran
    body = api.sanitize_for_serialization(pod)
    spec = body["spec"]
    assert body["metadata"]["name"] == "sharedvol-prepare-shared"
    assert body["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "sharedvol",
        "app.kubernetes.io/component": "prepare",
    }
    assert _subset(spec["containers"][0], CONTAINER) == CONTAINER
    assert len(spec["containers"]) == 1 and "initContainers" not in spec
    assert spec["securityContext"] == {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False}
    assert spec["volumes"] == [{"name": "volume", "persistentVolumeClaim": {"claimName": "shared"}}]
    want = {"restartPolicy": "Never", "activeDeadlineSeconds": 120, "automountServiceAccountToken": False}
    assert _subset(spec, want) == want
    # no nodeName of its own: the scheduler put it where the PV's node affinity says the directory is
    assert spec["nodeName"] == cluster.node_names[1]
    assert "then run pod sharedvol-prepare-shared (sharedvol:0.1.0) to hand the volume's root to 1000:1000" in (
        out.stdout
    )
    assert "volume root: handed to 1000:1000, mode 0775, by pod sharedvol-prepare-shared in " in out.stdout
    pv = client.CoreV1Api(api).read_persistent_volume(pv_name)
    assert pv.metadata.annotations["sharedvol.io/prepared"] == "1000:1000 0775"
    assert _pods(api, namespace) == []


def test_a_rerun_over_a_handed_volume_runs_no_pod_and_another_owner_or_a_removed_stamp_runs_one_again(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "again"))
    with prepare_kubelet.playing_kubelet(api, namespace) as ran:
        first = _static(api, namespace, "again")
        second = _static(api, namespace, "again", prepare.Settings(owner="001000:01000"))  # the same owner
        assert len(ran) == 1
        third = _static(api, namespace, "again", prepare.Settings(owner="2000:3000"))
        client.CoreV1Api(api).patch_persistent_volume(
            specs.static_pv_name(namespace, "again"), {"metadata": {"annotations": {"sharedvol.io/prepared": None}}}
        )  # kubectl annotate pv PV sharedvol.io/prepared-
        fourth = _static(api, namespace, "again", prepare.Settings(owner="2000:3000"))

    assert first.prepared is not None and first.prepared.ran
    assert second.prepared == prepare.Prepared("sharedvol-prepare-again", "1000:1000 0775", ran=False)
    assert second.prepared.describe() == "volume root: owned by 1000:1000, mode 0775 (done before; no pod ran)"
    assert third.prepared is not None and third.prepared.ran and third.prepared.stamp == "2000:3000 0775"
    assert fourth.prepared is not None and fourth.prepared.ran
    assert [p.spec.containers[0].command[4] for p in ran] == ["1000:1000", "2000:3000", "2000:3000"]
    assert _pods(api, namespace) == []


def test_no_prepare_runs_no_pod_and_nfs_and_dynamic_volumes_get_none_either(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    cluster_objects.track_pv(specs.static_pv_name(namespace, "mine"))
    cluster_objects.track_pv(specs.static_pv_name(namespace, "onnfs"))
    nfs_class = f"nfs-{namespace}"
    cluster_objects.storage_class(objects.nfs_class(nfs_class))
    # a volume of that class, as its provisioner would have made it: the dynamic claim binds to it
    made = specs.static_pv(
        specs.StaticVolume(f"pv-{namespace}", namespace, "dyn", "1Gi", nfs_class, nfs_server="10.0.0.9", nfs_path="/d")
    )
    del made["spec"]["claimRef"]
    cluster_objects.pv(made)
    with prepare_kubelet.playing_kubelet(api, namespace) as ran:
        out = sharedvol("provision", "mine", "-n", namespace, "--static", "--no-prepare")
        nfs = sharedvol("provision", "onnfs", "-n", namespace, "--nfs", "10.0.0.5:/exports/a")
        dyn = sharedvol("provision", "dyn", "-n", namespace, "--class", nfs_class, "--size", "1Gi")

    printed = out.stdout + nfs.stdout + dyn.stdout
    assert out.returncode == nfs.returncode == dyn.returncode == 0, out.stderr + nfs.stderr + dyn.stderr
    assert f"claim {namespace}/dyn is Bound to PersistentVolume pv-{namespace}" in dyn.stdout
    assert ran == []
    assert "volume root" not in printed and "then run pod" not in printed
    pv = client.CoreV1Api(api).read_persistent_volume(specs.static_pv_name(namespace, "mine"))
    assert "sharedvol.io/prepared" not in (pv.metadata.annotations or {})


def test_a_leftover_pod_of_a_killed_call_is_replaced_and_a_running_one_of_a_concurrent_call_is_waited_for(
    api: Any, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    cluster_objects.track_pv(specs.static_pv_name(namespace, "left"))
    cluster_objects.track_pv(specs.static_pv_name(namespace, "both"))
    _static(api, namespace, "left", None)  # a first call made the claim and its pod, then was killed
    stale = core.create_namespaced_pod(namespace, prepare.pod(namespace, "left", prepare.Settings()))
    _running(core, namespace, stale.metadata.name)
    core.patch_namespaced_pod_status(stale.metadata.name, namespace, prepare_kubelet.finished_status(stale, 137))
    results: list[apply.Result] = []

    with prepare_kubelet.playing_kubelet(api, namespace) as ran:
        left = _static(api, namespace, "left")
        threads = [threading.Thread(target=lambda: results.append(_static(api, namespace, "both"))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)

    assert left.prepared is not None and left.prepared.ran
    assert stale.metadata.uid not in [p.metadata.uid for p in ran]
    assert len(results) == 2 and all(r.prepared is not None and r.phase == "Bound" for r in results)
    pv = core.read_persistent_volume(specs.static_pv_name(namespace, "both"))
    assert pv.metadata.annotations["sharedvol.io/prepared"] == "1000:1000 0775"
    assert _pods(api, namespace) == []


def test_release_deletes_the_prepare_pod_a_killed_call_left_so_the_claim_goes(
    api: Any, sharedvol: SharedvolCli, namespace: str, cluster_objects: ClusterObjects
) -> None:
    core = client.CoreV1Api(api)
    cluster_objects.track_pv(specs.static_pv_name(namespace, "gone"))
    _static(api, namespace, "gone", None)
    claim = core.read_namespaced_persistent_volume_claim("gone", namespace)
    left = core.create_namespaced_pod(namespace, prepare.pod(namespace, "gone", prepare.Settings()))
    _running(core, namespace, left.metadata.name)

    out = sharedvol("release", "gone", "-n", namespace)

    assert out.returncode == 0, out.stderr
    assert wait.wait_gone(api, namespace, "gone", claim.metadata.uid, timeout=60)
    assert _pods(api, namespace) == []


def test_dry_run_prints_the_prepare_pod_with_the_image_sharedvol_image_names_and_creates_nothing(
    api: Any, sharedvol: SharedvolCli, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHAREDVOL_IMAGE", "registry.example/steps:3")

    out = sharedvol("provision", "dry", "-n", namespace, "--static", "--dry-run", "--owner", "2000:2000")

    assert out.returncode == 0, out.stderr
    objects = json.loads(out.stdout[out.stdout.index("[") :])
    expected = prepare.pod(namespace, "dry", prepare.Settings(image="registry.example/steps:3", owner="2000:2000"))
    assert objects[2] == expected
    assert expected["spec"]["containers"][0]["image"] == "registry.example/steps:3"
    assert _pods(api, namespace) == []


def test_the_defaults_are_the_step_image_the_pipeline_runs_and_the_user_its_dockerfile_names() -> None:
    from pipelines import options

    dockerfile = (Path(__file__).resolve().parents[2] / "docker" / "Dockerfile").read_text()
    assert prepare.DEFAULT_IMAGE == options.DEFAULT_IMAGE
    assert re.findall(r"^USER (\S+)$", dockerfile, re.M)[-1] == prepare.DEFAULT_OWNER
