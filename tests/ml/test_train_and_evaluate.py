"""Real mmcls training and evaluation on the CPU, on generated CIFAR-format data."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from steps import checkpoint, dataplane, documents, errors, produce_metrics, safeload, schemas
from tests import cli
from tests.ml.training import BATCH, LR, TEST_IMAGES, TRAIN_IMAGES, TrainedRun, evaluate, republish, train


def test_training_publishes_weights_and_state_behind_one_manifest_and_a_summary(trained_run: TrainedRun) -> None:
    layout = dataplane.RunLayout(str(trained_run.run_dir))
    summary = json.loads(Path(layout.summary).read_text())
    manifest = checkpoint.require_manifest(layout.checkpoint)

    assert summary["schema"] == "sharedvol.train_summary" and summary["schema_version"] == 2
    assert summary["epochs"] == manifest.epoch == 2
    assert summary["iterations"] == 2 * (TRAIN_IMAGES // BATCH)
    assert summary["images_seen"] == 2 * TRAIN_IMAGES
    assert summary["loss_per_epoch"] == pytest.approx(manifest.loss_per_epoch, abs=1e-6)
    assert summary["loss_per_epoch"][1] < summary["loss_per_epoch"][0]
    assert summary["checkpoint_blake3"] == manifest.weights.blake3
    curves = summary["curves"]
    assert [p[0] for p in curves["loss_curve"]] == list(range(1, summary["iterations"] + 1))
    assert curves["lr_per_epoch"] == pytest.approx([LR, LR / 10])  # milestone [1] for 2 epochs
    assert len(curves["train_top1_per_epoch"]) == 2 and all(0 <= a <= 1 for a in curves["train_top1_per_epoch"])
    weights, metadata = safeload.weights_from_buffer(checkpoint.read_verified(manifest, manifest.weights), "w")
    assert sum(t.numel() for k, t in weights.items() if "num_batches" not in k) > 11_000_000  # ResNet-18 CIFAR
    assert metadata["epoch"] == "2" and metadata["format"] == "sharedvol.weights"
    # the volume budget docs/dataplane.md states: 44.7 MB of weights + 44.7 MB of training state per epoch kept
    assert manifest.weights.size == pytest.approx(44.7e6, rel=0.01)
    assert manifest.resume.size == pytest.approx(44.7e6, rel=0.01)  # the state leaves the weights out
    names = sorted(p.name for p in Path(layout.checkpoint_dir).iterdir())
    assert names == sorted(["latest.json", manifest.weights.name, manifest.resume.name])  # keep 1: no epoch 1 left
    assert not list(Path(layout.train_dir).glob("*.pth")), "mmengine saved a checkpoint of its own"


def test_the_evaluation_result_is_consistent_with_itself(trained_run: TrainedRun) -> None:
    doc = documents.read(dataplane.RunLayout(str(trained_run.run_dir)).eval_result, schemas.EvalResult).model_dump()
    matrix = doc["confusion_matrix"]

    assert doc["split"] == "test" and doc["size"] == TEST_IMAGES == sum(map(sum, matrix))
    assert doc["checkpoint_blake3"] == trained_run.summary.checkpoint_blake3 and doc["epoch"] == 2
    assert doc["top1"] == pytest.approx(sum(matrix[i][i] for i in range(10)) / TEST_IMAGES)
    assert 0 <= doc["top1"] <= doc["top5"] <= 1
    for i, name in enumerate(doc["class_names"]):
        assert doc["per_class_accuracy"][name] == pytest.approx(matrix[i][i] / sum(matrix[i]))
    assert doc["top1"] > 0.2, "two epochs on the learnable synthetic set should beat chance (10 %)"


def test_produce_metrics_reports_the_evaluated_numbers_with_valid_kfp_names(trained_run: TrainedRun) -> None:
    bundle, result = trained_run.bundle, trained_run.result
    v1 = json.loads(Path(bundle.files["mlpipeline-metrics.json"]).read_text())

    assert bundle.scalars["accuracy-top1"] == result.top1
    assert bundle.confusion_matrix == result.confusion_matrix
    assert {m["name"]: m["numberValue"] for m in v1["metrics"]}["accuracy-top1"] == result.top1
    assert all(produce_metrics.V1_NAME.match(m["name"]) for m in v1["metrics"])
    assert set(v1) == {"metrics"}  # KFP's own format, nothing added
    html = Path(bundle.files["report.html"]).read_text()
    assert html.count("data:image/png;base64,") == 3


def test_metrics_refuses_an_eval_result_changed_after_test_resnet_wrote_it(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    shutil.copytree(trained_run.run_dir / "eval", tmp_path / "eval")
    target = tmp_path / "eval" / "eval_result.json"
    doc = json.loads(target.read_text())
    doc["top1"] = 0.99
    target.write_text(json.dumps(doc, indent=2))

    with pytest.raises(errors.SchemaError, match=r"eval_result\.json does not match its digest"):
        produce_metrics.produce(str(tmp_path))
    assert not (tmp_path / "metrics").exists()


def test_a_truncated_eval_result_is_refused_by_produce_metrics(trained_run: TrainedRun, tmp_path: Path) -> None:
    target = tmp_path / "eval" / "eval_result.json"
    target.parent.mkdir()
    full = (trained_run.run_dir / "eval" / "eval_result.json").read_text()
    target.write_text(full[: len(full) // 2])
    with pytest.raises(errors.SchemaError, match="is not valid JSON"):
        produce_metrics.produce(str(tmp_path))
    assert not (tmp_path / "metrics").exists()


def test_a_resumed_run_trains_only_the_missing_epochs_and_keeps_the_history(
    one_epoch: Path, dataset: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)
    before = checkpoint.require_manifest(dataplane.RunLayout(str(run_dir)).checkpoint)

    summary = train(run_dir, dataset, 2)

    assert summary.resumed_from_epoch == 1 and summary.epochs == 2
    assert summary.iterations == 2 * (TRAIN_IMAGES // BATCH)
    assert summary.loss_per_epoch[0] == pytest.approx(before.loss_per_epoch[0], abs=1e-6)
    assert summary.images_seen == TRAIN_IMAGES  # only the one new epoch ran


def test_a_rerun_after_the_last_epoch_was_published_trains_nothing_and_succeeds(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run_dir)
    (run_dir / "train" / "summary.json").unlink()  # killed after the commit point, before the summary

    summary = train(run_dir, trained_run.data_root, 2)

    assert summary.epochs == 2 and summary.images_seen == 0 and summary.resumed_from_epoch == 2
    assert summary.checkpoint_blake3 == trained_run.summary.checkpoint_blake3


def plant(run_dir: Path, part: str, marker: Path) -> None:
    """Replace one published file by a code-running pickle and republish the manifest so its digest matches."""
    from tests.unit.test_dataplane_safeload import planted_pickle

    republish(run_dir, part, planted_pickle(marker))


def test_test_resnet_refuses_planted_weights_with_a_matching_digest_and_nothing_runs(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run_dir)
    marker = tmp_path / "ran"
    plant(run_dir, "weights", marker)

    with pytest.raises(errors.IntegrityError, match="is not a safetensors weights file"):
        evaluate(run_dir, trained_run.data_root)
    assert not marker.exists()


def test_a_resume_refuses_a_planted_state_file_with_a_matching_digest_and_nothing_runs(
    one_epoch: Path, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)
    marker = tmp_path / "ran"
    plant(run_dir, "resume", marker)

    with pytest.raises(errors.IntegrityError, match="refused unread"):
        train(run_dir, dataset, 2)
    assert not marker.exists()


def test_cuda_without_a_gpu_is_one_clear_error(sharedvol: cli.Run, dataset: Path, tmp_path: Path) -> None:
    args = ["train", "--run-dir", str(tmp_path / "r"), "--data-root", str(dataset), "--device", "cuda"]
    out = sharedvol(*args, env={"CUDA_VISIBLE_DEVICES": ""})  # no GPU, on any machine
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "sharedvol train: error: --device cuda but no CUDA device is visible: "
        "run on a GPU node (the pipeline requests nvidia.com/gpu) or pass --device cpu"
    )


def test_training_on_a_full_volume_is_one_line_and_leaves_no_partial_file(dataset: Path, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    run_dir = volume / "runs" / "r1"
    train_cmd = cli.command("train", "--run-dir", str(run_dir), "--data-root", str(dataset))
    train_cmd += ["--epochs", "1", "--batch-size", str(BATCH), "--device", "cpu"]
    # 60 MB: the 44.7 MB of weights fit, weights and training state (2 x 44.7 MB) do not
    script = f"mount -t tmpfs -o size=60m sharedvol-test {shlex.quote(str(volume))} && {shlex.join(train_cmd)}"
    env = cli.environment({"CUDA_VISIBLE_DEVICES": ""})
    script += f" ; ls -a {run_dir}/checkpoints >&2"
    proc = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script],
                          cwd=cli.REPO, env=env, capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    error = next(line for line in lines if line.startswith("sharedvol train: error:"))
    assert error.startswith(f"sharedvol train: error: no space left on the volume writing {run_dir}/checkpoints/")
    assert error.endswith(
        "free space or use a bigger volume (docs/dataplane.md gives the budget); nothing half-written was kept"
    )
    assert lines[lines.index(error) + 1 :] == [".", ".."]  # checkpoints/ is empty: no temp file, no orphan
