"""Which provisioners serve ReadWriteMany: a table of real provisioner names, each with where it was checked.

``yes``: the provisioner makes volumes that pods on different nodes can mount read-write at once.
``no``: one node (block devices, node-local directories). ``unknown``: it depends on the backend or
on parameters, so sharedvol does not guess. Names missing here are unknown too.
"""

from __future__ import annotations

from typing import NamedTuple

CSI_DRIVERS = "kubernetes-csi/docs book/src/drivers.md (column Supported Access Modes)"
K8S_ACCESS_MODES = "kubernetes/website persistent-volumes.md (access modes table of the in-tree plugins)"


class Verdict(NamedTuple):
    """One provisioner's entry.

    Attributes:
        rwx: ``yes``, ``no`` or ``unknown``.
        what: what it is, and any condition.
        source: where the verdict was checked.
    """

    rwx: str
    what: str
    source: str


def _yes(what: str, source: str = CSI_DRIVERS) -> Verdict:
    return Verdict("yes", what, source)


def _no(what: str, source: str = CSI_DRIVERS) -> Verdict:
    return Verdict("no", what, source)


def _depends(what: str, source: str = CSI_DRIVERS) -> Verdict:
    return Verdict("unknown", what, source)


KNOWN: dict[str, Verdict] = {
    # --- ReadWriteMany
    "nfs.csi.k8s.io": _yes("CSI NFS driver", "kubernetes-csi/csi-driver-nfs README"),
    "k8s-sigs.io/nfs-subdir-external-provisioner": _yes(
        "nfs-subdir-external-provisioner", "kubernetes-sigs/nfs-subdir-external-provisioner README"
    ),
    "cluster.local/nfs-subdir-external-provisioner": _yes(
        "nfs-subdir-external-provisioner (Helm chart's default name)",
        "kubernetes-sigs/nfs-subdir-external-provisioner charts/ values.yaml",
    ),
    "cephfs.csi.ceph.com": _yes("CephFS CSI"),
    "rook-ceph.cephfs.csi.ceph.com": _yes(
        "CephFS CSI as Rook names it", "rook deploy/examples/csi/cephfs/storageclass.yaml"
    ),
    "file.csi.azure.com": _yes("Azure Files CSI"),
    "kubernetes.io/azure-file": _yes("Azure Files (in-tree)", K8S_ACCESS_MODES),
    "kubernetes.io/glusterfs": _yes("GlusterFS (in-tree, removed in Kubernetes 1.26)", K8S_ACCESS_MODES),
    "efs.csi.aws.com": _yes("Amazon EFS CSI"),
    "fsx.csi.aws.com": _yes("Amazon FSx for Lustre CSI"),
    "filestore.csi.storage.gke.io": _yes("GKE Filestore CSI", "kubernetes-sigs/gcp-filestore-csi-driver README"),
    "com.google.csi.filestore": _yes("Google Cloud Filestore CSI (older name)"),
    "driver.longhorn.io": _yes(
        "Longhorn (RWX through its share-manager, NFSv4; nodes need an NFS client)",
        "longhorn.io docs advanced-resources/rwx-workloads (share-manager since v1.1)",
    ),
    "openebs.io/nfsrwx": _yes("OpenEBS dynamic NFS provisioner", "openebs/dynamic-nfs-provisioner README"),
    "smb.csi.k8s.io": _yes("CSI SMB driver", "kubernetes-csi/csi-driver-smb docs/driver-parameters.md"),
    "csi.juicefs.com": _yes("JuiceFS CSI"),
    "seaweedfs-csi-driver": _yes("SeaweedFS CSI"),
    "beegfs.csi.netapp.com": _yes("BeeGFS CSI"),
    "spectrumscale.csi.ibm.com": _yes("IBM Storage Scale CSI"),
    "manila.csi.openstack.org": _yes("OpenStack Manila CSI (shared file systems)"),
    "nasplugin.csi.alibabacloud.com": _yes("Alibaba Cloud NAS CSI"),
    "csi-isilon.dellemc.com": _yes("Dell PowerScale CSI"),
    "com.tencent.cloud.csi.cfs": _yes("Tencent Cloud File Storage CSI"),
    "csi.weka.io": _yes("WekaFS CSI"),
    "org.kadalu.gluster": _yes("kaDalu (GlusterFS) CSI"),
    "sharedvol.io/hostpath": _yes(
        "sharedvol fallback provisioner (hostPath on one node: every pod of the claim runs there)", "this project"
    ),
    # --- one node only
    "rancher.io/local-path": _no(
        "rancher local-path (ReadWriteOnce unless sharedFileSystemPath is set)", "rancher/local-path-provisioner README"
    ),
    "ebs.csi.aws.com": _no("Amazon EBS CSI (block, one node)"),
    "kubernetes.io/aws-ebs": _no("Amazon EBS (in-tree)", K8S_ACCESS_MODES),
    "pd.csi.storage.gke.io": _no("GCE persistent disk CSI"),
    "kubernetes.io/gce-pd": _no("GCE persistent disk (in-tree)", K8S_ACCESS_MODES),
    "disk.csi.azure.com": _no("Azure Disk CSI"),
    "kubernetes.io/azure-disk": _no("Azure Disk (in-tree)", K8S_ACCESS_MODES),
    "openebs.io/local": _no("OpenEBS local hostpath", "openebs/dynamic-localpv-provisioner README"),
    "local.csi.openebs.io": _no("OpenEBS LocalPV-LVM", "openebs/lvm-localpv README"),
    "zfs.csi.openebs.io": _no("OpenEBS LocalPV-ZFS", "openebs/zfs-localpv README"),
    "cstor.csi.openebs.io": _no("OpenEBS cStor CSI"),
    "topolvm.io": _no("TopoLVM", "topolvm/topolvm README"),
    "topolvm.cybozu.com": _no("TopoLVM (old name)"),
    "rbd.csi.ceph.com": _no("Ceph RBD CSI (block)"),
    "rook-ceph.rbd.csi.ceph.com": _no(
        "Ceph RBD CSI as Rook names it", "rook deploy/examples/csi/rbd/storageclass.yaml"
    ),
    "kubernetes.io/no-provisioner": _no("static local volumes, no provisioner", K8S_ACCESS_MODES),
    "dobs.csi.digitalocean.com": _no("DigitalOcean Block Storage CSI"),
    "csi.hetzner.cloud": _no("Hetzner Cloud Volumes CSI"),
    "linodebs.csi.linode.com": _no("Linode Block Storage CSI"),
    "csi.scaleway.com": _no("Scaleway Block Storage CSI"),
    "diskplugin.csi.alibabacloud.com": _no("Alibaba Cloud Disk CSI"),
    "linstor.csi.linbit.com": _no("LINSTOR CSI"),
    "blockvolume.csi.oraclecloud.com": _no("Oracle Cloud Block Volume CSI"),
    "block.csi.vultr.com": _no("Vultr Block Storage CSI"),
    "vpc.block.csi.ibm.io": _no("IBM Cloud VPC Block CSI"),
    # --- depends on the backend or on parameters: sharedvol does not guess
    "csi.vsphere.vmware.com": _depends("vSphere CSI: block volumes are one node, file volumes (vSAN) RWX"),
    "csi.trident.netapp.io": _depends("NetApp Trident: RWX with NAS backends, not with SAN ones"),
    "pxd.portworx.com": _depends("Portworx: RWX only with sharedv4 volumes"),
    "csi.nutanix.com": _depends("Nutanix: Volumes are one node, Files are RWX"),
    "cinder.csi.openstack.org": _depends("OpenStack Cinder: depends on the storage backend"),
}
