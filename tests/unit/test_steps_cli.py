"""Bad input to the step commands: one line saying what is wrong and how to fix it, exit 2, no traceback."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from pipelines import cli
from steps import data


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    data.synthesize(str(root), train=20, test=10)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse's own errors
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.strip()]


def train(dataset: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["train", "--run-dir", str(tmp_path / "run"), "--data-root", str(dataset), "--device", "cpu", *extra]


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (["--seed", "-1"], "--seed must be between 0 and 4294967295, got -1: e.g. 0"),
        (["--seed", str(2**32)], "--seed must be between 0 and 4294967295, got 4294967296: e.g. 0"),
        (["--lr", "inf"], "--lr must be a positive number, got inf: e.g. 0.05"),
        (["--lr", "nan"], "--lr must be a positive number, got nan: e.g. 0.05"),
        (["--keep-checkpoints", "0"], "--keep-checkpoints must be at least 1, got 0: 1"),
        (["--epochs", "100001"], "--epochs must be at most 100000, got 100001: 20"),
        (["--batch-size", str(10**20)], f"--batch-size must be at most 65536, got {10**20}: e.g. 128"),
        (["--lr", "1e7"], "--lr must be at most 1e+06, got 1e+07: e.g. 0.05"),
        (["--num-workers", "1000000"], "--num-workers must be at most 256, got 1000000: e.g. --num-workers -1"),
        (
            ["--cfg-options", "model.head.bogus=1"],
            "--cfg-options model.head.bogus: the config has no model.head.bogus: "
            "check the spelling against the stock resnet18_8xb16_cifar10 config",
        ),
        (
            ["--cfg-options", "train_dataloader.batch_sizee=3"],
            "--cfg-options train_dataloader.batch_sizee: the config has no train_dataloader.batch_sizee: "
            "check the spelling against the stock resnet18_8xb16_cifar10 config",
        ),
        (
            ["--cfg-options", "model.backbone.depth=deep"],
            "--cfg-options model.backbone.depth='deep': expected a int like 18: give a value of the config's type",
        ),
    ],
    ids=[
        "seed-negative",
        "seed-too-big",
        "lr-inf",
        "lr-nan",
        "keep-0",
        "epochs-too-many",
        "batch-too-big",
        "lr-too-big",
        "workers-too-many",
        "unknown-key",
        "unknown-loader-key",
        "bad-value",
    ],
)
def test_a_bad_train_setting_is_one_line(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, extra: list[str], line: str
) -> None:
    code, lines = run(capsys, *train(dataset, tmp_path, *extra))
    assert code == 2
    assert lines[-1] == f"sharedvol train: error: {line}"
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("option", "failure"),
    [("model.head.num_classes=5", "IndexError"), ("model.head.in_channels=7", "RuntimeError")],
)
def test_cfg_options_that_build_a_model_which_cannot_train_are_one_line_naming_them(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, option: str, failure: str
) -> None:
    code, lines = run(capsys, *train(dataset, tmp_path, "--cfg-options", option))
    key, value = option.split("=")
    assert code == 2
    assert lines[-1].startswith(
        f"sharedvol train: error: training with --cfg-options {{'{key}': {value}}} failed: {failure}"
    )
    assert not (tmp_path / "run" / "checkpoints" / "latest.json").exists()


def test_a_cfg_options_item_without_a_value_is_an_argparse_error(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path
) -> None:
    code, lines = run(capsys, *train(dataset, tmp_path, "--cfg-options", "epochs"))
    assert code == 2
    assert (
        lines[-1]
        == "sharedvol train: error: argument --cfg-options: 'epochs' is not KEY=VALUE (e.g. model.head.topk=(1,))"
    )


def test_test_with_negative_workers_is_one_line(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path
) -> None:
    code, lines = run(capsys, "test", "--run-dir", str(tmp_path), "--data-root", str(dataset), "--num-workers", "-2")
    assert code == 2
    assert lines[-1] == "sharedvol test: error: --num-workers must be at least -1, got -2: e.g. --num-workers -1"


def test_test_with_a_batch_larger_than_any_dataset_is_one_line(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path
) -> None:
    args = ("test", "--run-dir", str(tmp_path), "--data-root", str(dataset), "--batch-size", str(10**20))
    code, lines = run(capsys, *args)
    assert code == 2
    assert lines[-1] == f"sharedvol test: error: --batch-size must be between 1 and 65536, got {10**20}: e.g. 64"


def test_a_run_directory_that_is_a_file_is_one_line_for_each_step(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("in the way")
    run_dir = str(tmp_path / "file")
    code, lines = run(capsys, "train", "--run-dir", run_dir, "--data-root", str(dataset), "--device", "cpu")
    assert code == 2 and lines[-1].startswith(f"sharedvol train: error: run directory {run_dir}/train is not writable")
    code, lines = run(capsys, "test", "--run-dir", run_dir, "--data-root", str(dataset), "--device", "cpu")
    assert code == 2 and lines[-1].startswith(f"sharedvol test: error: {run_dir} is a file, not a directory")
    code, lines = run(capsys, "metrics", "--run-dir", run_dir)
    assert code == 2 and lines[-1].startswith(
        f"sharedvol metrics: error: {run_dir}/eval/eval_result.json is not a file"
    )


def test_an_s3_run_directory_without_s3fs_names_the_package(capsys: pytest.CaptureFixture[str], dataset: Path) -> None:
    code, lines = run(capsys, "test", "--run-dir", "s3://bucket/r1", "--data-root", str(dataset), "--device", "cpu")
    assert code == 2
    assert lines[-1] == (
        "sharedvol test: error: s3://bucket/r1/eval: the s3:// filesystem needs a package: install it: pip install s3fs"
    )


def test_a_batch_file_that_is_a_directory_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data.synthesize(str(tmp_path), train=10, test=10)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.unlink()
    batch.mkdir()
    code, lines = run(
        capsys, "train", "--run-dir", str(tmp_path / "run"), "--data-root", str(tmp_path), "--device", "cpu"
    )
    assert code == 2
    assert lines[-1].startswith(f"sharedvol train: error: {batch} is a directory, not a regular file; refused unread")


def test_float64_pixels_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data.synthesize(str(tmp_path), train=10, test=10)
    (tmp_path / data.MANIFEST).unlink()  # data sharedvol did not prepare: the file's contents decide
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((10, 3072), dtype=np.float64), "labels": [0] * 10}, f)
    code, lines = run(
        capsys, "train", "--run-dir", str(tmp_path / "run"), "--data-root", str(tmp_path), "--device", "cpu"
    )
    assert code == 2
    assert lines[-1] == (
        f"sharedvol train: error: {path} was refused unread: it asks for numpy dtype 'f8', not uint8 ('u1') like "
        "CIFAR-10: "
        "re-create the dataset with `sharedvol data prepare` (or copy CIFAR-10's official files)"
    )


def test_synth_with_a_negative_seed_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, lines = run(capsys, "data", "synth", str(tmp_path), "--seed", "-1")
    assert code == 2
    assert lines[-1] == "sharedvol data: error: --seed must be 0 or more, got -1: e.g. --seed 0"
    assert not (tmp_path / "cifar-10-batches-py").exists()
