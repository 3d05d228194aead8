"""Who owns a PersistentVolume: the one rule ``sharedvol serve``, ``release`` and ``doctor`` share.

A PV is the service's when it carries ``pv.kubernetes.io/provisioned-by: <provisioner>`` AND
``sharedvol.io/volume-uid`` equal to its own ``metadata.uid``. The service writes that second annotation
right after it creates the PV, from the UID the API server gave it. A user who can only create claims cannot
write either (they need rights on PersistentVolumes). A PV copied by hand (``kubectl get pv -o yaml``, edit,
``create``) gets a new UID from the API server, so the copy's annotation names another UID: not the service's.
Only someone with rights to create AND patch PVs could forge it, and such a user can already mount any host
path on any node (docs/threat-model.md).

``release --keep-data`` hands a service-made volume back to the user: it sets the PV's reclaim policy to
Retain and marks it ``sharedvol.io/kept-by: release``; the service never reclaims a Retain PV. A plain
``release`` of such a kept PV sets the policy back to Delete, and the service reclaims it as its class says.
"""

from __future__ import annotations

from kubernetes.client import V1PersistentVolume

from storage import specs

VOLUME_UID = "sharedvol.io/volume-uid"
CLAIM_UID = "sharedvol.io/claim-uid"  # the UID of the claim the service made the volume for (its name and path)
KEPT_BY = "sharedvol.io/kept-by"
ON_DELETE = "sharedvol.io/on-delete"
PROVISIONED_BY = specs.PROVISIONED_BY


def not_service_made(pv: V1PersistentVolume, provisioner: str) -> str:
    """Why ``pv`` was not made by the service serving ``provisioner``; "" when it was."""
    annotations = pv.metadata.annotations or {}
    if annotations.get(PROVISIONED_BY) != provisioner:
        return f"not annotated {PROVISIONED_BY}: {provisioner}"
    if not pv.metadata.uid or annotations.get(VOLUME_UID) != pv.metadata.uid:
        return f"its {VOLUME_UID} annotation is not its own UID (made or copied by hand, not by sharedvol serve)"
    return ""


def service_made(pv: V1PersistentVolume) -> bool:
    """Whether ``pv`` was made by a sharedvol provisioner service (any provisioner name)."""
    annotations = pv.metadata.annotations or {}
    provisioner = annotations.get(PROVISIONED_BY, "")
    return bool(provisioner) and not not_service_made(pv, provisioner)
