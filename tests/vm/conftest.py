"""Fixtures of the two-node tier: the VM node (rig/vm/vmnode.py) joined to the session's real node, and
``kubectl apply -k k8s/nfs`` on that cluster. Every test here is marked ``vm`` (``make test`` runs them; ``-m "not vm"``
leaves them out).

The tier needs root (the real node, the bridge, QEMU). SHAREDVOL_TEST_NODE_DIR=.node with ``make node-up NODES=2``
reuses a running VM node. The marker comes from the folder (tests/tiers.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from rig import cluster as cp
from rig.node import nodeconfig as nc
from rig.vm import vmnode
from tests.node.session import NodeHandle
from tests.vm.nfs import NFS, NFS_NAMESPACE, PIN_PATCH, SERVER_PIN


@contextlib.contextmanager
def _visible(config: pytest.Config) -> Iterator[None]:
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        yield


def _running(vm: vmnode.VMNode, beside: str, config: pytest.Config) -> Iterator[vmnode.VMNode]:
    """``vm`` Ready until the generator is closed: the one already running there (``make node-up``), or started now
    and stopped at the end."""
    if cp.alive_pids(vm.workdir):
        yield vm
        return
    with _visible(config):
        print(f"\n[vm] starting the VM node {vm.name} (QEMU, TCG) beside {beside}", flush=True)
        vm.start()
        print(f"[vm] {vm.name} Ready in {vm.startup_seconds:.1f} s", flush=True)
    try:
        yield vm
    finally:
        vm.stop()


@pytest.fixture(scope="session")
def vm_node(node: NodeHandle, pytestconfig: pytest.Config) -> Iterator[vmnode.VMNode]:
    """The VM node, Ready, for the rest of the session (reused when ``make node-up NODES=2`` runs it)."""
    yield from _running(vmnode.VMNode(node_dir=node.workdir, bin_dir=node.bin_dir), nc.NODE_NAME, pytestconfig)


@pytest.fixture(scope="session")
def vm2_node(vm_node: vmnode.VMNode, pytestconfig: pytest.Config) -> Iterator[vmnode.VMNode]:
    """A second VM node (a second kernel), Ready, for the rest of the session; started only by the tests that ask
    for it, which run after the one-VM tests (file order), and reused when ``make node-up NODES=3`` runs it."""
    vm = vmnode.VMNode(node_dir=vm_node.node_dir, bin_dir=vm_node.bin_dir, index=2)
    yield from _running(vm, vm_node.name, pytestconfig)


@pytest.fixture(scope="session")
def vm_api(vm_node: vmnode.VMNode) -> Any:
    """A ``kubernetes.client.ApiClient`` for the two-node cluster's admin."""
    from kubernetes import config

    return config.new_client_from_config(str(vm_node.node_dir / "admin.kubeconfig"))


@pytest.fixture(scope="session")
def nfs_installed(vm_node: vmnode.VMNode) -> Iterator[None]:
    """``kubectl apply -k k8s/nfs`` as README shows it, the server pinned to the host node as docs/nfs.md shows it
    for several nodes, and every pod of it Ready."""
    vm_node.kubectl("label", "node", nc.NODE_NAME, f"{SERVER_PIN}=true", "--overwrite")
    vm_node.kubectl("apply", "-k", str(NFS))
    vm_node.kubectl("-n", NFS_NAMESPACE, "patch", "deployment", "nfs-server", "-p", PIN_PATCH)
    try:
        # docs/nfs.md's quick start, with more time: the VM is slow
        vm_node.kubectl(
            "-n", NFS_NAMESPACE, "rollout", "status", "deploy/nfs-server", "deploy/csi-nfs-controller",
            "ds/csi-nfs-node", "--timeout=10m",
        )  # fmt: skip
        yield
    finally:
        vm_node.kubectl("delete", "-k", str(NFS), "--ignore-not-found", "--wait=false", check=False)
        vm_node.kubectl("label", "node", nc.NODE_NAME, f"{SERVER_PIN}-", check=False)
