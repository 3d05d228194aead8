"""Kubernetes objects for tests: builders of StorageClasses and claims, and the cluster-scoped objects a test made.

The builders return plain dicts, the bodies the API takes; names are made unique where a class is cluster-wide.
"""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client

from storage import classes

NFS_PROVISIONER = "nfs.csi.k8s.io"  # csi-driver-nfs, what k8s/nfs installs


def unique(stem: str) -> str:
    """``stem-<6 hex>``: a name no other test uses."""
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def storage_class(
    provisioner: str,
    *,
    name: str = "",
    mode: str = "Immediate",
    reclaim: str = "Delete",
    parameters: dict[str, str] | None = None,
    default: bool = False,
) -> dict[str, Any]:
    """A StorageClass of ``provisioner`` (``volumeBindingMode`` ``mode``, ``reclaimPolicy`` ``reclaim``).

    ``name``: empty for a unique one; ``default``: annotated as the cluster's default class.
    """
    metadata: dict[str, Any] = {"name": name or unique("class")}
    if default:
        metadata["annotations"] = {classes.DEFAULT_CLASS_ANNOTATION: "true"}
    body: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": metadata,
        "provisioner": provisioner,
        "volumeBindingMode": mode,
        "reclaimPolicy": reclaim,
    }
    if parameters:
        body["parameters"] = parameters
    return body


def nfs_class(name: str = "", **kw: Any) -> dict[str, Any]:
    """A class of csi-driver-nfs (RWX), as k8s/nfs makes ``sharedvol-nfs``."""
    return storage_class(NFS_PROVISIONER, name=name or unique("nfs"), **kw)


def local_path_class(name: str = "", **kw: Any) -> dict[str, Any]:
    """A class shaped like rancher's local-path: RWO only, ``WaitForFirstConsumer``."""
    kw.setdefault("mode", "WaitForFirstConsumer")
    return storage_class(classes.LOCAL_PATH, name=name or unique("local-path"), **kw)


def fallback_class(name: str = "", *, on_delete: str = "delete", **kw: Any) -> dict[str, Any]:
    """A class of sharedvol's fallback provisioner, base path ``/var/lib/sharedvol``; ``parameters`` add to its."""
    parameters = {"basePath": "/var/lib/sharedvol", "onDelete": on_delete, **kw.pop("parameters", {})}
    return storage_class(classes.FALLBACK_PROVISIONER, name=name or unique("hostpath"), parameters=parameters, **kw)


def claim(
    name: str,
    storage_class: str | None,
    *,
    size: str = "1Gi",
    mode: str = "ReadWriteMany",
    volume_name: str = "",
    namespace: str = "",
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A PersistentVolumeClaim of ``storage_class`` (``""``: static binding only; ``None``: names no class).

    ``volume_name`` pre-binds it; ``spec``: more fields of its spec, over the ones built.
    """
    body_spec: dict[str, Any] = {"accessModes": [mode], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        body_spec["storageClassName"] = storage_class
    if volume_name:
        body_spec["volumeName"] = volume_name
    body_spec.update(spec or {})
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": body_spec}


def claim_model(body: dict[str, Any], *, uid: str = "") -> client.V1PersistentVolumeClaim:
    """``body`` (from :func:`claim`) as the model the kubernetes client reads, ``uid`` as the API would set it.

    For code tested without a cluster; nested fields other than ``resources`` stay dicts.
    """
    metadata, spec = body["metadata"], body["spec"]
    fields = {
        field: spec[key] for field, key in client.V1PersistentVolumeClaimSpec.attribute_map.items() if key in spec
    }
    fields["resources"] = client.V1VolumeResourceRequirements(**spec["resources"])
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(
            name=metadata["name"],
            namespace=metadata.get("namespace"),
            uid=uid or None,
            annotations=metadata.get("annotations"),
        ),
        spec=client.V1PersistentVolumeClaimSpec(**fields),
    )


class ClusterObjects:
    """Creates cluster-scoped objects (StorageClasses, PVs) for one test and deletes them after it."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.classes: list[str] = []
        self.pvs: list[str] = []

    def storage_class(self, body: dict[str, Any]) -> client.V1StorageClass:
        """Create a StorageClass from ``body``; it is deleted after the test."""
        made = self.storage.create_storage_class(body)
        self.classes.append(made.metadata.name)
        return made

    def pv(self, body: dict[str, Any]) -> client.V1PersistentVolume:
        """Create a PersistentVolume from ``body``; it is deleted after the test."""
        made = self.core.create_persistent_volume(body)
        self.pvs.append(made.metadata.name)
        return made

    def track_pv(self, name: str) -> None:
        """Delete PV ``name`` after the test (for PVs the code under test made)."""
        self.pvs.append(name)

    def cleanup(self) -> None:
        """Delete everything made or tracked, ignoring what is already gone."""
        for delete, names in (
            (self.core.delete_persistent_volume, self.pvs),
            (self.storage.delete_storage_class, self.classes),
        ):
            for name in names:
                try:
                    delete(name)
                except client.ApiException as e:
                    if e.status != 404:
                        raise
