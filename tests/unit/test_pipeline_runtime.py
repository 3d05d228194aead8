"""Where components put things on the volume, and how the demo reports results and failures."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from pipelines import cli, commands, errors, local, logscan, runtime
from steps import documents, schemas


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("download", "/mnt/shared/data/cifar10"),
        ("synthetic", "/mnt/shared/data/synthetic"),
        ("synthetic:512:128", "/mnt/shared/data/synthetic-512-128"),
    ],
)
def test_each_data_source_gets_its_own_directory_on_the_volume(source: str, expected: str) -> None:
    assert runtime.data_dir("/mnt/shared/", source) == expected


def test_a_local_data_directory_is_keyed_by_its_name_and_path() -> None:
    a = runtime.data_dir("/v", "/datasets/cifar10")
    b = runtime.data_dir("/v", "/other/cifar10")
    assert a.startswith("/v/data/local-cifar10-") and b.startswith("/v/data/local-cifar10-") and a != b


def test_the_run_directory_is_named_by_the_run_name_or_else_the_run_id() -> None:
    assert runtime.run_dir("/mnt/shared", "0c6e1b2a-9f", "") == "/mnt/shared/runs/0c6e1b2a-9f"
    assert runtime.run_dir("/mnt/shared", "0c6e1b2a-9f", "exp-1") == "/mnt/shared/runs/exp-1"


@pytest.mark.parametrize("name", ["..", "../x", "a/b", ".hidden"])
def test_a_run_name_that_leaves_the_runs_directory_is_refused(name: str) -> None:
    with pytest.raises(errors.BadParameterError, match="cannot name a directory"):
        runtime.run_dir("/mnt/shared", "id", name)


def test_the_last_exception_line_of_a_log_explains_a_failure() -> None:
    lines = [
        "Traceback (most recent call last):",
        '  File "x.py", line 3, in <module>',
        "\x1b[91msteps.errors.ConfigError: --epochs must be at least 1, got 0: e.g. --epochs 2\x1b[0m",
        "",
        "Task finished",
    ]
    assert (
        logscan.last_error_line(lines)
        == "steps.errors.ConfigError: --epochs must be at least 1, got 0: e.g. --epochs 2"
    )
    assert logscan.last_error_line(["all good", "Error count: none"]) == ""


def test_a_failed_local_run_names_the_task_and_the_reason() -> None:
    message = (
        "Pipeline \x1b[95m'resnet18-cifar10'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m. "
        "Inner task failed: \x1b[96m'train-resnet'\x1b[0m."
    )
    lines = collections.deque(["    RuntimeError: CUDA out of memory: tried to allocate 2 GiB"])
    err = local._failure(message, lines, Path("/out/demo.log"))
    assert str(err) == (
        "task train-resnet failed: RuntimeError: CUDA out of memory: tried to allocate 2 GiB: "
        "its log is in /out/demo.log; fix the cause and run the demo again"
    )


def test_demo_settings_refuse_a_data_directory_without_cifar(tmp_path: Path) -> None:
    with pytest.raises(errors.BadParameterError, match="holds no cifar-10-batches-py directory"):
        local.DemoSettings(output=tmp_path / "out", data=tmp_path).validate()
    with pytest.raises(errors.BadParameterError, match="too few"):
        local.DemoSettings(output=tmp_path / "out", train_images=5).validate()


def test_the_demo_command_reports_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["demo", "--output", str(tmp_path / "out"), "--data", str(tmp_path), "--epochs", "1"])

    err = capsys.readouterr().err
    assert code == 2
    assert err == f"sharedvol demo: error: --data {tmp_path} holds no cifar-10-batches-py directory: " + (
        "point --data at the directory that contains cifar-10-batches-py (the extracted official archive)\n"
    )
    assert not (tmp_path / "out").exists()


def test_metrics_print_as_an_aligned_table_with_percentages() -> None:
    table = commands.format_metrics({"accuracy-top1": 0.6875, "test-loss": 2.004331, "test-samples": 32.0})
    assert table == "\n".join(
        [
            "metrics:",
            "  accuracy-top1       68.75 %",
            "  test-loss          2.0043",
            "  test-samples           32",
        ]
    )


def test_the_demo_lists_each_result_file_once_with_the_checkpoint_manifest_named_as_such(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    for rel in (
        "eval/eval_result.json",
        "checkpoints/latest.json",
        "metrics/mlpipeline-metrics.json",
        "metrics/report.html",
        "metrics/report.md",
    ):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text("{}")
    documents.write(str(run / "metrics" / "metrics.json"), schemas.MetricsDoc(scalars={"accuracy-top1": 0.5}))

    result = local.collect(tmp_path, "r", "synthetic")

    paths = list(result.files.values())
    assert len(paths) == len(set(paths))
    assert result.files["checkpoint manifest"] == run / "checkpoints" / "latest.json"
    assert result.metrics == {"accuracy-top1": 0.5}


@pytest.mark.parametrize("planted", ["data", "data/synthetic", "runs", "runs/r1"])
def test_a_link_planted_on_the_volume_where_a_step_writes_is_refused_by_every_step(
    tmp_path: Path, planted: str
) -> None:
    volume, outside = tmp_path / "vol", tmp_path / "outside"
    outside.mkdir()
    (volume / planted).parent.mkdir(parents=True, exist_ok=True)
    (volume / planted).symlink_to(outside)
    refused = f"{volume / planted} on the volume is a symbolic link"
    if planted.startswith("data"):
        with pytest.raises(errors.BadParameterError, match=refused):
            runtime.data_dir(str(volume), "synthetic")
    else:
        with pytest.raises(errors.BadParameterError, match=refused):  # prepare-data
            runtime.run_dir(str(volume), "", "r1")
        with pytest.raises(errors.BadParameterError, match=refused):  # train, test, produce-metrics
            runtime.run_dir_checked(f"{volume}/runs/r1")


def test_directories_on_the_volume_that_are_not_there_yet_pass_the_link_check(tmp_path: Path) -> None:
    assert runtime.run_dir(str(tmp_path), "", "r1") == f"{tmp_path}/runs/r1"
    assert runtime.run_dir_checked(f"{tmp_path}/runs/r1") == f"{tmp_path}/runs/r1"
