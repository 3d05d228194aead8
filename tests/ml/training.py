"""The ML tier's sizes and its train and evaluate calls (the fixtures of tests/ml/conftest.py use them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from steps import produce_metrics, test_resnet, train_resnet

TRAIN_IMAGES, TEST_IMAGES, BATCH, LR = 64, 32, 16, 0.05


@dataclass
class TrainedRun:
    run_dir: Path
    data_root: Path
    summary: train_resnet.TrainSummary
    result: test_resnet.EvalResult
    bundle: produce_metrics.MetricsBundle


def train(run_dir: Path, dataset: Path, epochs: int) -> train_resnet.TrainSummary:
    return train_resnet.train(
        train_resnet.TrainConfig(
            run_dir=str(run_dir),
            data_root=str(dataset),
            epochs=epochs,
            batch_size=BATCH,
            lr=LR,
            device="cpu",
            log_interval=5,
        )
    )


def evaluate(run_dir: Path, dataset: Path) -> test_resnet.EvalResult:
    return test_resnet.evaluate(test_resnet.TestConfig(run_dir=str(run_dir), data_root=str(dataset), device="cpu"))
