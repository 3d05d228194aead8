"""``sharedvol release``: delete a claim; for PVs sharedvol made, delete or keep the PV and say where the data is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client

from storage import errors, kube, ownership, prepare_pod, specs, validate, wait


@dataclass
class Released:
    """What release did.

    Attributes:
        claim: ``namespace/name`` of the deleted claim.
        volume: the PV the claim was bound to ("" when none).
        volume_action: ``deleted``, ``kept``, ``handed to sharedvol serve`` or ``left alone`` (not made by
            sharedvol).
        data: where the data is, when known (``node:/path`` or ``server:/path``).
        rebind: the command that binds kept data again ("" when not kept).
    """

    claim: str
    volume: str
    volume_action: str
    data: str
    rebind: str = ""

    def describe(self) -> str:
        """What happened, for people."""
        lines = [f"deleted claim {self.claim}"]
        if self.volume:
            lines.append(f"PersistentVolume {self.volume}: {self.volume_action}")
        if self.data:
            if self.volume_action.startswith("kept"):
                lines.append(f"data kept at {self.data}; `{self.rebind}` binds it again")
            elif self.volume_action.startswith("handed"):
                lines.append(f"data at {self.data}: sharedvol serve applies the class's onDelete to it")
            else:
                lines.append(f"data left at {self.data}: sharedvol does not delete files; remove them there when done")
        return "\n".join(lines)


def release(
    api: client.ApiClient, name: str, namespace: str = "default", *, keep_data: bool = False, timeout: float = 60.0
) -> Released:
    """Delete claim ``namespace/name``; delete its sharedvol-made PV unless ``keep_data``.

    With ``keep_data`` the PV stays (reclaim policy Retain). Once the claim is gone (watched, up to
    ``timeout`` seconds) its ``claimRef`` loses the old claim's UID, so the PV is Available again for a
    claim of the same name only: provisioning that name again binds the same data. A claim still used by
    a pod stays until the pod ends; ``provision`` frees the PV then. PVs sharedvol did not make are left alone.

    A PV ``sharedvol serve`` made (:mod:`storage.ownership`) is the service's to reclaim: without
    ``keep_data`` release deletes only the claim and the service applies the class's onDelete; with it,
    release first sets the PV's reclaim policy to Retain (marked ``sharedvol.io/kept-by: release``), which
    the service never reclaims, so the data stays whatever the class's onDelete says.

    Raises:
        NotFoundError: no such claim.
        ForbiddenError: RBAC denied a call.
        ApiError: the API server did not answer.
    """
    with kube.reachable(f"release claim {namespace}/{name}", api):
        return _release(api, name, namespace, keep_data, timeout)


def _release(api: client.ApiClient, name: str, namespace: str, keep_data: bool, timeout: float) -> Released:
    core = client.CoreV1Api(api)
    validate.name(name, "claim name")
    validate.namespace(namespace)
    try:
        claim = core.read_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            raise errors.NotFoundError(
                f"claim {namespace}/{name} does not exist", hint=f"list claims: kubectl get pvc -n {namespace}"
            ) from e
        raise errors.from_api(e, f"read claim {namespace}/{name}") from e
    volume_name = claim.spec.volume_name or ""
    pv = None
    if volume_name:
        try:
            pv = core.read_persistent_volume(volume_name)
        except client.ApiException as e:
            if e.status != 404:
                raise errors.from_api(e, f"read PersistentVolume {volume_name}") from e
    who = f"{namespace}/{name}"
    if pv is not None and not _reserved_for(pv, claim):
        # a claim names any volume it likes: only one reserved for this very claim is release's to touch
        kube.call(core.delete_namespaced_persistent_volume_claim, f"delete claim {who}", name, namespace)
        prepare_pod.remove_leftover(core, namespace, name)
        return Released(who, volume_name, f"left alone ({_reservation(pv)}, not this claim)", "")
    if pv is not None and _being_made(pv):
        pv = _once_marked(core, pv, timeout)
    served = pv is not None and ownership.service_made(pv)
    if served and pv is not None:
        _hand_over(core, pv, keep_data)
    kube.call(core.delete_namespaced_persistent_volume_claim, f"delete claim {namespace}/{name}", name, namespace)
    prepare_pod.remove_leftover(core, namespace, name)
    if pv is None:
        return Released(who, volume_name, "", "")
    ours = (pv.metadata.labels or {}).get(specs.MANAGED_BY) == specs.MANAGER
    data = (pv.metadata.annotations or {}).get(specs.DATA_PATH_ANNOTATION, "")
    rebind = f"sharedvol provision {name} -n {namespace}"
    size = (pv.spec.capacity or {}).get("storage") if pv.spec else None
    if isinstance(size, str) and size:  # a larger claim would not fit the kept volume, and get a new one
        rebind += f" --size {size}"
    if served:
        rebind += f" --class {pv.spec.storage_class_name}"
        if not keep_data:
            return Released(
                who, volume_name, f"handed to sharedvol serve (StorageClass {pv.spec.storage_class_name})", data
            )
    elif not ours:
        return Released(who, volume_name, "left alone (not made by sharedvol)", data)
    elif not keep_data:
        kube.call(core.delete_persistent_volume, f"delete PersistentVolume {volume_name}", volume_name)
        return Released(who, volume_name, "deleted", data)
    if not wait.wait_gone(api, namespace, name, claim.metadata.uid, timeout=timeout):
        why = "kept (the claim is still in use by a pod; it goes when the pod ends)"
        return Released(who, volume_name, why, data, rebind)
    ref = pv.spec.claim_ref
    if ref is not None and ref.uid:
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/spec/claimRef/uid", "value": ref.uid},
            {"op": "remove", "path": "/spec/claimRef/uid"},
        ]
        if ref.resource_version:
            ops.append({"op": "remove", "path": "/spec/claimRef/resourceVersion"})
        kube.call(core.patch_persistent_volume, f"free PersistentVolume {volume_name}", volume_name, ops)
    return Released(who, volume_name, "kept", data, rebind)


def _reserved_for(pv: client.V1PersistentVolume, claim: client.V1PersistentVolumeClaim) -> bool:
    """Whether ``pv``'s claimRef names ``claim``: its namespace and name, and its UID when the ref has one."""
    ref = pv.spec.claim_ref if pv.spec else None
    if ref is None or (ref.namespace, ref.name) != (claim.metadata.namespace, claim.metadata.name):
        return False
    return not ref.uid or ref.uid == claim.metadata.uid


def _reservation(pv: client.V1PersistentVolume) -> str:
    ref = pv.spec.claim_ref if pv.spec else None
    if ref is None:
        return "reserved for no claim"
    if ref.uid:
        return f"bound to claim {ref.namespace}/{ref.name} of UID {ref.uid}"
    return f"reserved for claim {ref.namespace}/{ref.name}"


def _being_made(pv: client.V1PersistentVolume) -> bool:
    """Whether ``pv`` is a service's volume not yet marked as the service's (:mod:`storage.ownership`).

    The service creates the PV, then marks it: a claim can be bound in between. Releasing it then as a static
    PV would skip the service's hand-over (``--keep-data`` would lose the data to the service's reclaim).
    """
    labels, annotations = pv.metadata.labels or {}, pv.metadata.annotations or {}
    ours = labels.get(specs.MANAGED_BY) == specs.MANAGER
    return ours and bool(annotations.get(ownership.PROVISIONED_BY)) and ownership.VOLUME_UID not in annotations


def _once_marked(core: client.CoreV1Api, pv: client.V1PersistentVolume, timeout: float) -> client.V1PersistentVolume:
    """``pv`` again once its service marked it (watched, up to ``timeout`` s).

    Raises:
        ConflictError: not marked in time (nothing was changed).
    """
    name = pv.metadata.name
    seen: list[client.V1PersistentVolume] = []

    def marked(now: client.V1PersistentVolume) -> bool:
        seen[:] = [now]
        return not _being_made(now)

    if kube.watch_volume(core, name, marked, timeout=timeout):
        return seen[0]
    provisioner = (pv.metadata.annotations or {}).get(ownership.PROVISIONED_BY)
    raise errors.ConflictError(
        f"PersistentVolume {name} is still being made by sharedvol serve ({provisioner}): "
        f"not marked as the service's after {timeout:.0f} s; nothing was changed",
        hint="check that the service runs (sharedvol doctor), then release again",
    )


def _hand_over(core: client.CoreV1Api, pv: client.V1PersistentVolume, keep_data: bool) -> None:
    """Before a service-made PV's claim goes: Retain it (keep_data), or give a kept one back to the service."""
    name = pv.metadata.name
    kept = (pv.metadata.annotations or {}).get(ownership.KEPT_BY) == "release"
    if keep_data:
        patch = {
            "metadata": {"annotations": {ownership.KEPT_BY: "release"}},
            "spec": {"persistentVolumeReclaimPolicy": "Retain"},
        }
    elif kept:
        patch = {
            "metadata": {"annotations": {ownership.KEPT_BY: None}},
            "spec": {"persistentVolumeReclaimPolicy": "Delete"},
        }
    else:
        return
    kube.call(core.patch_persistent_volume, f"hand PersistentVolume {name} over", name, patch)
