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

from rig import cluster as cp
from rig.paths import REPO
from tests.controlplane.serving import Service, SharedvolCli
from tests.kfp_fake import FakeKfp, running
from tests.objects import ClusterObjects


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
