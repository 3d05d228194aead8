"""The whole user journey for real: KFP 2.17.0's backend on the real node runs the pipeline from ``sharedvol submit``.

The run's claim is the static pre-bound form (``--static-pv``): KFP's driver creates a claim bound to a hostPath
PV on this machine and deletes it at the end, so every file the steps wrote can be read here. The steps run in
the locally built step image, on the CPU, on tiny generated data. ML Metadata is read through the forwarding
server, the way the KFP UI reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kfp_backend.real import config as kc
from tests.kfp_backend.real.conftest import STEP_IMAGE, Mlmd

RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def static_volume(kfp_on_node: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Retain hostPath PV on this machine, writable by the steps' uid 1000; deleted afterwards."""
    backend = kfp_on_node
    directory = tmp_path_factory.mktemp("volume")
    directory.chmod(0o777)
    name = f"kfp-journey-{uuid.uuid4().hex[:6]}"
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(directory), "type": "Directory"},
        },
    }
    backend.kubectl("apply", "-f", "-", input=json.dumps(pv))
    yield name, directory
    backend.kubectl("delete", "pv", name, "--wait=false")


@pytest.fixture(scope="module")
def journey(kfp_on_node: Any, static_volume: tuple[str, Path]) -> subprocess.CompletedProcess[str]:
    """``sharedvol submit --wait`` of the pipeline with tiny data on the CPU, to its end."""
    backend = kfp_on_node
    pv, _ = static_volume
    env = {**os.environ, "PYTHONPATH": str(kc_repo())}
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "submit", "--host", backend.api_url, "--wait", "--image", STEP_IMAGE,
         "--static-pv", pv, "--storage-class", "", "--volume-size", "1Gi", "--gpus", "0", "--device", "cpu",
         "--epochs", "1", "--batch-size", "16", "--num-workers", "0", "--data-source", "synthetic:64:32",
         "--run-name", "journey", "--timeout", str(RUN_TIMEOUT_S)],
        capture_output=True, text=True, env=env, check=False, timeout=RUN_TIMEOUT_S + 120,
    )  # fmt: skip


def kc_repo() -> Path:
    from tests.kfp_backend.real import backend as kb

    return kb.REPO


def test_submit_wait_runs_the_pipeline_to_success_on_the_real_backend(
    journey: subprocess.CompletedProcess[str],
) -> None:
    assert journey.returncode == 0, journey.stdout[-3000:] + journey.stderr[-3000:]
    assert " SUCCEEDED" in journey.stdout


def test_the_driver_created_the_claim_on_the_static_volume_and_deleted_it_at_the_end(
    kfp_on_node: Any, static_volume: tuple[str, Path], journey: subprocess.CompletedProcess[str]
) -> None:
    pv_name, _ = static_volume
    pv = json.loads(kfp_on_node.kubectl("get", "pv", pv_name, "-o", "json").stdout)
    claim_ref = pv["spec"].get("claimRef") or {}
    claims = json.loads(kfp_on_node.kubectl("get", "pvc", "-n", kc.NAMESPACE, "-o", "json").stdout)["items"]
    claim = {c["metadata"]["name"]: c for c in claims}.get(claim_ref.get("name", ""))

    # create-volume made a claim bound to the PV (its claimRef) ...
    assert claim_ref.get("namespace") == kc.NAMESPACE and claim_ref.get("name", "").endswith("-sharedvol")
    # ... and delete-volume deleted it: gone, or Terminating while the run's finished pods still reference it
    # (the pvc-protection finalizer; kubeflow/pipelines#10356).
    assert claim is None or claim["metadata"].get("deletionTimestamp")


def test_the_steps_wrote_the_evaluation_and_the_metrics_files_on_the_volume(
    static_volume: tuple[str, Path], journey: subprocess.CompletedProcess[str]
) -> None:
    _, directory = static_volume
    [result] = list(directory.glob("runs/*/eval/eval_result.json"))
    metrics_dir = result.parent.parent / "metrics"

    evaluation = json.loads(result.read_text())
    assert 0.0 <= evaluation["top1"] <= 1.0
    assert any(metrics_dir.iterdir())


def test_mlmd_holds_the_metrics_and_the_confusion_matrix_as_the_kfp_ui_reads_them(
    mlmd_on_node: Mlmd, static_volume: tuple[str, Path], journey: subprocess.CompletedProcess[str]
) -> None:
    _, directory = static_volume
    [result] = list(directory.glob("runs/*/eval/eval_result.json"))
    evaluation = json.loads(result.read_text())

    metrics = mlmd_on_node.call("GetArtifactsByType", {"typeName": "system.Metrics"}).get("artifacts", [])
    classification = mlmd_on_node.call("GetArtifactsByType", {"typeName": "system.ClassificationMetrics"})

    final = [a for a in metrics if a["customProperties"].get("display_name", {}).get("stringValue") == "metrics"]
    assert len(final) == 1, metrics
    top1 = final[0]["customProperties"]["accuracy-top1"]["doubleValue"]
    assert top1 == pytest.approx(evaluation["top1"])
    [matrix_artifact] = classification["artifacts"]
    props = matrix_artifact["customProperties"]
    assert props["display_name"]["stringValue"]  # the UI lists only artifacts with a display name
    matrix = props["confusionMatrix"]["structValue"]["struct"]  # the UI reads confusionMatrix.struct
    size = len(matrix["annotationSpecs"])
    assert size == len(matrix["rows"]) == 10
    assert all(len(r["row"]) == size for r in matrix["rows"])
    assert sum(sum(r["row"]) for r in matrix["rows"]) == evaluation["size"]
