"""The compiled pipeline YAML: golden files, and explicit checks of what the cluster must get."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import errors, options, params, pipeline

GOLDEN_DIR = Path(pipeline.__file__).parent / "golden"
STEPS = ("prepare-data", "train-resnet", "test-resnet", "produce-metrics")
STATIC = options.CompileOptions(
    storage=options.StorageChoice.static("sharedvol-pv-0"),
    node_selector={"nvidia.com/gpu.present": "true"},
    tolerations=(*options.CompileOptions().tolerations, options.Toleration.parse("dedicated=ml:NoExecute")),
)
GOLDEN = {
    "resnet18_cifar10.yaml": options.CompileOptions(),
    "resnet18_cifar10_static_pv.yaml": STATIC,
    "resnet18_cifar10_existing_pvc.yaml": options.CompileOptions(storage=options.StorageChoice.existing("team-data")),
    "resnet18_cifar10_workspace.yaml": options.CompileOptions(workspace=True),
    "resnet18_cifar10_workers2.yaml": options.CompileOptions(workers=2),
}


def compiled(tmp_path: Path, opts: options.CompileOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    out = pipeline.compile_to(opts, tmp_path / "p.yaml").path
    spec, platform = yaml.safe_load_all(out.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def all_tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update((comp.get("dag") or {}).get("tasks") or {})
    return tasks


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_the_compiled_pipeline_matches_its_golden_file(tmp_path: Path, name: str) -> None:
    text = pipeline.compile_to(GOLDEN[name], tmp_path / name).path.read_text()
    golden = GOLDEN_DIR / name
    if os.environ.get("SHAREDVOL_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"{golden} is missing: run with SHAREDVOL_UPDATE_GOLDEN=1 and check it in"
    assert text == golden.read_text(), f"{golden} is stale: review the diff, then SHAREDVOL_UPDATE_GOLDEN=1"


def test_create_volume_asks_for_a_readwritemany_claim_of_the_explicit_class(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path, options.CompileOptions(storage=options.StorageChoice.dynamic("fast-nfs")))
    create = spec["root"]["dag"]["tasks"]["createpvc"]
    inputs = create["inputs"]["parameters"]

    assert create["taskInfo"]["name"] == "create-volume"
    assert inputs["storage_class_name"] == {"runtimeValue": {"constant": "fast-nfs"}}
    assert inputs["access_modes"] == {"runtimeValue": {"constant": ["ReadWriteMany"]}}
    assert inputs["size"] == {"componentInputParameter": "volume_size"}
    assert inputs["pvc_name_suffix"] == {"runtimeValue": {"constant": "-sharedvol"}}
    assert "volume_name" not in inputs
    assert spec["root"]["inputDefinitions"]["parameters"]["volume_size"]["defaultValue"] == "10Gi"


def test_a_static_pv_claim_has_the_empty_class_and_the_volume_name(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path, STATIC)
    inputs = spec["root"]["dag"]["tasks"]["createpvc"]["inputs"]["parameters"]

    assert inputs["storage_class_name"] == {"runtimeValue": {"constant": ""}}
    assert inputs["volume_name"] == {"runtimeValue": {"constant": "sharedvol-pv-0"}}


def test_every_step_mounts_the_created_claim_at_mnt_shared(tmp_path: Path) -> None:
    spec, executors = compiled(tmp_path, options.CompileOptions())

    for step in STEPS:
        (mount,) = executors[f"exec-{step}"]["pvcMount"]
        assert mount["mountPath"] == "/mnt/shared"
        assert mount["pvcNameParameter"] == {
            "taskOutputParameter": {"outputParameterKey": "name", "producerTask": "createpvc"}
        }
        assert "createpvc" in spec["root"]["dag"]["tasks"][step]["dependentTasks"]
    assert spec["root"]["dag"]["tasks"]["prepare-data"]["inputs"]["parameters"]["volume"] == {
        "runtimeValue": {"constant": "/mnt/shared"}
    }


def test_an_existing_claim_is_mounted_by_name_and_never_created_or_deleted(tmp_path: Path) -> None:
    spec, executors = compiled(tmp_path, options.CompileOptions(storage=options.StorageChoice.existing("team-data")))

    names = {t["componentRef"]["name"] for t in all_tasks(spec).values()}
    assert "comp-createpvc" not in names and "comp-deletepvc" not in names
    for step in STEPS:
        (mount,) = executors[f"exec-{step}"]["pvcMount"]
        assert (mount["mountPath"], mount["pvcNameParameter"]) == (
            "/mnt/shared",
            {"runtimeValue": {"constant": "team-data"}},
        )


def test_train_asks_for_gpus_from_the_gpu_count_parameter_and_tolerates_the_gpu_taint(tmp_path: Path) -> None:
    spec, executors = compiled(tmp_path, STATIC)
    container = spec["deploymentSpec"]["executors"]["exec-train-resnet"]["container"]
    train_task = spec["root"]["dag"]["tasks"]["train-resnet"]

    assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert (
        container["resources"]["accelerator"]["resourceCount"]
        == "{{$.inputs.parameters['pipelinechannel--gpu_count']}}"
    )
    assert train_task["inputs"]["parameters"]["pipelinechannel--gpu_count"] == {"componentInputParameter": "gpu_count"}
    assert executors["exec-train-resnet"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"},
    ]
    assert executors["exec-train-resnet"]["nodeSelector"] == {"labels": {"nvidia.com/gpu.present": "true"}}
    assert train_task["retryPolicy"]["maxRetryCount"] == 2
    for step in ("prepare-data", "test-resnet", "produce-metrics"):
        assert "resources" not in spec["deploymentSpec"]["executors"][f"exec-{step}"]["container"]
        assert "tolerations" not in executors[f"exec-{step}"]


def test_caching_is_off_on_every_task(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path, options.CompileOptions())
    tasks = {name: t for name, t in all_tasks(spec).items() if "componentRef" in t and not name.startswith("condition")}

    assert set(tasks) == {"createpvc", *STEPS, "deletepvc"}
    assert all(t["cachingOptions"].get("enableCache") is not True for t in tasks.values())


def test_delete_volume_runs_after_produce_metrics_unless_keep_volume(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path, options.CompileOptions())
    (cond_name,) = [n for n in spec["root"]["dag"]["tasks"] if n.startswith("condition")]
    cond = spec["root"]["dag"]["tasks"][cond_name]
    delete = spec["components"][cond["componentRef"]["name"]]["dag"]["tasks"]["deletepvc"]

    assert cond["taskInfo"]["name"] == "unless-keep-volume"
    assert "produce-metrics" in cond["dependentTasks"]
    assert cond["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--keep_volume'] == false"
    assert delete["taskInfo"]["name"] == "delete-volume"
    assert delete["inputs"]["parameters"]["pvc_name"] == {"componentInputParameter": "pipelinechannel--createpvc-name"}
    assert (
        cond["inputs"]["parameters"]["pipelinechannel--createpvc-name"]["taskOutputParameter"]["producerTask"]
        == "createpvc"
    )


def test_the_steps_run_in_order(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path, options.CompileOptions())
    tasks = spec["root"]["dag"]["tasks"]

    assert set(tasks["train-resnet"]["dependentTasks"]) == {"createpvc", "prepare-data"}
    assert set(tasks["test-resnet"]["dependentTasks"]) == {"createpvc", "prepare-data", "train-resnet"}
    assert set(tasks["produce-metrics"]["dependentTasks"]) == {"createpvc", "prepare-data", "test-resnet"}


def test_components_run_the_given_image_and_install_nothing(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path, options.CompileOptions(image="ghcr.io/acme/sharedvol:1.2.3"))

    for step in STEPS:
        container = spec["deploymentSpec"]["executors"][f"exec-{step}"]["container"]
        assert container["image"] == "ghcr.io/acme/sharedvol:1.2.3"
        assert "pip install" not in " ".join(container["command"])
        assert "from steps import" in container["command"][-1]


def test_produce_metrics_outputs_metrics_a_confusion_matrix_and_reports(tmp_path: Path) -> None:
    spec, _ = compiled(tmp_path, options.CompileOptions())
    outputs = spec["components"]["comp-produce-metrics"]["outputDefinitions"]["artifacts"]

    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()} == {
        "metrics": "system.Metrics",
        "confusion_matrix": "system.ClassificationMetrics",
        "report": "system.HTML",
        "summary": "system.Markdown",
    }


def test_run_parameter_defaults_come_from_the_compile_options(tmp_path: Path) -> None:
    defaults = params.RunParameters(epochs=5, gpu_count=2, data_source="synthetic", keep_volume=True)
    spec, _ = compiled(tmp_path, options.CompileOptions(defaults=defaults))
    inputs = spec["root"]["inputDefinitions"]["parameters"]

    assert {k: inputs[k]["defaultValue"] for k in ("epochs", "gpu_count", "data_source", "keep_volume")} == {
        "epochs": 5.0,
        "gpu_count": "2",
        "data_source": "synthetic",
        "keep_volume": True,
    }
    assert set(inputs) == set(params.RunParameters().as_dict())


def test_compile_refuses_a_bad_option_before_writing_anything(tmp_path: Path) -> None:
    with pytest.raises(errors.BadParameterError, match="--gpus must be at least 0, got -1"):
        pipeline.compile_to(options.CompileOptions(defaults=params.RunParameters(gpu_count=-1)), tmp_path / "x.yaml")
    assert not (tmp_path / "x.yaml").exists()


def test_the_compile_command_writes_the_golden_pipeline_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import cli

    monkeypatch.delenv("SHAREDVOL_IMAGE", raising=False)
    out = tmp_path / "resnet18_cifar10.yaml"
    assert cli.main(["compile", "-o", str(out)]) == 0
    assert out.read_text() == (GOLDEN_DIR / "resnet18_cifar10.yaml").read_text()
    assert f"wrote {out}" in capsys.readouterr().out


def pipeline_config(tmp_path: Path, opts: options.CompileOptions) -> dict[str, Any] | None:
    out = pipeline.compile_to(opts, tmp_path / "p.yaml").path
    _, platform = yaml.safe_load_all(out.read_text())
    config: dict[str, Any] | None = platform["platforms"]["kubernetes"].get("pipelineConfig")
    return config


@pytest.mark.parametrize("opts", [options.CompileOptions(), options.CompileOptions(workspace=True)], ids=str)
def test_a_succeeded_run_is_given_the_ttl_of_ttl_after_success_and_a_failed_one_none(
    tmp_path: Path, opts: options.CompileOptions
) -> None:
    config = pipeline_config(tmp_path, dataclasses.replace(opts, ttl_after_success_s=42))

    assert config is not None and config["resourceTtlOnSuccess"] == 42
    assert "resourceTtlOnFailure" not in config and "resourceTtlOnCompletion" not in config
    assert ("workspace" in config) == opts.workspace


def test_the_default_ttl_after_success_is_ten_minutes(tmp_path: Path) -> None:
    config = pipeline_config(tmp_path, options.CompileOptions())

    assert options.DEFAULT_TTL_S == 600
    assert config == {"resourceTtlOnSuccess": 600}


def test_ttl_after_success_0_leaves_the_ttl_to_the_cluster(tmp_path: Path) -> None:
    assert pipeline_config(tmp_path, options.CompileOptions(ttl_after_success_s=0)) is None


@pytest.mark.parametrize("value", ["-1", "1", str(options.MIN_TTL_S - 1), str(options.MAX_TTL_S + 1)])
def test_the_compile_command_refuses_a_ttl_out_of_range_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    from pipelines import cli

    out = tmp_path / "p.yaml"
    code = cli.main(["compile", "-o", str(out), "--ttl-after-success", value])

    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert (
        err.count("\n") == 1 and f"must be 0 or {options.MIN_TTL_S} to {options.MAX_TTL_S} seconds, got {value}" in err
    )
