"""Pure builders for the objects sharedvol creates: the static, pre-bound PersistentVolume and the claim.

No API calls here; tests compare the output with exact dictionaries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "sharedvol"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
HOSTNAME_LABEL = "kubernetes.io/hostname"
DATA_PATH_ANNOTATION = "sharedvol.io/data-path"
RWX = "ReadWriteMany"


@dataclass(frozen=True)
class StaticVolume:
    """A PersistentVolume made for one claim.

    Attributes:
        pv_name: ``PersistentVolume.metadata.name``.
        claim_namespace: ``spec.claimRef.namespace``: the claim it is pre-bound to.
        claim_name: ``spec.claimRef.name``.
        size: ``spec.capacity.storage``, a Kubernetes quantity (at least the claim's request).
        storage_class: ``spec.storageClassName``, equal to the claim's ("" for static binding).
        host_path: ``spec.hostPath.path`` (type DirectoryOrCreate); exclusive with ``nfs_server``.
        node: the node that holds ``host_path``: ``spec.nodeAffinity`` on ``kubernetes.io/hostname``.
        nfs_server: ``spec.nfs.server``, with ``nfs_path`` as ``spec.nfs.path``.
        nfs_path: ``spec.nfs.path``.
        reclaim_policy: ``spec.persistentVolumeReclaimPolicy``. Default Retain.
        claim_uid: ``spec.claimRef.uid``, when the claim exists already (the provisioner sets it).
        provisioner: the ``pv.kubernetes.io/provisioned-by`` annotation, when a provisioner made it.
        mount_options: ``spec.mountOptions`` (NFS only, e.g. ``nfsvers=4.1``).
        labels: extra ``metadata.labels``.
    """

    pv_name: str
    claim_namespace: str
    claim_name: str
    size: str
    storage_class: str = ""
    host_path: str | None = None
    node: str | None = None
    nfs_server: str | None = None
    nfs_path: str | None = None
    reclaim_policy: str = "Retain"
    claim_uid: str | None = None
    provisioner: str | None = None
    mount_options: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def data_location(self) -> str:
        """Where the data lives, for people: ``node:/path`` or ``server:/path``."""
        if self.nfs_server:
            return f"{self.nfs_server}:{self.nfs_path}"
        return f"{self.node or '<any node>'}:{self.host_path}"


def static_pv(v: StaticVolume) -> dict[str, Any]:
    """The PersistentVolume for ``v``, pre-bound to its claim with ``claimRef``."""
    claim_ref: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": v.claim_namespace,
        "name": v.claim_name,
    }
    if v.claim_uid:
        claim_ref["uid"] = v.claim_uid
    annotations = {DATA_PATH_ANNOTATION: v.data_location}
    if v.provisioner:
        annotations[PROVISIONED_BY] = v.provisioner
    spec: dict[str, Any] = {
        "capacity": {"storage": v.size},
        "accessModes": [RWX],
        "volumeMode": "Filesystem",
        "persistentVolumeReclaimPolicy": v.reclaim_policy,
        "storageClassName": v.storage_class,
        "claimRef": claim_ref,
    }
    if v.nfs_server:
        spec["nfs"] = {"server": v.nfs_server, "path": v.nfs_path}
        if v.mount_options:
            spec["mountOptions"] = list(v.mount_options)
    else:
        spec["hostPath"] = {"path": v.host_path, "type": "DirectoryOrCreate"}
        if v.node:
            spec["nodeAffinity"] = {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [v.node]}]}
                    ]
                }
            }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": v.pv_name, "labels": {MANAGED_BY: MANAGER, **v.labels}, "annotations": annotations},
        "spec": spec,
    }


def rwx_claim(
    name: str, namespace: str, size: str, storage_class: str, *, volume_name: str | None = None
) -> dict[str, Any]:
    """A ReadWriteMany claim; ``storageClassName`` is always set explicitly ("" means static binding only).

    Args:
        name: ``metadata.name``.
        namespace: ``metadata.namespace``.
        size: ``spec.resources.requests.storage``.
        storage_class: ``spec.storageClassName``.
        volume_name: ``spec.volumeName``: the PV to bind to (static fallback).
    """
    spec: dict[str, Any] = {
        "accessModes": [RWX],
        "resources": {"requests": {"storage": size}},
        "storageClassName": storage_class,
        "volumeMode": "Filesystem",
    }
    if volume_name:
        spec["volumeName"] = volume_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY: MANAGER}},
        "spec": spec,
    }


def static_pv_name(namespace: str, claim: str) -> str:
    """The name sharedvol gives the static PV of ``namespace/claim``: one name per claim, never shared.

    ``sharedvol.<namespace>.<claim>``: a namespace holds no dots, so the first dot after the prefix
    separates the two and different claims never map to one name. When that is longer than 253
    characters, ``sharedvol-<sha256 of namespace/claim, 40 hex>`` (no dots, so it cannot meet the first form).
    """
    readable = f"sharedvol.{namespace}.{claim}"
    if len(readable) <= 253:
        return readable
    return "sharedvol-" + hashlib.sha256(f"{namespace}/{claim}".encode()).hexdigest()[:40]
