"""Training that went wrong is never published as success, and a resume continues the same training or nothing."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from pipelines import cli
from steps import checkpoint, config, dataplane, documents, errors, hooks, safeload, schemas, train_resnet
from tests.ml.training import BATCH, LR, evaluate


def run_train(run_dir: Path, dataset: Path, epochs: int, **overrides: object) -> None:
    settings = {"epochs": epochs, "batch_size": BATCH, "lr": LR, "device": "cpu", "log_interval": 5, **overrides}
    train_resnet.train(config.TrainConfig(run_dir=str(run_dir), data_root=str(dataset), **settings))  # type: ignore[arg-type]


def test_a_diverged_training_stops_with_one_line_and_publishes_nothing(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--run-dir", str(tmp_path / "run"), "--data-root", str(dataset), "--device", "cpu"]
    code = cli.main([*argv, "--epochs", "1", "--batch-size", str(BATCH), "--lr", "1e6"])

    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2
    assert lines[-1].startswith("sharedvol train: error: training diverged: the loss is nan at iteration")
    assert not (tmp_path / "run" / "checkpoints" / "latest.json").exists()
    assert not (tmp_path / "run" / "train" / "summary.json").exists()


def test_weights_that_turned_non_finite_under_a_finite_loss_are_not_published(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    publish = hooks.SharedvolTrainHook.after_train_epoch

    def overflowed(self: hooks.SharedvolTrainHook, runner: Any) -> None:  # as fp16 overflow can leave them
        with torch.no_grad():
            next(iter(runner.model.parameters())).view(-1)[0] = float("inf")
        publish(self, runner)

    monkeypatch.setattr(hooks.SharedvolTrainHook, "after_train_epoch", overflowed)
    argv = ["train", "--run-dir", str(tmp_path / "run"), "--data-root", str(dataset), "--device", "cpu"]
    code = cli.main([*argv, "--epochs", "1", "--batch-size", str(BATCH)])

    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2
    assert lines[-1].startswith("sharedvol train: error: training diverged: 'backbone.conv1.weight' holds NaN or an")
    assert not (tmp_path / "run" / "checkpoints" / "latest.json").exists()


def test_a_resume_with_other_settings_is_refused_naming_each_difference(
    one_epoch: Path, dataset: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)
    before = (run_dir / "checkpoints" / "latest.json").read_bytes()

    with pytest.raises(errors.ConfigError) as caught:
        run_train(run_dir, dataset, 2, lr=0.5, batch_size=8)

    assert str(caught.value).startswith(f"cannot resume {run_dir}/checkpoints/latest.json with other settings")
    assert "lr 0.05 -> 0.5; batch_size 16 -> 8" in str(caught.value)
    assert (run_dir / "checkpoints" / "latest.json").read_bytes() == before


def test_a_resume_on_another_dataset_is_refused(one_epoch: Path, tmp_path: Path) -> None:
    from steps import data

    other = tmp_path / "other"
    data.synthesize(str(other), train=64, test=32, seed=7)
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)

    with pytest.raises(errors.ConfigError, match="with other settings than it was trained with: dataset_blake3 "):
        run_train(run_dir, other, 2)


def test_a_resume_allowed_to_change_the_rate_trains_at_the_new_rate_and_says_so(
    one_epoch: Path, dataset: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)

    run_train(run_dir, dataset, 2, lr=0.02, allow_changed_settings=True)

    manifest = checkpoint.require_manifest(dataplane.RunLayout(str(run_dir)).checkpoint)
    # a fresh 2-epoch run at 0.02 decays at epoch 1: its second epoch runs at 0.002
    assert manifest.curves["lr_per_epoch"] == pytest.approx([LR, 0.002])
    assert manifest.settings.lr == 0.02
    summary = documents.read(str(run_dir / "train" / "summary.json"), schemas.TrainSummary)
    assert summary.config["lr"] == 0.02


def test_asking_a_finished_run_for_more_epochs_follows_the_schedule_of_the_new_length(
    dataset: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_train(run_dir, dataset, 2)
    run_train(run_dir, dataset, 3)
    fresh = tmp_path / "fresh"
    run_train(fresh, dataset, 3)

    def rates(d: Path) -> list[float]:
        return checkpoint.require_manifest(dataplane.RunLayout(str(d)).checkpoint).curves["lr_per_epoch"]

    # 2 epochs decay at epoch 1; 3 epochs at epochs 1 and 2: the third epoch runs at the fresh run's rate
    assert rates(fresh) == pytest.approx([LR, LR * 0.1, LR * 0.01])
    assert rates(run_dir) == pytest.approx(rates(fresh))


def test_test_resnet_refuses_a_weights_file_that_holds_none_of_the_models_tensors(
    one_epoch: Path, dataset: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)
    layout = dataplane.RunLayout(str(run_dir))
    m = checkpoint.require_manifest(layout.checkpoint)
    empty = io.BytesIO()
    safeload.write_safetensors(empty, {}, {"format": checkpoint.WEIGHTS_FORMAT})
    ref = checkpoint.publish_file(layout.checkpoint_dir, m.epoch, "safetensors", empty.getvalue())
    documents.write(layout.checkpoint, m.doc.model_copy(update={"weights": ref}))

    with pytest.raises(errors.IntegrityError, match=r"is not this model's weights: of its \d+ tensors \d+ missing"):
        evaluate(run_dir, dataset)
    assert not (run_dir / "eval" / "eval_result.json").exists()
