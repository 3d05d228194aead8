"""The mission on real pods: a claim from ``sharedvol provision --static`` (which hands its directory to uid 1000),
pods from the built step image (uid 1000) that prepare data, train, evaluate and produce metrics on it, one after
another; and a train pod killed mid-run whose successor on the same claim resumes. Assertions read what the pods
wrote from the node's host directory."""

from __future__ import annotations

import json

from steps import checkpoint, documents, schemas
from tests.node import pods

RUN = "/mnt/shared/runs/r1"
DATA = "/mnt/shared/data"


def shell_pod(name: str, script: str, claim: str) -> dict:
    return pods.step_pod(name, [script], claim=claim, command=["/bin/bash", "-ec"])


def train_script(epochs: int) -> str:
    return (
        f"sharedvol train --run-dir {RUN} --data-root {DATA} --epochs {epochs} --batch-size 8 --device cpu "
        "--log-interval 1"
    )


def test_pods_on_a_static_claim_prepare_train_evaluate_and_report_and_leave_results_on_the_volume(
    node, node_namespace, run_pod, tmp_path
) -> None:
    volume = pods.provision_static(node, node_namespace, "shared", tmp_path / "volumes")
    synth = f"sharedvol data synth {DATA} --train 64 --test 32 && {train_script(1)}"

    trained = run_pod.run(shell_pod("train", synth, "shared"), timeout=600)
    assert (trained.phase, trained.exit_code) == ("Succeeded", 0), trained.logs
    tested = run_pod.run(pods.step_pod("test", ["test", "--run-dir", RUN, "--data-root", DATA], "shared"), 300)
    assert (tested.phase, tested.exit_code) == ("Succeeded", 0), tested.logs
    reported = run_pod.run(pods.step_pod("metrics", ["metrics", "--run-dir", RUN], "shared"), 300)
    assert (reported.phase, reported.exit_code) == ("Succeeded", 0), reported.logs

    run = volume / "runs" / "r1"
    evaluation = json.loads((run / "eval" / "eval_result.json").read_text())
    assert evaluation["schema"] == "sharedvol.eval_result"
    assert evaluation["size"] == 32 and 0.0 <= evaluation["top1"] <= 1.0
    assert sum(map(sum, evaluation["confusion_matrix"])) == 32
    metrics = json.loads((run / "metrics" / "metrics.json").read_text())
    assert metrics["schema"] == "sharedvol.metrics" and metrics["scalars"]
    v1 = json.loads((run / "metrics" / "mlpipeline-metrics.json").read_text())
    assert v1["metrics"]
    assert (run / "metrics" / "report.html").stat().st_size > 0
    # the digests the pods published verify from the host: the checkpoint manifest's files and the sealed documents
    manifest = checkpoint.require_manifest(str(run / "checkpoints" / "latest.json"))
    for ref in (manifest.weights, manifest.resume):
        assert len(checkpoint.read_verified(manifest, ref)) == ref.size
    sealed = documents.read(str(run / "eval" / "eval_result.json"), schemas.EvalResult)
    assert sealed.top1 == evaluation["top1"]
    assert all(p.stat().st_uid == 1000 for p in run.rglob("*"))


def test_a_train_pod_killed_mid_run_is_resumed_by_a_new_pod_from_the_last_published_epoch(
    node, node_namespace, run_pod, tmp_path
) -> None:
    volume = pods.provision_static(node, node_namespace, "shared", tmp_path / "volumes")
    prepared = run_pod.run(shell_pod("data", f"sharedvol data synth {DATA} --train 64 --test 32", "shared"), 120)
    assert prepared.phase == "Succeeded", prepared.logs

    first = run_pod.create(shell_pod("train-1", train_script(4), "shared"))
    run_pod.wait(first, lambda p: p.status.phase == "Running", 120, "train-1 Running")
    line = run_pod.follow_until(first, "epoch 1/4: ", timeout=300)
    assert "published" in line
    run_pod.core.delete_namespaced_pod(first, node_namespace, grace_period_seconds=0)
    run_pod.wait_deleted(first, 60)

    second = run_pod.run(shell_pod("train-2", train_script(4), "shared"), timeout=600)

    assert (second.phase, second.exit_code) == ("Succeeded", 0), second.logs
    summary = json.loads((volume / "runs" / "r1" / "train" / "summary.json").read_text())
    assert summary["epochs"] == 4
    assert summary["resumed_from_epoch"] >= 1
    assert "resumed at epoch" in second.logs
