"""The configuration files of the real node: containerd, CNI, kubelet, kube-proxy, and the certificates that let the
API server reach the kubelet (logs, exec). Pure functions of a :class:`NodeLayout`; rig/node/realnode.py runs them.

Every quirk of these machines is here with its reason (``../shared/docs/realnode.md``): cgroup v1 with the cgroupfs
driver, ``restrict_oom_score_adj`` (no CAP_SYS_RESOURCE), the CNI firewall plugin (dockerd's FORWARD policy is DROP),
a local pause image, and image garbage collection off (there is no registry to pull an image back from).
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "sharedvol-node"
POD_SUBNET = "10.88.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
CNI_BIN_DIR = "/usr/lib/cni"


@dataclass(frozen=True)
class NodeLayout:
    """Where the node's files and sockets live.

    Attributes:
        workdir: the node directory (kubeconfig, pids, logs, configs); ``make node-up`` uses ``.node/``.
        run_dir: sockets and runtime state (machine-wide: one node per machine), e.g. ``/run/sharedvol-node``.
        containerd_root: containerd's images and snapshots; kept across node-up/down so imported images stay.
        node_ip: the machine's non-loopback address (the API server advertises it; the kubelet reports it).
        pause_image: the sandbox image's name (built by scripts/controlplane/build.sh).
    """

    workdir: Path
    run_dir: Path
    containerd_root: Path
    node_ip: str
    pause_image: str

    @property
    def containerd_socket(self) -> Path:
        """Containerd's gRPC socket (CRI included)."""
        return self.run_dir / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        """The CNI configuration directory containerd reads."""
        return self.workdir / "cni"

    @property
    def kubelet_root(self) -> Path:
        """The kubelet's root directory (pod volumes are mounted under it)."""
        return self.workdir / "kubelet"


def containerd_toml(layout: NodeLayout) -> str:
    """Containerd 1.6 configuration: CRI with runc on cgroupfs, the local pause image, CNI from Debian."""
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.run_dir / "state"}"

[grpc]
  address = "{layout.containerd_socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{layout.pause_image}"
  # runc cannot give the pause container a negative oom_score_adj without CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{layout.cni_conf_dir}"
"""


def cni_conflist(subnet: str = POD_SUBNET) -> str:
    """A bridge network with host-local addresses from ``subnet`` (each node its own range), port mappings, and the
    firewall plugin for egress.
    """
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "sharedvol",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "sharedvol0",
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                # dockerd sets the FORWARD policy to DROP: this plugin admits the pods' traffic.
                {"type": "firewall"},
            ],
        },
        indent=2,
    )


def kubelet_config(layout: NodeLayout, port: int, healthz_port: int, client_ca: Path) -> str:
    """KubeletConfiguration: cgroup v1 allowed, cgroupfs, x509 + webhook auth, image GC off."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": layout.node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local",
        # CoreDNS on the node's address (corefile): Services and pods by name, as JobSet's headless Service
        # (PET_MASTER_ADDR of a TrainJob) needs; everything else forwarded to the machine's resolvers.
        "clusterDNS": [layout.node_ip],
        "failSwapOn": False,
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        # No registry: an image the kubelet deleted could never come back.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # Disk pressure would make the kubelet delete images (the pause image included) and evict pods: on a test
        # machine whose disk is nearly full that turned every later pod into Pending. Only a truly full disk counts.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "512Mi", "imagefs.available": "512Mi"},
        "podPidsLimit": 4096,
        "maxPods": 50,
    }
    return json.dumps(config, indent=2)


def corefile(bind: str, ready_port: int, kubeconfig: Path) -> str:
    """CoreDNS's configuration: the cluster's names (``cluster.local``, pods by address) from the API server with
    ``kubeconfig``, on ``bind`` port 53 only (the VM node's CoreDNS binds another address), the rest forwarded to
    the machine's resolvers; ``/ready`` on 127.0.0.1:``ready_port``.
    """
    return f""".:53 {{
    bind {bind}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} node
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . /etc/resolv.conf
    cache 5
}}
"""


def kube_proxy_config(
    kubeconfig: Path, metrics_port: int, healthz_port: int, node_name: str = NODE_NAME, cluster_cidr: str = POD_SUBNET
) -> str:
    """KubeProxyConfiguration: iptables mode, conntrack sysctls left alone; ``cluster_cidr``: every node's pods."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "clusterCIDR": cluster_cidr,
        "bindAddress": "0.0.0.0",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return json.dumps(config, indent=2)


def kubelet_client_certs(certs: Path) -> tuple[Path, Path, Path]:
    """A CA, and a client certificate it signs for the API server (group system:masters) to call the kubelet.

    Returns:
        (ca certificate, client certificate, client key) paths under ``certs``; reused when present.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_crt, crt = certs / "kubelet-ca.crt", certs / "apiserver-kubelet-client.crt"
    key_path = certs / "apiserver-kubelet-client.key"
    if ca_crt.exists() and crt.exists() and key_path.exists():
        return ca_crt, crt, key_path
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sharedvol-node-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client"),
        ]
    )
    client = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    certs.mkdir(parents=True, exist_ok=True)
    ca_crt.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    crt.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return ca_crt, crt, key_path
