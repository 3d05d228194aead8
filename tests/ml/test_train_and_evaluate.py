"""Real mmcls training and evaluation on the CPU, on generated CIFAR-format data."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steps import dataplane, errors, produce_metrics, test_resnet, train_resnet
from tests.ml.conftest import BATCH, TRAIN_IMAGES, TrainedRun

pytestmark = pytest.mark.ml
REPO = Path(__file__).resolve().parents[2]


def test_training_publishes_the_checkpoint_its_digest_and_a_summary(trained_run: TrainedRun) -> None:
    layout = dataplane.RunLayout(str(trained_run.run_dir))
    summary = json.loads(Path(layout.summary).read_text())

    assert summary["schema"] == "sharedvol.train_summary" and summary["schema_version"] == 1
    assert summary["epochs"] == 2
    assert summary["iterations"] == 2 * (TRAIN_IMAGES // BATCH)
    assert summary["images_seen"] == 2 * TRAIN_IMAGES
    assert len(summary["loss_per_epoch"]) == 2
    assert summary["loss_per_epoch"][1] < summary["loss_per_epoch"][0]
    assert summary["images_per_s"] > 0
    assert dataplane.published_digest(layout.checkpoint) == summary["checkpoint_sha256"]
    assert len(dataplane.read_verified(layout.checkpoint)) > 40_000_000  # 11.2 M float32 parameters


def test_the_evaluation_result_is_consistent_with_itself(trained_run: TrainedRun) -> None:
    doc = json.loads(Path(dataplane.RunLayout(str(trained_run.run_dir)).eval_result).read_text())
    matrix = doc["confusion_matrix"]

    assert doc["schema"] == "sharedvol.eval_result" and doc["schema_version"] == 1
    assert doc["split"] == "test" and doc["size"] == 40 == sum(map(sum, matrix))
    assert doc["checkpoint_sha256"] == trained_run.summary.checkpoint_sha256
    assert doc["top1"] == pytest.approx(sum(matrix[i][i] for i in range(10)) / 40)
    assert 0 <= doc["top1"] <= doc["top5"] <= 1
    for i, name in enumerate(doc["class_names"]):
        assert doc["per_class_accuracy"][name] == pytest.approx(matrix[i][i] / sum(matrix[i]))
    assert doc["top1"] > 0.2, "two epochs on the learnable synthetic set should beat chance (10 %)"


def test_produce_metrics_reports_the_evaluated_numbers_with_valid_kfp_names(trained_run: TrainedRun) -> None:
    bundle, result = trained_run.bundle, trained_run.result
    v1 = json.loads(Path(bundle.files["mlpipeline-metrics.json"]).read_text())

    assert bundle.scalars["accuracy-top1"] == result.top1
    assert bundle.confusion_matrix == result.confusion_matrix
    assert bundle.categories == result.class_names
    assert {m["name"]: m["numberValue"] for m in v1["metrics"]}["accuracy-top1"] == result.top1
    assert all(produce_metrics.V1_NAME.match(m["name"]) for m in v1["metrics"])
    assert {m["format"] for m in v1["metrics"]} == {"PERCENTAGE", "RAW"}
    html = Path(bundle.files["report.html"]).read_text()
    assert html.count("data:image/png;base64,") == 2
    assert Path(bundle.files["training_curve.png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_training_run_killed_mid_way_resumes_from_its_last_published_epoch(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    digest = run_dir / "checkpoints" / "latest.pth.sha256"
    cmd = [sys.executable, "-m", "pipelines", "train", "--run-dir", str(run_dir), "--data-root", str(dataset)]
    cmd += ["--epochs", "5", "--batch-size", str(BATCH), "--device", "cpu", "--log-interval", "5"]
    trainer = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not digest.exists() and trainer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # a local file written by another process: nothing to watch but the file itself
    assert digest.exists(), "the first epoch's checkpoint was never published"
    trainer.send_signal(signal.SIGKILL)
    trainer.wait()
    history = json.loads((run_dir / "train" / "history.json").read_text())
    done = history["epochs"]
    assert 1 <= done < 5

    summary = train_resnet.train(
        train_resnet.TrainConfig(
            run_dir=str(run_dir), data_root=str(dataset), epochs=done + 1, batch_size=BATCH, device="cpu"
        )
    )

    assert summary.resumed_from_epoch == done
    assert summary.epochs == done + 1
    assert summary.iterations == (done + 1) * (TRAIN_IMAGES // BATCH)
    assert summary.loss_per_epoch[:done] == pytest.approx(history["loss_per_epoch"])
    assert summary.images_seen == TRAIN_IMAGES  # only the one new epoch ran


MALICIOUS = b"cos\nsystem\n(S'touch %s'\ntR."


def test_a_checkpoint_that_does_not_match_its_digest_is_refused_before_unpickling(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run.run_dir / "checkpoints", run_dir / "checkpoints")
    marker = tmp_path / "unpickled"
    (run_dir / "checkpoints" / "latest.pth").write_bytes(MALICIOUS % str(marker).encode())

    with pytest.raises(errors.IntegrityError, match=r"latest\.pth does not match its digest"):
        test_resnet.evaluate(test_resnet.TestConfig(run_dir=str(run_dir), data_root=str(trained_run.data_root)))
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 - the payload really is a pickle that runs code
        pickle.loads(b"not" + MALICIOUS)


def test_evaluating_a_run_without_a_checkpoint_says_to_train_first(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(errors.IntegrityError, match="has no digest file"):
        test_resnet.evaluate(test_resnet.TestConfig(run_dir=str(tmp_path), data_root=str(dataset)))


def test_a_truncated_eval_result_is_refused_by_produce_metrics(trained_run: TrainedRun, tmp_path: Path) -> None:
    target = tmp_path / "eval" / "eval_result.json"
    target.parent.mkdir()
    full = (trained_run.run_dir / "eval" / "eval_result.json").read_text()
    target.write_text(full[: len(full) // 2])
    with pytest.raises(errors.SchemaError, match="is not valid JSON"):
        produce_metrics.produce(str(tmp_path))
    assert not (tmp_path / "metrics").exists()


def test_cuda_without_a_gpu_is_one_clear_error(dataset: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pipelines", "train", "--run-dir", str(tmp_path / "r"), "--data-root", str(dataset)]
    out = subprocess.run(
        [*cmd, "--device", "cuda"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "sharedvol train: error: --device cuda but no CUDA device is visible: "
        "run on a GPU node (the pipeline requests nvidia.com/gpu) or pass --device cpu"
    )


def test_a_run_directory_that_cannot_be_written_is_one_clear_error(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(errors.RunDirError, match="is not writable"):
        train_resnet.train(
            train_resnet.TrainConfig(run_dir=str(tmp_path / "file" / "run"), data_root=str(dataset), device="cpu")
        )


def test_amp_on_cuda_configures_mmengines_amp_optimizer_wrapper(dataset: Path, tmp_path: Path) -> None:
    cfg = train_resnet.TrainConfig(run_dir=str(tmp_path), data_root=str(dataset), amp=True, device="cuda")
    c = train_resnet.build_config(cfg, device="cuda", work_dir=str(tmp_path))

    assert c.optim_wrapper.type == "AmpOptimWrapper"
    assert c.optim_wrapper.dtype == "float16" and c.optim_wrapper.loss_scale == "dynamic"
    assert c.device == "cuda" and c.env_cfg.cudnn_benchmark is True and c.env_cfg.dist_cfg.backend == "nccl"
    plain = train_resnet.build_config(
        train_resnet.TrainConfig(run_dir=str(tmp_path), data_root=str(dataset)), device="cpu", work_dir=str(tmp_path)
    )
    assert plain.optim_wrapper.type == "OptimWrapper" and plain.env_cfg.dist_cfg.backend == "gloo"


def test_amp_on_the_cpu_is_refused(dataset: Path, tmp_path: Path) -> None:
    cfg = train_resnet.TrainConfig(run_dir=str(tmp_path), data_root=str(dataset), amp=True)
    with pytest.raises(errors.ConfigError, match="--amp needs a CUDA device"):
        train_resnet.build_config(cfg, device="cpu", work_dir=str(tmp_path))


def test_the_config_is_the_stock_resnet18_cifar_config_with_our_overrides(dataset: Path, tmp_path: Path) -> None:
    cfg = train_resnet.TrainConfig(
        run_dir=str(tmp_path),
        data_root=str(dataset),
        epochs=8,
        batch_size=64,
        lr=0.1,
        cfg_options={"model.head.topk": (1,)},
    )
    c = train_resnet.build_config(cfg, device="cpu", work_dir=str(tmp_path / "train"))

    assert c.model.backbone.type == "ResNet_CIFAR" and c.model.backbone.depth == 18
    assert c.train_dataloader.dataset.type == "SharedvolCIFAR10"
    assert c.train_dataloader.dataset.data_prefix == str(dataset)
    assert c.train_dataloader.batch_size == 64
    assert c.train_cfg == {"by_epoch": True, "max_epochs": 8}
    assert c.param_scheduler.milestones == [4, 6]
    assert c.optim_wrapper.optimizer.lr == 0.1 and c.optim_wrapper.optimizer.momentum == 0.9
    assert c.model.head.topk == (1,)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", -1, "--epochs must be at least 1, got -1"),
        ("batch_size", 0, "--batch-size must be at least 1, got 0"),
        ("lr", 0.0, "--lr must be positive"),
        ("device", "tpu", "--device 'tpu' is unknown"),
    ],
)
def test_a_bad_training_setting_is_refused_naming_it(dataset: Path, field: str, value: object, message: str) -> None:
    cfg = train_resnet.TrainConfig(run_dir="/tmp/unused", data_root=str(dataset))
    setattr(cfg, field, value)
    with pytest.raises(errors.ConfigError, match=message):
        train_resnet.train(cfg)
