"""The whole user journey for real: KFP 2.17.0's backend on the real node runs the pipeline from ``sharedvol submit``.

The run's claim is the static pre-bound form (``--static-pv``): KFP's driver creates a claim bound to a hostPath
PV on this machine and deletes it at the end, so every file the steps wrote can be read here. The steps run in
the locally built step image, on the CPU, on tiny generated data. ML Metadata is read through the forwarding
server, the way the KFP UI reads it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage import specs
from tests import kwait
from tests.images import STEP_IMAGE
from tests.kfp_backend.real import backend as kb
from tests.kfp_backend.real import config as kc
from tests.kfp_backend.real.conftest import Mlmd

RUN_TIMEOUT_S = 900
RETRY_CLAIM = f"kfp-retried-{uuid.uuid4().hex[:6]}"  # a node kept by make node-up may hold older ones
FAILING_CLAIM = f"kfp-failing-{uuid.uuid4().hex[:6]}"


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


@dataclass(eq=False)  # one per command, keyed by identity
class Journey:
    """One sharedvol command against the backend, run to its end."""

    argv: list[str]
    out: subprocess.CompletedProcess[str] | None = None

    def check(self) -> subprocess.CompletedProcess[str]:
        """The finished command, asserted to have succeeded."""
        assert self.out is not None
        assert self.out.returncode == 0, self.out.stdout[-3000:] + self.out.stderr[-3000:]
        return self.out


TINY = ["--image", STEP_IMAGE, "--gpus", "0", "--device", "cpu", "--batch-size", "16", "--num-workers", "0",
        "--volume-size", "1Gi", "--timeout", str(RUN_TIMEOUT_S)]  # fmt: skip


@pytest.fixture(scope="module")
def journeys(
    kfp_on_node: Any, static_volume: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Three runs at once, each to its end: ``submit --wait`` on the static PV (1 epoch); ``sharedvol run
    --storage static`` (2 epochs) whose train-resnet is killed once, after it published epoch 1; and a ``sharedvol
    run`` whose prepare-data fails (a data directory that does not exist)."""
    backend = kfp_on_node
    pv, _ = static_volume
    base = tmp_path_factory.mktemp("run-static")
    api = ["--host", backend.api_url, "--ui-url", backend.ui_url]
    submit = Journey([
        "submit", *api, "--wait", "--static-pv", pv, "--storage-class", "", "--epochs", "1", "--run-name", "journey",
        "--data-source", "synthetic:64:32", *TINY,
    ])  # fmt: skip
    run = Journey([
        "run", *api, "--kubeconfig", str(backend.kubeconfig), "--namespace", kc.NAMESPACE, "--storage", "static",
        "--host-path", str(base), "--claim-name", RETRY_CLAIM, "--epochs", "2", "--train-retries", "1",
        "--run-name", "retried", "--data-source", "synthetic:256:32", *TINY,  # 16 iterations an epoch: time to kill
    ])  # fmt: skip
    failing = Journey([
        "run", *api, "--kubeconfig", str(backend.kubeconfig), "--namespace", kc.NAMESPACE, "--storage", "static",
        "--host-path", str(base), "--claim-name", FAILING_CLAIM, "--epochs", "1", "--run-name", "failing",
        "--data-source", "/no/such/directory", *TINY,
    ])  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(kb.REPO)}
    started = {
        j: subprocess.Popen([sys.executable, "-m", "pipelines", *j.argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
        for j in (submit, run, failing)
    }  # fmt: skip
    killed: dict[str, Any] = {}
    killer = threading.Thread(target=_kill_train_after_epoch_1, args=(backend, base, killed), daemon=True)
    killer.start()
    for j, proc in started.items():
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S + 300)
        j.out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    killer.join(timeout=5)
    yield {"submit": submit, "run": run, "failing": failing, "base": base, "killed": killed}
    # The static PVs sharedvol made (Retain): the claims go with the namespace, the PVs with this.
    made = [specs.static_pv_name(kc.NAMESPACE, claim) for claim in (RETRY_CLAIM, FAILING_CLAIM)]
    backend.kubectl("delete", "pv", *made, "--ignore-not-found", "--wait=false")


def _kill_train_after_epoch_1(backend: Any, base: Path, killed: dict[str, Any]) -> None:
    """Once train-resnet's log says it published epoch 1, SIGKILL its training process (as the kernel's OOM killer
    would): the train step fails, and the workflow retries it."""
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(str(backend.kubeconfig)))

    def training(pod: Any) -> bool:
        claims = {v.persistent_volume_claim.claim_name for v in pod.spec.volumes or [] if v.persistent_volume_claim}
        spec = json.dumps([[c.command, c.args] for c in pod.spec.containers])
        return pod.status.phase == "Running" and RETRY_CLAIM in claims and "train-resnet" in spec

    try:
        pod = kwait.until(core.list_namespaced_pod, training, kc.NAMESPACE, timeout=RUN_TIMEOUT_S, what="train pod")
        logs = subprocess.Popen(
            [str(backend.kubectl_bin / "kubectl"), "--kubeconfig", str(backend.kubeconfig), "-n", kc.NAMESPACE,
             "logs", "-f", pod.metadata.name, "-c", "main"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert logs.stdout is not None
        for line in logs.stdout:
            if "epoch 1/2: mean loss" in line and "published" in line:
                for pid in _training_processes(base):
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"] = pid
                break
        logs.kill()
    except Exception as e:  # reported by the test that needs the kill
        killed["error"] = repr(e)


def _training_processes(base: Path) -> list[int]:
    """The python processes running train-resnet with a volume from ``base`` mounted (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            exe = os.readlink(proc / "exe")
            mounts = (proc / "mountinfo").read_text()
        except OSError:
            continue
        if "python" in Path(exe).name and "train-resnet" in cmdline and str(base) in mounts:
            found.append(int(proc.name))
    return found


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


def test_the_driver_created_the_claim_on_the_static_volume_and_deleted_it_at_the_end(
    kfp_on_node: Any, static_volume: tuple[str, Path], journeys: dict[str, Any]
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
    run_id = re.findall(r"#/runs/details/([0-9a-f-]+)", journeys["submit"].check().stdout)[-1]
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
