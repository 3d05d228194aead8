"""The real KFP 2.17.0 backend as processes on the node's machine, wired to a Kubernetes cluster.

MariaDB (Debian), MinIO, ML Metadata (PyPI's store behind rig/kfp/mlmd_server.py), KFP's
api-server and persistence agent, Argo's workflow-controller: the binaries of ``scripts/kfp/build.sh``.
The cluster gets the namespace ``kubeflow``, Argo's CRDs, KFP's pipeline-runner RBAC, the configmaps and
the Services that give pods the in-cluster names of these processes (see :mod:`rig.kfp.config`).

Every process is started in its own session and stopped by pid, newest first (``pids`` in the directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rig import cluster as cp
from rig.kfp import config as kc
from rig.kfp import procs, ui
from rig.kfp.procs import machine_address, stop_pid  # noqa: F401  (re-exported for the fixtures)

REPO = cp.REPO
BUILD = REPO / "scripts" / "kfp" / "build.sh"
MLMD_VENV = REPO / "scripts" / "kfp" / "mlmd-venv.sh"
MLMD_SERVER = REPO / "rig" / "kfp" / "mlmd_server.py"
DB_BIN = Path("/usr/bin")  # MariaDB from Debian (scripts/kfp/build.sh installs it when missing)
DB_SBIN = Path("/usr/sbin")
READY_TIMEOUT_S = 180.0


class BackendError(RuntimeError):
    """The backend could not be built or started; the message names the process and its log."""


def _script_output(script: Path) -> Path:
    out = subprocess.run([str(script)], check=False, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise BackendError(f"{script.name} failed (exit {out.returncode}); see its output above")
    return Path(out.stdout.strip().splitlines()[-1])


def kfp_bin_dir() -> Path:
    """The cached KFP/Argo/MinIO binaries (built when missing; SHAREDVOL_KFP_BIN skips the check)."""
    env = os.environ.get("SHAREDVOL_KFP_BIN")
    return Path(env) if env else _script_output(BUILD)


def mlmd_python() -> Path:
    """The python of the cached ML Metadata venv (created when missing)."""
    return _script_output(MLMD_VENV) / "bin" / "python"


@dataclass
class KfpBackend:
    """The backend's processes and cluster objects.

    Attributes:
        workdir: data, configs, logs and ``pids``.
        kubeconfig: an admin kubeconfig of the cluster.
        kubectl_bin: the directory holding kubectl.
        address: the machine's address pods reach its processes at (the node's InternalIP).
    """

    workdir: Path
    kubeconfig: Path
    kubectl_bin: Path
    address: str
    bin_dir: Path = field(default_factory=kfp_bin_dir)
    mlmd_py: Path = field(default_factory=mlmd_python)
    ui_build: Path = field(default_factory=lambda: ui.ui_dir(_script_output))
    images: kc.Images = field(default_factory=kc.Images)
    processes: list[cp.Process] = field(default_factory=list)
    ports: kc.Ports | None = None

    @property
    def api_url(self) -> str:
        """The KFP REST API on this machine (``sharedvol submit --host``)."""
        assert self.ports is not None
        return f"http://127.0.0.1:{self.ports.api_http}"

    @property
    def ui_url(self) -> str:
        """The KFP UI on this machine's loopback (``sharedvol submit --ui-url``)."""
        assert self.ports is not None
        return f"http://127.0.0.1:{self.ports.ui}"

    def start(self) -> KfpBackend:
        """Start everything and wait until the API answers; stop all on any failure."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = ports = kc.Ports(*(cp.free_port() for _ in range(8)))
        self._start_database(ports.database)
        self._spawn_minio(ports)
        self._spawn(
            "mlmd",
            [str(MLMD_SERVER), "--db", str(self.workdir / "mlmd.sqlite"), "--port", str(ports.mlmd),
             "--web-port", str(ports.mlmd_web)],
            exe=str(self.mlmd_py),
        )  # fmt: skip
        aliases = self._apply_cluster_objects(ports)
        self._wait_tcp("mlmd", ports.mlmd)
        self._wait_http("minio", f"http://127.0.0.1:{ports.minio}/minio/health/ready")
        conf = self.workdir / "apiserver"
        conf.mkdir(exist_ok=True)
        (conf / "config.json").write_text(json.dumps(kc.apiserver_config(ports.database, ports.minio), indent=2))
        env = kc.apiserver_env(self.images, kc.spec_patch(aliases), str(self.kubeconfig))
        self._spawn(
            "apiserver",
            [f"-config={conf}", f"-rpcPortFlag=:{ports.api_grpc}", f"-httpPortFlag=:{ports.api_http}",
             f"-webhookPortFlag=127.0.0.1:{cp.free_port()}", "-logtostderr=true"],
            env=env,
        )  # fmt: skip
        self._wait_http("apiserver", f"{self.api_url}/apis/v2beta1/healthz")
        self._spawn(
            "workflow-controller",
            ["--kubeconfig", str(self.kubeconfig), "--namespace", kc.NAMESPACE, "--namespaced",
             "--managed-namespace", kc.NAMESPACE,
             "--configmap", "workflow-controller-configmap", "--executor-image", self.images.argoexec,
             "--loglevel", "info"],
            env={"LEADER_ELECTION_DISABLE": "true", "ARGO_NAMESPACE": kc.NAMESPACE},
        )  # fmt: skip
        self._spawn_persistence_agent(ports)
        self._wait_log("workflow-controller", "Starting Workflow Controller")
        self._wait_log("persistence_agent", "Started workers")
        ui.start(self)
        self._write_env()

    # ----- the servers
    def _start_database(self, port: int) -> None:
        # MariaDB, KFP's default driver ("mysql"). KFP 2.17.0's PostgreSQL path (pgx) stops the api-server at
        # start-up in single-user mode: it queries default_experiments.DefaultExperimentId unquoted, PostgreSQL
        # folds that to lower case, and GORM created the column with its capitals (docs/kfp-backend.md).
        # mariadbd runs as user mysql, which may not traverse the work directory (pytest's is 0700): the data
        # lives in its own directory under the system's temporary directory, removed by stop() and kfp-down.
        data = Path(tempfile.mkdtemp(prefix="sharedvol-kfp-mariadb-"))
        (self.workdir / "mariadb").unlink(missing_ok=True)
        (self.workdir / "mariadb").symlink_to(data)
        mysql = pwd.getpwnam("mysql")
        os.chown(data, mysql.pw_uid, mysql.pw_gid)
        out = subprocess.run(
            [str(DB_BIN / "mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=mysql",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise BackendError(f"mariadb-install-db failed: {(out.stdout + out.stderr).strip()[-500:]}")
        self._spawn(
            "mariadb",
            [str(DB_SBIN / "mariadbd"), "--no-defaults", f"--datadir={data}", f"--port={port}",
             "--bind-address=127.0.0.1", f"--socket={data / 'mysqld.sock'}", f"--pid-file={data / 'mariadbd.pid'}",
             "--user=mysql", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"],
            exe="",
        )  # fmt: skip
        self._wait_tcp("mariadb", port)

    def _spawn_minio(self, ports: kc.Ports) -> None:
        env = {"MINIO_ROOT_USER": kc.ACCESS_KEY, "MINIO_ROOT_PASSWORD": kc.SECRET_KEY, "MINIO_BROWSER": "off"}
        self._spawn(
            "minio",
            ["server", str(self.workdir / "minio"), "--address", f":{ports.minio}",
             "--console-address", f"127.0.0.1:{ports.minio_console}", "--quiet"],
            env=env,
        )  # fmt: skip

    def _spawn_persistence_agent(self, ports: kc.Ports) -> None:
        # The agent reads its token from a fixed path (/var/run/secrets/kubeflow/tokens/...) and exits without it.
        # It gets a real ServiceAccount token there in a private mount namespace (a tmpfs over /run for this
        # process only), so nothing is written into the machine's /run.
        token = self.workdir / "persistenceagent-sa-token"
        token.write_text(
            self.kubectl("create", "token", kc.RUNNER_SA, "-n", kc.NAMESPACE, "--duration=24h").stdout.strip()
        )
        token.chmod(0o600)
        script = (
            "mount -t tmpfs -o size=1m kfp-agent /run && mkdir -p /run/secrets/kubeflow/tokens && "
            'cp "$0" /run/secrets/kubeflow/tokens/persistenceagent-sa-token && exec "$@"'
        )
        args = [
            str(self.bin_dir / "persistence_agent"), f"--kubeconfig={self.kubeconfig}", f"--namespace={kc.NAMESPACE}",
            "--mlPipelineAPIServerName=127.0.0.1", f"--mlPipelineServiceHttpPort={ports.api_http}",
            f"--mlPipelineServiceGRPCPort={ports.api_grpc}", "--logtostderr=true",
        ]  # fmt: skip
        private = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(token)]
        # --kubeconfig serves its workflow client; its execution informer reads only KUBECONFIG.
        self._spawn("persistence_agent", [*private, *args], exe="", env={"KUBECONFIG": str(self.kubeconfig)})

    # ----- the cluster side
    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Kubectl as the cluster's admin; a failure is a :class:`BackendError` naming the command."""
        try:
            return cp.kubectl(self.kubectl_bin, self.kubeconfig, *args, input=input)
        except AssertionError as e:
            raise BackendError(str(e)) from e

    def _apply_cluster_objects(self, ports: kc.Ports) -> dict[str, list[str]]:
        """Apply CRDs, RBAC, configmaps and Services; return the hostAliases (cluster IP -> names)."""
        manifests = self.bin_dir.parent / "manifests"
        self.kubectl("apply", "--server-side", "-f", str(manifests / "crds"))
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": kc.base_objects(self.images)}),
        )
        self.kubectl("apply", "-n", kc.NAMESPACE, "-f", str(manifests / "kfp"))
        aliases: dict[str, list[str]] = {}
        for spec in kc.services(ports):
            objs = kc.service_objects(spec, self.address)
            self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
            ip = self.kubectl(
                "get", "service", "-n", kc.NAMESPACE, spec.name, "-o", "jsonpath={.spec.clusterIP}"
            ).stdout
            aliases.setdefault(ip.strip(), []).extend(spec.hostnames)
        return aliases

    # ----- processes
    def _spawn(self, name: str, args: list[str], exe: str | None = None, env: dict[str, str] | None = None) -> None:
        log = self.workdir / f"{name}.log"
        cmd = [exe or str(self.bin_dir / name), *args] if exe != "" else args
        with log.open("ab") as out:
            popen = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, **(env or {})}, cwd=self.workdir,
            )  # fmt: skip
        self.processes.append(cp.Process(name, popen, log))
        (self.workdir / "pids").write_text("".join(f"{p.popen.pid} {p.name}\n" for p in self.processes))

    def _check_alive(self) -> None:
        for proc in self.processes:
            if proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace").splitlines()[-20:]
                raise BackendError(
                    f"{proc.name} exited with {proc.popen.returncode}; log {proc.log}:\n" + "\n".join(tail)
                )

    def _wait(self, what: str, probe: object) -> None:
        # Processes, not Kubernetes objects: there is no event to watch before a server listens, so probe with a
        # short bounded pause, failing early when the process died.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive()
            if probe():  # type: ignore[operator]
                return
            time.sleep(0.25)
        raise BackendError(f"{what} was not ready after {READY_TIMEOUT_S:.0f} s; log {self.workdir / (what + '.log')}")

    def _wait_tcp(self, what: str, port: int) -> None:
        def probe() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
            return False

        self._wait(what, probe)

    def _wait_http(self, what: str, url: str) -> None:
        self._wait(what, lambda: cp.answers(url))

    def _wait_log(self, what: str, text: str) -> None:
        log = self.workdir / f"{what}.log"
        self._wait(what, lambda: text in log.read_text(errors="replace"))

    def _write_env(self) -> None:
        assert self.ports is not None
        lines = [f"KFP_HOST={self.api_url}", f"KFP_UI={self.ui_url}", f"KUBECONFIG={self.kubeconfig}"]
        lines += [f"MLMD_PORT={self.ports.mlmd}"]
        lines += [f"MINIO_PORT={self.ports.minio}", f"KFP_WORKDIR={self.workdir}"]
        (self.workdir / "kfp.env").write_text("\n".join(lines) + "\n")

    def stop(self) -> None:
        """Stop every process this object started, by pid, newest first."""
        for proc in reversed(self.processes):
            procs.stop_pid(proc.popen.pid, proc.popen)
        self.processes.clear()
        (self.workdir / "pids").unlink(missing_ok=True)
        procs.remove_database(self.workdir)
