"""The second node: a QEMU VM (software emulation, 1 vCPU, 2 GiB) booting Debian's kernel, which has an NFS client,
joined to the control plane of the real node (rig/node/realnode.py) as node ``sharedvol-vm``; a third node is a
second VM, ``sharedvol-vm2`` (``VMNode(index=2)``: its own tap, address and pod range on the same bridge, the same
cached disks), so that two kernels mount one claim.

Inside: containerd, runc, the CNI bridge on its pod range, kubelet and kube-proxy (rig/vm/guest.py). On the host:
the bridge, tap and routes (rig/vm/network.py) and CoreDNS, the cluster's DNS, on the bridge address (the
StorageClass names the NFS server by its Service name). The host node cannot mount NFS, so it is labelled and
tainted ``sharedvol.io/no-nfs-client`` (docs/nfs.md): NFS pods and the CSI pods go to the VM.

``python -m rig.vm.vmnode up [--index N]|down --node-dir DIR`` is ``make node-up NODES=2`` (``NODES=3``: a second
VM too) / ``make node-down`` (after the real node's own up / before its down). Every process is started in its own
session and stopped by pid; ``down`` removes the bridge and the taps. The images come from scripts/vm (cached in
~/.cache/sharedvol/vm), and the project's from the Docker engine (:func:`project_images`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rig import cluster as cp
from rig import images
from rig.node import nodeconfig as nc
from rig.vm import guest, network

SCRIPTS = cp.REPO / "scripts" / "vm"
READY_TIMEOUT_S = 600.0
NO_NFS = "sharedvol.io/no-nfs-client"
MEMORY_MIB = 2048


def project_images() -> list[str]:
    """The project's images the VM's disk carries, those the Docker engine has (the node session builds them;
    ``make image`` for people): the fallback provisioner (k8s/fallback's DaemonSet runs a pod on every node) and
    the steps' data plane without torch (the step image does not fit the VM: BENCHMARKS.md)."""
    found = []
    for image, role in (
        (images.PROVISIONER_IMAGE, "the VM node will not run k8s/fallback's pod"),
        (images.DATAPLANE_IMAGE, "the VM node cannot check the steps' data plane"),
    ):
        inspected = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
        if inspected.returncode == 0:
            found.append(image)
        else:
            say(f"{image} is not built (make image): {role}")
    return found


def build(pause_tar: Path) -> dict[str, Path]:
    """Build or reuse the VM's pieces; returns their paths (``rootfs`` dir, ``disk`` image, ``gobin`` dir)."""

    def run(*cmd: str) -> Path:
        out = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, text=True, check=False)
        if out.returncode != 0:
            raise cp.ControlPlaneError(f"{Path(cmd[0]).name} failed (exit {out.returncode}); see its output above")
        return Path(out.stdout.strip().splitlines()[-1])

    return {
        "rootfs": run(str(SCRIPTS / "rootfs.sh")),
        "gobin": run(str(SCRIPTS / "go-build.sh")),
        "disk": run(str(SCRIPTS / "disk.sh"), str(pause_tar), *project_images()),
    }


def built_image_ids() -> dict[str, str]:
    """The images scripts/vm/images.sh built (name -> image id, ``sha256:`` of its config), as the CRI reports them."""
    import json
    import tarfile

    images = Path(
        subprocess.run(
            [str(SCRIPTS / "images.sh"), "--print-dir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    ids = {}
    for line in (images / "images.txt").read_text().splitlines():
        name, tar = line.split()
        with tarfile.open(images / tar) as archive:
            member = archive.extractfile("./manifest.json") or archive.extractfile("manifest.json")
            assert member is not None
            (manifest,) = json.load(member)
        ids[name] = "sha256:" + manifest["Config"].removesuffix(".json")
        if "/" not in name.split(":")[0]:
            ids[f"docker.io/library/{name}"] = ids[name]
    return ids


def say(text: str) -> None:
    """A progress line on stderr."""
    print(f"[vm] {text}", file=sys.stderr, flush=True)


@dataclass
class VMNode:
    """The VM node of the real node in ``node_dir`` (its node.kubeconfig, certs and node.env are reused).

    Attributes:
        node_dir: the real node's directory.
        bin_dir: the control plane's bin directory (kubelet, kube-proxy, kubectl; shared read-only with the VM).
    """

    node_dir: Path
    bin_dir: Path
    index: int = 1
    processes: list[cp.Process] = field(default_factory=list)
    startup_seconds: float = 0.0

    @property
    def name(self) -> str:
        """The VM's Node name."""
        return guest.node_name(self.index)

    @property
    def workdir(self) -> Path:
        """Logs, pids, CoreDNS's Corefile (the first VM's); ``run/`` is the VM's 9p share."""
        return workdir(self.node_dir, self.index)

    @property
    def run_dir(self) -> Path:
        """The directory the VM sees at /sharedvol/run (its configurations in, its logs out)."""
        return self.workdir / "run"

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Kubectl as the cluster's admin."""
        return cp.kubectl(self.bin_dir, self.node_dir / "admin.kubeconfig", *args, check=check)

    def start(self) -> VMNode:
        """Build what is missing, then network, CoreDNS, the VM; wait for its Node to be Ready. Stops all on failure."""
        running = cp.alive_pids(self.workdir)
        if running:
            raise cp.ControlPlaneError(f"a VM node already runs from {self.workdir}: make node-down first")
        if self.index > 1 and not cp.alive_pids(workdir(self.node_dir, 1)):
            first = guest.node_name(1)
            raise cp.ControlPlaneError(f"{self.name} joins the first VM node's network: start {first} first")
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _start(self) -> None:
        subprocess.run([str(SCRIPTS / "packages.sh")], check=True)
        parts = build(self.bin_dir / "pause.tar")
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        (self.run_dir / "log").mkdir(parents=True)
        tap = network.tap(self.index)
        if self.index == 1:
            say(f"network: bridge {network.BRIDGE} {network.HOST_ADDRESS}, tap {tap}, route to the VM's pods")
            network.up()
            self._start_coredns(parts["gobin"])
        else:
            say(f"network: tap {tap} on {network.BRIDGE}, route to {self.name}'s pods")
            network.add_vm(self.index)
        self._write_guest_files()
        say(f"booting {self.name} (TCG, 1 vCPU, {MEMORY_MIB} MiB): console in {self.workdir / 'console.log'}")
        self._start_qemu(parts["rootfs"], parts["disk"])
        self._mark_host_node()
        self._wait_ready()

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.processes.append(cp.Process(name, popen, log))
        (self.workdir / "pids").write_text("".join(f"{p.popen.pid} {p.name}\n" for p in self.processes))

    def _start_coredns(self, gobin: Path) -> None:
        ready_port = cp.free_port()
        corefile = self.workdir / "Corefile"
        corefile.write_text(nc.corefile(network.HOST_ADDRESS, ready_port, self.node_dir / "node.kubeconfig"))
        self._spawn("coredns", [str(gobin / "coredns"), "-conf", str(corefile)])
        ready, log = f"http://127.0.0.1:{ready_port}/ready", f"log {self.workdir / 'coredns.log'}"
        cp.wait_for(lambda: cp.answers(ready), "CoreDNS's /ready", 60, self._check_alive, log)

    def _write_guest_files(self) -> None:
        pause_image = (self.bin_dir / "pause.image").read_text().strip()
        layout = guest.GuestLayout(network.vm_address(self.index), network.HOST_ADDRESS, pause_image, self.index)
        run = self.run_dir
        (run / "certs").mkdir()
        shutil.copy(self.node_dir / "certs" / "kubelet-ca.crt", run / "certs" / "kubelet-ca.crt")
        shutil.copy(self.node_dir / "node.kubeconfig", run / "node.kubeconfig")
        (run / "containerd.toml").write_text(guest.containerd_toml(layout))
        (run / "kubelet.json").write_text(guest.kubelet_config(layout))
        (run / "kube-proxy.json").write_text(guest.kube_proxy_config(layout))
        (run / "cni").mkdir()
        (run / "cni" / "10-sharedvol.conflist").write_text(guest.cni_conflist(layout))
        (run / "start.sh").write_text(guest.start_sh(layout))
        (run / "start.sh").chmod(0o755)

    def _start_qemu(self, rootfs: Path, disk: Path) -> None:
        append = (
            f"console=ttyS0 panic=1 quiet sharedvol.ip={network.vm_address(self.index)}/{network.PREFIX} "
            f"sharedvol.gw={network.HOST_ADDRESS} sharedvol.name={self.name}"
        )
        # fmt: off
        cmd = [
            shutil.which("qemu-system-x86_64") or "qemu-system-x86_64",
            "-accel", "tcg,thread=single", "-cpu", "max", "-m", str(MEMORY_MIB), "-smp", "1",
            "-display", "none", "-vga", "none", "-no-reboot", "-monitor", "none",
            "-kernel", str(rootfs / "vmlinuz"), "-initrd", str(rootfs / "initrd.gz"), "-append", append,
            # -snapshot: the cached disks are never written; the VM's writes go to a temporary file.
            "-snapshot",
            "-drive", f"file={rootfs / 'root.img'},format=raw,if=virtio",
            "-drive", f"file={disk},format=raw,if=virtio",
            "-netdev", f"tap,id=net0,ifname={network.tap(self.index)},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=net0,mac={network.mac(self.index)}",
            "-virtfs", f"local,path={self.bin_dir},mount_tag=bin,security_model=none,readonly=on",
            "-virtfs", f"local,path={self.run_dir},mount_tag=run,security_model=none",
            "-serial", f"file:{self.workdir / 'console.log'}",
        ]
        # fmt: on
        self._spawn("qemu-system-x86_64", cmd)

    def _mark_host_node(self) -> None:
        """The host's kernel has no NFS client: label and taint its node so NFS pods and the CSI pods avoid it."""
        self.kubectl("label", "node", nc.NODE_NAME, f"{NO_NFS}=true", "--overwrite")
        self.kubectl("taint", "node", nc.NODE_NAME, f"{NO_NFS}=true:NoSchedule", "--overwrite")

    def _wait_ready(self) -> None:
        from kubernetes import client, config

        from rig import kwait

        core = client.CoreV1Api(config.new_client_from_config(str(self.node_dir / "admin.kubeconfig")))

        def registered() -> bool:
            self._check_alive()
            return bool(core.list_node(field_selector=f"metadata.name={self.name}").items)

        deadline = time.monotonic() + READY_TIMEOUT_S
        while not registered():
            if time.monotonic() > deadline:
                raise cp.ControlPlaneError(
                    f"the VM's kubelet did not register in {READY_TIMEOUT_S:.0f} s; console "
                    f"{self.workdir / 'console.log'}, logs in {self.run_dir / 'log'}"
                )
            time.sleep(1)  # the VM boots with nothing to watch until its kubelet registers: bounded back-off

        def ready(node: object) -> bool:
            conditions = getattr(getattr(node, "status", None), "conditions", None) or []
            return any(c.type == "Ready" and c.status == "True" for c in conditions)

        kwait.until(
            core.list_node, ready, timeout=max(30.0, deadline - time.monotonic()), what=f"VM node {self.name} Ready",
            **kwait.named(self.name),
        )  # fmt: skip

    def _check_alive(self) -> None:
        for proc in self.processes:
            if proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace").splitlines()[-15:]
                console = self.workdir / "console.log"
                if console.exists():
                    tail += ["--- console:", *console.read_text(errors="replace").splitlines()[-20:]]
                raise cp.ControlPlaneError(f"{proc.name} exited with {proc.popen.returncode}:\n" + "\n".join(tail))

    def stop(self) -> None:
        """Stop the VM (and, for the first, CoreDNS) by pid and delete its Node; the first VM also untaints the host
        node and removes the whole network, a further one only its tap and route."""
        for proc in reversed(self.processes):
            if proc.popen.poll() is None:
                cp.stop_pid(proc.popen.pid, proc.popen)
        self.processes.clear()
        (self.workdir / "pids").unlink(missing_ok=True)
        forget_node(self.bin_dir, self.node_dir, self.index)
        if self.index == 1:
            network.down()
        else:
            network.remove_vm(self.index)


def workdir(node_dir: Path, index: int) -> Path:
    """VM ``index``'s directory in the real node's: ``vm`` for the first, ``vm2`` for the second, ..."""
    return node_dir / ("vm" if index == 1 else f"vm{index}")


def forget_node(bin_dir: Path, node_dir: Path, index: int) -> None:
    """Delete VM ``index``'s Node object; for the first VM, also take the no-NFS label and taint off the host node
    (the API may be gone)."""
    admin = node_dir / "admin.kubeconfig"
    if not admin.exists():
        return
    name = guest.node_name(index)
    cp.kubectl(bin_dir, admin, "delete", "node", name, "--ignore-not-found", "--wait=false", check=False)
    if index == 1:
        cp.kubectl(bin_dir, admin, "taint", "node", nc.NODE_NAME, f"{NO_NFS}:NoSchedule-", check=False)
        cp.kubectl(bin_dir, admin, "label", "node", nc.NODE_NAME, f"{NO_NFS}-", check=False)


def down(node_dir: Path) -> int:
    """``make node-down``'s first part: stop every VM node recorded in ``node_dir`` (the last first) and remove
    their network."""
    env = node_dir / "node.env"
    for index in range(guest.MAX_VMS, 0, -1):
        pids = workdir(node_dir, index) / "pids"
        if pids.exists():
            cp.stop_recorded(pids, f"VM node {guest.node_name(index)}")
        if env.exists() and (index == 1 or pids.exists()):
            forget_node(Path(cp.read_env(env)["BIN_DIR"]), node_dir, index)
    if network.exists():
        network.down()
        print(f"removed {network.BRIDGE} and its taps")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rig.vm.vmnode up|down --node-dir DIR``."""
    parser = argparse.ArgumentParser(prog="python -m rig.vm.vmnode")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--node-dir", default=str(cp.REPO / ".node"))
    parser.add_argument("--index", type=int, default=1, choices=range(1, guest.MAX_VMS + 1), help="which VM (up)")
    args = parser.parse_args(argv)
    node_dir = Path(args.node_dir).resolve()
    if args.action == "down":
        return down(node_dir)
    env = node_dir / "node.env"
    if not env.exists():
        print(f"node-up: no real node runs in {node_dir}: the VM joins its control plane", file=sys.stderr)
        return 1
    vm = VMNode(node_dir=node_dir, bin_dir=Path(cp.read_env(env)["BIN_DIR"]), index=args.index)
    try:
        vm.start()
    except (cp.ControlPlaneError, subprocess.CalledProcessError) as e:
        print(f"node-up: the VM node: {e}", file=sys.stderr)
        return 1
    print(f"node {vm.name} Ready in {vm.startup_seconds:.1f} s (console: {vm.workdir / 'console.log'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
