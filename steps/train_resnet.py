"""train-resnet: ResNet-18 on CIFAR-10 with mmcls + mmengine, in the shape of mmengine's tools/train.py.

args -> config (mmcls's stock ``resnet18_8xb16_cifar10`` + overrides, :mod:`steps.config`) -> ``--cfg-options``
-> ``Runner.from_cfg`` -> ``runner.train()``. After every epoch the weights and the training state are published
behind one manifest (:mod:`steps.checkpoint`), so a retried step resumes from the last finished epoch; at the
end ``train/summary.json`` says what training did.

A resume continues the same training or nothing: the manifest records the settings that shape training
(:class:`steps.schemas.TrainingSettings`), and a run asking for other ones is refused, naming each difference,
unless ``allow_changed_settings`` says to go on with the new ones. A loss that is not a finite number stops
training (:class:`steps.hooks.SharedvolTrainHook`): nothing diverged is published.

Under torchrun with several ranks (:mod:`steps.distributed`) each rank trains on its share of every epoch, rank 0
alone publishes and writes the summary, and every rank resumes from the same published epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mmcls.utils import register_all_modules
from mmengine.runner import Runner

from steps import (
    checkpoint,
    config,
    data,
    dataplane,
    devices,
    distributed,
    documents,
    errors,
    hooks,
    mmcls_ext,
    safeload,
    schemas,
    workdir,
)

log = logging.getLogger(__name__)
_CONFIG_FAILURES = (
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AssertionError,
    AttributeError,
    RuntimeError,  # torch's shape mismatches
    NotImplementedError,
    ZeroDivisionError,
)

_ = mmcls_ext  # registers the dataset, the metric and the preprocessor


def train(cfg: config.TrainConfig) -> schemas.TrainSummary:
    """Train, publishing a checkpoint after each epoch; a rerun on the same run directory resumes.

    Raises:
        ConfigError: a setting that cannot work, or a resume with other settings than the checkpoint's.
        DatasetError, RunDirError, IntegrityError, SchemaError: see their docstrings.
    """
    cfg.validate()
    device = devices.resolve(cfg.device)
    distributed.init(device)  # several ranks under torchrun: join them before reading the run directory
    try:
        return _train(cfg, device)
    finally:
        distributed.finish()


def _train(cfg: config.TrainConfig, device: str) -> schemas.TrainSummary:
    """:func:`train` once the ranks (if several) have joined."""
    dataset = data.validate(cfg.data_root)
    layout = dataplane.RunLayout(cfg.run_dir)
    layout.check_own()
    dataplane.remove_temporaries(layout.train_dir)  # a killed training's summary
    local = dataplane.is_local(cfg.run_dir)
    train_dir = dataplane.local_path(layout.train_dir)
    if local:
        _check_writable(train_dir)
        workdir.check_tree(train_dir)
    alone = workdir.exclusive(train_dir) if local and distributed.is_publisher() else contextlib.nullcontext()
    # mmengine writes its config and its logs by name, following whatever is there: in a private directory, never
    # on the volume, where a link or a FIFO planted at a name it writes would be followed (docs/threat-model.md)
    work_dir = _scratch()
    try:
        with alone:
            return _train_alone(cfg, device, dataset, layout, work_dir)
    finally:
        if distributed.is_publisher():
            workdir.keep_logs(work_dir, layout.train_dir)
        shutil.rmtree(work_dir, ignore_errors=True)


def _train_alone(
    cfg: config.TrainConfig,
    device: str,
    dataset: schemas.DatasetManifest,
    layout: dataplane.RunLayout,
    work_dir: str,
) -> schemas.TrainSummary:
    """:func:`_train` while no other training writes the run directory."""
    c = config.build_config(cfg, device=device, work_dir=work_dir, dataset=dataset)
    distributed.configure(c)
    defaults = config.device_defaults(cfg, device)
    settings = schemas.TrainingSettings(
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        augment="batched" if defaults.augment == "batched" else "stock",
        amp=defaults.amp,
        epochs=cfg.epochs,
        dataset_blake3=dataset.dataset_blake3,
        cfg_options=json.loads(json.dumps(cfg.cfg_options, default=list)),
    )
    c.custom_hooks[0]["settings"] = settings.model_dump(mode="json")
    removed = checkpoint.prune(layout.checkpoint_dir, keep=cfg.keep_checkpoints) if distributed.is_publisher() else []
    if removed:
        log.info("removed what an interrupted run left in %s: %s", layout.checkpoint_dir, ", ".join(removed))
    distributed.barrier()  # the other ranks read the checkpoint directory after rank 0 pruned it
    manifest = checkpoint.read_manifest(layout.checkpoint)
    start = (manifest.epoch, manifest.weights.blake3) if manifest else None
    distributed.agree("the published epoch to start from", start)
    if manifest and manifest.epoch > cfg.epochs:
        raise errors.ConfigError(
            f"{layout.checkpoint} already holds {manifest.epoch} epochs, more than --epochs {cfg.epochs}",
            hint=f"pass --epochs {manifest.epoch} or more, or use a new run directory",
        )
    if manifest:
        _check_settings(layout.checkpoint, manifest.settings, settings, allowed=cfg.allow_changed_settings)
        c.load_from, c.resume = _offer_resume(manifest, settings), True
    return _run(c, cfg, layout, device, dataset.train_size, manifest)


def differences(before: schemas.TrainingSettings, now: schemas.TrainingSettings) -> list[str]:
    """``name before -> now`` for each setting that shapes training and differs (the epochs asked for do not count)."""
    old, new = before.model_dump(mode="json"), now.model_dump(mode="json")
    return [f"{k} {old[k]!r} -> {new[k]!r}" for k in new if k != "epochs" and old[k] != new[k]]


def _check_settings(
    url: str, before: schemas.TrainingSettings, now: schemas.TrainingSettings, *, allowed: bool
) -> None:
    changed = differences(before, now)
    if not changed:
        return
    if not allowed:
        raise errors.ConfigError(
            f"cannot resume {url} with other settings than it was trained with: {'; '.join(changed)}",
            hint="pass the same settings, use a new --run-dir, or add --allow-changed-settings to go on with new ones",
        )
    log.warning("resuming with changed settings (the new ones take effect): %s", "; ".join(changed))


def _scratch() -> str:
    return tempfile.mkdtemp(prefix="sharedvol-train-")


def _check_writable(work_dir: str) -> None:
    try:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=work_dir)  # a fresh name: nothing planted is opened
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise errors.RunDirError(
            f"run directory {work_dir} is not writable ({e.strerror})",
            hint="mount the shared volume read-write for this user, or pass another --run-dir",
        ) from e


def _offer_resume(manifest: checkpoint.Manifest, now: schemas.TrainingSettings) -> str:
    """The verified, safely loaded training state of ``manifest``, as a URL mmengine's resume loads.

    The state's seed must be the one the manifest records (mmengine would restore it over the config's); the
    run's own seed then replaces it, so a seed changed with ``--allow-changed-settings`` takes effect. The rest is
    checked against the built model and optimizer before the load (:mod:`steps.resumecheck`).

    Raises:
        IntegrityError: a file does not match the manifest, or the state is not this manifest's epoch or seed.
    """
    state_buf = checkpoint.read_verified(manifest, manifest.resume)
    weights_buf = checkpoint.read_verified(manifest, manifest.weights)
    source = manifest.file_url(manifest.resume)
    state = safeload.resume_from_buffer(state_buf, source)
    if state["meta"]["epoch"] != manifest.epoch:
        raise errors.IntegrityError(
            f"{source} holds the state of epoch {state['meta']['epoch']}, not epoch {manifest.epoch}",
            hint="the checkpoint files were mixed up; train again on a new run directory",
        )
    seed = state["meta"].get("seed", manifest.settings.seed)
    if seed != manifest.settings.seed:
        raise errors.IntegrityError(
            f"{source} holds the state of a run with seed {seed!r}, its manifest says {manifest.settings.seed}",
            hint="the checkpoint files were mixed up or changed; train again on a new run directory",
        )
    state["meta"]["seed"] = now.seed
    weights, _ = safeload.weights_from_buffer(weights_buf, manifest.file_url(manifest.weights))
    state["state_dict"] = weights  # the training state is saved without them: they live in one file only
    log.info("resuming from epoch %d (%s, digest verified)", manifest.epoch, manifest.resume.name)
    return hooks.offer(manifest.resume.name, state, reconfigured=bool(differences(manifest.settings, now)))


def _run(
    c: Any,
    cfg: config.TrainConfig,
    layout: dataplane.RunLayout,
    device: str,
    size: int,
    before: checkpoint.Manifest | None,
) -> schemas.TrainSummary:
    register_all_modules(init_default_scope=True)
    started = time.monotonic()
    try:
        runner = Runner.from_cfg(c)
        hook = next(h for h in runner.hooks if isinstance(h, hooks.SharedvolTrainHook))
        runner.train()
    except _CONFIG_FAILURES as e:  # a model the options made that cannot train (a head of 5 classes for 10 labels)
        if not cfg.cfg_options:
            raise
        raise errors.ConfigError(
            f"training with --cfg-options {cfg.cfg_options} failed: {type(e).__name__}: {str(e)[:300]}",
            hint="check those values against the stock config",
        ) from e
    wall = time.monotonic() - started
    manifest = hook.published or before  # a rerun after the last epoch was published trains nothing
    if manifest is None or manifest.epoch != cfg.epochs:
        raise errors.RunDirError(f"training ended without publishing epoch {cfg.epochs}", hint="rerun train-resnet")
    losses = manifest.loss_per_epoch
    summary = schemas.TrainSummary(
        epochs=manifest.epoch,
        iterations=runner.iter,
        loss_per_epoch=[round(x, 6) for x in losses],
        final_loss=round(losses[-1], 6),
        wall_time_s=round(wall, 3),
        epoch_seconds=hook.epoch_seconds,
        images_per_s=round(hook.images / hook.train_seconds, 2) if hook.train_seconds else 0.0,
        images_seen=hook.images,
        resumed_from_epoch=before.epoch if before else 0,
        device="cuda" if device == "cuda" else "cpu",
        checkpoint=layout.checkpoint,
        checkpoint_blake3=manifest.weights.blake3,
        config={**{k: v for k, v in asdict(cfg).items() if k not in ("run_dir", "data_root")}, "train_size": size},
        curves=manifest.doc.curves,
    )
    if distributed.is_publisher():
        documents.write(layout.summary, summary)
    log.info(
        "trained %d epochs (%d iterations) in %.1f s, %.1f images/s, final loss %.4f; checkpoint %s",
        summary.epochs, summary.iterations, wall, summary.images_per_s, summary.final_loss, layout.checkpoint,
    )  # fmt: skip
    return summary
