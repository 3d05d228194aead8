"""The third user job, seen: the real KFP 2.17 UI on the real backend shows the tier's real runs in a real browser.

Debian's chromium (driven by Playwright, headless) opens the UI server of ``make kfp-up`` on the runs that
journeys.py made, and every check reads what the page shows (uichecks.py): the graph's task states, produce-metrics'
Visualizations (scalar metrics, confusion matrix, HTML report, Markdown summary), a task's logs, and the comparison
of the two finished runs. The last tests break, one at a time, the thing a check reads (the artifact in ML Metadata,
the UI's right to read pod logs, a finished run) and see the check fail; each puts it back.

Screenshots go to $SHAREDVOL_UI_SCREENSHOTS (``make ui-screenshots``: docs/images/ui), else to the test's temporary
directory ("ui-screenshots"); the broken pages' to "ui-screenshots-broken" beside it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rig.kfp import backend as kb
from rig.kfp import config as kc
from rig.kfp import ui as kui
from tests.kfp_backend.real import uichecks as checks
from tests.kfp_backend.real import uipage
from tests.kfp_backend.real.journeys import WorkspaceClass
from tests.kfp_backend.real.mlmd import Mlmd

# Run alone (make ui-screenshots), the first test's set-up starts the node and makes the runs: more than the
# project's 900 s per test on a cold node.
pytestmark = pytest.mark.timeout(1800)
TASK = "produce-metrics"
RUN_NAMES = {"submit": "journey", "run": "retried"}  # the runs' display names (journeys.py)


@pytest.fixture(scope="module")
def runs(
    journeys: dict[str, Any], static_volume: tuple[str, Path], workspace_class: WorkspaceClass, submit_collected: str
) -> dict[str, Any]:
    """The three finished runs (``submit``, the retried ``run``, the ``workspace`` one) and the failed one: ids and
    evaluations. The submitted run's Workflow and pods are gone by then (its TTL): what the UI shows of it, it
    shows without them."""
    [submitted] = list(static_volume[1].glob("runs/*/eval/eval_result.json"))
    [retried] = list(journeys["base"].glob("**/eval/eval_result.json"))
    [in_workspace] = list(workspace_class.base.glob("*/runs/*/eval/eval_result.json"))
    return {
        "submit": submit_collected,
        "run": checks.run_id(journeys["run"].check().stdout),
        "workspace": checks.run_id(journeys["workspace"].check().stdout),
        "failing": checks.run_id(journeys["failing"].out.stdout),
        "eval": checks.evaluation(submitted),
        "eval_run": checks.evaluation(retried),
        "eval_workspace": checks.evaluation(in_workspace),
    }


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless chromium for the module (a fresh profile)."""
    with uipage.browser() as context:
        yield context


@pytest.fixture(scope="module")
def ui(chromium: Any, kfp_on_node: kb.KfpBackend, tmp_path_factory: pytest.TempPathFactory) -> uipage.Ui:
    """The UI of the tier's backend; screenshots to $SHAREDVOL_UI_SCREENSHOTS or the test's directory."""
    shots = os.environ.get("SHAREDVOL_UI_SCREENSHOTS")
    return uipage.Ui(chromium, kfp_on_node.ui_url, Path(shots) if shots else tmp_path_factory.mktemp("ui-screenshots"))


@pytest.fixture(scope="module")
def broken_ui(chromium: Any, kfp_on_node: kb.KfpBackend, tmp_path_factory: pytest.TempPathFactory) -> uipage.Ui:
    """The same UI, its screenshots apart (the broken pages must not replace the documented ones)."""
    return uipage.Ui(chromium, kfp_on_node.ui_url, tmp_path_factory.mktemp("ui-screenshots-broken"))


@pytest.fixture(scope="module")
def other_ui(chromium: Any, kfp_on_node: kb.KfpBackend, tmp_path_factory: pytest.TempPathFactory) -> uipage.Ui:
    """The same UI for the other runs' pages, their screenshots apart from the documented ones."""
    return uipage.Ui(chromium, kfp_on_node.ui_url, tmp_path_factory.mktemp("ui-screenshots-workspace"))


def test_the_run_graph_shows_every_task_of_the_pipeline_as_succeeded(ui: uipage.Ui, runs: dict[str, Any]) -> None:
    states = ui.read_task_states(runs["submit"], sub_dags=("task.condition-1",))

    assert checks.graph(states) == []
    assert states[checks.CONDITION] == checks.CONDITION_SHOWN  # KFP 2.17's own limit (docs/ui.md)


def test_produce_metrics_visualization_shows_the_runs_accuracies_loss_and_sample_count(
    ui: uipage.Ui, runs: dict[str, Any]
) -> None:
    shown = ui.read_scalar_metrics(runs["submit"], TASK, "metrics")

    assert checks.scalars(shown, runs["eval"]) == []


def test_the_confusion_matrix_shows_cifar10_classes_and_eval_results_cells_along_the_labelled_axes(
    ui: uipage.Ui, runs: dict[str, Any]
) -> None:
    shown = ui.read_confusion_matrix(runs["submit"], TASK, "confusion_matrix")

    assert len(shown["cells"]) == 10 and all(len(row) == 10 for row in shown["cells"])
    assert checks.confusion_matrix(shown, runs["eval"]) == []


def test_the_html_report_renders_its_curves_and_matrix(ui: uipage.Ui, runs: dict[str, Any]) -> None:
    shown = ui.read_html(runs["submit"], TASK, "report")

    assert checks.report(shown, runs["eval"]) == []


def test_the_markdown_summary_renders(ui: uipage.Ui, runs: dict[str, Any]) -> None:
    shown = ui.read_markdown(runs["submit"], TASK, "summary")

    assert checks.summary(shown, runs["eval"]) == []


def test_a_tasks_logs_open_from_the_run_page(ui: uipage.Ui, runs: dict[str, Any]) -> None:
    text = ui.read_logs(runs["run"], TASK)  # its pods are kept: the UI server reads the log from Kubernetes

    assert checks.logs(text) == []


def test_a_tasks_logs_open_from_argos_archive_once_the_runs_ttl_deleted_its_pod(
    other_ui: uipage.Ui, runs: dict[str, Any]
) -> None:
    text = other_ui.read_logs(runs["submit"], TASK)  # its pods are gone: the log Argo archived in MinIO

    assert checks.logs(text) == []


def test_compare_runs_shows_both_finished_runs_scalar_metrics_and_confusion_matrices(
    ui: uipage.Ui, runs: dict[str, Any]
) -> None:
    shown = ui.read_compare([runs["submit"], runs["run"]], list(RUN_NAMES.values()))

    assert checks.compare(shown, {RUN_NAMES["submit"]: runs["eval"], RUN_NAMES["run"]: runs["eval_run"]}) == []


def test_the_workspace_runs_graph_shows_its_four_steps_succeeded_and_its_visualization_the_runs_metrics(
    other_ui: uipage.Ui, runs: dict[str, Any]
) -> None:
    states = other_ui.read_task_states(runs["workspace"])
    shown = other_ui.read_scalar_metrics(runs["workspace"], TASK, "metrics")

    assert checks.graph(states, checks.WORKSPACE_TASKS) == []
    assert checks.scalars(shown, runs["eval_workspace"]) == []


# ----- each check fails when what it reads is broken
def test_the_graph_check_fails_on_a_run_whose_prepare_data_failed(broken_ui: uipage.Ui, runs: dict[str, Any]) -> None:
    states = broken_ui.read_task_states(runs["failing"])

    assert states.get("prepare-data") == "failed"
    assert any(p.startswith("prepare-data: failed") for p in checks.graph(states))


def test_the_scalar_metrics_check_fails_when_the_artifact_holds_another_accuracy(
    broken_ui: uipage.Ui, mlmd_on_node: Mlmd, runs: dict[str, Any]
) -> None:
    def change(artifact: dict[str, Any]) -> None:
        artifact["customProperties"]["accuracy-top1"] = {"doubleValue": runs["eval"]["top1"] + 0.25}

    with changed_artifact(mlmd_on_node, runs["submit"], "metrics", change):
        shown = broken_ui.read_scalar_metrics(runs["submit"], TASK, "metrics")

    assert [p.split(":")[0] for p in checks.scalars(shown, runs["eval"])] == ["accuracy-top1"]


def test_the_confusion_matrix_check_fails_when_the_matrix_is_the_wrong_way_round(
    broken_ui: uipage.Ui, mlmd_on_node: Mlmd, runs: dict[str, Any]
) -> None:
    matrix = runs["eval"]["confusion_matrix"]
    assert matrix != [list(r) for r in zip(*matrix, strict=True)], "a symmetric matrix cannot show its orientation"

    def transpose(artifact: dict[str, Any]) -> None:
        struct = artifact["customProperties"]["confusionMatrix"]["structValue"]["struct"]
        struct["rows"] = [{"row": list(col)} for col in zip(*(r["row"] for r in struct["rows"]), strict=True)]

    with changed_artifact(mlmd_on_node, runs["submit"], "confusion_matrix", transpose):
        shown = broken_ui.read_confusion_matrix(runs["submit"], TASK, "confusion_matrix")

    assert checks.confusion_matrix(shown, runs["eval"]) != []


@pytest.mark.parametrize(("output", "reader", "check"), [("report", "read_html", "report"),
                                                         ("summary", "read_markdown", "summary")])  # fmt: skip
def test_the_rendering_checks_fail_when_the_artifacts_object_is_missing(
    broken_ui: uipage.Ui, mlmd_on_node: Mlmd, runs: dict[str, Any], output: str, reader: str, check: str
) -> None:
    def lose(artifact: dict[str, Any]) -> None:
        artifact["uri"] = artifact["uri"] + "-missing"

    with changed_artifact(mlmd_on_node, runs["submit"], output, lose):
        shown = getattr(broken_ui, reader)(runs["submit"], TASK, output)

    assert getattr(checks, check)(shown, runs["eval"]) != []


def test_the_logs_check_fails_when_the_ui_may_not_read_pod_logs(
    broken_ui: uipage.Ui, kfp_on_node: kb.KfpBackend, runs: dict[str, Any]
) -> None:
    kfp_on_node.kubectl("delete", "rolebinding", kui.SERVICE_ACCOUNT, "-n", kc.NAMESPACE)
    try:
        text = broken_ui.read_logs(runs["run"], TASK)
    finally:
        rbac = {"apiVersion": "v1", "kind": "List", "items": kui.rbac_objects()}
        kfp_on_node.kubectl("apply", "-f", "-", input=json.dumps(rbac))

    assert text.startswith("BANNER: ")
    assert checks.logs(text) != []


def test_the_compare_check_fails_when_one_run_has_no_metrics(broken_ui: uipage.Ui, runs: dict[str, Any]) -> None:
    shown = broken_ui.read_compare([runs["submit"], runs["failing"]], ["journey", "failing"], matrices=False)

    problems = checks.compare(shown, {"journey": runs["eval"], "failing": runs["eval"]})
    assert [p.split(":")[0] for p in problems] == ["run failing"]


@contextmanager
def changed_artifact(mlmd: Mlmd, run: str, output: str, change: Any) -> Iterator[None]:
    """The run's artifact named ``output`` changed in ML Metadata by ``change`` (in place), put back afterwards."""
    context = mlmd.call("GetContextByTypeAndName", {"typeName": "system.PipelineRun", "contextName": run})
    artifacts = mlmd.call("GetArtifactsByContext", {"contextId": context["context"]["id"]})["artifacts"]
    [original] = [a for a in artifacts if a["customProperties"].get("display_name", {}).get("stringValue") == output]
    broken = copy.deepcopy(original)
    change(broken)
    put = mlmd.call("PutArtifacts", {"artifacts": [_writable(broken)]})
    assert "error" not in put, json.dumps(put)
    try:
        yield
    finally:
        mlmd.call("PutArtifacts", {"artifacts": [_writable(original)]})


def _writable(artifact: dict[str, Any]) -> dict[str, Any]:
    """The artifact without the fields the store fills in itself."""
    skip = {"type", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"}
    return {k: v for k, v in artifact.items() if k not in skip}
