"""StorageClass inspection: which classes the cluster has and which of them can serve ReadWriteMany.

A table of known provisioners says which serve RWX. Unknown provisioners are reported as unknown,
never assumed. rancher's local-path serves RWX only when its ConfigMap sets ``sharedFileSystemPath``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
NFS_CLASS = "sharedvol-nfs"
FALLBACK_CLASS = "sharedvol-hostpath"
FALLBACK_PROVISIONER = "sharedvol.io/hostpath"
LOCAL_PATH = "rancher.io/local-path"
LOCAL_PATH_CONFIGMAPS = (("local-path-storage", "local-path-config"), ("kube-system", "local-path-config"))

# provisioner -> (serves RWX: "yes" | "no", what it is)
KNOWN_PROVISIONERS: dict[str, tuple[str, str]] = {
    "nfs.csi.k8s.io": ("yes", "CSI NFS driver"),
    "k8s-sigs.io/nfs-subdir-external-provisioner": ("yes", "nfs-subdir-external-provisioner"),
    "cluster.local/nfs-subdir-external-provisioner": ("yes", "nfs-subdir-external-provisioner (Helm)"),
    "cephfs.csi.ceph.com": ("yes", "CephFS CSI"),
    "file.csi.azure.com": ("yes", "Azure Files CSI"),
    "kubernetes.io/azure-file": ("yes", "Azure Files (in-tree)"),
    "efs.csi.aws.com": ("yes", "Amazon EFS CSI"),
    "filestore.csi.storage.gke.io": ("yes", "GKE Filestore CSI"),
    "driver.longhorn.io": ("yes", "Longhorn (RWX through its share-manager, NFSv4; nodes need an NFS client)"),
    FALLBACK_PROVISIONER: ("yes", "sharedvol fallback provisioner (hostPath on one node)"),
    LOCAL_PATH: ("no", "rancher local-path (ReadWriteOnce unless sharedFileSystemPath is set)"),
    "ebs.csi.aws.com": ("no", "Amazon EBS CSI (block, one node)"),
    "kubernetes.io/aws-ebs": ("no", "Amazon EBS (in-tree)"),
    "pd.csi.storage.gke.io": ("no", "GCE persistent disk CSI"),
    "kubernetes.io/gce-pd": ("no", "GCE persistent disk (in-tree)"),
    "disk.csi.azure.com": ("no", "Azure Disk CSI"),
    "kubernetes.io/azure-disk": ("no", "Azure Disk (in-tree)"),
    "openebs.io/local": ("no", "OpenEBS local hostpath"),
    "local.csi.openebs.io": ("no", "OpenEBS LocalPV-LVM"),
    "topolvm.io": ("no", "TopoLVM"),
    "topolvm.cybozu.com": ("no", "TopoLVM (old name)"),
    "rbd.csi.ceph.com": ("no", "Ceph RBD CSI (block)"),
    "kubernetes.io/no-provisioner": ("no", "static local volumes, no provisioner"),
}


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
    if provisioner in KNOWN_PROVISIONERS:
        return KNOWN_PROVISIONERS[provisioner]
    if provisioner.startswith("cluster.local/") and "nfs" in provisioner:
        return "yes", "nfs-subdir-external-provisioner (Helm release name)"
    return "unknown", f"provisioner {provisioner} is not in sharedvol's table; whether it serves RWX is unknown"


def describe(sc: Any, *, local_path_shared: bool = False) -> ClassInfo:
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


def local_path_shared(api: Any) -> bool:
    """Whether local-path-provisioner's ConfigMap sets ``sharedFileSystemPath`` (unreadable counts as no)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    for namespace, name in LOCAL_PATH_CONFIGMAPS:
        try:
            cm = core.read_namespaced_config_map(name, namespace)
        except client.ApiException:
            continue
        try:
            config = json.loads((cm.data or {}).get("config.json", "{}"))
        except ValueError:
            return False
        return bool(config.get("sharedFileSystemPath"))
    return False


def inspect(api: Any) -> list[ClassInfo]:
    """Every StorageClass of the cluster, default first, then by name.

    Raises:
        StorageError: the classes cannot be listed.
    """
    from kubernetes import client

    from storage import errors

    try:
        items = client.StorageV1Api(api).list_storage_class().items
    except client.ApiException as e:
        raise errors.from_api(e, "list StorageClasses") from e
    shared = any(sc.provisioner == LOCAL_PATH for sc in items) and local_path_shared(api)
    infos = [describe(sc, local_path_shared=shared) for sc in items]
    return sorted(infos, key=lambda c: (not c.default, c.name))
