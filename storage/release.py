"""``sharedvol release``: delete a claim; for PVs sharedvol made, delete or keep the PV and say where the data is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage import errors, specs


@dataclass
class Released:
    """What release did.

    Attributes:
        claim: ``namespace/name`` of the deleted claim.
        volume: the PV the claim was bound to ("" when none).
        volume_action: ``deleted``, ``kept`` or ``left alone`` (not made by sharedvol).
        data: where the data is, when known (``node:/path`` or ``server:/path``).
    """

    claim: str
    volume: str
    volume_action: str
    data: str

    def describe(self) -> str:
        """What happened, for people."""
        lines = [f"deleted claim {self.claim}"]
        if self.volume:
            lines.append(f"PersistentVolume {self.volume}: {self.volume_action}")
        if self.data:
            if self.volume_action == "kept":
                lines.append(f"data kept at {self.data}; `sharedvol provision` with the same name binds it again")
            else:
                lines.append(f"data left at {self.data}: sharedvol does not delete files; remove them there when done")
        return "\n".join(lines)


def release(api: Any, name: str, namespace: str = "default", *, keep_data: bool = False) -> Released:
    """Delete claim ``namespace/name``; delete its sharedvol-made PV unless ``keep_data``.

    With ``keep_data`` the PV stays (reclaim policy Retain) and its ``claimRef`` is reset to the same
    claim name, so provisioning that name again binds the same data.

    Raises:
        NotFoundError: no such claim.
        ForbiddenError: RBAC denied a call.
    """
    from kubernetes import client

    core = client.CoreV1Api(api)
    try:
        claim = core.read_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            raise errors.NotFoundError(
                f"claim {namespace}/{name} does not exist", hint=f"list claims: kubectl get pvc -n {namespace}"
            ) from e
        raise errors.from_api(e, f"read claim {namespace}/{name}") from e
    volume = claim.spec.volume_name or ""
    pv = None
    if volume:
        try:
            pv = core.read_persistent_volume(volume)
        except client.ApiException as e:
            if e.status != 404:
                raise errors.from_api(e, f"read PersistentVolume {volume}") from e
    try:
        core.delete_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        raise errors.from_api(e, f"delete claim {namespace}/{name}") from e
    if pv is None:
        return Released(f"{namespace}/{name}", volume, "", "")
    ours = (pv.metadata.labels or {}).get(specs.MANAGED_BY) == specs.MANAGER
    data = (pv.metadata.annotations or {}).get(specs.DATA_PATH_ANNOTATION, "")
    if not ours:
        return Released(f"{namespace}/{name}", volume, "left alone (not made by sharedvol)", data)
    try:
        if keep_data:
            ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace, "name": name}
            core.patch_persistent_volume(volume, {"spec": {"claimRef": ref}})
            return Released(f"{namespace}/{name}", volume, "kept", data)
        core.delete_persistent_volume(volume)
    except client.ApiException as e:
        raise errors.from_api(e, f"update PersistentVolume {volume}") from e
    return Released(f"{namespace}/{name}", volume, "deleted", data)
