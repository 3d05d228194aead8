"""train-resnet as a Kubeflow Trainer TrainJob on the real node: Trainer v2.0.0 and JobSet v0.8.2 run for real
(rig/trainer.py), two CPU worker pods under torchrun on a static claim, one worker pod killed in the middle of an
epoch, the TrainJob restarted by its controllers and resumed from the published epoch, then test-resnet on what it
published. Assertions read the claim's directory on the node and the TrainJob's conditions."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines import trainjob as tj
from rig import images
from steps import checkpoint, dataplane, documents, params, schemas
from tests.node import pods

RUN = "/mnt/shared/runs/r1"
DATA = "/mnt/shared/data"
EPOCHS = 2
TRAIN_IMAGES = 256  # 16 iterations per rank per epoch at batch 8
LOG_INTERVAL = 2  # the first progress line of epoch 2 comes at its iteration 2: the kill lands with 14 left to go
TRAINJOB_TIMEOUT_S = 900.0


def trainjob_of(namespace: str, name: str) -> dict[str, Any]:
    values = {name: getattr(params.DEFAULTS, name) for name in params.TRAINING}
    values |= {"epochs": EPOCHS, "batch_size": 8, "lr": 0.05, "device": "cpu", "num_workers": 0}
    plan = tj.TrainJobPlan(
        name=name, namespace=namespace, image=images.STEP_IMAGE, workers=2, claim="shared", mount_path=pods.MOUNT,
        run_dir=RUN, data_root=DATA, values=values,
    )  # fmt: skip
    return tj.trainjob(plan)


def worker_pod(core: Any, namespace: str, name: str, index: int) -> Any:
    """The running pod of worker ``index`` of TrainJob ``name`` (its JobSet's pods carry both labels)."""
    selector = f"{tj.POD_LABEL}={name},batch.kubernetes.io/job-completion-index={index}"
    listed = core.list_namespaced_pod(namespace, label_selector=selector).items
    found = [p for p in listed if p.status.phase == "Running"]
    assert len(found) == 1, [(p.metadata.name, p.status.phase) for p in found]
    return found[0]


def until_trainjob(custom: Any, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    """Watch TrainJob ``name`` (list, then watch from there, with a deadline) until Complete or Failed is True."""
    from kubernetes import watch

    def ended(obj: dict[str, Any]) -> bool:
        return any(
            c.get("type") in {"Complete", "Failed"} and c.get("status") == "True"
            for c in (obj.get("status") or {}).get("conditions") or []
        )

    args = (tj.GROUP, tj.VERSION, namespace, tj.PLURAL)
    deadline = time.monotonic() + timeout
    listing = custom.list_namespaced_custom_object(*args, field_selector=f"metadata.name={name}")
    last = listing["items"][0]
    rv = listing["metadata"]["resourceVersion"]
    while not ended(last) and (left := deadline - time.monotonic()) > 0:
        w = watch.Watch()
        for event in w.stream(
            custom.list_namespaced_custom_object, *args, field_selector=f"metadata.name={name}", resource_version=rv,
            timeout_seconds=max(1, int(left)),
        ):  # fmt: skip
            last, rv = event["object"], event["object"]["metadata"]["resourceVersion"]
            if ended(last):
                w.stop()
    assert ended(last), f"TrainJob {name} did not end in {timeout:.0f} s: {(last.get('status') or {})}"
    return last


def test_a_two_worker_trainjob_with_a_worker_pod_killed_mid_epoch_restarts_resumes_and_completes(
    trainer_on_node, node_api, node_namespace, run_pod, tmp_path: Path
) -> None:
    from kubernetes import client

    volume = pods.provision_static(trainer_on_node, node_namespace, "shared", tmp_path / "volumes")
    synth = f"sharedvol data synth {DATA} --train {TRAIN_IMAGES} --test 32"
    data = run_pod.run(pods.step_pod("data", [synth], "shared", command=["/bin/bash", "-ec"]), 120)
    assert data.phase == "Succeeded", data.logs
    custom, core = client.CustomObjectsApi(node_api), client.CoreV1Api(node_api)
    name = "train-r1"
    body = trainjob_of(node_namespace, name)
    body["spec"]["trainer"]["command"] += ["--log-interval", str(LOG_INTERVAL)]
    custom.create_namespaced_custom_object(tj.GROUP, tj.VERSION, node_namespace, tj.PLURAL, body)

    rank0 = worker_pod_when_running(run_pod, core, node_namespace, name, 0)
    run_pod.follow_until(rank0, re.compile(rf"epoch 1/{EPOCHS}: .*published"), timeout=600, container=tj.NODE)
    run_pod.follow_until(rank0, re.compile(r"Epoch\(train\)\s*\[\s*2\]\["), timeout=300, container=tj.NODE)
    published_then = checkpoint.require_manifest(str(volume / "runs" / "r1" / "checkpoints" / "latest.json"))
    assert published_then.epoch == 1  # read before the kill: epoch 2 is running, not yet published
    killed = worker_pod(core, node_namespace, name, 1).metadata.name
    core.delete_namespaced_pod(killed, node_namespace, grace_period_seconds=0)

    ended = until_trainjob(custom, node_namespace, name, TRAINJOB_TIMEOUT_S)

    conditions = {c["type"]: c["status"] for c in ended["status"]["conditions"]}
    assert conditions.get("Complete") == "True" and conditions.get("Failed") != "True", ended["status"]
    selector = f"{tj.POD_LABEL}={name}"
    workers = core.list_namespaced_pod(node_namespace, label_selector=selector).items
    index1 = [p.metadata.name for p in workers if p.metadata.labels["batch.kubernetes.io/job-completion-index"] == "1"]
    assert killed not in index1 and len(index1) == 1, index1  # the killed worker was replaced by a new pod
    [survivor] = core.read_namespaced_pod(rank0, node_namespace).status.container_statuses
    assert survivor.restart_count >= 1  # rank 0's torchrun stopped when its peer went, and was started again
    for pod in (rank0, index1[0]):  # each rank read and verified the published epoch itself
        assert f"resuming from epoch {published_then.epoch} (" in run_pod.logs(pod, container=tj.NODE)
    run = dataplane.RunLayout(str(volume / "runs" / "r1"))
    summary = documents.read(run.summary, schemas.TrainSummary)
    assert summary.epochs == EPOCHS
    assert summary.resumed_from_epoch == published_then.epoch >= 1
    assert summary.loss_per_epoch[: published_then.epoch] == pytest.approx(published_then.doc.loss_per_epoch, abs=1e-5)
    assert summary.images_seen == (EPOCHS - published_then.epoch) * TRAIN_IMAGES  # the unpublished epochs only
    names = sorted(p.name for p in (volume / "runs" / "r1" / "checkpoints").iterdir())
    assert len(names) == 3 and all(n == "latest.json" or n.startswith(f"epoch-{EPOCHS:04d}-") for n in names), names

    tested = run_pod.run(pods.step_pod("test", ["test", "--run-dir", RUN, "--data-root", DATA], "shared"), 300)

    assert (tested.phase, tested.exit_code) == ("Succeeded", 0), tested.logs
    result = json.loads((volume / "runs" / "r1" / "eval" / "eval_result.json").read_text())
    assert result["epoch"] == EPOCHS and result["checkpoint_blake3"] == summary.checkpoint_blake3
    assert result["size"] == 32


def worker_pod_when_running(run_pod: pods.PodRunner, core: Any, namespace: str, name: str, index: int) -> str:
    """The name of worker ``index``'s pod once it runs (watched, with a deadline)."""
    from rig import kwait

    pod = kwait.until(
        core.list_namespaced_pod,
        lambda p: p.status.phase == "Running",
        namespace,
        timeout=180,
        what=f"worker {index} of TrainJob {name} Running",
        label_selector=f"{tj.POD_LABEL}={name},batch.kubernetes.io/job-completion-index={index}",
    )
    return str(pod.metadata.name)
