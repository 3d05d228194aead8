"""Documents of the data plane for tests: training settings that any hand-made checkpoint can carry."""

from __future__ import annotations

from steps import schemas

SETTINGS = schemas.TrainingSettings(
    lr=0.1, batch_size=16, seed=0, augment="stock", amp=False, epochs=100, dataset_blake3="0" * 64
)
SETTINGS_CODE = "from tests.stepdocs import SETTINGS"  # for the code a test runs in a child process
