"""The browser test's checks: what the KFP UI showed (read by uipage.py) against what the run computed.

Each check returns the problems it found, one line each, empty when the page shows what it should; the tests assert
an empty list on the real runs, and a non-empty one once the artifact the check reads is broken.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TASKS = ["create-volume", "prepare-data", "train-resnet", "test-resnet", "produce-metrics", "delete-volume"]
WORKSPACE_TASKS = TASKS[1:-1]  # KFP makes and deletes its workspace itself: no create-volume, no delete-volume
CONDITION = "unless-keep-volume"  # the sub-DAG delete-volume runs in (task key condition-1)
# KFP 2.17 marks a DAG done only from the launcher of a task inside it (metadata.UpdateDAGExecutionsState); the
# condition holds only delete-volume, a DeletePVC the driver runs, so the UI shows the condition running for good.
CONDITION_SHOWN = "running"


def evaluation(path: Path) -> dict[str, Any]:
    """test-resnet's eval_result.json."""
    return dict(json.loads(path.read_text()))


def run_id(stdout: str) -> str:
    """The run id of the run link ``sharedvol submit``/``run`` printed."""
    return re.findall(r"#/runs/details/([0-9a-f-]+)", stdout)[-1]


def graph(states: dict[str, str], tasks: list[str] = TASKS) -> list[str]:
    """Every task of the pipeline (``tasks``: the workspace variant's, :data:`WORKSPACE_TASKS`) is on the graph as
    succeeded."""
    return [
        f"{task}: {states.get(task, 'not on the graph') or 'no state'}, not succeeded"
        for task in tasks
        if states.get(task) != "succeeded"
    ]


def scalars(shown: dict[str, str], ev: dict[str, Any]) -> list[str]:
    """The Visualization's scalar metrics are the run's accuracy-top1/top5, test loss and sample count."""
    expected = {
        "accuracy-top1": ev["top1"],
        "accuracy-top5": ev["top5"],
        "test-loss": ev["loss"],
        "test-samples": ev["size"],
    }
    problems = []
    for name, value in expected.items():
        if name not in shown:
            problems.append(f"{name}: not shown (shown: {sorted(shown)})")
        elif _number(shown[name]) != float(value):
            problems.append(f"{name}: the page shows {shown[name]}, the run computed {value}")
    return problems


def confusion_matrix(shown: dict[str, Any], ev: dict[str, Any]) -> list[str]:
    """A 10 x 10 matrix with CIFAR-10's class names whose cells, read along the axes the page labels ("True label",
    "Predicted label"), equal eval_result.json's (rows: true class, columns: predicted class)."""
    axes = {shown["row_axis"], shown["column_axis"]}
    if axes != {"True label", "Predicted label"}:
        return [f"the axes are labelled {sorted(axes)}, not True label and Predicted label"]
    problems = []
    for what in ("row_labels", "column_labels"):
        if sorted(shown[what]) != sorted(CIFAR10) or shown[what] != _order(shown[what], ev["class_names"]):
            problems.append(f"{what}: {shown[what]}, not CIFAR-10's ten class names")
    if problems:
        return problems
    rows_are_true = shown["row_axis"] == "True label"
    names = ev["class_names"]
    for r, row_label in enumerate(shown["row_labels"]):
        for c, column_label in enumerate(shown["column_labels"]):
            true, predicted = (row_label, column_label) if rows_are_true else (column_label, row_label)
            want = ev["confusion_matrix"][names.index(true)][names.index(predicted)]
            got = shown["cells"][r][c]
            if got != want:
                problems.append(f"true {true}, predicted {predicted}: the page shows {got}, not {want}")
    return problems


def report(shown: dict[str, Any], ev: dict[str, Any]) -> list[str]:
    """The HTML report renders: its title, curves and matrix sections, every image loaded, the run's accuracy."""
    if "error" in shown:
        return [f"the report did not render: {shown['error']}"]
    want = ["ResNet-18 on CIFAR-10", "Training loss per iteration", "Confusion matrix"]
    problems = [f"no heading {h!r}" for h in want if h not in shown["headings"]]
    images = shown["images"]
    problems += [f"image {i['alt']!r} did not load" for i in images if not i["width"]]
    if not any(i["alt"] == "confusion matrix" for i in images):
        problems.append("no confusion matrix image")
    if f"{100 * ev['top1']:.2f} %" not in shown["cells"]:
        problems.append(f"top-1 accuracy {100 * ev['top1']:.2f} % not in its tables")
    return problems


def summary(shown: dict[str, Any], ev: dict[str, Any]) -> list[str]:
    """The Markdown summary renders: its title and its table with the run's test loss."""
    if "error" in shown:
        return [f"the summary did not render: {shown['error']}"]
    problems = [] if "ResNet-18 on CIFAR-10" in shown["headings"] else ["no title heading"]
    if f"{ev['loss']:.4f}" not in shown["cells"] or "test loss" not in shown["cells"]:
        problems.append(f"no 'test loss | {ev['loss']:.4f}' table row")
    return problems


def compare(shown: dict[str, Any], runs: dict[str, dict[str, Any]]) -> list[str]:
    """Compare runs shows, for each run (display name -> its evaluation), produce-metrics' scalar metrics with the
    run's values and, where the matrices were read, each run's confusion matrix (in the order of ``runs``)."""
    problems = []
    for name, ev in runs.items():
        columns = {a: m for a, m in shown["scalars"].get(name, {}).items() if "metrics" in a and "train" not in a}
        if len(columns) != 1:
            problems.append(f"run {name}: {len(columns)} produce-metrics columns in Scalar Metrics, not 1")
            continue
        [metrics] = columns.values()
        problems += [f"run {name}: {p}" for p in scalars({k: v for k, v in metrics.items() if v}, ev)]
    if shown["matrices"]:
        if len(shown["matrices"]) != len(runs):
            return [*problems, f"{len(shown['matrices'])} confusion matrices shown, not {len(runs)}"]
        for (name, ev), matrix in zip(runs.items(), shown["matrices"], strict=True):
            problems += [f"run {name}'s matrix: {p}" for p in confusion_matrix(matrix, ev)]
    return problems


def logs(text: str) -> list[str]:
    """The task's log shows produce-metrics' own lines."""
    return [] if "sharedvol-metrics {" in text else [f"not produce-metrics' log: {text[:300]!r}"]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _order(labels: list[str], names: list[str]) -> list[str]:
    """``labels`` in the order of ``names`` or its reverse, whichever ``labels`` is in (the page draws one axis
    bottom-up)."""
    forward = [n for n in names if n in labels]
    return forward if labels == forward else forward[::-1]
