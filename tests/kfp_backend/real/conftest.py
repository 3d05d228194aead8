"""Fixtures of the real KFP backend tier: the ML Metadata venv and a forwarding MLMD server on a fresh store."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rig import cluster as cp
from rig import images as project_images
from rig.kfp import backend as kb
from rig.kfp import config as kc
from rig.kfp import images
from tests.kfp_backend.real.journeys import (  # noqa: F401 (package fixtures)
    journeys,
    static_volume,
    submit_collected,
    workspace_class,
)
from tests.kfp_backend.real.mlmd import Mlmd


@pytest.fixture(scope="session")
def mlmd_python() -> Path:
    """The ML Metadata venv's python (created once, cached)."""
    return kb.mlmd_python()


@pytest.fixture
def mlmd_server(mlmd_python: Path, tmp_path: Path) -> Iterator[tuple[Mlmd, subprocess.Popen[bytes]]]:
    """A forwarding server (gRPC, and gRPC-web on loopback) on a fresh store in ``tmp_path``, stopped after the test."""
    port, web_port = cp.free_port(), cp.free_port()
    db = tmp_path / "mlmd.sqlite"
    log = (tmp_path / "mlmd.log").open("wb")
    server = subprocess.Popen(
        [str(mlmd_python), str(kb.MLMD_SERVER), "--db", str(db), "--port", str(port), "--host", "127.0.0.1",
         "--web-port", str(web_port)],
        stdout=subprocess.PIPE, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode()  # the server prints this once it listens
        assert "listening" in line, (tmp_path / "mlmd.log").read_text()
        yield Mlmd(mlmd_python, port, db, web_port), server
    finally:
        kb.stop_pid(server.pid, server)
        log.close()


@pytest.fixture(scope="session")
def real_node(node: Any) -> Any:
    """The real node with the project's images: the session's one (tests/node/session.py; SHAREDVOL_TEST_NODE_DIR
    names one started by ``make node-up``), shared with the node tier."""
    return node


@pytest.fixture(scope="package")
def kfp_on_node(real_node: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[kb.KfpBackend]:
    """The real backend on the real node, its images imported into the node's containerd; removed afterwards."""
    env = cp.read_env(Path(real_node.workdir) / "node.env")
    crictl = [str(Path(env["BIN_DIR"]) / "crictl"), "--runtime-endpoint", f"unix://{env['CONTAINERD_ADDRESS']}"]
    step_image = project_images.STEP_IMAGE
    if subprocess.run([*crictl, "inspecti", step_image], capture_output=True, check=False).returncode != 0:
        pytest.fail(f"the node has no {step_image}: build it and import it (make image with the node up)")
    images.import_all(kb.kfp_bin_dir(), Path(env["CONTAINERD_ADDRESS"]), Path(env["BIN_DIR"]) / "crictl")
    backend = kb.KfpBackend(
        workdir=tmp_path_factory.mktemp("kfp"),
        kubeconfig=Path(real_node.kubeconfig),
        kubectl_bin=Path(real_node.bin_dir),
        address=kb.machine_address(),
    )
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()
        backend.kubectl("delete", "workflows.argoproj.io", "--all", "-n", kc.NAMESPACE, "--wait=false")
        backend.kubectl("delete", "namespace", kc.NAMESPACE, "--wait=false")


@pytest.fixture(scope="package")
def mlmd_on_node(kfp_on_node: kb.KfpBackend, mlmd_python: Path) -> Mlmd:
    """The backend's ML Metadata, through its gRPC server."""
    assert kfp_on_node.ports is not None
    return Mlmd(mlmd_python, kfp_on_node.ports.mlmd, kfp_on_node.workdir / "mlmd.sqlite")
