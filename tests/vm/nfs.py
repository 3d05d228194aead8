"""What the two-node tier's tests know of k8s/nfs: its directory, namespace, export, check image and the server pin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rig import cluster as cp

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
