"""`sharedvol compile --storage SPEC`: the shorthand, and `auto` asking the real cluster for its RWX class."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from rig import cluster as cp
from rig.paths import REPO
from tests import objects
from tests.objects import ClusterObjects


def _compile(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    out_file = tmp_path / "p.yaml"
    cmd = [sys.executable, "-m", "pipelines", "compile", "-o", str(out_file), *args]
    out = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    return out, out_file.read_text() if out_file.exists() else ""


def _create_volume_class(compiled: str) -> str:
    """The storage_class_name the compiled pipeline's create-volume task passes to CreatePVC."""
    for doc in yaml.safe_load_all(compiled):
        tasks = (doc or {}).get("root", {}).get("dag", {}).get("tasks", {})
        task = next((t for t in tasks.values() if t.get("taskInfo", {}).get("name") == "create-volume"), None)
        if task:
            return str(task["inputs"]["parameters"]["storage_class_name"]["runtimeValue"]["constant"])
    raise AssertionError("no create-volume task in the compiled pipeline")


def test_storage_auto_compiles_with_the_clusters_rwx_class(
    cluster: cp.ClusterHandle, cluster_objects: ClusterObjects, tmp_path: Path
) -> None:
    nfs = cluster_objects.storage_class(objects.nfs_class()).metadata.name
    out, compiled = _compile(tmp_path, "--storage", "auto", "--kubeconfig", str(cluster.kubeconfig))

    assert out.returncode == 0, out.stderr
    assert f"storage: StorageClass {nfs}: StorageClass {nfs} serves RWX (CSI NFS driver)" in out.stdout
    assert _create_volume_class(compiled) == nfs


def test_storage_auto_on_a_cluster_without_rwx_says_what_to_do(
    cluster: cp.ClusterHandle, cluster_objects: ClusterObjects, tmp_path: Path
) -> None:
    cluster_objects.storage_class(
        {"metadata": {"name": f"lp-{uuid.uuid4().hex[:6]}"}, "provisioner": "rancher.io/local-path"}
    )
    out, compiled = _compile(tmp_path, "--storage", "auto", "--kubeconfig", str(cluster.kubeconfig))

    assert out.returncode == 2 and compiled == ""
    assert out.stderr.strip() == (
        "sharedvol compile: error: --storage auto: no StorageClass on this cluster serves ReadWriteMany: "
        "kubectl apply -k k8s/nfs (or k8s/fallback); or make a volume with `sharedvol provision NAME --static` "
        "and pass --storage pvc:NAME; or use `sharedvol run`, which makes one"
    )
