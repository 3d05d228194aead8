"""An evaluated run's two documents (train/summary.json, eval/eval_result.json), as the steps write them."""

from __future__ import annotations

from pathlib import Path

from steps import documents, schemas

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_run(run_dir: Path) -> None:
    """An evaluated run's two documents, as train-resnet and test-resnet write them."""
    matrix = [[8 if i == j else (1 if j == (i + 1) % 10 else 0) for j in range(10)] for i in range(10)]
    documents.write_json(str(run_dir / "eval" / "eval_result.json"), {
        "schema": schemas.EvalResult.SCHEMA, "schema_version": schemas.EvalResult.VERSION, "checkpoint": "c",
        "checkpoint_blake3": "0" * 64, "epoch": 3, "dataset_root": "d", "dataset_source": "synthetic", "split": "test",
        "size": 90, "top1": round(80 / 90, 6), "top5": 1.0, "loss": 0.61, "class_names": CLASSES,
        "per_class_accuracy": {c: 8 / 9 for c in CLASSES}, "confusion_matrix": matrix, "device": "cpu",
        "wall_time_s": 2.5,
    })  # fmt: skip
    documents.write_json(str(run_dir / "train" / "summary.json"), {
        "schema": schemas.TrainSummary.SCHEMA, "schema_version": schemas.TrainSummary.VERSION, "epochs": 3,
        "iterations": 30, "loss_per_epoch": [2.0, 1.2, 0.8], "final_loss": 0.8, "wall_time_s": 41.0,
        "epoch_seconds": [14.0, 13.5, 13.5], "images_per_s": 23.4, "images_seen": 960, "resumed_from_epoch": 0,
        "device": "cpu", "checkpoint": "c", "checkpoint_blake3": "0" * 64,
        "config": {"epochs": 3, "batch_size": 32, "lr": 0.05, "seed": 0, "device": "cpu", "amp": None,
                   "augment": "auto", "num_workers": None, "train_size": 320},
        "curves": {"loss_curve": [[i, 2.3 - 0.05 * i] for i in range(1, 31)], "lr_per_epoch": [0.05, 0.005, 0.005],
                   "train_top1_per_epoch": [0.3, 0.6, 0.75]},
    })  # fmt: skip
