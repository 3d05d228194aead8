"""The report page: what a person looks for first (drawn in a real Chromium: tests/host/test_report_in_chromium.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps import produce_metrics
from tests.evaluated_run import write_run


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


@pytest.mark.parametrize("missing", ["summary"])
def test_a_report_without_a_training_summary_still_renders(tmp_path: Path, missing: str) -> None:
    write_run(tmp_path)
    (tmp_path / "train" / "summary.json").unlink()
    page = produce_metrics.produce(str(tmp_path)).html
    assert page.count("data:image/png;base64,") == 1 and page.count("<p>no training summary</p>") == 2
