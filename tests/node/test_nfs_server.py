"""The in-cluster NFS server of k8s/nfs/server (nfs-ganesha, userspace) on the real node: its pod runs, and client
pods write and read its export through the Service with libnfs's userspace tools (NFSv4, the share at the root).
Mounting the export as a filesystem (kubelet, csi-driver-nfs) needs a kernel NFS client, which this machine lacks: that
part stays checked by the manifests (tests/controlplane/test_manifests_nfs.py)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig import cluster as cp
from rig import images, kwait
from tests.node import pods
from tests.node.session import NodeHandle

SERVER = cp.REPO / "k8s" / "nfs" / "server"
NAMESPACE = "sharedvol-nfs"


def _export_dir() -> Path:
    """The node directory the server exports (its hostPath volume)."""
    manifests = list(yaml.safe_load_all((SERVER / "nfs-server.yaml").read_text()))
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    return Path(volume["hostPath"]["path"])


@pytest.fixture(scope="module")
def nfs_server(node: NodeHandle, node_api: Any) -> Iterator[str]:
    """k8s/nfs/server applied as users apply it, its pod Ready; the Service's cluster IP."""
    from kubernetes import client

    core = client.CoreV1Api(node_api)
    node.kubectl("create", "namespace", NAMESPACE)
    try:
        node.kubectl("apply", "-k", str(SERVER))
        kwait.until(
            core.list_namespaced_pod,
            lambda p: any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []),
            NAMESPACE,
            timeout=120,
            what="the nfs-server pod Ready",
            label_selector="app.kubernetes.io/name=nfs-server",
        )
        # the Service routes to it once its EndpointSlice names the pod ready (kube-proxy programs it from there)
        kwait.until(
            client.DiscoveryV1Api(node_api).list_namespaced_endpoint_slice,
            lambda s: any(e.conditions and e.conditions.ready for e in s.endpoints or []),
            NAMESPACE,
            timeout=60,
            what="a ready endpoint of Service nfs-server",
            label_selector="kubernetes.io/service-name=nfs-server",
        )
        yield str(core.read_namespaced_service("nfs-server", NAMESPACE).spec.cluster_ip)
    finally:
        node.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=120s", check=False)


def _client(name: str, script: str) -> dict[str, Any]:
    """A pod of the server's image (it carries libnfs-utils) running ``script`` as uid 1000.

    Like any NFS client, it tries the first connection a few times: the Service's rules reach kube-proxy's
    iptables shortly after the endpoint turns ready.
    """
    retried = (
        f"for i in 1 2 3 4 5 6 7 8 9 10; do if {{ {script}; }} 2>/tmp/err; then exit 0; fi; sleep 1; done; "
        "cat /tmp/err >&2; exit 1"
    )
    return pods.step_pod(name, [retried], image=images.NFS_IMAGE, command=["/bin/bash", "-c"])


def test_client_pods_write_and_read_the_in_cluster_nfs_export_over_nfsv4_at_the_share_root(
    nfs_server: str, run_pod: pods.PodRunner
) -> None:
    # What csi-driver-nfs does for a claim (a sub-directory with the class's owner), done here by the test: there is
    # no kernel NFS client to run the driver.
    share = _export_dir() / f"test-{uuid.uuid4().hex[:8]}"
    share.mkdir(parents=True)
    os.chown(share, 1000, 1000)
    token = uuid.uuid4().hex
    # The export is the root of the NFSv4 pseudo filesystem: what StorageClass sharedvol-nfs mounts as share "/".
    url = f"nfs://{nfs_server}/{share.name}/handoff.txt?version=4"
    try:
        writer = run_pod.run(
            _client("writer", f"echo {token} > /tmp/handoff.txt && nfs-cp /tmp/handoff.txt '{url}'"), 120
        )
        assert (writer.phase, writer.exit_code) == ("Succeeded", 0), writer.logs
        reader = run_pod.run(_client("reader", f"nfs-cat '{url}'"), 120)
        assert (reader.phase, reader.exit_code) == ("Succeeded", 0), reader.logs

        assert reader.logs.strip() == token
        written = share / "handoff.txt"
        assert written.read_text().strip() == token
        assert (written.stat().st_uid, written.stat().st_gid) == (1000, 1000)
    finally:
        shutil.rmtree(share, ignore_errors=True)


def test_the_nfs_server_pod_runs_unprivileged_with_only_the_capabilities_its_manifest_names(
    nfs_server: str, node_api: Any
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(node_api)
    (pod,) = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=nfs-server").items
    (container,) = pod.spec.containers
    assert container.image == images.NFS_IMAGE
    assert not container.security_context.privileged
    assert container.security_context.capabilities.drop == ["ALL"]
    assert "SYS_ADMIN" not in container.security_context.capabilities.add
    # Ready means the export answers over NFSv4, not only that the port is open.
    assert container.readiness_probe._exec.command[:2] == ["nfs-ls", "nfs://127.0.0.1/?version=4"]
    (status,) = pod.status.container_statuses
    assert status.ready and status.restart_count == 0
