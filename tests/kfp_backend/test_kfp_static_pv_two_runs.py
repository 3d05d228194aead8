"""The static-PV variant names one PersistentVolume; two runs at once each create a claim pre-bound to it.

The claims are made exactly as KFP's CreatePVC driver makes them for the compiled static-PV pipeline
(``volumeName`` = the PV, ``storageClassName: ""``, ReadWriteMany). On the real control plane the first claim
binds; the second stays Pending with a ``FailedBinding`` event saying the volume is bound to another claim, and
the first run's binding is untouched. So the second run waits (its steps stay Pending) instead of sharing or
taking over the first run's volume.
"""

from __future__ import annotations

from typing import Any

from pipelines import params, pipeline
from rig import kwait


def _claim_as_kfp_creates_it(name: str, pv: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "annotations": dict(pipeline.PVC_ANNOTATIONS)},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": params.RunParameters().volume_size}},
            "storageClassName": "",
            "volumeName": pv,
        },
    }


def test_a_second_run_on_the_same_static_pv_waits_with_a_failed_binding_event_and_leaves_the_first_bound(
    api: Any, namespace: str, cluster_objects: Any
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api)
    pv = f"sharedvol-static-{namespace}"
    cluster_objects.pv(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "20Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": f"/tmp/{pv}"},
            },
        }
    )
    first, second = "run-a-sharedvol", "run-b-sharedvol"
    core.create_namespaced_persistent_volume_claim(namespace, _claim_as_kfp_creates_it(first, pv))
    kwait.claim_phase(core, namespace, first)
    core.create_namespaced_persistent_volume_claim(namespace, _claim_as_kfp_creates_it(second, pv))

    event = kwait.until(
        core.list_namespaced_event,
        lambda e: e.reason == "FailedBinding" and "bound to a different claim" in (e.message or ""),
        namespace,
        what=f"FailedBinding event of {second}",
        field_selector=f"involvedObject.name={second}",
    )

    assert event.involved_object.kind == "PersistentVolumeClaim"
    assert core.read_namespaced_persistent_volume_claim(second, namespace).status.phase == "Pending"
    assert core.read_namespaced_persistent_volume_claim(first, namespace).status.phase == "Bound"
    bound = core.read_persistent_volume(pv)
    assert (bound.spec.claim_ref.namespace, bound.spec.claim_ref.name) == (namespace, first)
