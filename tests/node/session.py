"""The session's one real node (kubelet + containerd), with the project's images built and imported into it.

There can be one real node per machine, and two tiers use it: the node tier (tests/node) and the real KFP tier
(tests/kfp_backend/real). The fixture ``node`` is therefore made visible to the whole test tree by tests/conftest.py,
so that one session starts one node. SHAREDVOL_TEST_NODE_DIR=DIR uses the node ``make node-up`` started in DIR
instead (the tests read what pods wrote from the node's host directories, so the node must be this machine).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig import cluster as cp
from rig import images
from rig import trainer as rig_trainer
from rig.node import realnode


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
        env = cp.read_env(workdir / "node.env")
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


@pytest.fixture(scope="session")
def trainer_on_node(node: NodeHandle, pytestconfig: pytest.Config) -> NodeHandle:
    """The session's node with Kubeflow Trainer v2.0.0 and JobSet v0.8.2 installed (rig/trainer.py): controller
    images built and imported, CRDs Established, both controllers available and their webhooks answering, the
    ``torch-distributed`` runtime. They stay for the session (the node's tear-down removes them with it).
    """
    with _visible(pytestconfig):
        print("[trainer] installing Kubeflow Trainer and JobSet on the node", flush=True)
        seconds = rig_trainer.install(rig_trainer.Target(node.kubeconfig, node.bin_dir, node.workdir))
        print(f"[trainer] Trainer and JobSet ready in {seconds:.1f} s", flush=True)
    return node


def _build_images(handle: NodeHandle) -> None:
    print("[node] base image, the project's images, and their import into the node", flush=True)
    env = {**os.environ, "NODE_DIR": str(handle.workdir), "IMAGE_BUILD_LOG": str(handle.workdir / "images.log")}
    subprocess.run([str(cp.REPO / "scripts" / "node" / "image.sh"), images.IMAGE_TAG], check=True, env=env)
