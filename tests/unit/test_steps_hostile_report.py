"""Hostile documents for the report: produce-metrics stays bounded in time and draws, or refuses in one line.

Each case is an evaluated run (tests/evaluated_run.py) with one document resealed as an attacker who can write the
volume can: a schema-valid eval_result.json of 1000 classes, a summary.json whose curves cannot be plotted, class
names that matplotlib would read as mathtext.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from steps import documents, produce_metrics, report, schemas
from tests.evaluated_run import write_run
from tests.unit.test_steps_hostile_volume import run

pytestmark = pytest.mark.timeout(300)  # a stalled report fails its own deadline first; this only guards the suite

REPO = Path(__file__).resolve().parents[2]


def reseal(url: Path, edit: Any) -> None:
    """Rewrite the document at ``url`` as ``edit`` changes it, with a digest that matches (what an attacker can do).

    Written without indentation: the digest covers the fields, not the layout, and a 1000-class matrix indented
    is more than the 4 MiB a document may have.
    """
    doc = json.loads(url.read_text())
    doc.pop("blake3")
    edit(doc)
    sealed = json.loads(documents.seal(doc))
    url.write_text(json.dumps(sealed, separators=(",", ":")))


def eval_url(run_dir: Path) -> Path:
    return run_dir / "eval" / "eval_result.json"


def summary_url(run_dir: Path) -> Path:
    return run_dir / "train" / "summary.json"


def with_classes(names: list[str]) -> Any:
    """An edit giving the eval result these classes, every image right (one per class): schema-valid."""

    def edit(doc: dict[str, Any]) -> None:
        n = len(names)
        doc.update(
            size=n, top1=1.0, top5=1.0, class_names=names, per_class_accuracy=dict.fromkeys(names, 1.0),
            confusion_matrix=[[1 if i == j else 0 for j in range(n)] for i in range(n)],
        )  # fmt: skip

    return edit


# ---------------------------------------------------------------- 1. as many classes as the schema admits


def test_a_thousand_class_eval_result_is_reported_within_a_minute(tmp_path: Path) -> None:
    write_run(tmp_path)
    reseal(eval_url(tmp_path), with_classes([f"c{i}" for i in range(schemas.MAX_CLASSES)]))

    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "metrics", "--run-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "metrics" / "confusion_matrix.png").stat().st_size > 0
    page = (tmp_path / "metrics" / "report.html").read_text()
    assert "1000 classes: the counts are not written in the cells" in page
    assert time.monotonic() - start < 60


def test_a_large_matrix_is_an_image_without_a_text_per_cell_and_says_so() -> None:
    n = report.MAX_LABELLED_CLASSES + 1
    fig = report.matrix_figure([f"c{i}" for i in range(n)], [[1 if i == j else 0 for j in range(n)] for i in range(n)])

    ax = fig.axes[0]
    assert len(ax.texts) == 0 and len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0
    assert f"{n} classes: the counts are not written in the cells" in ax.get_title()


def test_a_small_matrix_writes_its_counts_and_class_names() -> None:
    names = ["a", "b", "c"]
    fig = report.matrix_figure(names, [[3, 0, 1], [0, 2, 0], [0, 0, 4]])

    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["3", "0", "1", "0", "2", "0", "0", "0", "4"]
    assert [t.get_text() for t in ax.get_xticklabels()] == names


def test_kfp_takes_a_thousand_class_confusion_matrix_in_seconds() -> None:
    from kfp.dsl import ClassificationMetrics

    n = schemas.MAX_CLASSES
    names = [f"c{i}" for i in range(n)]
    start = time.monotonic()
    ClassificationMetrics(name="confusion_matrix").log_confusion_matrix(
        names, [[1 if i == j else 0 for j in range(n)] for i in range(n)]
    )
    assert time.monotonic() - start < 30


# ---------------------------------------------------------------- 2. curves that cannot be plotted


def curve(**change: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        doc["curves"] = {**doc["curves"], **change}

    return edit


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (curve(loss_curve=[[10**400, 1.0]]), "field curves.loss_curve.0.0: Input should be less than or equal to"),
        (curve(loss_curve=[[2**53 + 1, 1.0]]), "field curves.loss_curve.0.0: Input should be less than or equal to"),
        (curve(loss_curve=[[31, 1.0]]), "curves.loss_curve has iteration 31 after the last iteration 30"),
        (curve(loss_curve=[[10, -1.7e308], [11, 1.7e308]]), "field curves.loss_curve.0.1: Input should be greater"),
        (curve(lr_per_epoch=[1.7e308]), "field curves.lr_per_epoch.0: Input should be less than or equal to"),
        (curve(lr_per_epoch=[0.1] * 4), "curves.lr_per_epoch has 4 entries for 3 epochs"),
        (curve(train_top1_per_epoch=[0.5] * 4), "curves.train_top1_per_epoch has 4 entries for 3 epochs"),
    ],
    ids=[
        "iteration-10e400",
        "iteration-past-2e53",
        "iteration-past-the-run",
        "loss-1.7e308",
        "lr-1.7e308",
        "lr-longer-than-epochs",
        "top1-longer-than-epochs",
    ],
)
def test_a_summary_whose_curves_cannot_be_true_is_one_line_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, edit: Any, rule: str
) -> None:
    write_run(tmp_path)
    reseal(summary_url(tmp_path), edit)

    code, line = run(capsys, "metrics", "--run-dir", str(tmp_path))

    assert code == 2 and f"{summary_url(tmp_path)}: " in line and rule in line, line
    assert not (tmp_path / "metrics").exists()


def test_curves_at_the_schemas_bounds_are_plotted() -> None:
    top, far = schemas.MAX_CURVE_VALUE, schemas.MAX_ITERATION
    doc = {
        "epochs": 2, "iterations": far, "loss_per_epoch": [-1.7e308, 1.7e308], "final_loss": 1.7e308,
        "wall_time_s": 1.0, "epoch_seconds": [0.5, 0.5], "images_per_s": 1.0, "images_seen": 2,
        "resumed_from_epoch": 0, "device": "cpu", "checkpoint": "c", "checkpoint_blake3": "0" * 64, "config": {},
        "curves": {"loss_curve": [[0, -top], [far, top]], "lr_per_epoch": [top, 0.0],
                   "train_top1_per_epoch": [None, 1.0]},
    }  # fmt: skip
    summary = schemas.TrainSummary.model_validate_json(json.dumps(doc)).model_dump(mode="json")

    assert report.plot_loss(summary).startswith(b"\x89PNG")
    assert report.plot_epochs(summary).startswith(b"\x89PNG")
    assert report.plot_loss({**summary, "curves": {}}).startswith(b"\x89PNG")  # loss_per_epoch: any finite float


def test_a_summary_with_extreme_epoch_losses_is_still_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_run(tmp_path)
    reseal(summary_url(tmp_path), lambda doc: doc.update(
        loss_per_epoch=[-1.7e308, 1.7e308, 1.7e308], final_loss=1.7e308, curves={}
    ))  # fmt: skip

    code, _ = run(capsys, "metrics", "--run-dir", str(tmp_path))

    assert code == 0 and (tmp_path / "metrics" / "training_curve.png").stat().st_size > 0


# ---------------------------------------------------------------- 3. names matplotlib would parse


@pytest.mark.parametrize("name", ["cost $\\nosuch$", "$", "a $x^2$ b", "\\$5 $\\frac{"])
def test_a_class_name_with_dollar_signs_is_drawn_as_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    names = [name, "b", "c"]
    write_run(tmp_path)
    reseal(eval_url(tmp_path), with_classes(names))

    code, _ = run(capsys, "metrics", "--run-dir", str(tmp_path))

    assert code == 0 and (tmp_path / "metrics" / "confusion_matrix.png").stat().st_size > 0
    ax = report.matrix_figure(names, [[1, 0, 0], [0, 1, 0], [0, 0, 1]]).axes[0]
    labels = ax.get_xticklabels() + ax.get_yticklabels()
    assert [t.get_text() for t in labels] == names * 2 and not any(t.get_parse_math() for t in labels)


def test_a_class_name_that_is_html_is_text_in_the_markdown_summary_the_kfp_ui_renders(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    names = ["<img src=x onerror=alert(1)>", "b|c", "d"]
    write_run(tmp_path)
    reseal(eval_url(tmp_path), with_classes(names))

    bundle = produce_metrics.produce(str(tmp_path))

    assert "<img" not in bundle.markdown
    assert "| &lt;img src=x onerror=alert(1)&gt; |" in bundle.markdown and "| b/c |" in bundle.markdown
