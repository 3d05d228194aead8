"""``sharedvol run --workers 2`` for real: KFP 2.17.0's backend runs the pipeline on the real node, and its
train-resnet task creates a TrainJob that Kubeflow Trainer v2.0.0 and JobSet v0.8.2 (rig/trainer.py) run as two CPU
worker pods under torchrun, on the run's one-shot static volume; test-resnet evaluates what rank 0 published.

Runs after the package's three journeys (its own run, alone: the machine has 2 cores).
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

from pipelines import trainjob as tj
from rig import trainer
from rig.kfp import backend as kb
from rig.kfp import config as kc
from storage import specs
from tests.kfp_backend.real import uichecks
from tests.kfp_backend.real.journeys import RUN_TIMEOUT_S, TINY

pytestmark = pytest.mark.timeout(1800)
CLAIM = f"kfp-workers2-{uuid.uuid4().hex[:6]}"
TRAIN_IMAGES = 64


@pytest.fixture(scope="module")
def workers2_run(
    kfp_on_node: Any, trainer_on_node: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.CompletedProcess[str], Path]]:
    """One ``sharedvol run --workers 2 --storage static`` to its end, with k8s/trainjob-rbac granted first."""
    backend = kfp_on_node
    trainer.grant_trainjob_rbac(trainer.Target(backend.kubeconfig, backend.kubectl_bin, Path(trainer_on_node.workdir)))
    base = tmp_path_factory.mktemp("run-workers2")
    argv = [
        "run", "--host", backend.api_url, "--ui-url", backend.ui_url, "--kubeconfig", str(backend.kubeconfig),
        "--namespace", kc.NAMESPACE, "--storage", "static", "--host-path", str(base), "--claim-name", CLAIM,
        "--workers", "2", "--epochs", "1", "--run-name", "workers2", "--data-source", f"synthetic:{TRAIN_IMAGES}:32",
        *TINY,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(kb.REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "pipelines", *argv], capture_output=True, text=True, env=env,
        timeout=RUN_TIMEOUT_S + 300, check=False,
    )  # fmt: skip
    yield out, base
    backend.kubectl("delete", "pv", specs.static_pv_name(kc.NAMESPACE, CLAIM), "--ignore-not-found", "--wait=false")


def test_sharedvol_run_with_two_workers_succeeds_through_a_trainjob_of_two_pods_that_trainer_completed(
    kfp_on_node: Any, workers2_run: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    out, _ = workers2_run
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " SUCCEEDED" in out.stdout
    run_id = uichecks.run_id(out.stdout)
    name = tj.name_for(run_id)

    found = json.loads(kfp_on_node.kubectl("get", "trainjob", name, "-n", kc.NAMESPACE, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in found["status"]["conditions"]}
    assert conditions.get("Complete") == "True" and conditions.get("Failed") != "True", found["status"]
    pods = json.loads(
        kfp_on_node.kubectl("get", "pods", "-n", kc.NAMESPACE, "-l", f"{tj.POD_LABEL}={name}", "-o", "json").stdout
    )["items"]
    assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded", "Succeeded"]


def test_the_two_workers_trained_the_whole_dataset_once_and_test_resnet_evaluated_what_rank_0_published(
    workers2_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, base = workers2_run
    [summary_file] = list(base.glob("**/train/summary.json"))
    summary = json.loads(summary_file.read_text())
    [result_file] = list(base.glob("**/eval/eval_result.json"))
    result = json.loads(result_file.read_text())

    assert summary["epochs"] == 1 and summary["images_seen"] == TRAIN_IMAGES  # summed over the two ranks
    assert result["epoch"] == 1 and result["checkpoint_blake3"] == summary["checkpoint_blake3"]
