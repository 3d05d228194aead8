"""The report page drawn by a real headless Chromium (Debian's ``chromium``): its plots and tables render."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import image

from steps import produce_metrics, report
from tests.evaluated_run import write_run

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
