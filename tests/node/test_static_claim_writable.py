"""A claim from ``sharedvol provision --static`` is writable by the steps' user on a real node.

The kubelet creates a ``DirectoryOrCreate`` hostPath directory owned by root, mode 0755; the step image runs as
uid 1000 (docker/Dockerfile ``USER 1000:1000``). provision hands the directory to 1000:1000 (mode 0775) with one
short root pod, so a uid-1000 pod of the step image can write into the claim; the pod is gone afterwards, a
rerun runs none, and an image the node does not have fails fast with one line. Assertions read the node's
host directory (the node is this machine).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rig import cluster as cp
from rig.node import nodeconfig
from tests.node import pods


def provision(node, namespace: str, name: str, base: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``sharedvol provision NAME --static`` on the node, as a user runs it."""
    return subprocess.run(
        [
            sys.executable, "-m", "pipelines.cli", "provision", name, "-n", namespace, "--static",
            "--host-path", str(base), "--node", nodeconfig.NODE_NAME, "--size", "1Gi",
            "--kubeconfig", str(node.kubeconfig), "--timeout", "120", *flags,
        ],
        cwd=cp.REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_a_uid_1000_pod_of_the_step_image_writes_into_a_claim_from_provision_static(
    node, node_namespace, run_pod, tmp_path
) -> None:
    out = provision(node, node_namespace, "shared", tmp_path / "volumes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "volume root: handed to 1000:1000, mode 0775, by pod sharedvol-prepare-shared in " in out.stdout

    script = "id -u > /mnt/shared/written-by && echo hello > /mnt/shared/hello.txt && mkdir /mnt/shared/data"
    writer = run_pod.run(pods.step_pod("writer", [script], claim="shared", command=["/bin/sh", "-ec"]), timeout=180)

    assert (writer.phase, writer.exit_code) == ("Succeeded", 0), writer.logs
    volume = tmp_path / "volumes" / node_namespace / "shared"
    root = volume.stat()
    assert (root.st_uid, root.st_gid, root.st_mode & 0o7777) == (1000, 1000, 0o775)
    assert (volume / "written-by").read_text() == "1000\n"
    assert (volume / "hello.txt").read_text() == "hello\n"
    assert (volume / "hello.txt").stat().st_uid == 1000 and (volume / "data").is_dir()
    assert [p.metadata.name for p in run_pod.core.list_namespaced_pod(node_namespace).items] == ["writer"]

    again = provision(node, node_namespace, "shared", tmp_path / "volumes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "volume root: owned by 1000:1000, mode 0775 (done before; no pod ran)" in again.stdout


def test_a_prepare_image_the_node_does_not_have_fails_fast_with_one_line_and_leaves_no_pod(
    node, node_namespace, run_pod, tmp_path
) -> None:
    out = provision(node, node_namespace, "shared", tmp_path / "volumes", "--prepare-image", "sharedvol-absent:0.0.1")

    assert out.returncode == 2, out.stdout + out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("sharedvol provision: error: "), out.stderr
    assert f"pod {node_namespace}/sharedvol-prepare-shared on node {nodeconfig.NODE_NAME} cannot start: image " in line
    assert "sharedvol-absent:0.0.1 cannot be pulled" in line and "--no-prepare" in line
    assert run_pod.core.list_namespaced_pod(node_namespace).items == []
