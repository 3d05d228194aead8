"""Documents of the data plane for tests: training settings that any hand-made checkpoint can carry."""

from __future__ import annotations

from steps import checkpoint, schemas

SETTINGS = schemas.TrainingSettings(
    lr=0.1, batch_size=16, seed=0, augment="stock", amp=False, epochs=100, dataset_blake3="0" * 64
)
SETTINGS_CODE = "from tests.stepdocs import SETTINGS"  # for the code a test runs in a child process


def publish_stand_ins(
    checkpoint_dir: str, weights: bytes = b"w" * 4000, resume: bytes = b"r" * 6000
) -> checkpoint.Manifest:
    """One published epoch of small stand-in files (readers that refuse before they load need no real tensors)."""
    return checkpoint.publish(
        checkpoint_dir, epoch=1, weights=weights, resume=resume, loss_per_epoch=[1.0], keep=1, settings=SETTINGS
    )
