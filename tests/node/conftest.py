"""Fixtures of the node tier: a real node (kubelet + containerd) for the whole session, the project's images built
from docker/Dockerfile and k8s/nfs/server and imported into it, a namespace per test, and pods run to completion.

Every test in tests/node is marked ``node`` (tests/conftest.py, by folder). The tier needs root. The node
itself is the session fixture ``node`` of tests/node/session.py (shared with the real KFP tier).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from rig import kwait
from tests.node import pods
from tests.node.session import NodeHandle


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
