"""Every compiled pipeline variant through KFP 2.17.0's own API server and driver code (tests/kfpcheck).

For each variant (claim per run, existing claim, static PV, KFP's workspace, a TrainJob of two nodes), gpu_count 0,
1, 2 and keep_volume true/false: the API server accepts the run and Argo validates the workflow; the volume tasks are
where they belong; the container driver's pod-spec patch of every step mounts the volume, asks for exactly gpu_count
GPUs on train-resnet, and carries the configured tolerations and node selector. In the TrainJob variant, train-resnet
asks for none of these itself: the driver hands its component the claim, the GPUs, the node selector and the
tolerations, which go into the TrainJob's pods.
"""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl

from pipelines import options, params, runtime, trainjob, trainjob_launch
from tests import kfpcheck
from tests.kfp_backend.variants import SELECTOR, TOLERATIONS, VARIANTS

STEPS = ("prepare-data", "train-resnet", "test-resnet", "produce-metrics")
CASES = list(itertools.product(sorted(VARIANTS), (0, 1, 2), (False, True)))
IDS = [f"{v}-gpu{g}-{'keep' if k else 'delete'}" for v, g, k in CASES]
WORKSPACE_MOUNT = "/kfp-workspace"  # where KFP mounts its workspace (backend component.WorkspaceMountPath)


@functools.cache
def _verdict(checker: Path, path: Path, gpu_count: int, keep_volume: bool, volume: str) -> kfpcheck.Verdict:
    values = params.RunParameters(gpu_count=gpu_count, keep_volume=keep_volume).as_dict()
    # What prepare-data returns (pipelines.runtime): paths on the volume, which tell KFP's driver to mount
    # the workspace in the steps that take them.
    prepared = {"run_dir": runtime.run_dir(volume, "run-1"), "data_root": runtime.data_dir(volume, "download")}
    upstream = {"prepare-data": prepared}
    return kfpcheck.check(path, values, upstream=upstream, checker=checker)


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest, checker: Path, compiled: dict[str, Path]) -> tuple[str, int, bool, Any]:
    variant, gpus, keep = request.param
    volume = WORKSPACE_MOUNT if variant == "workspace" else "/mnt/shared"
    return variant, gpus, keep, _verdict(checker, compiled[variant], gpus, keep, volume)


def by_display_name(verdict: kfpcheck.Verdict) -> dict[str, dict[str, Any]]:
    """The driver's view of each task, by the display name the pipeline gives it."""
    names = {"createpvc": "create-volume", "deletepvc": "delete-volume"}
    return {names.get(name, name): task for name, task in verdict.tasks.items()}


def test_the_api_server_accepts_the_run_and_argo_validates_the_workflow(case: tuple[str, int, bool, Any]) -> None:
    _variant, _gpus, _keep, verdict = case
    assert verdict.accepted, f"{verdict.stage}: {verdict.error}"
    assert verdict.workflow["kind"] == "Workflow"
    tasks = by_display_name(verdict)
    assert not [f"{n}: {t['error']}" for n, t in tasks.items() if t.get("error")]
    assert set(STEPS) <= set(tasks)


def test_kfps_workflow_deletes_a_succeeded_run_after_ttl_after_success_and_keeps_a_failed_one(
    case: tuple[str, int, bool, Any],
) -> None:
    variant, _gpus, _keep, verdict = case
    ttl = verdict.workflow["spec"].get("ttlStrategy") or {}

    assert ttl == {"secondsAfterSuccess": VARIANTS[variant].ttl_after_success_s}


def test_create_volume_and_delete_volume_run_only_where_the_variant_needs_them(
    case: tuple[str, int, bool, Any],
) -> None:
    variant, _gpus, keep, verdict = case
    tasks = by_display_name(verdict)
    opts = VARIANTS[variant]
    makes_claim = opts.storage.strategy in ("dynamic", "static") and not opts.workspace
    assert ("create-volume" in tasks) is makes_claim
    assert ("delete-volume" in tasks) is makes_claim
    if makes_claim:
        assert tasks["create-volume"]["platformOp"] and tasks["create-volume"]["triggered"]
        assert tasks["delete-volume"]["platformOp"]
        assert tasks["delete-volume"]["triggered"] is (not keep)
        assert tasks["delete-volume"]["inputs"]["pvc_name"] == "createpvc-name"
        create = tasks["create-volume"]["inputs"]
        assert create["access_modes"] == ["ReadWriteMany"]
        if opts.storage.strategy == "static":
            assert (create["storage_class_name"], create["volume_name"]) == ("", "sharedvol-pv-0")
        else:
            assert create["storage_class_name"] == "sharedvol-nfs" and "volume_name" not in create
    if variant == "workspace":
        claims = verdict.workflow["spec"]["volumeClaimTemplates"]
        assert [c["spec"]["accessModes"] for c in claims] == [["ReadWriteMany"]]
        assert [c["spec"]["storageClassName"] for c in claims] == ["sharedvol-nfs"]


def test_every_step_mounts_the_shared_claim(case: tuple[str, int, bool, Any]) -> None:
    variant, _gpus, _keep, verdict = case
    tasks = by_display_name(verdict)
    claim = {
        "claim-per-run": "createpvc-name",  # create-volume's output
        "static-pv": "createpvc-name",
        "workers2": "createpvc-name",
        "existing-claim": "team-data",
        "workspace": f"{verdict.workflow['metadata'].get('name') or 'resnet18-cifar10-kfpcheck'}-kfp-workspace",
    }[variant]
    mount_path = WORKSPACE_MOUNT if variant == "workspace" else "/mnt/shared"
    for step in STEPS:
        volumes = {v["name"]: v for v in tasks[step]["volumes"]}
        mounts = [m for m in tasks[step]["volumeMounts"] if m["mountPath"] == mount_path]
        assert len(mounts) == 1, f"{step}: no single mount at {mount_path}: {tasks[step]['volumeMounts']}"
        assert volumes[mounts[0]["name"]]["persistentVolumeClaim"]["claimName"] == claim, step


def test_train_asks_for_exactly_gpu_count_gpus_and_no_other_step_asks_for_one(
    case: tuple[str, int, bool, Any],
) -> None:
    variant, gpus, _keep, verdict = case
    tasks = by_display_name(verdict)
    limits = (tasks["train-resnet"]["resources"] or {}).get("limits") or {}
    if VARIANTS[variant].trainjob:  # the TrainJob's pods ask for them
        assert options.GPU_RESOURCE not in limits
    elif gpus:
        assert limits.get(options.GPU_RESOURCE) == str(gpus)
    else:
        # KFP's driver turns a parameterized count of "0" into a zero limit: no GPU is requested.
        assert limits.get(options.GPU_RESOURCE, "0") == "0"
    for step in set(STEPS) - {"train-resnet"}:
        assert options.GPU_RESOURCE not in ((tasks[step]["resources"] or {}).get("limits") or {}), step


def test_train_carries_the_configured_tolerations_and_node_selector(case: tuple[str, int, bool, Any]) -> None:
    variant, _gpus, _keep, verdict = case
    train = by_display_name(verdict)["train-resnet"]
    want = [{k: v for k, v in dataclass_dict(t).items() if v} for t in TOLERATIONS]
    if VARIANTS[variant].trainjob:  # the step that makes the TrainJob runs anywhere; the TrainJob's pods get them
        assert not train.get("tolerations") and not train.get("nodeSelector")
        assert (train["inputs"]["tolerations"], train["inputs"]["node_selector"]) == (want, SELECTOR)
    else:
        assert train["tolerations"] == want
        assert train["nodeSelector"] == SELECTOR


def test_the_trainjob_steps_inputs_from_kfps_driver_make_a_trainjob_of_the_runs_claim_gpus_workers_and_image(
    case: tuple[str, int, bool, Any],
) -> None:
    variant, gpus, _keep, verdict = case
    inputs = by_display_name(verdict)["train-resnet"]["inputs"]
    if not VARIANTS[variant].trainjob:
        assert "workers" not in inputs and "claim" not in inputs
        return
    job = trainjob.trainjob(trainjob_launch.plan_of(inputs, "kubeflow"))  # what the step will create
    override = job["spec"]["podSpecOverrides"][0]
    want = [{k: v for k, v in dataclass_dict(t).items() if v} for t in TOLERATIONS]

    assert inputs["run_id"] not in ("", dsl.PIPELINE_JOB_ID_PLACEHOLDER)  # the driver put the run's id in
    assert job["metadata"]["name"] == trainjob.name_for(inputs["run_id"])
    assert override["volumes"][0]["persistentVolumeClaim"]["claimName"] == "createpvc-name"  # create-volume's claim
    assert override["containers"][0]["volumeMounts"][0]["mountPath"] == "/mnt/shared"
    assert (override["nodeSelector"], override["tolerations"]) == (SELECTOR, want)
    trainer = job["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["image"]) == (2, options.DEFAULT_IMAGE)
    assert trainer.get("resourcesPerNode", {}).get("limits", {}).get(options.GPU_RESOURCE, 0) == gpus
    assert trainer["command"][:6] == ["torchrun", "-m", "pipelines", "train", "--run-dir", inputs["run_dir"]]


def test_caching_is_off_and_train_is_retried_as_configured(case: tuple[str, int, bool, Any]) -> None:
    variant, _gpus, _keep, verdict = case
    retries = VARIANTS[variant].train_retries
    wf = verdict.workflow
    driven = [t for t in _dag_tasks(wf) if _task_name(t)]
    assert {_task_name(t) for t in driven} >= set(STEPS)
    for task in driven:
        spec = json.loads(_arg(task, "task"))
        assert not spec.get("cachingOptions", {}).get("enableCache"), _task_name(task)
    executors = {t["name"]: t for t in _dag_tasks(wf) if t["name"] in STEPS}
    assert executors["train-resnet"]["template"].startswith("retry-system-container-executor")
    retry = {
        p["name"]: p["value"] for p in executors["train-resnet"]["arguments"]["parameters"] if "retry" in p["name"]
    }
    assert (retry["retry-max-count"], retry["retry-backoff-duration"], retry["retry-backoff-factor"]) == (
        str(retries),
        "30",
        "2",
    )
    for step in set(STEPS) - {"train-resnet"}:
        assert executors[step]["template"] == "system-container-executor", step


def dataclass_dict(tol: options.Toleration) -> dict[str, Any]:
    return {"key": tol.key, "operator": tol.operator, "value": tol.value, "effect": tol.effect}


def _dag_tasks(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [task for t in wf["spec"]["templates"] if t.get("dag") for task in t["dag"]["tasks"]]


def _arg(task: dict[str, Any], name: str) -> str:
    for p in (task.get("arguments") or {}).get("parameters") or []:
        if p["name"] == name:
            return str(p.get("value", ""))
    return ""


def _task_name(task: dict[str, Any]) -> str:
    return _arg(task, "task-name")
