"""The batched on-device augmentation trains as well as mmcls's stock per-image pipeline (CPU, same data and seeds)."""

from __future__ import annotations

import math
from pathlib import Path

from steps import config, schemas, test_resnet, train_resnet
from tests.ml.training import BATCH, TEST_IMAGES

EPOCHS = 3


def accuracy(run_dir: Path, dataset: Path, augment: str) -> tuple[float, schemas.TrainSummary]:
    summary = train_resnet.train(
        config.TrainConfig(
            run_dir=str(run_dir), data_root=str(dataset), epochs=EPOCHS, batch_size=BATCH, device="cpu",
            augment=augment, seed=7,
        )
    )  # fmt: skip
    result = test_resnet.evaluate(test_resnet.TestConfig(run_dir=str(run_dir), data_root=str(dataset), device="cpu"))
    return result.top1, summary


def test_batched_augmentation_reaches_the_stock_accuracy_within_noise(dataset: Path, tmp_path: Path) -> None:
    stock, stock_summary = accuracy(tmp_path / "stock", dataset, "stock")
    batched, batched_summary = accuracy(tmp_path / "batched", dataset, "batched")

    # two binomial estimates on TEST_IMAGES images: their difference has a standard deviation of at most
    # sqrt(2 * 0.25 / n); three of those is the noise allowed
    noise = 3 * math.sqrt(2 * 0.25 / TEST_IMAGES)
    assert abs(batched - stock) <= noise, (stock, batched)
    assert min(stock, batched) > 0.3, "both should be well above chance (10 %)"
    assert batched_summary.images_seen == stock_summary.images_seen
    assert batched_summary.loss_per_epoch[-1] < batched_summary.loss_per_epoch[0]
