"""A real Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, started from the binaries ``scripts/controlplane/build.sh`` caches.

Used by the pytest fixtures in ``tests/conftest.py`` and by ``make cluster-up`` / ``make cluster-down``
(``python -m rig.cluster up|down --dir DIR``). Every process is started in its own session and stopped by
pid. Pods never really run (there is no kubelet); kwok moves pods bound to its nodes to Running.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rig.paths import REPO

BUILD_SCRIPT = REPO / "scripts" / "controlplane" / "build.sh"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
READY_TIMEOUT_S = 90.0
STOP_GRACE_S = 5.0


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message names the process and its log."""


def binary_dir() -> Path:
    """The directory holding the cached binaries, building them first when they are missing."""
    env = os.environ.get("SHAREDVOL_CONTROLPLANE_BIN")
    if env and (Path(env) / "kube-apiserver").exists():
        return Path(env)
    out = subprocess.run([str(BUILD_SCRIPT)], check=False, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise ControlPlaneError(f"building the control plane failed (exit {out.returncode}); see its output above")
    return Path(out.stdout.strip().splitlines()[-1])


def read_env(path: Path) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of ``path`` (``node.env``, ``versions.env``...); ``#`` lines are comments."""
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def answers(url: str) -> bool:
    """True when ``url`` answers 200 within 2 s (a probe of a process's HTTP endpoint: /ready, /healthz)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:  # URLError is one
        return False


def wait_for(check: Callable[[], bool], what: str, timeout: float, alive: Callable[[], None], where: str) -> None:
    """Return once ``check()`` holds, calling ``alive()`` (which raises when a process it started died) before
    each try; a short bounded back-off between tries, for what another process makes with no event to watch (a
    socket, a file, an HTTP endpoint, a registration).

    Raises:
        ControlPlaneError: ``timeout`` passed first; the message names ``what`` and ``where`` to look.
    """
    deadline = time.monotonic() + timeout
    while not check():
        alive()
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"timed out after {timeout:.0f} s waiting for {what}; {where}")
        time.sleep(0.2)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_kubeconfig(path: Path, server: str, token: str, ca_file: Path | None, user: str = "user") -> Path:
    """Write a kubeconfig with one cluster, one token user and one current context."""
    cluster: dict[str, object] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_file.read_bytes()).decode()
    else:
        cluster["insecure-skip-tls-verify"] = True
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sharedvol-test", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "sharedvol-test", "user": user}}],
        "current-context": user,
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


@dataclass
class Process:
    """One started control-plane process."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on loopback ports.

    Attributes:
        workdir: where certificates, tokens, etcd data, kubeconfigs and logs go.
        nodes: how many kwok-managed Nodes to create (named ``kwok-node-<i>``).
        address: where the API server listens and what it advertises (a real node needs a non-loopback one).
        kwok: run kwok and create its Nodes (False for a real node: rig/node/realnode.py).
        apiserver_args: extra kube-apiserver flags.
    """

    workdir: Path
    nodes: int = 1
    bin_dir: Path = field(default_factory=binary_dir)
    address: str = "127.0.0.1"
    kwok: bool = True
    apiserver_args: list[str] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    server: str = ""
    startup_seconds: float = 0.0

    # ----- files
    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (group ``system:masters``)."""
        return self.workdir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The apiserver's self-signed serving certificate bundle, used as the CA."""
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def node_names(self) -> list[str]:
        """The kwok-managed Nodes this control plane creates."""
        return [f"kwok-node-{i}" for i in range(self.nodes)]

    def _tokens(self) -> dict[str, tuple[str, str]]:
        path = self.workdir / "tokens.json"
        if path.exists():
            return {k: (v[0], v[1]) for k, v in json.loads(path.read_text()).items()}
        tokens = {
            "admin": (uuid.uuid4().hex, "system:masters"),
            "system:kube-controller-manager": (uuid.uuid4().hex, ""),
            "system:kube-scheduler": (uuid.uuid4().hex, ""),
            "kwok": (uuid.uuid4().hex, "system:masters"),
            # the real node's kubelet and kube-proxy (there is no Node authorizer here: a test cluster)
            "node": (uuid.uuid4().hex, "system:masters"),
        }
        path.write_text(json.dumps(tokens))
        return tokens

    # ----- life cycle
    def start(self) -> ControlPlane:
        """Start every process, wait for ``/readyz``, create the kwok nodes; stop all on any failure.

        Raises:
            ControlPlaneError: one is already running from this directory (its pids file names live processes),
                or a process failed to start.
        """
        running = alive_pids(self.workdir)
        if running:
            names = ", ".join(f"{name} (pid {pid})" for pid, name in running)
            raise ControlPlaneError(
                f"a cluster is already running from {self.workdir}: {names}; "
                f"stop it first (make cluster-down / make node-down), or use another directory"
            )
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        sa_key = self._service_account_key()
        tokens = self._tokens()
        token_file = self.workdir / "tokens.csv"
        token_file.write_text(
            "".join(
                f'{tok},{user},{user},"{groups}"\n' if groups else f"{tok},{user},{user}\n"
                for user, (tok, groups) in tokens.items()
            )
        )
        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        self._spawn(
            "etcd",
            [
                "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync", "--log-level", "warn",
            ],
        )  # fmt: skip
        self.server = f"https://{self.address}:{api_port}"
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={api_port}",
                f"--cert-dir={certs}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--authorization-mode=RBAC",
                f"--token-auth-file={token_file}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--storage-media-type=application/json",
                "--v=1",
                *self.apiserver_args,
            ],
        )
        self._wait_ready(tokens["admin"][0])
        write_kubeconfig(self.kubeconfig, self.server, tokens["admin"][0], self.ca_file, "admin")
        kcm = write_kubeconfig(
            self.workdir / "kcm.kubeconfig", self.server, tokens["system:kube-controller-manager"][0],
            self.ca_file, "system:kube-controller-manager",
        )  # fmt: skip
        sched = write_kubeconfig(
            self.workdir / "scheduler.kubeconfig", self.server, tokens["system:kube-scheduler"][0],
            self.ca_file, "system:kube-scheduler",
        )  # fmt: skip
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kcm}",
                f"--authentication-kubeconfig={kcm}",
                f"--authorization-kubeconfig={kcm}",
                "--leader-elect=false",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=true",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--controllers=*",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={sched}",
                f"--authentication-kubeconfig={sched}",
                f"--authorization-kubeconfig={sched}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
        )
        if not self.kwok:
            return
        kwok = write_kubeconfig(self.workdir / "kwok.kubeconfig", self.server, tokens["kwok"][0], self.ca_file, "kwok")
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={kwok}",
                "--manage-all-nodes=false",
                "--node-lease-duration-seconds=40",  # renew node leases, so nodes stay Ready all session
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                "--node-ip=10.244.0.1",
                "--cidr=10.244.0.0/16",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
        for name in self.node_names:
            self._create_node(name)

    def stop(self) -> None:
        """Stop every process this object started, by pid, newest first, each before the next."""
        for proc in reversed(self.processes):
            if proc.popen.poll() is None:
                stop_pid(proc.popen.pid, proc.popen)
        self.processes.clear()

    # ----- helpers
    def _spawn(self, name: str, args: list[str], exe: str | None = None) -> None:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [exe or str(self.bin_dir / name), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append(Process(name, popen, log))
        (self.workdir / "pids").write_text("".join(f"{p.popen.pid} {p.name}\n" for p in self.processes))

    def _check_alive(self) -> None:
        for proc in self.processes:
            if proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace").splitlines()[-15:]
                raise ControlPlaneError(
                    f"{proc.name} exited with {proc.popen.returncode}; log {proc.log}:\n" + "\n".join(tail)
                )

    def _wait_ready(self, token: str) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            req = urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            # The apiserver is a separate process with no event to watch before it listens: a short,
            # bounded back-off between probes is the only way to learn it is up.
            time.sleep(0.2)
        raise ControlPlaneError(f"kube-apiserver was not ready after {READY_TIMEOUT_S:.0f} s ({last})")

    def _service_account_key(self) -> Path:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        path = self.workdir / "certs" / "sa.key"
        if not path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
        return path

    def _create_node(self, name: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "spec": {},
        }
        kubectl(self.bin_dir, self.kubeconfig, "apply", "-f", "-", input=json.dumps(node))


def kubectl(
    bin_dir: Path, kubeconfig: Path, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the cached kubectl (or the one on PATH) against ``kubeconfig``."""
    exe = bin_dir / "kubectl"
    cmd = [str(exe) if exe.exists() else "kubectl", f"--kubeconfig={kubeconfig}", *args]
    out = subprocess.run(cmd, input=input, capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[2:])} failed ({out.returncode}): {out.stderr.strip()}")
    return out


@dataclass
class ClusterHandle:
    """How a test reaches a cluster: the local control plane, or the one SHAREDVOL_TEST_KUBECONFIG names."""

    kubeconfig: Path
    server: str
    bin_dir: Path
    node_names: list[str]
    workdir: Path

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (as the admin unless ``kubeconfig`` is given)."""
        return kubectl(self.bin_dir, kubeconfig or self.kubeconfig, *args, check=check, input=input)

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig with a fresh token of ServiceAccount ``namespace/name`` (created if missing)."""
        from kubernetes import client, config

        api = config.new_client_from_config(str(self.kubeconfig))
        core = client.CoreV1Api(api)
        try:
            core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        except client.ApiException as e:
            if e.status != 409:
                raise
        request = {"spec": {"audiences": [], "expirationSeconds": 3600}}
        token = core.create_namespaced_service_account_token(name, namespace, request).status.token
        ca = self.workdir / "certs" / "apiserver.crt"
        path = self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        return write_kubeconfig(path, self.server, token, ca if ca.exists() else None, f"{namespace}-{name}")


def external_cluster(kubeconfig: Path, workdir: Path) -> ClusterHandle:
    """A handle on a cluster someone else runs (kind, k3d...), from its kubeconfig."""
    from kubernetes import client, config

    api = config.new_client_from_config(str(kubeconfig))
    nodes = [n.metadata.name for n in client.CoreV1Api(api).list_node().items]
    bin_dir = Path(os.environ.get("SHAREDVOL_CONTROLPLANE_BIN", "/nonexistent"))
    return ClusterHandle(kubeconfig, api.configuration.host, bin_dir, nodes, workdir)


@contextlib.contextmanager
def running(nodes: int = 1, workdir: Path | None = None) -> Iterator[ControlPlane]:
    """A started control plane in a temporary directory, stopped on exit whatever happened."""
    with tempfile.TemporaryDirectory(prefix="sharedvol-cp-") as tmp:
        plane = ControlPlane(workdir=workdir or Path(tmp), nodes=nodes)
        plane.start()
        try:
            yield plane
        finally:
            plane.stop()


def alive_pids(workdir: Path) -> list[tuple[int, str]]:
    """The processes of ``workdir/pids`` that still run the program recorded there (a reused pid does not count)."""
    pids = workdir / "pids"
    if not pids.exists():
        return []
    found = []
    for line in pids.read_text().splitlines():
        pid_text, _, name = line.partition(" ")
        if not pid_text.isdigit() or not _alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid_text}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            if Path(cmdline).name == Path(name).name or name in cmdline:
                found.append((int(pid_text), name))
    return found


def _up(args: argparse.Namespace) -> int:
    workdir = Path(args.dir)
    plane = ControlPlane(workdir=workdir, nodes=args.nodes)
    try:
        plane.start()
    except ControlPlaneError as e:
        print(f"cluster-up: {e}", file=sys.stderr)
        return 1
    print(f"control plane up in {plane.startup_seconds:.1f} s: {plane.server}")
    print(f"export KUBECONFIG={plane.kubeconfig}")
    print(f"stop it with: make cluster-down (pids in {workdir / 'pids'})")
    return 0


def _down(args: argparse.Namespace) -> int:
    stop_recorded(Path(args.dir) / "pids", "control plane")
    return 0


def stop_recorded(pids: Path, what: str) -> bool:
    """Stop, newest first, every process a ``pid name`` line of ``pids`` records, then remove the file.

    Returns:
        False when nothing was recorded.
    """
    if not pids.exists():
        print(f"no {what} recorded in {pids}")
        return False
    for line in reversed(pids.read_text().splitlines()):
        pid, name = int(line.split()[0]), line.split(maxsplit=1)[1]
        stop_pid(pid)
        print(f"stopped {name} (pid {pid})")
    pids.unlink()
    return True


def stop_pid(pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group of ``pid`` (each process leads its own session), SIGKILL after STOP_GRACE_S."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if popen is not None:
        try:
            popen.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            popen.wait()
        return
    deadline = time.monotonic() + STOP_GRACE_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # not our child: there is no wait() to block on
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()


def main(argv: list[str] | None = None) -> int:
    """``python -m rig.cluster up|down --dir DIR``: a control plane for people, in the background."""
    parser = argparse.ArgumentParser(prog="python -m rig.cluster")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", default=str(REPO / ".cluster"))
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args(argv)
    return _up(args) if args.action == "up" else _down(args)


if __name__ == "__main__":
    sys.exit(main())
