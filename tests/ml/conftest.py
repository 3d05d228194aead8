"""Shared ML fixtures: one small generated dataset and one trained + evaluated run for the session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from steps import config, data, produce_metrics, schemas, test_resnet, train_resnet

TRAIN_IMAGES, TEST_IMAGES, BATCH, LR = 64, 32, 16, 0.05


@dataclass
class TrainedRun:
    run_dir: Path
    data_root: Path
    summary: schemas.TrainSummary
    result: schemas.EvalResult
    bundle: produce_metrics.MetricsBundle


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    data.synthesize(str(root), train=TRAIN_IMAGES, test=TEST_IMAGES, seed=0)
    return root


def train(run_dir: Path, dataset: Path, epochs: int) -> schemas.TrainSummary:
    return train_resnet.train(
        config.TrainConfig(
            run_dir=str(run_dir),
            data_root=str(dataset),
            epochs=epochs,
            batch_size=BATCH,
            lr=LR,
            device="cpu",
            log_interval=5,
        )
    )


def evaluate(run_dir: Path, dataset: Path) -> schemas.EvalResult:
    return test_resnet.evaluate(test_resnet.TestConfig(run_dir=str(run_dir), data_root=str(dataset), device="cpu"))


@pytest.fixture(scope="session")
def trained_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    run_dir = tmp_path_factory.mktemp("run")
    summary = train(run_dir, dataset, 2)
    result = evaluate(run_dir, dataset)
    bundle = produce_metrics.produce(str(run_dir))
    return TrainedRun(run_dir, dataset, summary, result, bundle)


@pytest.fixture(scope="session")
def one_epoch(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory after one epoch: what a resumed run starts from (copy it before changing it)."""
    run_dir = tmp_path_factory.mktemp("one-epoch")
    train(run_dir, dataset, 1)
    return run_dir
