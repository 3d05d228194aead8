"""What train-resnet and test-resnet plug into mmengine: the per-epoch publish hook and the verified loader.

- :class:`SharedvolTrainHook` replaces mmengine's ``CheckpointHook``: after each epoch it has mmengine build
  its checkpoint (``Runner.save_checkpoint``; the hook takes the dict in ``before_save_checkpoint``, and what
  mmengine serializes goes to memory through the ``sharedvol_capture`` file backend, so mmengine never writes
  a half file of its own) and publishes it with the weights through :func:`steps.checkpoint.publish` (one
  commit point). With several ranks (:mod:`steps.distributed`) only rank 0 publishes; the others wait at a barrier
  for the commit point, then read the manifest it published. The epoch's loss, accuracy and image count are summed
  over the ranks first.
- ``sharedvol-verified://KEY``: a checkpoint scheme mmengine's ``load_from`` understands; it hands mmengine a
  dict sharedvol already verified and loaded safely (:func:`offer`), so mmengine never unpickles a file.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from typing import Any, ClassVar

from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.optim.scheduler import MultiStepParamScheduler
from mmengine.registry import HOOKS
from mmengine.runner import CheckpointLoader

from steps import background, checkpoint, dataplane, distributed, errors, modelcheck, resumecheck, safeload, schemas

log = logging.getLogger(__name__)

VERIFIED_SCHEME = "sharedvol-verified://"
_VERIFIED: dict[str, dict[str, Any]] = {}
_RECONFIGURED: set[str] = set()  # keys of resume states whose run changed its settings on purpose


class CaptureBackend(LocalBackend):
    """An mmengine file backend whose ``put`` keeps the bytes in memory instead of writing them."""

    captured: ClassVar[dict[str, bytes]] = {}

    def put(self, obj: bytes, filepath: Any) -> None:
        """Keep ``obj`` (mmengine's serialized checkpoint) under ``filepath``."""
        CaptureBackend.captured[str(filepath)] = obj


register_backend("sharedvol_capture", CaptureBackend, force=True)


def offer(key: str, loaded: dict[str, Any], *, reconfigured: bool = False) -> str:
    """Make ``loaded`` (a verified, safely loaded checkpoint dict) loadable by mmengine as the returned URL.

    A resume state (one with an ``optimizer``) is checked against the run's model and optimizer before mmengine
    loads it (:mod:`steps.resumecheck`); ``reconfigured``: the run changed its settings on purpose, and its
    optimizer's hyperparameters replace the state's. One state is offered at a time: what an earlier run in this
    process offered and never loaded (it was refused) is dropped.
    """
    _VERIFIED.clear()
    _RECONFIGURED.clear()
    _VERIFIED[key] = loaded
    if reconfigured:
        _RECONFIGURED.add(key)
    return VERIFIED_SCHEME + key


def _load_verified(filename: str, map_location: Any = None) -> dict[str, Any]:
    return _VERIFIED.pop(filename.removeprefix(VERIFIED_SCHEME))


CheckpointLoader.register_scheme(prefixes=VERIFIED_SCHEME, loader=_load_verified, force=True)


@HOOKS.register_module(force=True)
class SharedvolTrainHook(Hook):
    """Publishes each epoch's weights and training state, and keeps the loss history of the run.

    A loss that is not a finite number stops training at once (:class:`steps.errors.IntegrityError`): the epoch is
    not published, and the last published epoch stays the run's checkpoint.

    Args:
        run_dir: the run directory (path or fsspec URL).
        keep_checkpoints: epochs whose files stay on the volume (at least 1).
        metadata: strings stored in the weights file's safetensors header.
        channels_last: put the model's weights in ``torch.channels_last`` memory format before training.
        settings: the :class:`steps.schemas.TrainingSettings` recorded in each manifest.
        schedule: the learning-rate schedule of the config (``lr``, ``milestones``, ``gamma``): after a resume the
            optimizer and the scheduler are set to where a fresh run of these settings would be (more epochs asked
            for move the milestones; ``--allow-changed-settings`` may change the rate).
    """

    priority = "LOWEST"

    def __init__(
        self,
        run_dir: str,
        keep_checkpoints: int = 1,
        metadata: dict[str, str] | None = None,
        channels_last: bool = False,
        settings: dict[str, Any] | None = None,
        schedule: dict[str, Any] | None = None,
    ) -> None:
        self.layout = dataplane.RunLayout(run_dir)
        self.channels_last = channels_last
        self.keep = keep_checkpoints
        self.metadata = dict(metadata or {})
        self.settings = schemas.TrainingSettings.model_validate(settings) if settings else None
        self.schedule = dict(schedule or {})
        self.first_epoch = 0
        self.last_epoch = 0
        self.loss_per_epoch: list[float] = []
        self.images = 0
        self.train_seconds = 0.0
        self.epoch_seconds: list[float] = []
        self.published: checkpoint.Manifest | None = None
        self._epoch_losses: list[float] = []
        self._epoch_start = 0.0
        self._state: dict[str, Any] = {}
        self.curves: dict[str, list[Any]] = {"loss_curve": [], "lr_per_epoch": [], "train_top1_per_epoch": []}
        self._logits: Any = None
        self._correct = self._seen = 0
        self._epoch_images = 0

    def before_run(self, runner: Any) -> None:
        """Check a resume state offered for this run against its model and built optimizer, before mmengine loads it."""
        for key, state in _VERIFIED.items():
            if "optimizer" in state:
                optimizer = runner.optim_wrapper.optimizer
                resumecheck.check(runner.model, optimizer, state, key, reconfigured=key in _RECONFIGURED)

    def before_train(self, runner: Any) -> None:
        """Record where training starts (after a resume: the resumed epoch) and the history so far."""
        self.first_epoch = self.last_epoch = runner.epoch
        if self.channels_last:
            import torch

            runner.model.to(memory_format=torch.channels_last)
        manifest = checkpoint.read_manifest(self.layout.checkpoint) if self.first_epoch else None
        self.loss_per_epoch = manifest.loss_per_epoch[: self.first_epoch] if manifest else []
        if manifest:
            for key in self.curves:
                kept = manifest.curves.get(key, [])
                self.curves[key] = (
                    [p for p in kept if p[0] <= runner.iter] if key == "loss_curve" else kept[: self.first_epoch]
                )
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        if hasattr(model, "head"):
            model.head.register_forward_hook(self._keep_logits)
        if self.first_epoch:
            self._restore_schedule(runner)
            log.info("resumed at epoch %d of %d", self.first_epoch, runner.max_epochs)

    def _restore_schedule(self, runner: Any) -> None:
        """Set the optimizer's rate and the MultiStep schedulers to a fresh run's at the resumed epoch.

        mmengine restores both from the checkpoint: the milestones of the epochs asked for then, and the rate of
        the settings then. A run of other settings (more epochs, or ``--allow-changed-settings``) runs its own.
        """
        if not self.schedule:
            return
        base, gamma = float(self.schedule["lr"]), float(self.schedule["gamma"])
        milestones = [int(m) for m in self.schedule["milestones"]]
        schedulers = [s for s in (runner.param_schedulers or []) if isinstance(s, MultiStepParamScheduler)]
        if not schedulers or any(s.param_name != "lr" for s in schedulers):
            return  # a schedule of the user's own (--cfg-options): mmengine's restored state stands
        rate = base * gamma ** sum(1 for m in milestones if m <= self.first_epoch)
        for scheduler in schedulers:
            scheduler.milestones = collections.Counter(milestones)
            scheduler.base_values = [base for _ in scheduler.base_values]
        for group in runner.optim_wrapper.optimizer.param_groups:
            group["lr"], group["initial_lr"] = rate, base

    def _keep_logits(self, module: Any, args: Any, output: Any) -> None:
        # detached: keeping the output itself would keep the iteration's whole autograd graph alive
        self._logits = output.detach() if hasattr(output, "detach") else None

    def before_train_epoch(self, runner: Any) -> None:
        """Start the epoch's clock and loss list."""
        self._epoch_losses = []
        self._epoch_start = time.monotonic()
        self._correct = self._seen = self._epoch_images = 0
        self.curves["lr_per_epoch"].append(float(runner.optim_wrapper.get_lr()["lr"][0]))

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: dict[str, Any] | None = None
    ) -> None:
        """Count images and keep the iteration's loss."""
        if outputs and "loss" in outputs:
            loss = outputs["loss"]
            value = float(loss.detach() if hasattr(loss, "detach") else loss)
            if not math.isfinite(value):
                raise errors.IntegrityError(
                    f"training diverged: the loss is {value} at iteration {runner.iter + 1} "
                    f"(epoch {runner.epoch + 1}); "
                    f"epoch {runner.epoch + 1} was not published",
                    hint="lower --lr (e.g. 0.05) and train again on a new run directory",
                )
            self._epoch_losses.append(value)
            self.curves["loss_curve"].append([runner.iter + 1, round(self._epoch_losses[-1], 5)])
        if data_batch is not None:
            self._epoch_images += len(data_batch["inputs"])
            self._count_correct(data_batch)

    def _count_correct(self, data_batch: dict[str, Any]) -> None:
        """Top-1 of the batch just trained on, from the head's output kept by the forward hook."""
        import torch

        samples, logits = data_batch.get("data_samples"), self._logits
        if logits is None or samples is None or not isinstance(logits, torch.Tensor):
            return
        labels = samples if isinstance(samples, torch.Tensor) else torch.cat([s.gt_label.label for s in samples])
        if len(labels) == len(logits):
            self._correct += int((logits.detach().argmax(1).cpu() == labels.cpu()).sum())
            self._seen += len(labels)

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """Take the training state mmengine built and leave it an empty dict to serialize.

        sharedvol writes the state itself, straight to its file (no in-memory copy), without the weights: they
        are published once, in the safetensors file beside it, and a resume takes them from there. The message
        hub's buffers are stored as plain arrays, which load with the allow-list.
        """
        self._state = {**checkpoint, "state_dict": {}}
        safeload.encode_message_hub(self._state)
        checkpoint.clear()

    def after_train_epoch(self, runner: Any) -> None:
        """Publish the epoch: weights, mmengine's training state and the manifest naming them."""
        seconds = time.monotonic() - self._epoch_start
        self.train_seconds += seconds
        self.epoch_seconds.append(round(seconds, 3))
        epoch = runner.epoch + 1
        local = [sum(self._epoch_losses), len(self._epoch_losses), self._correct, self._seen, self._epoch_images]
        loss_sum, losses, correct, seen, images = distributed.sum_over_ranks(local)  # with one process: local
        mean = loss_sum / losses if losses else float("nan")
        self.images += int(images)
        self.loss_per_epoch.append(mean)
        self.last_epoch = epoch
        self.curves["train_top1_per_epoch"].append(round(correct / seen, 6) if seen else None)
        if len(self.curves["loss_curve"]) > 2000:  # bounded: every other point
            self.curves["loss_curve"] = self.curves["loss_curve"][::2]
        if not distributed.is_publisher():
            distributed.barrier()  # rank 0 publishes; this epoch's manifest is there once every rank got here
            self.published = checkpoint.read_manifest(self.layout.checkpoint)
            if self.published is None or self.published.epoch != epoch:
                found = self.published.epoch if self.published else "nothing"
                raise errors.IntegrityError(
                    f"rank {distributed.rank()} found epoch {found} at {self.layout.checkpoint} after rank 0 "
                    f"published epoch {epoch}",
                    hint="every rank must mount the same run directory; check the volume each worker mounts",
                )
            return
        key = f"epoch_{epoch}.pth"
        runner.save_checkpoint("sharedvol-capture", key, backend_args={"backend": "sharedvol_capture"})
        CaptureBackend.captured.pop(f"sharedvol-capture/{key}")  # an empty dict: the state is in self._state
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        state = model.state_dict()
        diverged = modelcheck.first_non_finite(state)  # a finite loss does not make finite weights (fp16 overflow)
        if diverged is not None:
            raise errors.IntegrityError(
                f"training diverged: {diverged!r} holds NaN or an infinity after epoch {epoch}; "
                f"epoch {epoch} was not published",
                hint="lower --lr (e.g. 0.05) and train again on a new run directory",
            )
        weights = safeload.weights_writer(state, {**self.metadata, "epoch": str(epoch)})
        self.published = checkpoint.publish(
            self.layout.checkpoint_dir,
            epoch=epoch,
            weights=weights,
            resume=safeload.state_writer(self._state),
            loss_per_epoch=self.loss_per_epoch,
            keep=self.keep,
            settings=self._settings(runner),
            curves=self.curves,
            prune_later=True,  # the old epoch's files go while the next epoch trains
        )
        log.info(
            "epoch %d/%d: mean loss %.4f; published %s -> %s",
            epoch, runner.max_epochs, mean, self.layout.checkpoint, checkpoint.describe(self.published),
        )  # fmt: skip
        distributed.barrier()  # the commit point is behind us: the other ranks go on

    def _settings(self, runner: Any) -> schemas.TrainingSettings:
        if self.settings is None:
            raise errors.ConfigError(
                "SharedvolTrainHook needs the training settings to publish", hint="train with train-resnet"
            )
        return self.settings

    def after_train(self, runner: Any) -> None:
        """Wait for the last publish's pruning: train-resnet ends with only the kept epochs on the volume."""
        background.wait()
