"""Shared ML fixtures: one small generated dataset and one trained + evaluated run for the session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from steps import data, produce_metrics, test_resnet, train_resnet

TRAIN_IMAGES, TEST_IMAGES, BATCH = 160, 40, 16


@dataclass
class TrainedRun:
    run_dir: Path
    data_root: Path
    summary: train_resnet.TrainSummary
    result: test_resnet.EvalResult
    bundle: produce_metrics.MetricsBundle


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    data.synthesize(str(root), train=TRAIN_IMAGES, test=TEST_IMAGES, seed=0)
    return root


@pytest.fixture(scope="session")
def trained_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    run_dir = tmp_path_factory.mktemp("run")
    summary = train_resnet.train(
        train_resnet.TrainConfig(
            run_dir=str(run_dir), data_root=str(dataset), epochs=2, batch_size=BATCH, device="cpu", log_interval=5
        )
    )
    result = test_resnet.evaluate(test_resnet.TestConfig(run_dir=str(run_dir), data_root=str(dataset), device="cpu"))
    bundle = produce_metrics.produce(str(run_dir))
    return TrainedRun(run_dir, dataset, summary, result, bundle)
