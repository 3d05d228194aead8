"""`sharedvol serve` in a subprocess and the fallback classes it serves, for the control-plane tests (the fixtures
that start them are in conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from rig.paths import REPO
from tests.objects import ClusterObjects

PROVISIONER = "sharedvol.io/hostpath"

SharedvolCli = Callable[..., subprocess.CompletedProcess[str]]


class Service:
    """`python -m pipelines serve` in a subprocess, with a temp dir standing in for the node's filesystem (``/`` on the
    real node, where the service's directories are the node's own); its output in ``log``."""

    def __init__(
        self, kubeconfig: Path, root: Path, *args: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        self.kubeconfig, self.root, self.args, self.env = kubeconfig, root, args, env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = log or root.parent / f"serve-{uuid.uuid4().hex[:6]}.log"

    def start(self, *, defaults: bool = False) -> Service:
        """Start it; ``defaults``: without --health-port 0 --text-logs (JSON logs, /healthz served)."""
        (self.root / "var" / "lib" / "sharedvol").mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pipelines", "serve", "--kubeconfig", str(self.kubeconfig)]
        cmd += ["--base-path-root", str(self.root), *self.args]
        if not defaults:
            cmd += ["--health-port", "0", "--text-logs"]
        # No heartbeat Lease unless a test asks for one (SHAREDVOL_NAMESPACE): a service's Lease would make
        # later tests' commands see a running provisioner.
        env = {**os.environ, "PYTHONPATH": str(REPO), "SHAREDVOL_RECHECK_SECONDS": "1"}
        env |= {"SHAREDVOL_NAMESPACE": "no-heartbeat-in-tests", **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and wait for the process to end."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def node_dir(self, node_path: str) -> Path:
        """Where the node's ``node_path`` is in the test's stand-in filesystem."""
        return self.root / node_path.lstrip("/")

    def output(self) -> str:
        """Everything the service logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def fallback_class(
    objects: ClusterObjects,
    *,
    mode: str = "Immediate",
    on_delete: str = "delete",
    reclaim: str = "Delete",
    **params: str,
) -> str:
    """A StorageClass of the fallback provisioner (deleted after the test); ``params`` override its parameters."""
    name = f"hostpath-{uuid.uuid4().hex[:6]}"
    objects.storage_class(
        {
            "metadata": {"name": name},
            "provisioner": PROVISIONER,
            "volumeBindingMode": mode,
            "reclaimPolicy": reclaim,
            "parameters": {"basePath": "/var/lib/sharedvol", "onDelete": on_delete, **params},
        }
    )
    return name
