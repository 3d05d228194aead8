"""The strict schema of every document the steps exchange on the volume (pydantic v2, strict mode).

Each model states the types, ranges and cross-field invariants that make its document true, not only parse:
a loss is a finite number, a confusion matrix is square and adds up to the sample count, a manifest's loss
history has one entry per epoch. Strict mode refuses what Python would coerce (``"0.5"`` for a number, ``true``
for a count), ``extra="forbid"`` refuses unknown fields, and ``allow_inf_nan=False`` refuses NaN and infinities.
:func:`steps.documents.read` reads a document of any of them; a document that breaks its schema is one line
naming the file, the field and the rule (:func:`error`). Why pydantic: docs/dataplane.md#schemas.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from steps import errors, volread

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
MAX_EPOCHS = 100_000
MAX_CLASSES = 1000
MAX_SAMPLES = 100_000_000
MAX_CURVE_POINTS = 4000
TOLERANCE = 2e-6  # the documents round fractions to 6 decimals

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(max_length=4096)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Count = Annotated[int, Field(ge=0, le=MAX_SAMPLES)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Finite = float  # every float of a STRICT model is finite (allow_inf_nan=False)
NonNegative = Annotated[float, Field(ge=0.0)]
Epoch = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
CONTENT_NAME = r"^epoch-(\d{4,6})-([0-9a-f]{16})\.(safetensors|resume\.safetensors)$"


class Strict(BaseModel):
    """The base of every model: strict types, no unknown fields, finite numbers, immutable."""

    model_config = STRICT


class Document(Strict):
    """A document of its own file: its ``schema`` name and ``schema_version`` are written beside its fields."""

    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int]


def error(url: str, e: pydantic.ValidationError) -> errors.SchemaError:
    """One line naming the file, the first field that breaks the schema and the rule it breaks."""
    first = e.errors(include_url=False)[0]
    field = ".".join(printable(str(p), 60) for p in first["loc"]) or "(the document)"
    rule = printable(first["msg"].removeprefix("Value error, "), 300)
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return errors.SchemaError(
        f"{url}: field {field}: {rule}{more}",
        hint="the file is not what sharedvol wrote; rerun the step that writes it",
    )


printable = volread.printable  # where the readers of the volume need it too (schemas stands on volread)


def _near(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=TOLERANCE)


# ---------------------------------------------------------------- checkpoints/latest.json


class FileRef(Strict):
    """One content-addressed file the checkpoint manifest names: its name in ``checkpoints/``, size, BLAKE3."""

    name: Annotated[str, StringConstraints(pattern=CONTENT_NAME)]
    size: Annotated[int, Field(ge=1, le=volread.CHECKPOINT_CAP)]
    blake3: Hex64


MAX_ITERATION = 2**53  # a curve's iteration: the largest integer a float (a plot's axis) holds exactly
MAX_CURVE_VALUE = 1e9  # a curve's loss or learning rate: far past any training's, well within what a plot can draw
Iteration = Annotated[int, Field(ge=0, le=MAX_ITERATION)]
CurveValue = Annotated[float, Field(ge=-MAX_CURVE_VALUE, le=MAX_CURVE_VALUE)]


class Curves(Strict):
    """What the report plots: ``loss_curve`` ([iteration, loss]), the LR and the training top-1 of every epoch.

    Every number is one a plot can draw: iterations up to :data:`MAX_ITERATION`, losses and rates within
    :data:`MAX_CURVE_VALUE` of zero (a document that says otherwise is refused, not drawn).
    """

    loss_curve: Annotated[list[tuple[Iteration, CurveValue]], Field(max_length=MAX_CURVE_POINTS)] = []
    lr_per_epoch: Annotated[
        list[Annotated[float, Field(ge=0.0, le=MAX_CURVE_VALUE)]], Field(max_length=MAX_EPOCHS)
    ] = []
    train_top1_per_epoch: Annotated[list[Fraction | None], Field(max_length=MAX_EPOCHS)] = []


class TrainingSettings(Strict):
    """The settings that shape training, recorded so a resume can refuse to mix two trainings (docs/dataplane.md).

    Attributes:
        lr: the base learning rate.
        batch_size: images per iteration.
        seed: the random seed.
        augment: the augmentation in effect (``stock`` or ``batched``).
        amp: mixed precision in effect.
        epochs: the epochs asked for (the LR milestones follow them).
        dataset_blake3: the digest of the training data (:attr:`DatasetManifest.dataset_blake3`).
        cfg_options: the ``--cfg-options`` overrides.
    """

    lr: Annotated[float, Field(gt=0.0)]
    batch_size: Annotated[int, Field(ge=1)]
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)]
    augment: Literal["stock", "batched"]
    amp: bool
    epochs: Epoch
    dataset_blake3: Hex64
    cfg_options: dict[str, Any] = {}


class CheckpointManifest(Document):
    """``checkpoints/latest.json`` (schema ``sharedvol.checkpoint`` v2): what the last finished epoch published."""

    SCHEMA: ClassVar[str] = "sharedvol.checkpoint"
    VERSION: ClassVar[int] = 2

    epoch: Epoch
    weights: FileRef
    resume: FileRef
    loss_per_epoch: Annotated[list[Finite], Field(max_length=MAX_EPOCHS)]
    curves: Curves = Curves()
    settings: TrainingSettings

    @model_validator(mode="after")
    def _agree(self) -> CheckpointManifest:
        if len(self.loss_per_epoch) != self.epoch:
            raise ValueError(f"loss_per_epoch has {len(self.loss_per_epoch)} entries for epoch {self.epoch}")
        for part, ref, kind in (
            ("weights", self.weights, "safetensors"),
            ("resume", self.resume, "resume.safetensors"),
        ):
            if not ref.name.startswith(f"epoch-{self.epoch:04d}-") or not ref.name.endswith(
                f"-{ref.blake3[:16]}.{kind}"
            ):
                raise ValueError(f"{part}.name {ref.name!r} is not epoch {self.epoch}'s {kind} file of its digest")
        for name in ("lr_per_epoch", "train_top1_per_epoch"):
            if len(getattr(self.curves, name)) > self.epoch:
                raise ValueError(f"curves.{name} has more entries than epochs ({self.epoch})")
        return self


# ---------------------------------------------------------------- eval/eval_result.json


class EvalResult(Document):
    """``eval/eval_result.json`` (schema ``sharedvol.eval_result`` v2): what evaluation measured.

    ``confusion_matrix[i][j]`` counts images of class i predicted as j; its cells add up to ``size``, its trace
    over ``size`` is ``top1``, and each row gives that class's accuracy.
    """

    SCHEMA: ClassVar[str] = "sharedvol.eval_result"
    VERSION: ClassVar[int] = 2

    checkpoint: Text
    checkpoint_blake3: Hex64
    epoch: Epoch
    dataset_root: Text
    dataset_source: Text
    split: Literal["test"]
    size: Annotated[int, Field(ge=1, le=MAX_SAMPLES)]
    top1: Fraction
    top5: Fraction
    loss: NonNegative
    class_names: Annotated[list[Name], Field(min_length=2, max_length=MAX_CLASSES)]
    per_class_accuracy: dict[Name, Fraction]
    confusion_matrix: Annotated[list[list[Count]], Field(max_length=MAX_CLASSES)]
    device: Literal["cpu", "cuda"]
    wall_time_s: NonNegative

    @model_validator(mode="after")
    def _agree(self) -> EvalResult:
        n = len(self.class_names)
        if len(set(self.class_names)) != n:
            raise ValueError("class_names repeats a name")
        if len(self.confusion_matrix) != n or any(len(row) != n for row in self.confusion_matrix):
            raise ValueError(f"confusion_matrix is not {n} x {n} (one row and column per class name)")
        total = sum(sum(row) for row in self.confusion_matrix)
        if total != self.size:
            raise ValueError(f"confusion_matrix adds up to {total}, not size {self.size}")
        trace = sum(self.confusion_matrix[i][i] for i in range(n))
        if not _near(self.top1, trace / self.size):
            raise ValueError(f"top1 {self.top1} is not the matrix's {trace}/{self.size} correct")
        if self.top5 + TOLERANCE < self.top1:
            raise ValueError(f"top5 {self.top5} is below top1 {self.top1}")
        if list(self.per_class_accuracy) != self.class_names:
            raise ValueError("per_class_accuracy does not name the class_names in order")
        for name, row in zip(self.class_names, self.confusion_matrix, strict=True):
            right = row[self.class_names.index(name)] / sum(row) if sum(row) else 0.0
            if not _near(self.per_class_accuracy[name], right):
                raise ValueError(f"per_class_accuracy.{name} is not its row's accuracy {right:.6f}")
        return self


# ---------------------------------------------------------------- train/summary.json


class TrainSummary(Document):
    """``train/summary.json`` (schema ``sharedvol.train_summary`` v2): what training did."""

    SCHEMA: ClassVar[str] = "sharedvol.train_summary"
    VERSION: ClassVar[int] = 2

    epochs: Epoch
    iterations: Annotated[int, Field(ge=0)]
    loss_per_epoch: Annotated[list[Finite], Field(max_length=MAX_EPOCHS)]
    final_loss: Finite
    wall_time_s: NonNegative
    epoch_seconds: Annotated[list[NonNegative], Field(max_length=MAX_EPOCHS)]
    images_per_s: NonNegative
    images_seen: Annotated[int, Field(ge=0)]
    resumed_from_epoch: Annotated[int, Field(ge=0, le=MAX_EPOCHS)]
    device: Literal["cpu", "cuda"]
    checkpoint: Text
    checkpoint_blake3: Hex64
    config: dict[str, Any]
    curves: Curves = Curves()

    @model_validator(mode="after")
    def _curves_agree(self) -> TrainSummary:
        for name in ("lr_per_epoch", "train_top1_per_epoch"):
            if (entries := len(getattr(self.curves, name))) > self.epochs:
                raise ValueError(f"curves.{name} has {entries} entries for {self.epochs} epochs")
        last = max((iteration for iteration, _ in self.curves.loss_curve), default=0)
        if last > self.iterations:
            raise ValueError(f"curves.loss_curve has iteration {last} after the last iteration {self.iterations}")
        return self

    @model_validator(mode="after")
    def _agree(self) -> TrainSummary:
        if len(self.loss_per_epoch) != self.epochs:
            raise ValueError(f"loss_per_epoch has {len(self.loss_per_epoch)} entries for {self.epochs} epochs")
        if not _near(self.final_loss, self.loss_per_epoch[-1]):
            raise ValueError("final_loss is not the last entry of loss_per_epoch")
        if self.resumed_from_epoch > self.epochs:
            raise ValueError(f"resumed_from_epoch {self.resumed_from_epoch} is after the last epoch {self.epochs}")
        return self


# ---------------------------------------------------------------- metrics/metrics.json


class MetricsDoc(Document):
    """``metrics/metrics.json`` (schema ``sharedvol.metrics`` v1): the scalars produce-metrics handed to KFP."""

    SCHEMA: ClassVar[str] = "sharedvol.metrics"
    VERSION: ClassVar[int] = 1

    scalars: Annotated[dict[Annotated[str, StringConstraints(max_length=64)], Finite], Field(max_length=50)]


# ---------------------------------------------------------------- sharedvol-dataset.json


class DataFile(Strict):
    """One file of a prepared dataset: its size in bytes and BLAKE3 digest."""

    size: Annotated[int, Field(ge=1, le=volread.BATCH_CAP)]
    blake3: Hex64


class DatasetManifest(Document):
    """``sharedvol-dataset.json`` (schema ``sharedvol.dataset`` v2): what a prepared dataset holds.

    Attributes:
        root: the directory that holds ``cifar-10-batches-py``.
        source: ``synthetic``, ``official`` or ``local:<path>``.
        train_size, test_size: images in each split.
        classes: class names, index = label.
        train_label_counts, test_label_counts: images per class in each split.
        image_shape: channels, height, width.
        files: every batch file and ``batches.meta``: size and digest (a reader checks both, and the size caps it).
        dataset_blake3: the digest of the training files, in order (a resume compares it).
    """

    SCHEMA: ClassVar[str] = "sharedvol.dataset"
    VERSION: ClassVar[int] = 2

    root: Text
    source: Text
    train_size: Annotated[int, Field(ge=1, le=MAX_SAMPLES)]
    test_size: Annotated[int, Field(ge=1, le=MAX_SAMPLES)]
    classes: Annotated[list[Name], Field(min_length=2, max_length=MAX_CLASSES)]
    train_label_counts: list[Count]
    test_label_counts: list[Count]
    image_shape: tuple[Literal[3], Literal[32], Literal[32]] = (3, 32, 32)
    files: dict[Name, DataFile]
    dataset_blake3: Hex64

    @model_validator(mode="after")
    def _agree(self) -> DatasetManifest:
        for split, counts, size in (
            ("train", self.train_label_counts, self.train_size),
            ("test", self.test_label_counts, self.test_size),
        ):
            if len(counts) != len(self.classes) or sum(counts) != size:
                raise ValueError(f"{split}_label_counts does not give each class's count adding up to {size}")
        return self


# ---------------------------------------------------------------- the resume file's unpickled rest


class _Open(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True, arbitrary_types_allowed=True)


MAX_ITER = 2**31 - 1


class ResumeMeta(_Open):
    """The ``meta`` of mmengine's training state: the epoch and iteration it was saved at (and what else it keeps)."""

    epoch: Epoch
    iter: Annotated[int, Field(ge=0, le=MAX_ITER)]  # mmengine keeps it in a C int (its ETA, its schedulers)


class ParamGroup(_Open):
    """One optimizer parameter group: its rate and the indices of its parameters."""

    lr: NonNegative
    params: list[Annotated[int, Field(ge=0)]]


class OptimizerState(_Open):
    """The optimizer's state dict: per-parameter state and the parameter groups."""

    state: dict[int, Any]
    param_groups: Annotated[list[ParamGroup], Field(min_length=1)]


class ResumeState(_Open):
    """mmengine's training state as the resume file holds it (:func:`steps.safeload.resume_from_buffer`).

    Only what a resume relies on is checked; mmengine's own entries beside it are kept as they are.
    """

    meta: ResumeMeta
    state_dict: dict[str, Any] = {}
    optimizer: OptimizerState
    param_schedulers: list[dict[str, Any]] = []
    message_hub: dict[str, Any] = {}
