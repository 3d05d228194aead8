"""The ML tier's sizes and its train and evaluate calls (the fixtures of tests/ml/conftest.py use them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from steps import checkpoint, config, dataplane, documents, produce_metrics, schemas, test_resnet, train_resnet

TRAIN_IMAGES, TEST_IMAGES, BATCH, LR = 64, 32, 16, 0.05


@dataclass
class TrainedRun:
    run_dir: Path
    data_root: Path
    summary: schemas.TrainSummary
    result: schemas.EvalResult
    bundle: produce_metrics.MetricsBundle


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


def republish(run_dir: Path, part: str, raw: bytes) -> None:
    """Replace the published ``part`` ("weights" or "resume") of ``run_dir`` by ``raw``, and seal the manifest again
    so that its digest matches: what anyone who can write the volume can do."""
    layout = dataplane.RunLayout(str(run_dir))
    m = checkpoint.require_manifest(layout.checkpoint)
    kind = "safetensors" if part == "weights" else "resume.safetensors"
    ref = checkpoint.publish_file(layout.checkpoint_dir, m.epoch, kind, raw)
    refs = {"weights": m.weights, "resume": m.resume, part: ref}
    documents.write(layout.checkpoint, m.doc.model_copy(update={"weights": refs["weights"], "resume": refs["resume"]}))
