"""scripts/node/import.sh: images from the Docker engine into the node's containerd, one version of each kept."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from rig import cluster as cp
from rig.paths import REPO
from tests.node.session import NodeHandle

NAME = "sharedvol-import-check:0.1.0"


def _build(version: int, bin_dir: Path) -> str:
    # The base: the node's pause image, which the Docker engine of a fresh machine does not have yet.
    subprocess.run(["docker", "load", "-q", "-i", str(bin_dir / "pause.tar")], check=True, capture_output=True)
    dockerfile = f"FROM sharedvol.local/pause:v1.35.4\nLABEL sharedvol.import-check={version}\n"
    subprocess.run(["docker", "build", "-q", "-t", NAME, "-"], input=dockerfile, text=True, check=True,
                   capture_output=True)  # fmt: skip
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", NAME], capture_output=True, text=True)
    return out.stdout.strip()


def _node_ids(node: NodeHandle) -> set[str]:
    env = cp.read_env(node.workdir / "node.env")
    endpoint = f"unix://{env['CONTAINERD_ADDRESS']}"
    crictl = [str(node.bin_dir / "crictl"), "--runtime-endpoint", endpoint, "images", "-o", "json"]
    out = subprocess.run(crictl, capture_output=True, text=True, check=True)
    return {
        i["id"] for i in json.loads(out.stdout)["images"] if any("sharedvol-import-check" in t for t in i["repoTags"])
    }


def _import(node: NodeHandle) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "scripts" / "node" / "import.sh"), str(node.workdir), NAME], capture_output=True, text=True
    )


def test_a_rebuilt_image_replaces_its_older_version_on_the_node_and_an_unchanged_one_is_skipped(
    node: NodeHandle,
) -> None:
    first = _build(1, node.bin_dir)
    assert _import(node).returncode == 0
    assert _node_ids(node) == {first}
    again = _import(node)
    assert again.returncode == 0 and "the node has it already" in again.stderr
    second = _build(2, node.bin_dir)
    assert second != first
    replaced = _import(node)
    assert replaced.returncode == 0, replaced.stderr
    assert _node_ids(node) == {second}  # the CRI kept the first version referenced by its id before
