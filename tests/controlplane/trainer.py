"""Kubeflow Trainer v2.0.0 and JobSet v0.8.2 as scripts/trainer/build.sh renders them, for the control-plane tests.

Only the CRDs are installed (no controller runs here): a test plays Trainer's part by patching a TrainJob's status.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from rig import kwait
from rig.cluster import ClusterHandle
from rig.paths import REPO

BUILD = REPO / "scripts" / "trainer" / "build.sh"
CRDS = {
    "trainer-crds.yaml": {
        "clustertrainingruntimes.trainer.kubeflow.org",
        "trainingruntimes.trainer.kubeflow.org",
        "trainjobs.trainer.kubeflow.org",
    },
    "jobset-crds.yaml": {"jobsets.jobset.x-k8s.io"},
}


def manifests() -> Path:
    """The rendered manifests: of the build make test ran (``SHAREDVOL_TRAINER_DIR``), else rendered now."""
    built = os.environ.get("SHAREDVOL_TRAINER_DIR")
    if built and (Path(built) / "manifests").is_dir():
        return Path(built) / "manifests"
    out = subprocess.run([str(BUILD), "--manifests"], check=False, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise AssertionError(f"{BUILD} --manifests failed (exit {out.returncode}); see its output above")
    return Path(out.stdout.strip().splitlines()[-1]) / "manifests"


def objects(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def established(crd: Any) -> bool:
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))


@contextlib.contextmanager
def crds_installed(cluster: ClusterHandle, api: Any, manifests: Path) -> Iterator[ClusterHandle]:
    """Trainer's CRDs installed for real and Established, removed when the block ends."""
    from kubernetes import client

    path = str(manifests / "trainer-crds.yaml")
    cluster.kubectl("apply", "--server-side", "-f", path)
    try:
        ext = client.ApiextensionsV1Api(api)
        for name in CRDS["trainer-crds.yaml"]:
            kwait.until(
                ext.list_custom_resource_definition, established, field_selector=f"metadata.name={name}", what=name
            )
        yield cluster
    finally:
        cluster.kubectl("delete", "-f", path, "--ignore-not-found", "--wait=true", "--timeout=90s")
