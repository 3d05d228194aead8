"""The step image's two entries work as uid 1000 on a real node: the ``sharedvol`` CLI, and KFP's lightweight
component entry (``python3 -m kfp.dsl.executor_main``) running a compiled step that imports the project's modules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from rig import cluster as cp
from tests.node import pods

GOLDEN = cp.REPO / "pipelines" / "golden" / "resnet18_cifar10.yaml"


def test_sharedvol_help_runs_as_uid_1000_in_a_pod(node, run_pod) -> None:
    result = run_pod.run(pods.step_pod("help", ["--help"]), timeout=120)
    assert (result.phase, result.exit_code) == ("Succeeded", 0), result.logs
    assert "usage: sharedvol" in result.logs
    for command in ("provision", "train", "test", "metrics", "serve"):
        assert command in result.logs


def test_the_compiled_prepare_data_step_runs_through_kfp_executor_main_as_uid_1000(node, run_pod, tmp_path) -> None:
    spec = next(yaml.safe_load_all(GOLDEN.read_text()))
    container = spec["deploymentSpec"]["executors"]["exec-prepare-data"]["container"]
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, 1000, 1000)
    executor_input = {
        "inputs": {
            "parameterValues": {
                "volume": "/mnt/shared",
                "data_source": "synthetic:64:32",
                "run_id": "r1",
                "run_dir_name": "run",
            }
        },
        "outputs": {
            "parameters": {
                "data_root": {"outputFile": "/mnt/shared/kfp/data_root"},
                "run_dir": {"outputFile": "/mnt/shared/kfp/run_dir"},
            },
            "outputFile": "/mnt/shared/kfp/executor_output.json",
        },
    }
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    body = pods.step_pod("prepare-data", args, image=container["image"], command=container["command"])
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "shared", "mountPath": "/mnt/shared"}]
    body["spec"]["volumes"] = [{"name": "shared", "hostPath": {"path": str(shared), "type": "Directory"}}]

    result = run_pod.run(body, timeout=180)

    assert (result.phase, result.exit_code) == ("Succeeded", 0), result.logs
    output = json.loads((shared / "kfp" / "executor_output.json").read_text())
    data_root = output["parameterValues"]["data_root"]
    assert data_root.startswith("/mnt/shared/")
    batches = Path(shared, Path(data_root).relative_to("/mnt/shared"), "cifar-10-batches-py")
    assert sorted(p.name for p in batches.iterdir() if p.name.startswith(("data_batch", "test_batch")))
    assert all(p.stat().st_uid == 1000 for p in batches.iterdir())


def test_the_built_image_carries_the_torch_that_requirements_txt_pins(node, run_pod) -> None:
    pin = next(
        line.split("==")[1].strip()
        for line in (cp.REPO / "requirements.txt").read_text().splitlines()
        if line.startswith("torch==")
    )
    script = "import torch; print('torch=' + torch.__version__)"
    result = run_pod.run(pods.step_pod("torch", ["-c", script], command=["python3"]), timeout=120)
    assert (result.phase, result.exit_code) == ("Succeeded", 0), result.logs
    (line,) = [x for x in result.logs.splitlines() if x.startswith("torch=")]
    assert line.removeprefix("torch=").split("+")[0] == pin


def test_the_training_stack_imports_in_the_image_as_uid_1000(node, run_pod) -> None:
    # opencv-python (mmcv-lite's dependency) needs X11/GL/GLib libraries a slim base lacks: this failed before the
    # Dockerfile installed them ("libxcb.so.1: cannot open shared object file").
    script = "import cv2, mmcls, mmengine, torch; print('imported', cv2.__version__, mmcls.__version__)"
    result = run_pod.run(pods.step_pod("imports", ["-c", script], command=["python3"]), timeout=120)
    assert (result.phase, result.exit_code) == ("Succeeded", 0), result.logs
    assert "imported" in result.logs
