"""The TrainJob variant (``--workers N``): the flag on compile, submit and run, and what the compiled pipeline holds."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import cli, errors, flagdocs, flags, options, pipeline

GOLDEN = Path(pipeline.__file__).parent / "golden" / "resnet18_cifar10.yaml"
WORKERS2 = options.CompileOptions(workers=2)


def parse(command: str, *argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args([command, *argv])


def compiled(tmp_path: Path, opts: options.CompileOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline spec and the Kubernetes executors' config of ``opts``, compiled."""
    out = pipeline.compile_to(opts, tmp_path / "p.yaml").path
    spec, platform = yaml.safe_load_all(out.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_compile_submit_and_run_take_workers_with_the_default_1() -> None:
    for command, parser in flagdocs.subparsers().items():
        got = {a.dest: (a.option_strings, a.default) for a in parser._actions}
        if command == "demo":
            assert "workers" not in got
        else:
            assert got["workers"] == (["--workers"], 1), command


@pytest.mark.parametrize("command", ["compile", "submit", "run"])
def test_workers_n_on_compile_submit_and_run_becomes_the_compile_options_workers(command: str) -> None:
    args = parse(command, "--workers", "3", "--storage", "nfs")

    opts = flags.compile_options(args, options.StorageChoice.dynamic())

    assert (opts.workers, opts.trainjob) == (3, True)


def test_one_worker_is_no_trainjob() -> None:
    opts = flags.compile_options(parse("compile", "--workers", "1"), options.StorageChoice.dynamic())
    assert (opts.workers, opts.trainjob) == (1, False)


@pytest.mark.parametrize("workers", ["0", "-2", "1025", str(10**21)])
def test_compile_refuses_a_worker_count_out_of_range_in_one_line_with_exit_2(
    workers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["compile", "--workers", workers, "-o", str(tmp_path / "p.yaml")])

    assert status == 2
    assert capsys.readouterr().err.splitlines() == [
        f"sharedvol compile: error: --workers must be between 1 and 1024, got {workers}: 1 trains in the train "
        "step's own pod; 2 or more run a TrainJob of that many nodes"
    ]
    assert not (tmp_path / "p.yaml").exists()


def test_compile_refuses_more_train_retries_than_kfp_can_count_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["compile", "--train-retries", str(10**22), "-o", str(tmp_path / "p.yaml")])

    assert status == 2
    assert capsys.readouterr().err.splitlines() == [
        f"sharedvol compile: error: train retries must be between 0 and 100, got {10**22}: e.g. 2"
    ]


def test_compile_with_one_worker_writes_the_default_golden_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHAREDVOL_IMAGE", raising=False)
    out = tmp_path / "p.yaml"

    assert cli.main(["compile", "--workers", "1", "-o", str(out)]) == 0
    assert out.read_text() == GOLDEN.read_text()


def test_compile_with_two_workers_says_the_train_step_is_a_trainjob(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["compile", "--workers", "2", "-o", str(tmp_path / "p.yaml")]) == 0
    assert (
        "  train:  a Kubeflow Trainer TrainJob of 2 nodes (docs/scaling-out.md)" in capsys.readouterr().out.splitlines()
    )


def test_workers_are_refused_with_kfps_workspace_whose_claim_name_the_pipeline_cannot_know() -> None:
    with pytest.raises(errors.BadParameterError, match="--workers 2 cannot use KFP's workspace"):
        options.CompileOptions(workers=2, workspace=True).validate()


def test_the_trainjob_variant_changes_train_resnets_component_and_nothing_else(tmp_path: Path) -> None:
    single, single_executors = compiled(tmp_path, options.CompileOptions())
    multi, multi_executors = compiled(tmp_path, WORKERS2)

    assert set(multi["root"]["dag"]["tasks"]) == set(single["root"]["dag"]["tasks"])
    for task in ("createpvc", "prepare-data", "test-resnet", "produce-metrics"):
        assert multi["root"]["dag"]["tasks"][task] == single["root"]["dag"]["tasks"][task], task
    unchanged = set(single["components"]) - {"comp-train-resnet"}
    assert {c: multi["components"][c] for c in unchanged} == {c: single["components"][c] for c in unchanged}
    assert (
        multi["components"]["comp-train-resnet"]["outputDefinitions"]
        == (single["components"]["comp-train-resnet"]["outputDefinitions"])
    )
    for executor in ("exec-prepare-data", "exec-test-resnet", "exec-produce-metrics"):
        assert multi_executors[executor] == single_executors[executor], executor
    code = multi["deploymentSpec"]["executors"]["exec-train-resnet"]["container"]["command"][-1]
    assert "trainjob_launch.train(inputs" in code


def test_the_trainjob_step_gets_the_claim_create_volume_made_the_run_id_and_the_workers_settings(
    tmp_path: Path,
) -> None:
    spec, _ = compiled(tmp_path, options.CompileOptions(node_selector={"gpu": "yes"}, workers=2))
    inputs = spec["root"]["dag"]["tasks"]["train-resnet"]["inputs"]["parameters"]

    assert inputs["claim"] == {"taskOutputParameter": {"outputParameterKey": "name", "producerTask": "createpvc"}}
    assert inputs["run_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    assert inputs["gpu_count"] == {"componentInputParameter": "gpu_count"}
    assert inputs["epochs"] == {"componentInputParameter": "epochs"}
    constants = {k: inputs[k]["runtimeValue"]["constant"] for k in ("workers", "image", "mount_path", "node_selector")}
    assert constants == {"workers": 2, "image": options.DEFAULT_IMAGE, "mount_path": "/mnt/shared",
                         "node_selector": {"gpu": "yes"}}  # fmt: skip
    assert inputs["tolerations"] == {
        "runtimeValue": {"constant": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    }


def test_the_trainjob_step_asks_for_no_gpu_and_no_toleration_but_mounts_the_claim_and_is_retried(
    tmp_path: Path,
) -> None:
    spec, executors = compiled(tmp_path, WORKERS2)
    train = executors["exec-train-resnet"]

    assert "resources" not in spec["deploymentSpec"]["executors"]["exec-train-resnet"]["container"]
    assert "tolerations" not in train and "nodeSelector" not in train
    (mount,) = train["pvcMount"]
    assert mount["mountPath"] == "/mnt/shared"
    assert spec["root"]["dag"]["tasks"]["train-resnet"]["retryPolicy"]["maxRetryCount"] == WORKERS2.train_retries


def test_with_an_existing_claim_the_trainjob_step_gets_the_claims_name(tmp_path: Path) -> None:
    opts = options.CompileOptions(storage=options.StorageChoice.existing("team-data"), workers=2)
    spec, _ = compiled(tmp_path, opts)

    assert spec["root"]["dag"]["tasks"]["train-resnet"]["inputs"]["parameters"]["claim"] == {
        "runtimeValue": {"constant": "team-data"}
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["p.json", "", "a-directory.yaml", "a-fifo.yaml"])
def test_compile_to_something_that_is_not_a_yaml_file_is_one_line_and_waits_for_nothing(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-directory.yaml").mkdir()
    os.mkfifo(tmp_path / "a-fifo.yaml")

    status = cli.main(["compile", "-o", str(tmp_path / target) if target else ""])

    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert "does not name a .yaml file" in err or "exists and is not a regular file" in err


def test_a_compile_that_fails_half_way_leaves_the_previous_file_whole_and_no_temporary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "p.yaml"
    assert cli.main(["compile", "-o", str(out)]) == 0
    before = out.read_bytes()

    def full_disk(self: object, pipeline_func: object, package_path: str, **_: object) -> None:
        Path(package_path).write_bytes(before[: len(before) // 2])  # half written, then the disk was full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline.compiler.Compiler, "compile", full_disk)
    status = cli.main(["compile", "--workers", "4", "-o", str(out)])

    assert status == 2 and "No space left on device" in capsys.readouterr().err
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]
