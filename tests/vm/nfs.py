"""What the two-node tier's tests know of k8s/nfs: its directory, namespace, export, check image and the server pin."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig import cluster as cp
from rig import kwait

NFS = cp.REPO / "k8s" / "nfs"
NFS_NAMESPACE = "sharedvol-nfs"
EXPORT_DIR = Path("/var/lib/sharedvol-nfs")  # k8s/nfs/server's hostPath, on the host node
BUSYBOX = "busybox:1.37.0"  # k8s/nfs/check's image, on the VM's image disk (scripts/vm/images.sh)
SERVER_PIN = "sharedvol.io/nfs-server"
# docs/nfs.md, "Pin the NFS server to one node"
PIN_PATCH = '{"spec":{"template":{"spec":{"nodeSelector":{"sharedvol.io/nfs-server":"true"}}}}}'


def ready(pod: Any) -> bool:
    """The pod is Ready."""
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


@dataclass(frozen=True)
class NfsClaim:
    """A claim of sharedvol-nfs, Bound, in a namespace of its own."""

    namespace: str
    name: str
    volume: str

    @property
    def directory(self) -> Path:
        """Its directory on the server's disk: the class's subDir ``<namespace>-<claim>-<pv>`` in the export."""
        return EXPORT_DIR / f"{self.namespace}-{self.name}-{self.volume}"


@contextlib.contextmanager
def bound_claim(api: Any, prefix: str, name: str = "shared") -> Iterator[NfsClaim]:
    """A new namespace ``<prefix>-<random>`` with a claim ``name`` of sharedvol-nfs, Bound; the namespace is deleted
    afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        kwait.until(
            core.list_namespaced_service_account, lambda sa: True, namespace, what="ServiceAccount default",
            field_selector="metadata.name=default",
        )  # fmt: skip
        spec: dict[str, Any] = {"storageClassName": "sharedvol-nfs", "accessModes": ["ReadWriteMany"]}
        spec["resources"] = {"requests": {"storage": "16Mi"}}
        core.create_namespaced_persistent_volume_claim(namespace, {"metadata": {"name": name}, "spec": spec})
        bound = kwait.until(
            core.list_namespaced_persistent_volume_claim, lambda c: c.status.phase == "Bound", namespace,
            timeout=300, what=f"claim {name} Bound", **kwait.named(name),
        )  # fmt: skip
        yield NfsClaim(namespace, name, bound.spec.volume_name)
    finally:
        core.delete_namespace(namespace, grace_period_seconds=0)
