"""The report page: what a person looks for first, checked in a real headless Chromium (Debian's ``chromium``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from steps import documents, produce_metrics, report, schemas

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_run(run_dir: Path) -> None:
    """An evaluated run's two documents, as train-resnet and test-resnet write them."""
    matrix = [[8 if i == j else (1 if j == (i + 1) % 10 else 0) for j in range(10)] for i in range(10)]
    documents.write_json(str(run_dir / "eval" / "eval_result.json"), {
        "schema": schemas.EvalResult.SCHEMA, "schema_version": schemas.EvalResult.VERSION, "checkpoint": "c",
        "checkpoint_blake3": "0" * 64, "epoch": 3, "dataset_root": "d", "dataset_source": "synthetic", "split": "test",
        "size": 90, "top1": round(80 / 90, 6), "top5": 1.0, "loss": 0.61, "class_names": CLASSES,
        "per_class_accuracy": {c: 8 / 9 for c in CLASSES}, "confusion_matrix": matrix, "device": "cpu",
        "wall_time_s": 2.5,
    })  # fmt: skip
    documents.write_json(str(run_dir / "train" / "summary.json"), {
        "schema": schemas.TrainSummary.SCHEMA, "schema_version": schemas.TrainSummary.VERSION, "epochs": 3,
        "iterations": 30, "loss_per_epoch": [2.0, 1.2, 0.8], "final_loss": 0.8, "wall_time_s": 41.0,
        "epoch_seconds": [14.0, 13.5, 13.5], "images_per_s": 23.4, "images_seen": 960, "resumed_from_epoch": 0,
        "device": "cpu", "checkpoint": "c", "checkpoint_blake3": "0" * 64,
        "config": {"epochs": 3, "batch_size": 32, "lr": 0.05, "seed": 0, "device": "cpu", "amp": None,
                   "augment": "auto", "num_workers": None, "train_size": 320},
        "curves": {"loss_curve": [[i, 2.3 - 0.05 * i] for i in range(1, 31)], "lr_per_epoch": [0.05, 0.005, 0.005],
                   "train_top1_per_epoch": [0.3, 0.6, 0.75]},
    })  # fmt: skip


def test_the_report_shows_results_settings_time_curves_and_a_per_class_table(tmp_path: Path) -> None:
    write_run(tmp_path)
    page = produce_metrics.produce(str(tmp_path)).html

    assert page.count("data:image/png;base64,") == 3
    for heading in ("Settings and time", "Training loss per iteration", "Training accuracy and learning rate per epoch",
                    "Confusion matrix", "Accuracy per class"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in page
    assert "<tr><td>truck</td><td>88.9 %</td></tr>" in page
    assert "<tr><td>training time</td><td>41.0 s (23.4 images/s)</td></tr>" in page
    assert "<tr><td>evaluation time</td><td>2.5 s on cpu</td></tr>" in page
    assert "<tr><td>batch_size</td><td>32</td></tr>" in page


COLOURS = {
    "loss curve (tab:blue)": (31, 119, 180),
    "accuracy (tab:green)": (44, 160, 44),
    "learning rate (tab:orange)": (255, 127, 14),
    "confusion matrix (darkest Blues)": (8, 48, 107),
    "table headers (#eee)": (238, 238, 238),
}


def screenshot(page: Path, out: Path) -> np.ndarray:
    chromium = shutil.which("chromium")
    assert chromium, "the screenshot test needs Debian's chromium package (apt-get install chromium)"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=900,3400",
           f"--screenshot={out}", page.as_uri()]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    from matplotlib import image

    return (image.imread(str(out))[..., :3] * 255).round().astype(np.int16)


def pixels(img: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((np.abs(img - np.array(rgb)).max(axis=-1) <= 3).sum())


def rendered(img: np.ndarray) -> dict[str, int]:
    return {name: pixels(img, rgb) for name, rgb in COLOURS.items()}


def test_chromium_renders_the_reports_images_and_tables(tmp_path: Path) -> None:
    write_run(tmp_path)
    bundle = produce_metrics.produce(str(tmp_path))

    counts = rendered(screenshot(Path(bundle.files["report.html"]), tmp_path / "shot.png"))

    assert all(n >= 50 for n in counts.values()), counts


def test_the_screenshot_check_fails_when_the_images_do_not_render(tmp_path: Path, monkeypatch: Any) -> None:
    write_run(tmp_path)
    monkeypatch.setattr(report, "_img", lambda data, alt: f'<img alt="{alt}" src="data:image/png;base64,broken">')
    bundle = produce_metrics.produce(str(tmp_path))

    counts = rendered(screenshot(Path(bundle.files["report.html"]), tmp_path / "shot.png"))

    assert counts["loss curve (tab:blue)"] < 50 and counts["confusion matrix (darkest Blues)"] < 50, counts
    assert counts["table headers (#eee)"] >= 50  # the tables still render


@pytest.mark.parametrize("missing", ["summary"])
def test_a_report_without_a_training_summary_still_renders(tmp_path: Path, missing: str) -> None:
    write_run(tmp_path)
    (tmp_path / "train" / "summary.json").unlink()
    page = produce_metrics.produce(str(tmp_path)).html
    assert page.count("data:image/png;base64,") == 1 and page.count("<p>no training summary</p>") == 2
