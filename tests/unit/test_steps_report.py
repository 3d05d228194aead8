"""The report page: what a person looks for first (drawn in a real Chromium: tests/host/test_report_in_chromium.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.patches import StepPatch

from steps import produce_metrics, report
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


def epochs_plot(lr: list[float], top1: list[float]) -> Any:
    return report.epochs_figure({"curves": {"lr_per_epoch": lr, "train_top1_per_epoch": top1}})


@pytest.mark.parametrize("epochs", [1, 2, 3, 5, 12, 200])
def test_the_per_epoch_plot_has_whole_epoch_ticks_only(epochs: int) -> None:
    fig = epochs_plot([0.1] * epochs, [0.5] * epochs)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_the_learning_rate_is_drawn_as_a_step_flat_over_each_epoch() -> None:
    lr = [0.1, 0.1, 0.01, 0.001]
    fig = epochs_plot(lr, [0.2, 0.4, 0.6, 0.7])
    (steps,) = [p for p in fig.axes[1].patches if isinstance(p, StepPatch)]
    values, edges, _ = steps.get_data()
    assert list(values) == lr and list(edges) == [0, 1, 2, 3, 4]
    assert fig.axes[1].get_lines() == []  # no slope drawn between epochs
