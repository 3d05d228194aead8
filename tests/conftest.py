"""Every test's tier (by its folder), and the fixtures shared by every test: the real control plane, an admin client,
a namespace per test, the ``sharedvol`` command."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from rig import cluster as cp
from rig import kwait
from tests import cli, tiers
from tests.node.session import node, trainer_on_node  # noqa: F401 (one real node per session: node, real KFP tiers)
from tests.objects import ClusterObjects


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test the marker of its tier folder (tests/tiers.py); a test in no tier folder is an error."""
    for item in items:
        marker = tiers.tier_of(Path(str(item.path)))
        if marker is None:
            where = ", ".join(f"tests/{folder}" for folder in tiers.TIERS)
            raise pytest.UsageError(f"{item.nodeid} is in no tier folder: move it to one of {where} (tests/tiers.py)")
        item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture
def sharedvol() -> cli.Run:
    """The ``sharedvol`` command as a user runs it (tests/cli.py): ``sharedvol(*args, kubeconfig=, env=, timeout=)``."""
    return cli.run


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[cp.ClusterHandle]:
    """The real control plane (or the cluster SHAREDVOL_TEST_KUBECONFIG names), for the whole session."""
    workdir = tmp_path_factory.mktemp("controlplane")
    external = os.environ.get("SHAREDVOL_TEST_KUBECONFIG")
    if external:
        yield cp.external_cluster(Path(external), workdir)
        return
    plane = cp.ControlPlane(workdir=workdir, nodes=2)
    plane.start()
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n[controlplane] up in {plane.startup_seconds:.1f} s at {plane.server} ({plane.bin_dir})")
    try:
        yield cp.ClusterHandle(plane.kubeconfig, plane.server, plane.bin_dir, plane.node_names, workdir)
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api(cluster: cp.ClusterHandle) -> client.ApiClient:
    """A ``kubernetes.client.ApiClient`` for the cluster's admin."""
    return config.new_client_from_config(str(cluster.kubeconfig))


@pytest.fixture
def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named from the test, labelled as ours, deleted after the test."""
    with _fresh_namespace(api, request.node.name) as name:
        yield name


@pytest.fixture
def other_namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second fresh namespace, as :func:`namespace` (another team's, say)."""
    with _fresh_namespace(api, "other-" + request.node.name) as name:
        yield name


@contextlib.contextmanager
def _fresh_namespace(api: client.ApiClient, test_name: str) -> Iterator[str]:
    stem = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")
    stem = stem.removeprefix("test-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    body = {
        "metadata": {
            "name": name,
            "labels": {"sharedvol.io/test": "true", "app.kubernetes.io/created-by": "sharedvol-tests"},
        }
    }
    core.create_namespace(body)
    # Pods are admitted only once the namespace's "default" ServiceAccount exists (made by a controller).
    kwait.until(
        core.list_namespaced_service_account,
        lambda sa: True,
        name,
        what="ServiceAccount default",
        **kwait.named("default"),
    )
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture
def cluster_objects(api: client.ApiClient) -> Iterator[ClusterObjects]:
    """Cluster-scoped objects made for one test, deleted after it."""
    made = ClusterObjects(api)
    try:
        yield made
    finally:
        made.cleanup()
