"""StorageClass inspection: which classes the cluster has and which of them can serve ReadWriteMany.

The table in :mod:`storage.provisioners` says which serve RWX. Unknown provisioners are reported as unknown,
never assumed. rancher's local-path serves RWX only when its ConfigMap sets ``sharedFileSystemPath``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storage import errors, provisioners

if TYPE_CHECKING:  # kubernetes is imported lazily: `sharedvol --help` stays fast
    from kubernetes.client import ApiClient, V1StorageClass

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
NFS_CLASS = "sharedvol-nfs"
FALLBACK_CLASS = "sharedvol-hostpath"
FALLBACK_PROVISIONER = "sharedvol.io/hostpath"
LOCAL_PATH = "rancher.io/local-path"
LOCAL_PATH_CONFIGMAPS = (("local-path-storage", "local-path-config"), ("kube-system", "local-path-config"))
LOCAL_PATH_CONFIG_CAP = 1 << 20  # local-path's config.json is a few hundred bytes; a ConfigMap holds at most 1 MiB


@dataclass(frozen=True)
class ClassInfo:
    """One StorageClass as sharedvol sees it.

    Attributes:
        name: ``metadata.name``.
        provisioner: ``provisioner``.
        binding_mode: ``volumeBindingMode`` (Immediate or WaitForFirstConsumer).
        reclaim_policy: ``reclaimPolicy`` (Delete or Retain).
        default: whether it is the cluster's default class.
        rwx: ``yes``, ``no`` or ``unknown``.
        reason: why ``rwx`` is what it is.
        parameters: ``parameters``.
    """

    name: str
    provisioner: str
    binding_mode: str
    reclaim_policy: str
    default: bool
    rwx: str
    reason: str
    parameters: dict[str, str] = field(default_factory=dict)


def rwx_of(provisioner: str, *, local_path_shared: bool = False) -> tuple[str, str]:
    """Whether ``provisioner`` serves ReadWriteMany (``yes``/``no``/``unknown``) and why."""
    if provisioner == LOCAL_PATH and local_path_shared:
        return "yes", "rancher local-path with sharedFileSystemPath (one filesystem on every node)"
    known = provisioners.KNOWN.get(provisioner)
    if known is not None:
        if known.rwx == "unknown":
            return "unknown", f"{known.what}; check the class's parameters"
        return known.rwx, known.what
    if provisioner.startswith("cluster.local/") and "nfs" in provisioner:
        return "yes", "nfs-subdir-external-provisioner (Helm release name)"
    return "unknown", f"provisioner {provisioner} is not in sharedvol's table; whether it serves RWX is unknown"


def describe(sc: V1StorageClass, *, local_path_shared: bool = False) -> ClassInfo:
    """A ``V1StorageClass`` as a :class:`ClassInfo`."""
    annotations = sc.metadata.annotations or {}
    rwx, reason = rwx_of(sc.provisioner, local_path_shared=local_path_shared)
    return ClassInfo(
        name=sc.metadata.name,
        provisioner=sc.provisioner,
        binding_mode=sc.volume_binding_mode or "Immediate",
        reclaim_policy=sc.reclaim_policy or "Delete",
        default=annotations.get(DEFAULT_CLASS_ANNOTATION) == "true",
        rwx=rwx,
        reason=reason,
        parameters=dict(sc.parameters or {}),
    )


def local_path_shared(api: ApiClient) -> bool:
    """Whether local-path-provisioner's ConfigMap sets ``sharedFileSystemPath`` (unreadable counts as no)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    for namespace, name in LOCAL_PATH_CONFIGMAPS:
        try:
            cm = core.read_namespaced_config_map(name, namespace)
        except client.ApiException:
            continue
        text = (cm.data or {}).get("config.json", "{}")
        try:
            config = json.loads(text) if len(text) <= LOCAL_PATH_CONFIG_CAP else None
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            return False
        return isinstance(config, dict) and bool(config.get("sharedFileSystemPath"))
    return False


def inspect(api: ApiClient) -> list[ClassInfo]:
    """Every StorageClass of the cluster, default first, then by name.

    Raises:
        StorageError: the classes cannot be listed.
    """
    from kubernetes import client

    try:
        items = client.StorageV1Api(api).list_storage_class().items
    except client.ApiException as e:
        raise errors.from_api(e, "list StorageClasses") from e
    shared = any(sc.provisioner == LOCAL_PATH for sc in items) and local_path_shared(api)
    infos = [describe(sc, local_path_shared=shared) for sc in items]
    return sorted(infos, key=lambda c: (not c.default, c.name))
