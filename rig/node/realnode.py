"""A real single-node Kubernetes for the node tier: the control plane of rig/cluster.py (without kwok) plus
containerd (CRI), runc, a CNI bridge, kubelet and kube-proxy on this machine, and dockerd when no Docker engine runs.

``python -m rig.node.realnode up|down --dir DIR`` is ``make node-up`` / ``make node-down``. Needs root and the
Debian packages of scripts/node/packages.sh (installed when missing). The directory holds ``kubeconfig``, ``pids``,
``node.env`` (what scripts/node/import.sh needs) and every log. Every process is started in its own session and
stopped by pid; before containerd stops, every pod sandbox is stopped and removed through the CRI (crictl), so no
container, network namespace or address outlives the node. One node per machine: a second one says so and stops.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rig import cluster as cp
from rig.node import nodeconfig as nc
from rig.node.teardown import FIRST, RUN_DIR, claim_machine, cleanup, down, remove_pods

CACHE = Path(os.environ.get("SHAREDVOL_CACHE", Path.home() / ".cache" / "sharedvol"))
READY_TIMEOUT_S = 120.0
COREDNS_BUILD = cp.REPO / "scripts" / "vm" / "go-build.sh"  # builds CoreDNS among the VM node's programs


def node_ip() -> str:
    """The machine's address on its default route (a UDP connect sends nothing; a unicast documentation address,
    since connecting to a broadcast one is refused without SO_BROADCAST).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("198.51.100.1", 9))
        return str(s.getsockname()[0])


def _versions() -> dict[str, str]:
    return cp.read_env(cp.REPO / "scripts" / "controlplane" / "versions.env")


def say(text: str) -> None:
    """A progress line on stderr."""
    print(f"[node] {text}", file=sys.stderr, flush=True)


def docker_engine_answers() -> bool:
    """True when ``docker info`` reaches an engine."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@dataclass
class RealNode(cp.ControlPlane):
    """The control plane plus one real node named ``sharedvol-node``.

    Attributes:
        start_dockerd: start dockerd when no engine answers (images are built with it; stopped with the node).
    """

    nodes: int = 0
    kwok: bool = False
    start_dockerd: bool = True
    layout: nc.NodeLayout = field(init=False)
    _kubelet_started: datetime.datetime = field(init=False, default=datetime.datetime.min.replace(tzinfo=datetime.UTC))

    def __post_init__(self) -> None:
        self.address = node_ip()
        self.layout = nc.NodeLayout(
            workdir=self.workdir,
            run_dir=RUN_DIR,
            containerd_root=CACHE / "node" / "containerd",
            node_ip=self.address,
            pause_image=_versions()["PAUSE_IMAGE"],
        )

    @property
    def node_names(self) -> list[str]:
        """The one real node."""
        return [nc.NODE_NAME]

    def _start(self) -> None:
        if os.geteuid() != 0:
            raise cp.ControlPlaneError("a real node needs root (containerd, kubelet, iptables): run as root")
        packages = subprocess.run([str(cp.REPO / "scripts" / "node" / "packages.sh")], check=False)
        if packages.returncode != 0:
            raise cp.ControlPlaneError("the node's Debian packages are missing and could not be installed (above)")
        claim_machine(self.workdir)
        say(f"control plane (etcd, kube-apiserver on {self.address}, controller-manager, scheduler)")
        ca, client_crt, client_key = nc.kubelet_client_certs(self.workdir / "certs")
        self.apiserver_args = [
            f"--kubelet-client-certificate={client_crt}",
            f"--kubelet-client-key={client_key}",
            "--kubelet-preferred-address-types=InternalIP",
            *self.apiserver_args,
        ]
        super()._start()
        token = self._tokens()["node"][0]
        node_kubeconfig = cp.write_kubeconfig(
            self.workdir / "node.kubeconfig", self.server, token, self.ca_file, "node"
        )
        (self.workdir / "kubeconfig").unlink(missing_ok=True)
        (self.workdir / "kubeconfig").symlink_to("admin.kubeconfig")
        started_dockerd = self.start_dockerd and not docker_engine_answers()
        if started_dockerd:
            say("no Docker engine answers: starting dockerd (images are built with it; stopped with the node)")
            self._spawn("dockerd", ["--storage-driver=overlay2"], exe=shutil.which("dockerd") or "dockerd")
        say(f"CoreDNS on {self.address}:53 (the cluster's DNS)")
        self._start_coredns(node_kubeconfig)
        say("containerd (CRI), CNI bridge, kubelet, kube-proxy")
        self._start_containerd()
        self._start_kubelet(node_kubeconfig, ca)
        proxy_config = self.workdir / "kube-proxy.json"
        proxy_config.write_text(nc.kube_proxy_config(node_kubeconfig, cp.free_port(), cp.free_port()))
        self._spawn("kube-proxy", [f"--config={proxy_config}", "--v=1"])
        self._write_env()
        self._wait_node_ready()
        if started_dockerd:
            self._wait_for(docker_engine_answers, "dockerd to answer", 60)

    def _start_coredns(self, kubeconfig: Path) -> None:
        """CoreDNS from scripts/vm/go-build.sh's cache, bound to the node's address; waits for its /ready."""
        built = subprocess.run([str(COREDNS_BUILD)], check=False, stdout=subprocess.PIPE, text=True)
        if built.returncode != 0:
            raise cp.ControlPlaneError(f"building CoreDNS failed (exit {built.returncode}): {COREDNS_BUILD}, above")
        ready_port = cp.free_port()
        config = self.workdir / "Corefile"
        config.write_text(nc.corefile(self.address, ready_port, kubeconfig))
        self._spawn("coredns", ["-conf", str(config)], exe=str(Path(built.stdout.split()[-1]) / "coredns"))
        self._wait_for(lambda: cp.answers(f"http://127.0.0.1:{ready_port}/ready"), "CoreDNS's /ready", 180)

    def _start_containerd(self) -> None:
        subprocess.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], check=False)
        self.layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (self.layout.cni_conf_dir / "10-sharedvol.conflist").write_text(nc.cni_conflist())
        config = self.workdir / "containerd.toml"
        config.write_text(nc.containerd_toml(self.layout))
        self.layout.containerd_socket.unlink(missing_ok=True)
        self._spawn("containerd", ["--config", str(config)], exe=shutil.which("containerd") or "containerd")
        self._wait_for(self.layout.containerd_socket.exists, "containerd's socket", 30)
        pause = self.bin_dir / "pause.tar"
        have = self._ctr("images", "ls", "-q", f"name=={self.layout.pause_image}").stdout.split()
        if self.layout.pause_image not in have:
            with pause.open("rb") as tar:
                subprocess.run(self._ctr_cmd("images", "import", "-"), stdin=tar, check=True, capture_output=True)

    def _start_kubelet(self, kubeconfig: Path, client_ca: Path) -> None:
        self.layout.kubelet_root.mkdir(parents=True, exist_ok=True)
        self._kubelet_started = datetime.datetime.now(datetime.UTC)
        config = self.workdir / "kubelet.json"
        config.write_text(nc.kubelet_config(self.layout, cp.free_port(), cp.free_port(), client_ca))
        self._spawn(
            "kubelet",
            [
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={nc.NODE_NAME}",
                f"--node-ip={self.address}",
                f"--root-dir={self.layout.kubelet_root}",
                f"--cert-dir={self.workdir / 'kubelet-pki'}",
                "--v=1",
            ],
        )

    def _write_env(self) -> None:
        (self.workdir / "node.env").write_text(
            f"CONTAINERD_ADDRESS={self.layout.containerd_socket}\nBIN_DIR={self.bin_dir}\n"
            f"NODE_NAME={nc.NODE_NAME}\nKUBECONFIG={self.kubeconfig}\n"
        )

    def _wait_node_ready(self) -> None:
        from kubernetes import client, config

        from rig import kwait

        # A node directory used before keeps its etcd, and so a Node object whose Ready condition is left over from
        # the last run: only a heartbeat from this kubelet counts.
        since = self._kubelet_started - datetime.timedelta(seconds=1)

        def ready(node: object) -> bool:
            conditions = getattr(getattr(node, "status", None), "conditions", None) or []
            return any(
                c.type == "Ready" and c.status == "True" and c.last_heartbeat_time and c.last_heartbeat_time >= since
                for c in conditions
            )

        core = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))
        self._wait_for(lambda: bool(core.list_node().items), "the kubelet to register its Node", READY_TIMEOUT_S)
        kwait.until(core.list_node, ready, timeout=READY_TIMEOUT_S, what="Node Ready", **kwait.named(nc.NODE_NAME))
        # Pods in "default" are admitted only once its ServiceAccount exists (made by a controller).
        kwait.until(
            core.list_namespaced_service_account,
            lambda sa: True,
            "default",
            what="ServiceAccount default",
            field_selector="metadata.name=default",
        )

    def _wait_for(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        cp.wait_for(check, what, timeout, self._check_alive, f"logs in {self.workdir}")

    def _ctr_cmd(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.layout.containerd_socket), "-n", "k8s.io", *args]

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._ctr_cmd(*args), capture_output=True, text=True, check=False)

    def stop(self) -> None:
        """Stop kube-proxy and the kubelet, remove every pod through the CRI, then stop the rest by pid."""
        for proc in [p for p in self.processes if p.name in FIRST]:
            cp.stop_pid(proc.popen.pid, proc.popen)
        if any(p.name == "containerd" and p.popen.poll() is None for p in self.processes):
            remove_pods(self.bin_dir, self.layout.containerd_socket)
        self.processes = [p for p in self.processes if p.name not in FIRST]
        super().stop()
        cleanup(self.workdir)


def main(argv: list[str] | None = None) -> int:
    """``python -m rig.node.realnode up|down --dir DIR``."""
    parser = argparse.ArgumentParser(prog="python -m rig.node.realnode")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", default=str(cp.REPO / ".node"))
    args = parser.parse_args(argv)
    workdir = Path(args.dir).resolve()
    if args.action == "down":
        return down(workdir)
    node = RealNode(workdir=workdir)
    try:
        node.start()
    except cp.ControlPlaneError as e:
        print(f"node-up: {e}", file=sys.stderr)
        return 1
    print(f"node {nc.NODE_NAME} Ready in {node.startup_seconds:.1f} s: {node.server}")
    print(f"export KUBECONFIG={workdir / 'kubeconfig'}")
    print(f"images: make image (or scripts/node/import.sh {workdir} IMAGE...); stop it with: make node-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
