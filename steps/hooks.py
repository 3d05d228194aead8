"""The mmengine hook train-resnet adds: per-epoch losses and publishing ``latest.pth`` after each epoch."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from steps import dataplane, errors

log = logging.getLogger(__name__)

HISTORY_SCHEMA = "sharedvol.train_history"


@HOOKS.register_module(force=True)
class SharedvolTrainHook(Hook):
    """Publishes each epoch's checkpoint and keeps the loss history of the run.

    Runs after mmengine's ``CheckpointHook`` (priority LOWEST), so the epoch's checkpoint exists
    when it is published to ``checkpoints/latest.pth`` (+ ``.sha256``). The loss history is kept in
    ``train/history.json`` so that a resumed run still reports every epoch.

    Args:
        run_dir: the run directory (path or fsspec URL).
    """

    priority = "LOWEST"

    def __init__(self, run_dir: str) -> None:
        self.layout = dataplane.RunLayout(run_dir)
        self.first_epoch = 0
        self.last_epoch = 0
        self.loss_per_epoch: list[float] = []
        self.images = 0
        self.train_seconds = 0.0
        self.epoch_seconds: list[float] = []
        self.published: dataplane.Published | None = None
        self._epoch_losses: list[float] = []
        self._epoch_start = 0.0

    def before_train(self, runner: Any) -> None:
        """Record where training starts (after a resume: the resumed epoch) and the history so far."""
        self.first_epoch = self.last_epoch = runner.epoch
        self.loss_per_epoch = self._history()[: self.first_epoch]
        if self.first_epoch:
            log.info("resumed at epoch %d of %d", self.first_epoch, runner.max_epochs)

    def before_train_epoch(self, runner: Any) -> None:
        """Start the epoch's clock and loss list."""
        self._epoch_losses = []
        self._epoch_start = time.monotonic()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: dict[str, Any] | None = None
    ) -> None:
        """Count images and keep the iteration's loss."""
        if outputs and "loss" in outputs:
            loss = outputs["loss"]
            self._epoch_losses.append(float(loss.detach() if hasattr(loss, "detach") else loss))
        if data_batch is not None:
            self.images += len(data_batch["inputs"])

    def after_train_epoch(self, runner: Any) -> None:
        """Publish the checkpoint CheckpointHook just saved, then the loss history."""
        seconds = time.monotonic() - self._epoch_start
        self.train_seconds += seconds
        self.epoch_seconds.append(round(seconds, 3))
        epoch = runner.epoch + 1
        mean = sum(self._epoch_losses) / len(self._epoch_losses) if self._epoch_losses else float("nan")
        self.loss_per_epoch.append(mean)
        self.last_epoch = epoch
        marker = Path(runner.work_dir) / "last_checkpoint"
        if not marker.exists():
            raise errors.RunDirError(
                f"mmengine wrote no checkpoint for epoch {epoch} in {runner.work_dir}", hint="check disk space"
            )
        saved = marker.read_text().strip()
        self.published = dataplane.publish_file(saved, self.layout.checkpoint)
        dataplane.write_json(
            self.layout.path("train", "history.json"),
            {"schema": HISTORY_SCHEMA, "schema_version": 1, "epochs": epoch, "loss_per_epoch": self.loss_per_epoch},
        )
        log.info(
            "epoch %d/%d: mean loss %.4f; published %s (sha256 %s...)",
            epoch, runner.max_epochs, mean, self.layout.checkpoint, self.published.sha256[:12],
        )  # fmt: skip

    def _history(self) -> list[float]:
        try:
            doc = dataplane.read_json(
                self.layout.path("train", "history.json"),
                schema=HISTORY_SCHEMA,
                versions=(1,),
                required={"loss_per_epoch": list},
            )
        except errors.SchemaError:
            return []
        return [float(x) for x in doc["loss_per_epoch"]]
