"""Fixtures for the storage, provisioner and run tests: the CLI as a user runs it, classes, `sharedvol serve`, a KFP.

The KFP is the fake API server of tests/kfp_fake.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import cluster as cp
from tests.conftest import ClusterObjects
from tests.kfp_fake import FakeKfp, running

REPO = Path(__file__).resolve().parents[2]
PROVISIONER = "sharedvol.io/hostpath"

SharedvolCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def fake_kfp() -> Iterator[FakeKfp]:
    """A started fake KFP API server (tests/kfp_fake.py), stopped after the test."""
    with running() as server:
        yield server


@pytest.fixture
def sharedvol(cluster: cp.ClusterHandle) -> SharedvolCli:
    """Run ``python -m pipelines ARGS --kubeconfig K`` (K: the admin's unless ``kubeconfig=`` is given)."""

    def run(*args: str, kubeconfig: Path | str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pipelines", *args, "--kubeconfig", str(kubeconfig or cluster.kubeconfig)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def local_path_class(cluster_objects: ClusterObjects) -> str:
    """A class shaped like rancher's local-path (RWO only, WaitForFirstConsumer)."""
    name = f"local-path-{uuid.uuid4().hex[:6]}"
    cluster_objects.storage_class(
        {
            "metadata": {"name": name},
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        }
    )
    return name


class Service:
    """`python -m pipelines serve` in a subprocess, with a temp dir standing in for the node's filesystem."""

    def __init__(self, kubeconfig: Path, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.kubeconfig, self.root, self.args, self.env = kubeconfig, root, args, env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root.parent / f"serve-{uuid.uuid4().hex[:6]}.log"

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


@pytest.fixture
def serve(cluster: cp.ClusterHandle, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """A factory of running services (stopped after the test); all share one stand-in node filesystem."""
    started: list[Service] = []

    def start(*args: str, kubeconfig: Path | None = None, env: dict[str, str] | None = None, **kw: Any) -> Service:
        svc = Service(kubeconfig or cluster.kubeconfig, tmp_path / "node", *args, env=env).start(**kw)
        started.append(svc)
        return svc

    try:
        yield start
    finally:
        for svc in started:
            svc.kill(signal.SIGTERM)


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
