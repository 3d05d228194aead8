"""The whole user journey for real: KFP 2.17.0's backend on the real node runs the pipeline from ``sharedvol submit``.

The run's claim is the static pre-bound form (``--static-pv``): KFP's driver creates a claim bound to a hostPath
PV on this machine and deletes it at the end, so every file the steps wrote can be read here. The steps run in
the locally built step image, on the CPU, on tiny generated data. ML Metadata is read through the forwarding
server, the way the KFP UI reads it. The runs are the package's (journeys.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rig.kfp import config as kc
from tests.kfp_backend.real import uichecks
from tests.kfp_backend.real.journeys import RETRY_CLAIM
from tests.kfp_backend.real.mlmd import Mlmd

# the first test here makes the package's runs in its set-up (node, images, three pipeline runs): more than the
# suite's 900 s on a busy machine, as the browser test's module already allows
pytestmark = pytest.mark.timeout(1800)


def test_submit_wait_runs_the_pipeline_to_success_on_the_real_backend(journeys: dict[str, Any]) -> None:
    assert " SUCCEEDED" in journeys["submit"].check().stdout


def test_submit_wait_prints_the_metrics_that_ml_metadata_holds(
    journeys: dict[str, Any], static_volume: tuple[str, Path]
) -> None:
    out = journeys["submit"].check().stdout
    _, directory = static_volume
    [result] = list(directory.glob("runs/*/eval/eval_result.json"))
    top1 = json.loads(result.read_text())["top1"]

    assert "metrics read from ML Metadata" in out
    assert f"{100 * top1:10.2f} %" in out  # the accuracy row of the printed table


def test_submit_wait_prints_every_task_readme_names_succeeded_in_the_dags_order(journeys: dict[str, Any]) -> None:
    out = journeys["submit"].check().stdout
    names = ["create-volume", "prepare-data", "train-resnet", "test-resnet", "produce-metrics", "delete-volume"]
    first_success = [out.find(f"  {name}: SUCCEEDED") for name in names]

    assert -1 not in first_success, out
    assert first_success == sorted(first_success), out


def test_sharedvol_run_makes_the_static_volume_and_runs_the_pipeline_to_success(journeys: dict[str, Any]) -> None:
    out = journeys["run"].check().stdout
    [summary] = list(journeys["base"].glob("**/train/summary.json"))

    assert " SUCCEEDED" in out
    assert f"claim {kc.NAMESPACE}/{RETRY_CLAIM} is Bound" in out
    assert json.loads(summary.read_text())["epochs"] == 2
    assert list(journeys["base"].glob("**/eval/eval_result.json"))


def test_a_train_step_killed_after_epoch_1_is_retried_and_resumes_from_that_epoch(journeys: dict[str, Any]) -> None:
    journeys["run"].check()
    [summary] = list(journeys["base"].glob("**/train/summary.json"))
    train = json.loads(summary.read_text())

    assert "pid" in journeys["killed"], f"the training process was never killed: {journeys['killed']}"
    assert train["resumed_from_epoch"] == 1
    assert train["epochs"] == 2 and len(train["loss_per_epoch"]) == 2


def test_the_driver_created_the_claim_on_the_static_volume_and_the_runs_ttl_freed_it_after_delete_volume(
    kfp_on_node: Any, static_volume: tuple[str, Path], submit_collected: str
) -> None:
    pv_name, _ = static_volume
    pv = json.loads(kfp_on_node.kubectl("get", "pv", pv_name, "-o", "json").stdout)
    claim_ref = pv["spec"].get("claimRef") or {}
    claims = json.loads(kfp_on_node.kubectl("get", "pvc", "-n", kc.NAMESPACE, "-o", "json").stdout)["items"]
    pods = json.loads(kfp_on_node.kubectl("get", "pods", "-n", kc.NAMESPACE, "-o", "json").stdout)["items"]
    holders = [
        p["metadata"]["name"]
        for p in pods
        for v in p["spec"].get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim_ref.get("name")
    ]

    # create-volume made a claim bound to the PV (its claimRef) ...
    assert claim_ref.get("namespace") == kc.NAMESPACE and claim_ref.get("name", "").endswith("-sharedvol")
    # ... delete-volume deleted it, and once the run's TTL (--ttl-after-success) took its Workflow and pods, which
    # held it (the pvc-protection finalizer; kubeflow/pipelines#10356), it was gone and the PV Released
    assert claim_ref["name"] not in {c["metadata"]["name"] for c in claims}
    assert pv["status"]["phase"] == "Released"
    assert holders == []


def test_the_steps_wrote_the_evaluation_and_the_metrics_files_on_the_volume(
    static_volume: tuple[str, Path], journeys: dict[str, Any]
) -> None:
    _, directory = static_volume
    [result] = list(directory.glob("runs/*/eval/eval_result.json"))
    metrics_dir = result.parent.parent / "metrics"

    evaluation = json.loads(result.read_text())
    assert 0.0 <= evaluation["top1"] <= 1.0
    assert any(metrics_dir.iterdir())


def test_mlmd_holds_the_metrics_and_the_confusion_matrix_as_the_kfp_ui_reads_them(
    mlmd_on_node: Mlmd, static_volume: tuple[str, Path], journeys: dict[str, Any]
) -> None:
    _, directory = static_volume
    [result] = list(directory.glob("runs/*/eval/eval_result.json"))
    evaluation = json.loads(result.read_text())

    # The artifacts of the submitted run (the other run of this module has its own): its context is named by
    # the run id, which the printed link ends with.
    run_id = uichecks.run_id(journeys["submit"].check().stdout)
    context = mlmd_on_node.call("GetContextByTypeAndName", {"typeName": "system.PipelineRun", "contextName": run_id})
    artifacts = mlmd_on_node.call("GetArtifactsByContext", {"contextId": context["context"]["id"]})["artifacts"]
    types = {t["id"]: t["name"] for t in mlmd_on_node.call("GetArtifactTypes", {})["artifactTypes"]}
    metrics = [a for a in artifacts if types[a["typeId"]] == "system.Metrics"]
    matrices = [a for a in artifacts if types[a["typeId"]] == "system.ClassificationMetrics"]

    final = [a for a in metrics if a["customProperties"].get("display_name", {}).get("stringValue") == "metrics"]
    assert len(final) == 1, metrics
    top1 = final[0]["customProperties"]["accuracy-top1"]["doubleValue"]
    assert top1 == pytest.approx(evaluation["top1"])
    [matrix_artifact] = matrices
    props = matrix_artifact["customProperties"]
    assert props["display_name"]["stringValue"]  # the UI lists only artifacts with a display name
    matrix = props["confusionMatrix"]["structValue"]["struct"]  # the UI reads confusionMatrix.struct
    size = len(matrix["annotationSpecs"])
    assert size == len(matrix["rows"]) == 10
    assert all(len(r["row"]) == size for r in matrix["rows"])
    assert sum(sum(r["row"]) for r in matrix["rows"]) == evaluation["size"]


def test_a_failed_run_names_the_failed_task_and_the_reason_from_its_pod_log(journeys: dict[str, Any]) -> None:
    # KFP's API names no pod and serves no logs: sharedvol run reads the failed task's pod log through Kubernetes.
    out = journeys["failing"].out
    lines = out.stderr.strip().splitlines()

    assert out.returncode != 0
    assert " FAILED" in out.stdout
    assert "task prepare-data failed: " in lines[-1]
    assert "unknown data source '/no/such/directory'" in lines[-1]
    assert "Traceback" not in out.stderr
