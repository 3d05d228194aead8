"""Kubeflow Trainer v2.0.0 and JobSet v0.8.2 as scripts/trainer/build.sh renders them: their CRDs are accepted by
the real API server, and the TrainJob sharedvol builds (pipelines/trainjob.py) is valid against Trainer's CRD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import trainjob
from rig.cluster import ClusterHandle
from steps import params
from tests.controlplane import trainer
from tests.controlplane.trainer import CRDS


@pytest.fixture(scope="module")
def manifests() -> Path:
    return trainer.manifests()


@pytest.fixture(scope="module")
def trainer_crds(cluster: ClusterHandle, api: Any, manifests: Path) -> Iterator[ClusterHandle]:
    """Trainer's CRDs installed for real (the TrainJob's dry run needs its schema), removed after."""
    with trainer.crds_installed(cluster, api, manifests) as installed:
        yield installed


@pytest.mark.parametrize("name", sorted(CRDS))
def test_the_rendered_crds_are_accepted_by_the_api_server_in_a_server_side_dry_run(
    cluster: ClusterHandle, manifests: Path, name: str
) -> None:
    docs = trainer.objects(manifests / name)
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
