"""What runs inside the second node's VM, as files the host writes into the VM's 9p share before it boots: containerd,
CNI, kubelet and kube-proxy configurations and ``start.sh`` (run by the VM's init, scripts/vm/guest/sharedvol-init).

Pure functions of a :class:`GuestLayout`; rig/vm/vmnode.py writes them. The VM's paths are the usual ones
(``/var/lib/kubelet``: k8s/nfs/driver mounts that directory), the host's programs come in read-only over 9p at
``/sharedvol/bin``, the files written here are at ``/sharedvol/run``, and every log goes back there.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from rig.node import nodeconfig as nc

RUN = Path("/sharedvol/run")  # the host's run directory, inside the VM
BIN = Path("/sharedvol/bin")  # the host's control-plane bin directory (kubelet, kube-proxy, crictl), read-only
VM_NODE_NAME = "sharedvol-vm"  # the first VM node; a second one is sharedvol-vm2 (:func:`node_name`)
MAX_VMS = 4
CLUSTER_CIDR = "10.88.0.0/15"  # every node's pods: the host node has 10.88.0.0/16 (rig/node/nodeconfig.py)
KUBELET_PORT = 10250


def node_name(index: int) -> str:
    """The Node name of VM ``index`` (1, 2, ...): sharedvol-vm, sharedvol-vm2, ..."""
    return VM_NODE_NAME if index == 1 else f"{VM_NODE_NAME}{index}"


def pod_subnet(index: int) -> str:
    """The pod range of VM ``index``: a /18 of 10.89.0.0/16 each (10.89.0.0/18 for the first)."""
    if not 1 <= index <= MAX_VMS:
        raise ValueError(f"VM index {index} is not 1 to {MAX_VMS}")
    return f"10.89.{(index - 1) * 64}.0/18"


@dataclass(frozen=True)
class GuestLayout:
    """The VM node's addresses and names.

    Attributes:
        address: the VM's address on the host's bridge (the kubelet's node IP).
        host_address: the host's address on the bridge (the VM's gateway and its cluster DNS server).
        pause_image: the sandbox image (on the VM's image disk).
        index: which VM (1, 2, ...): its Node name and pod range.
    """

    address: str
    host_address: str
    pause_image: str
    index: int = 1

    @property
    def name(self) -> str:
        """The VM's Node name."""
        return node_name(self.index)

    @property
    def node_layout(self) -> nc.NodeLayout:
        """The paths in nodeconfig's terms, as the VM sees them."""
        return nc.NodeLayout(
            workdir=RUN,
            run_dir=Path("/run/containerd"),
            containerd_root=Path("/var/lib/containerd"),
            node_ip=self.address,
            pause_image=self.pause_image,
        )


def containerd_toml(layout: GuestLayout) -> str:
    """Containerd 1.6 in the VM: nodeconfig's, with Debian's CNI plugins and the CNI configuration from the share."""
    return nc.containerd_toml(layout.node_layout)


def kubelet_config(layout: GuestLayout) -> str:
    """Nodeconfig's KubeletConfiguration, plus the cluster DNS server (CoreDNS on the host's bridge address)."""
    config = json.loads(nc.kubelet_config(layout.node_layout, KUBELET_PORT, 10248, RUN / "certs" / "kubelet-ca.crt"))
    config["clusterDNS"] = [layout.host_address]
    # The VM has 2 GiB: keep some for the kernel and the page cache of the NFS client.
    config["evictionHard"]["memory.available"] = "64Mi"
    config["systemReserved"] = {"memory": "256Mi"}
    return json.dumps(config, indent=2)


def kube_proxy_config(layout: GuestLayout) -> str:
    """kube-proxy in the VM: iptables mode, named after the VM node, masquerading outside every node's pod range."""
    return nc.kube_proxy_config(RUN / "node.kubeconfig", 10249, 10256, layout.name, CLUSTER_CIDR)


def cni_conflist(layout: GuestLayout) -> str:
    """The VM's pod network (``RUN/cni``): the same bridge network as the host's node, on its own range."""
    return nc.cni_conflist(pod_subnet(layout.index))


def start_sh(layout: GuestLayout) -> str:
    """The VM's start script: containerd, then kubelet and kube-proxy; it returns (and the VM powers off) when the
    kubelet exits.
    """
    kubelet_args = [
        f"--config={RUN / 'kubelet.json'}",
        f"--kubeconfig={RUN / 'node.kubeconfig'}",
        f"--hostname-override={layout.name}",
        f"--node-ip={layout.address}",
        "--cert-dir=/var/lib/kubelet/pki",
        "--v=1",
    ]
    return f"""#!/bin/bash
# Written by rig/vm/guest.py for one boot of the VM node.
set -u
log={RUN}/log
mkdir -p "$log" /run/containerd /var/lib/kubelet
echo "start.sh: containerd at $(cut -d' ' -f1 /proc/uptime) s"
containerd --config {RUN}/containerd.toml >"$log/containerd.log" 2>&1 &
for _ in $(seq 300); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.2; done
echo "start.sh: kubelet and kube-proxy at $(cut -d' ' -f1 /proc/uptime) s"
{BIN}/kube-proxy --config={RUN}/kube-proxy.json --v=1 >"$log/kube-proxy.log" 2>&1 &
{BIN}/kubelet {shlex.join(kubelet_args)} >"$log/kubelet.log" 2>&1
echo "start.sh: the kubelet exited ($?)"
"""
