"""Fixtures shared by every test: the real control plane, an admin client, a namespace per test."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import cluster as cp
from tests import kwait
from tests.node.session import node  # noqa: F401 (one real node per session, for the node and real KFP tiers)

CONTROLPLANE_FIXTURES = {"cluster", "api", "namespace", "cluster_objects"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the control plane, so ``-m "not controlplane"`` leaves them out."""
    for item in items:
        if CONTROLPLANE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.controlplane)


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
def api(cluster: cp.ClusterHandle) -> Any:
    """A ``kubernetes.client.ApiClient`` for the cluster's admin."""
    from kubernetes import config

    return config.new_client_from_config(str(cluster.kubeconfig))


@pytest.fixture
def namespace(api: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named from the test, labelled as ours, deleted after the test."""
    from kubernetes import client

    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
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


class ClusterObjects:
    """Creates cluster-scoped objects (StorageClasses, PVs) for one test and deletes them after it."""

    def __init__(self, api: Any) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.classes: list[str] = []
        self.pvs: list[str] = []

    def storage_class(self, body: dict[str, Any]) -> Any:
        """Create a StorageClass from ``body``; it is deleted after the test."""
        made = self.storage.create_storage_class(body)
        self.classes.append(made.metadata.name)
        return made

    def pv(self, body: dict[str, Any]) -> Any:
        """Create a PersistentVolume from ``body``; it is deleted after the test."""
        made = self.core.create_persistent_volume(body)
        self.pvs.append(made.metadata.name)
        return made

    def track_pv(self, name: str) -> None:
        """Delete PV ``name`` after the test (for PVs the code under test made)."""
        self.pvs.append(name)

    def cleanup(self) -> None:
        """Delete everything made or tracked, ignoring what is already gone."""
        from kubernetes import client

        for delete, names in (
            (self.core.delete_persistent_volume, self.pvs),
            (self.storage.delete_storage_class, self.classes),
        ):
            for name in names:
                try:
                    delete(name)
                except client.ApiException as e:
                    if e.status != 404:
                        raise


@pytest.fixture
def cluster_objects(api: Any) -> Iterator[ClusterObjects]:
    """Cluster-scoped objects made for one test, deleted after it."""
    made = ClusterObjects(api)
    try:
        yield made
    finally:
        made.cleanup()
