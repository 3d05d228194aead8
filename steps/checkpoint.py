"""The checkpoint handoff: content-addressed files, one manifest rename as the commit point, no code run on load.

After each epoch train-resnet publishes, in ``checkpoints/``:

- ``epoch-NNNN-<blake3>.safetensors``: the model's weights (state dict + metadata) for test-resnet. safetensors
  holds tensors and strings only: loading it cannot run code.
- ``epoch-NNNN-<blake3>.resume.safetensors``: mmengine's training state (optimizer, schedulers, message hub)
  for a resumed run, without the weights (a resume takes them from the safetensors file: every byte is stored
  once). Its tensors are safetensors tensors; only the small rest is unpickled, with
  ``torch.load(weights_only=True)`` and the allow-list :data:`steps.safeload.RESUME_ALLOWED`: anything else in
  it is refused, and no class's code runs (:func:`steps.safeload.resume_from_buffer`).
- ``latest.json``: the manifest naming both files with their size and BLAKE3 digest, plus the epoch and the loss
  history. Its atomic rename is the only commit point: a writer killed before it leaves the previous manifest
  and the files it names; files no manifest names are deleted after the commit point (on a thread while
  training goes on) and at the next start (:func:`prune`).

Readers follow the manifest, read each file once into one buffer while hashing it, and refuse a size or
digest mismatch before anything is deserialized.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from steps import background, dataplane, documents, errors, localpublish, pins, schemas, volread

MANIFEST_NAME = "latest.json"
WEIGHTS_FORMAT = "sharedvol.weights"
_CONTENT = re.compile(r"^epoch-(\d{4,})-([0-9a-f]{16})\.(safetensors|resume\.safetensors|resume\.pth)$")
# Temporary files a killed writer may have left: ours (``.<name>.tmp-XXXXXXXX``) and the ``.tmpXXXXXX`` names that
# native writers (safetensors' ``save_file``, ``tempfile``) choose themselves, from earlier sharedvol versions.
_FOREIGN_TMP = re.compile(r"^\.tmp[A-Za-z0-9_]{6,12}$")
FileRef = schemas.FileRef


@dataclass(frozen=True)
class Manifest:
    """``checkpoints/latest.json`` as read or published: its validated document and where it is.

    Attributes:
        doc: the document (:class:`steps.schemas.CheckpointManifest`): epoch, the two files, the loss history,
            the report's curves and the training settings.
        url: where the manifest is.
    """

    doc: schemas.CheckpointManifest
    url: str = ""

    @property
    def epoch(self) -> int:
        """Epochs trained so far."""
        return self.doc.epoch

    @property
    def weights(self) -> FileRef:
        """The safetensors weights for evaluation."""
        return self.doc.weights

    @property
    def resume(self) -> FileRef:
        """Mmengine's training state for a resumed run."""
        return self.doc.resume

    @property
    def loss_per_epoch(self) -> list[float]:
        """The mean training loss of every epoch so far."""
        return list(self.doc.loss_per_epoch)

    @property
    def curves(self) -> dict[str, list[Any]]:
        """What the report plots (:class:`steps.schemas.Curves`), as lists."""
        return {k: [list(p) if isinstance(p, tuple) else p for p in v] for k, v in self.doc.curves.model_dump().items()}

    @property
    def settings(self) -> schemas.TrainingSettings:
        """The settings that shaped the training."""
        return self.doc.settings

    def to_json(self) -> dict[str, Any]:
        """The manifest as a schema-versioned JSON document."""
        return documents.document(self.doc)

    def file_url(self, ref: FileRef) -> str:
        """The URL of a file the manifest names (beside the manifest)."""
        return f"{self.url.rsplit('/', 1)[0]}/{ref.name}"


def read_manifest(url: str) -> Manifest | None:
    """The manifest at ``url``, or None when nothing was published yet.

    Raises:
        SchemaError: the manifest is not a regular file, too large, damaged, foreign, changed after it was
            written, or breaks its schema.
        RunDirError: it cannot be read.
    """
    fs, path = dataplane.filesystem(url)
    try:
        there = os.path.lexists(dataplane.local_path(url)) if dataplane.is_local(url) else fs.exists(path)
        if not there:
            dataplane.refuse_file_on_the_way(url)
            return None
    except OSError as e:
        raise errors.RunDirError(f"cannot read {url}: {e.strerror or e}", hint="check the run directory") from e
    doc = documents.read(url, schemas.CheckpointManifest, missing_hint="rerun train-resnet")
    return Manifest(doc, url)


def require_manifest(url: str) -> Manifest:
    """The manifest at ``url``.

    Raises:
        IntegrityError: nothing was published there.
    """
    manifest = read_manifest(url)
    if manifest is None:
        raise errors.IntegrityError(
            f"no checkpoint was published: {url} does not exist",
            hint="run train-resnet on this run directory first (or pass --checkpoint with a manifest URL)",
        )
    return manifest


def read_verified(manifest: Manifest, ref: FileRef, *, hash_threads: int | None = None) -> memoryview:
    """The bytes of ``ref`` in one buffer, hashed in the same pass as they are read, checked against the manifest.

    The buffer is allocated uninitialized (no zero-filling pass) and filled by ``readinto`` in chunks, each
    hashed (on ``hash_threads`` threads, default every core) right after it lands.

    Raises:
        IntegrityError: the file is missing, of another size, or does not match its digest.
    """
    url = manifest.file_url(ref)
    import numpy as np

    hasher = dataplane.new_hasher(hash_threads)
    hint = "the file was changed or replaced after publishing; rerun train-resnet, and never load it as is"
    try:
        with volread.open_regular(
            url, cap=volread.CHECKPOINT_CAP, hint=hint, missing_hint="rerun train-resnet for this run directory"
        ) as (
            f,
            size,
        ):
            if size != ref.size:
                raise errors.IntegrityError(f"{url} is not the size its manifest says ({ref.size} bytes)", hint=hint)
            view = memoryview(np.empty(ref.size, dtype=np.uint8)).cast("B")
            done = 0
            while done < ref.size:
                n = f.readinto(view[done : done + dataplane.CHUNK])
                if not n:
                    break
                hasher.update(view[done : done + n])
                done += n
            extra = f.read(1)
    except errors.RunDirError as e:
        raise errors.IntegrityError(e.message, hint=e.hint) from e
    except OSError as e:
        raise errors.IntegrityError(f"cannot read {url}: {e.strerror or e}", hint="check the volume") from e
    if done != ref.size or extra:
        raise errors.IntegrityError(
            f"{url} is not the size its manifest says ({ref.size} bytes)",
            hint="the file was changed or truncated after publishing; rerun train-resnet, and never load it as is",
        )
    actual = hasher.hexdigest()
    if actual != ref.blake3:
        raise errors.IntegrityError(
            f"{url} does not match its digest (blake3 {actual[:12]}..., expected {ref.blake3[:12]}...)",
            hint="the file was changed after publishing; nothing was loaded. Rerun train-resnet",
        )
    return view


def content_name(epoch: int, digest: str, *, kind: str) -> str:
    """``epoch-NNNN-<first 16 hex of the digest>.<kind>``."""
    return f"epoch-{epoch:04d}-{digest[:16]}.{kind}"


Payload = localpublish.Data


def publish_file(dir_url: str, epoch: int, kind: str, data: Payload) -> FileRef:
    """Publish ``data`` under its content address in ``dir_url`` (temporary name, fsync, rename).

    Args:
        dir_url: the directory.
        epoch: the epoch in the name.
        kind: the name's ending (``safetensors``, ``resume.safetensors``).
        data: the bytes, or a function that writes the file into the stream it is given.
    """
    url = f"{dir_url.rstrip('/')}/epoch-{epoch:04d}.{kind}"
    if dataplane.is_local(url) or callable(data):
        published = localpublish.publish_local(url, data, content_name=partial(content_name, epoch, kind=kind))
    else:
        published = dataplane.publish_bytes(url, data, content_name=partial(content_name, epoch, kind=kind))
    return _ref(published)


def _ref(published: dataplane.Published) -> FileRef:
    return FileRef(name=published.url.rsplit("/", 1)[-1], size=published.size, blake3=published.blake3)


def check_finite(loss_per_epoch: list[float], epoch: int) -> None:
    """Refuse to publish an epoch whose loss is not a finite number.

    Raises:
        IntegrityError: naming the epoch.
    """
    bad = [i + 1 for i, x in enumerate(loss_per_epoch) if not math.isfinite(x)]
    if bad:
        raise errors.IntegrityError(
            f"training diverged: the mean loss of epoch {bad[0]} is {loss_per_epoch[bad[0] - 1]}; epoch {epoch} "
            "was not published",
            hint="lower --lr (e.g. 0.05) and train again on a new run directory",
        )


def _publish_pair(dir_url: str, epoch: int, weights: Payload, resume: Payload) -> tuple[FileRef, FileRef]:
    """Both files of an epoch.

    Locally they are written, hashed and fsynced on two threads at once; every step a kill can land on (creating
    a temporary file, renaming it) happens on this thread, in a fixed order.
    """
    kinds = ("safetensors", "resume.safetensors")
    if not dataplane.is_local(dir_url):
        return publish_file(dir_url, epoch, kinds[0], weights), publish_file(dir_url, epoch, kinds[1], resume)
    staged = [localpublish.stage(f"{dir_url.rstrip('/')}/epoch-{epoch:04d}.{kind}") for kind in kinds]
    try:
        fill = partial(localpublish.fill, hash_threads=dataplane.pair_threads())
        dataplane.both(lambda: fill(staged[0], weights), lambda: fill(staged[1], resume))
    except BaseException:
        for s in staged:
            localpublish.discard_local(s.tmp)
        raise
    refs = [
        _ref(localpublish.commit(s, partial(content_name, epoch, kind=kind)))
        for s, kind in zip(staged, kinds, strict=True)
    ]
    return refs[0], refs[1]


def publish(
    dir_url: str,
    *,
    epoch: int,
    weights: Payload,
    resume: Payload,
    loss_per_epoch: list[float],
    keep: int,
    settings: schemas.TrainingSettings,
    curves: dict[str, list[Any]] | None = None,
    prune_later: bool = False,
) -> Manifest:
    """Publish one epoch: both content-addressed files, then the manifest (the commit point), then prune.

    Args:
        dir_url: the run's ``checkpoints/`` directory.
        epoch: epochs trained so far.
        weights: the safetensors file (:func:`steps.safeload.weights_writer`): bytes or a stream writer.
        resume: mmengine's training state without the weights: bytes or a stream writer.
        loss_per_epoch: the loss history to commit with it.
        keep: how many epochs' files to keep (at least 1: the one the manifest names).
        settings: the settings that shaped the training (a resume compares them).
        curves: the report's curves (:attr:`Manifest.curves`).
        prune_later: prune on a thread after the commit point (:mod:`steps.background`; training goes on meanwhile).

    Raises:
        IntegrityError: the loss history or the curves hold a number that is not finite: nothing is published.
        RunDirError: a write failed (full disk included); the previous manifest still stands.
    """
    check_finite(loss_per_epoch, epoch)
    background.wait()  # the previous publish's pruning: never while this one writes
    url = f"{dir_url.rstrip('/')}/{MANIFEST_NAME}"
    try:
        weights_ref, resume_ref = _publish_pair(dir_url, epoch, weights, resume)
        doc = schemas.CheckpointManifest(
            epoch=epoch,
            weights=weights_ref,
            resume=resume_ref,
            loss_per_epoch=list(loss_per_epoch),
            curves=schemas.Curves.model_validate(curves or {}, strict=False),
            settings=settings,
        )
        manifest = Manifest(doc, url)
        documents.write(url, doc)
    except errors.RunDirError:
        prune(dir_url, keep=keep)  # what this publish wrote before it failed: no manifest names it
        raise
    if prune_later:
        background.start(prune, dir_url, keep=keep)
    else:
        prune(dir_url, keep=keep)
    return manifest


def prune(dir_url: str, *, keep: int) -> list[str]:
    """Delete what no reader needs in ``dir_url``.

    That is: temporary files, files the manifest does not name beyond the ``keep`` newest epochs, and files of
    epochs after the manifest's (left by a writer killed before its commit point).

    Returns the names deleted.
    """
    removed = dataplane.remove_temporaries(dir_url)
    fs, path = dataplane.filesystem(dir_url)
    try:
        names = [p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)]
    except (FileNotFoundError, NotADirectoryError):
        return removed
    except OSError as e:  # unreadable, or a loop of links
        raise dataplane.write_error(dir_url, e) from e
    if dataplane.is_local(dir_url):
        pins.check(path)  # a directory swapped in since the step began: nothing of it is deleted
    for name in names:
        if _FOREIGN_TMP.match(name):
            dataplane.discard(fs, f"{path}/{name}")
            removed.append(name)
    try:
        manifest = read_manifest(f"{dir_url.rstrip('/')}/{MANIFEST_NAME}")
    except errors.StepError:
        return removed  # a damaged manifest: delete nothing it might name; readers will say what is wrong
    named = {manifest.weights.name, manifest.resume.name} if manifest else set()
    current = manifest.epoch if manifest else 0
    older = sorted({int(m.group(1)) for n in names if (m := _CONTENT.match(n)) and int(m.group(1)) < current})
    kept_epochs = set(older[-(keep - 1) :]) if keep > 1 else set()
    for name in names:
        m = _CONTENT.match(name)
        if m and name not in named and int(m.group(1)) not in kept_epochs:
            dataplane.discard(fs, f"{path}/{name}")
            removed.append(name)
    return removed


def describe(manifest: Manifest) -> str:
    """One line for logs: epoch and the two files."""
    return json.dumps({"epoch": manifest.epoch, "weights": manifest.weights.name, "resume": manifest.resume.name})
