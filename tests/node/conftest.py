"""Fixtures of the node tier: a real node (kubelet + containerd) for the whole session, the project's images built
from docker/Dockerfile and k8s/nfs/server and imported into it, a namespace per test, and pods run to completion.

Every test in tests/node is marked ``node`` (``-m "not node"`` leaves them out). The tier needs root.
SHAREDVOL_TEST_NODE_DIR=DIR uses the node ``make node-up`` started in DIR instead of starting one (the tests read
what pods wrote from the node's host directories, so the node must be this machine).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import cluster as cp
from tests import kwait, markers
from tests.node import pods, realnode

IMAGE_TAG = "0.1.0"
STEP_IMAGE = f"sharedvol:{IMAGE_TAG}"
PROVISIONER_IMAGE = f"sharedvol-provisioner:{IMAGE_TAG}"
NFS_IMAGE = f"sharedvol-nfs-server:{IMAGE_TAG}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``node``."""
    markers.mark_folder(items, __file__, pytest.mark.node)


@dataclass
class NodeHandle:
    """How a test reaches the real node: kubeconfig, kubectl, its directory (node.env, logs)."""

    workdir: Path
    kubeconfig: Path
    bin_dir: Path

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the node's cluster as its admin."""
        return cp.kubectl(self.bin_dir, self.kubeconfig, *args, check=check, input=input)


@contextlib.contextmanager
def _visible(config: pytest.Config) -> Iterator[None]:
    """Let progress lines (ours and the scripts') reach the terminal while set-up runs."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        yield


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[NodeHandle]:
    """The real node, with the project's images in its containerd, for the whole session.

    From nothing (a fresh CI machine, as root) this installs the node's Debian packages, starts dockerd when no
    Docker engine answers, makes the base image, builds the three images and imports them; each step prints
    ``[node]``/``[base-image]``/``[image]``/``[import]`` progress lines, and the docker build output goes to
    ``images.log`` in the node directory (its tail is printed when a build fails).
    """
    existing = os.environ.get("SHAREDVOL_TEST_NODE_DIR")
    if existing:
        workdir = Path(existing).resolve()
        env = dict(line.split("=", 1) for line in (workdir / "node.env").read_text().splitlines() if "=" in line)
        handle = NodeHandle(workdir, workdir / "kubeconfig", Path(env["BIN_DIR"]))
        with _visible(pytestconfig):
            _build_images(handle)
        yield handle
        return
    workdir = tmp_path_factory.mktemp("node")
    plane = realnode.RealNode(workdir=workdir)
    with _visible(pytestconfig):
        print(f"\n[node] starting a real node in {workdir} (needs root; docs/tests.md)", flush=True)
        plane.start()
        print(f"[node] {plane.node_names[0]} Ready in {plane.startup_seconds:.1f} s at {plane.server}", flush=True)
    try:
        handle = NodeHandle(workdir, plane.kubeconfig, plane.bin_dir)
        with _visible(pytestconfig):
            _build_images(handle)
        yield handle
    finally:
        plane.stop()


def _build_images(handle: NodeHandle) -> None:
    print("[node] base image, the project's images, and their import into the node", flush=True)
    subprocess.run([str(cp.REPO / "scripts" / "node" / "base-image.sh")], check=True)
    env = {**os.environ, "NODE_DIR": str(handle.workdir), "IMAGE_BUILD_LOG": str(handle.workdir / "images.log")}
    subprocess.run([str(cp.REPO / "scripts" / "node" / "image.sh"), IMAGE_TAG], check=True, env=env)


@pytest.fixture(scope="session")
def node_api(node: NodeHandle) -> Any:
    """A ``kubernetes.client.ApiClient`` for the node's cluster admin."""
    from kubernetes import config

    return config.new_client_from_config(str(node.kubeconfig))


@pytest.fixture
def node_namespace(node_api: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named from the test, deleted after it (its pods with it)."""
    from kubernetes import client

    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    name = f"{stem.removeprefix('test-')[:40].strip('-')}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(node_api)
    core.create_namespace({"metadata": {"name": name, "labels": {"app.kubernetes.io/created-by": "sharedvol-tests"}}})
    kwait.until(
        core.list_namespaced_service_account,
        lambda sa: True,
        name,
        what="ServiceAccount default",
        field_selector="metadata.name=default",
    )
    try:
        yield name
    finally:
        core.delete_namespace(name, grace_period_seconds=0)


@pytest.fixture
def run_pod(node_api: Any, node_namespace: str) -> pods.PodRunner:
    """Run pods in the test's namespace to completion and read their logs."""
    return pods.PodRunner(node_api, node_namespace)
