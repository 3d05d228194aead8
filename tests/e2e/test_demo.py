"""``sharedvol demo``: the whole pipeline on this machine under kfp.local, on a tiny generated dataset."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import blake3
import pytest

from tests import cli

pytestmark = pytest.mark.e2e

TINY = ["--train-images", "64", "--test-images", "32", "--batch-size", "16"]


def test_the_demo_runs_the_pipeline_and_leaves_its_results_in_the_run_directory(
    sharedvol: cli.Run, tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    proc = sharedvol("demo", "--output", str(volume), "--run-name", "e2e", "--epochs", "1", *TINY)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    run = volume / "runs" / "e2e"
    manifest = json.loads((run / "checkpoints" / "latest.json").read_text())
    weights = run / "checkpoints" / manifest["weights"]["name"]
    assert manifest["epoch"] == 1 and manifest["weights"]["blake3"] == blake3.blake3(weights.read_bytes()).hexdigest()
    result = json.loads((run / "eval" / "eval_result.json").read_text())
    assert result["size"] == 32 and sum(map(sum, result["confusion_matrix"])) == 32
    v1 = json.loads((run / "metrics" / "mlpipeline-metrics.json").read_text())
    top1 = next(m for m in v1["metrics"] if m["name"] == "accuracy-top1")
    assert top1 == {"name": "accuracy-top1", "numberValue": result["top1"], "format": "PERCENTAGE"}
    report = (run / "metrics" / "report.html").read_text()
    assert "data:image/png;base64," in report
    assert (volume / "data" / "synthetic-64-32" / "cifar-10-batches-py" / "test_batch").is_file()

    out = proc.stdout
    (row,) = [line for line in out.splitlines() if line.startswith("  accuracy-top1 ")]
    assert row.split() == ["accuracy-top1", f"{100 * result['top1']:.2f}", "%"]
    assert f"report: {run / 'metrics' / 'report.html'}" in out
    assert proc.stderr.count("Traceback") == 0


def test_the_demo_shows_progress_and_the_result_and_keeps_the_full_log_in_the_file_it_names(
    sharedvol: cli.Run, tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    proc = sharedvol("demo", "--output", str(volume), "--run-name", "quiet", "--epochs", "2", *TINY)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    log = volume / "logs" / "quiet.log"
    lines = proc.stdout.splitlines()
    assert lines[1] == f"demo: the full log goes to {log}" and lines[-1] == f"full log: {log}"
    steps = ["prepare-data", "train-resnet", "test-resnet", "produce-metrics"]
    tasks = [line.strip() for line in lines if re.match(r"  [a-z-]+: (started|SUCCESS in )", line)]
    assert [line.split(":")[0] for line in tasks] == [step for step in steps for _ in ("started", "ended")]
    assert all(t.endswith(": started") for t in tasks[::2]) and all(": SUCCESS in " in t for t in tasks[1::2])
    epochs = [line.strip() for line in lines if line.startswith("    epoch ")]
    assert [e.split(":")[0] for e in epochs] == ["epoch 1/2", "epoch 2/2"] and "mean loss" in epochs[0]
    assert len(lines) < 45  # progress and result only: mmengine's configuration and hook tables are in the log
    full = log.read_text()
    assert "train_cfg = dict(by_epoch=True, max_epochs=2)" in full and "Epoch(train)" in full
    assert "train_cfg" not in proc.stdout + proc.stderr


def test_a_second_demo_in_the_same_run_directory_resumes_training(sharedvol: cli.Run, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    first = sharedvol("demo", "--output", str(volume), "--run-name", "again", "--epochs", "1", *TINY)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    second = sharedvol("demo", "--output", str(volume), "--run-name", "again", "--epochs", "2", *TINY)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]

    summary = json.loads((volume / "runs" / "again" / "train" / "summary.json").read_text())
    assert (summary["resumed_from_epoch"], summary["epochs"]) == (1, 2)
    # both runs' output is in the run's log: only the second found the dataset prepared
    assert "dataset already prepared" in (volume / "logs" / "again.log").read_text()


def test_a_failing_task_stops_the_demo_with_one_line_naming_it(sharedvol: cli.Run, tmp_path: Path) -> None:
    data = tmp_path / "not-cifar"
    (data / "cifar-10-batches-py").mkdir(parents=True)
    (data / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"nonsense": True}))

    proc = sharedvol("demo", "--output", str(tmp_path / "volume"), "--data", str(data), "--epochs", "1")

    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()[-1:]
    assert line.startswith("sharedvol demo: error: task prepare-data failed: steps.errors.DatasetError: ")
    assert f"its log is in {tmp_path / 'volume' / 'logs'}/" in line
    assert not (tmp_path / "volume" / "runs").exists() or not any((tmp_path / "volume" / "runs").glob("*/checkpoints"))
