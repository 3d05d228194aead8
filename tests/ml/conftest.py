"""Shared ML fixtures: one small generated dataset and one trained + evaluated run for the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps import data, produce_metrics
from tests.ml.training import TEST_IMAGES, TRAIN_IMAGES, TrainedRun, evaluate, train


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    data.synthesize(str(root), train=TRAIN_IMAGES, test=TEST_IMAGES, seed=0)
    return root


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
