"""Kubeflow Trainer v2.0.0 and JobSet v0.8.2 as scripts/trainer/build.sh renders them: their CRDs are accepted by
the real API server, and the TrainJob sharedvol builds (pipelines/trainjob.py) is valid against Trainer's CRD."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import trainjob
from rig import kwait
from rig.cluster import ClusterHandle
from rig.paths import REPO
from steps import params

BUILD = REPO / "scripts" / "trainer" / "build.sh"
CRDS = {
    "trainer-crds.yaml": {
        "clustertrainingruntimes.trainer.kubeflow.org",
        "trainingruntimes.trainer.kubeflow.org",
        "trainjobs.trainer.kubeflow.org",
    },
    "jobset-crds.yaml": {"jobsets.jobset.x-k8s.io"},
}


@pytest.fixture(scope="module")
def manifests() -> Path:
    """The rendered manifests: of the build make test ran (``SHAREDVOL_TRAINER_DIR``), else rendered now."""
    built = os.environ.get("SHAREDVOL_TRAINER_DIR")
    if built and (Path(built) / "manifests").is_dir():
        return Path(built) / "manifests"
    out = subprocess.run([str(BUILD), "--manifests"], check=False, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        pytest.fail(f"{BUILD} --manifests failed (exit {out.returncode}); see its output above")
    return Path(out.stdout.strip().splitlines()[-1]) / "manifests"


def objects(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def established(crd: Any) -> bool:
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))


@pytest.fixture(scope="module")
def trainer_crds(cluster: ClusterHandle, api: Any, manifests: Path) -> Iterator[ClusterHandle]:
    """Trainer's CRDs installed for real (the TrainJob's dry run needs its schema), removed after."""
    from kubernetes import client

    path = str(manifests / "trainer-crds.yaml")
    cluster.kubectl("apply", "--server-side", "-f", path)
    ext = client.ApiextensionsV1Api(api)
    for name in CRDS["trainer-crds.yaml"]:
        kwait.until(ext.list_custom_resource_definition, established, field_selector=f"metadata.name={name}", what=name)
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "-f", path, "--ignore-not-found", "--wait=true", "--timeout=90s")


@pytest.mark.parametrize("name", sorted(CRDS))
def test_the_rendered_crds_are_accepted_by_the_api_server_in_a_server_side_dry_run(
    cluster: ClusterHandle, manifests: Path, name: str
) -> None:
    docs = objects(manifests / name)
    out = cluster.kubectl("apply", "--server-side", "-f", str(manifests / name), "--dry-run=server")

    assert {d["metadata"]["name"] for d in docs} == CRDS[name]
    assert {d["kind"] for d in docs} == {"CustomResourceDefinition"}
    assert out.stdout.count("(server dry run)") == len(docs), out.stdout


def test_the_torch_distributed_runtime_and_a_two_worker_trainjob_are_valid_against_trainer_s_crds(
    trainer_crds: ClusterHandle, manifests: Path, namespace: str, tmp_path: Path
) -> None:
    plan = trainjob.TrainJobPlan(
        name="train-r1",
        namespace=namespace,
        image="sharedvol.local/steps:1",
        workers=2,
        claim="shared-r1",
        mount_path="/mnt/shared",
        run_dir="/mnt/shared/runs/r1",
        data_root="/mnt/shared/data/synthetic",
        values={name: getattr(params.DEFAULTS, name) for name in params.TRAINING},
    )
    job = tmp_path / "trainjob.yaml"
    job.write_text(yaml.safe_dump(trainjob.trainjob(plan)))

    runtime = trainer_crds.kubectl("apply", "-f", str(manifests / "runtimes.yaml"), "--dry-run=server")
    created = trainer_crds.kubectl("create", "-f", str(job), "--dry-run=server", "-o", "yaml", "--validate=strict")

    assert runtime.stdout.strip() == (
        "clustertrainingruntime.trainer.kubeflow.org/torch-distributed created (server dry run)"
    )
    defaults = {"managedBy": "trainer.kubeflow.org/trainjob-controller", "suspend": False}  # the CRD's own
    assert yaml.safe_load(created.stdout)["spec"] == {**trainjob.trainjob(plan)["spec"], **defaults}  # nothing pruned
