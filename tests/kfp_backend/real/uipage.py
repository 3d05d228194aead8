"""What the KFP 2.17 UI shows, read from the page in a real browser (Debian's chromium driven by Playwright).

Each ``read_*`` function opens a page of the UI and returns what a person would see there, as plain data: task
states from the graph's icons, a Visualization's table cells, a confusion matrix as the page lays it out with its
axis labels, the rendered HTML report and Markdown summary, a task's log lines, the comparison's tables. The checks
compare that data with what the run computed (``checks`` in test_ui_browser.py). Screenshots go to ``shots``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
STATE_ICON = 'svg[data-testid$="Icon"]:not([data-testid^="execution-icon"])'  # a node's state, not its kind
TIMEOUT_MS = 90_000  # two busy cores: the UI's bundle and its MLMD calls take a while
STATE_ICONS = {
    "CheckCircleIcon": "succeeded",
    "ErrorIcon": "failed",
    "RefreshIcon": "running",
    "CloudDownloadIcon": "cached",
    "StopCircle": "canceled",
    "PowerSettingsNewIcon": "new",
    "MoreHorizIcon": "unknown",
}


@contextmanager
def browser() -> Iterator[Any]:
    """A fresh headless chromium (a new empty profile), closed afterwards: yields a Playwright browser context."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="sharedvol-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS, viewport={"width": 1440, "height": 1320}
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@dataclass
class Ui:
    """One UI server and where screenshots go."""

    context: Any
    url: str
    shots: Path

    def page(self, route: str) -> Any:
        """A new tab on ``#/<route>``."""
        page = self.context.new_page()
        page.goto(f"{self.url}/#/{route}")
        return page

    def shot(self, page: Any, name: str) -> Path:
        """A screenshot of the page as it is, ``<shots>/<name>.png``."""
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    # ----- the run's page
    def run_page(self, run_id: str) -> Any:
        """The run's page, its graph drawn with the tasks' states from ML Metadata (the side panel reads what the
        page loaded before the click: a click before that shows an empty panel)."""
        page = self.page(f"runs/details/{run_id}")
        page.locator(f".react-flow__node-EXECUTION [title] {STATE_ICON}").first.wait_for()
        return page

    def read_task_states(self, run_id: str, sub_dags: tuple[str, ...] = ()) -> dict[str, str]:
        """Each task node's label -> the state its icon shows, the sub-DAGs ``sub_dags`` (their task keys) opened."""
        page = self.run_page(run_id)
        states = _node_states(page)
        self.shot(page, "run-graph")
        for key in sub_dags:
            node = page.locator(f'[data-testid="{key}"]').locator("xpath=ancestor::button[1]")
            node.locator('[data-testid="expand-button"]').dispatch_event("click")
            # the sub-DAG's layer: the node is gone and a task of the layer shows its state
            page.wait_for_function(
                "([key, icon]) => !document.querySelector(`[data-testid='${key}']`)"
                " && document.querySelector(`.react-flow__node-EXECUTION [title] ${icon}`)",
                arg=[key, STATE_ICON],
            )
            states.update(_node_states(page))
            self.shot(page, f"run-graph-{key.removeprefix('task.')}")
        page.close()
        return states

    def visualization(self, run_id: str, task: str, output: str) -> Any:
        """The run's page with the side panel of ``task``'s artifact ``output`` on its Visualization tab."""
        page = self.run_page(run_id)
        node = page.locator(f'[id="artifact.{task}.{output}"]')
        node.locator("xpath=ancestor::button[1]").locator('[data-testid="artifact-icon-live"]').wait_for()
        # A click event rather than a pointer click: react-flow may draw the node outside the viewport.
        node.dispatch_event("click")
        page.get_by_role("button", name="Visualization", exact=True).click()
        return page

    def read_scalar_metrics(self, run_id: str, task: str, output: str) -> dict[str, str]:
        """The "Scalar Metrics" table of the artifact's Visualization: name -> value as shown."""
        page = self.visualization(run_id, task, output)
        heading = page.get_by_role("heading", name=f"Scalar Metrics: {output}", exact=True)
        heading.wait_for()
        rows = heading.locator("xpath=ancestor::div[2]").locator("tbody tr")
        cells = [r.locator("td").all_inner_texts() for r in rows.all()]
        self.shot(page, f"visualization-{output}")
        page.close()
        return {c[0].strip(): c[1].strip() for c in cells if len(c) >= 2}

    def read_confusion_matrix(self, run_id: str, task: str, output: str) -> dict[str, Any]:
        """The artifact's confusion matrix as the page lays it out (see :func:`matrix_from_table`)."""
        page = self.visualization(run_id, task, output)
        heading = page.get_by_role("heading", name=f"Confusion Matrix: {output}", exact=True)
        heading.wait_for()
        table = heading.locator("xpath=ancestor::div[2]").locator("table").first
        grid = table.evaluate(TABLE_TEXT)
        self.shot(page, f"visualization-{output}")
        page.close()
        return matrix_from_table(grid)

    def read_html(self, run_id: str, task: str, output: str) -> dict[str, Any]:
        """The artifact's HTML as rendered in the Visualization's frame: headings, loaded images, table cells."""
        page = self.visualization(run_id, task, output)
        error = self._error(page, page.get_by_text("Static HTML"), "HTML", output)
        if error:
            return {"error": error}
        frame = page.frame_locator("iframe").first
        frame.locator("h1").wait_for()
        seen = frame.locator("body").evaluate(
            """b => ({
                headings: [...b.querySelectorAll('h1,h2')].map(h => h.textContent.trim()),
                images: [...b.querySelectorAll('img')].map(i => ({alt: i.alt, width: i.naturalWidth})),
                cells: [...b.querySelectorAll('td')].map(c => c.textContent.trim()),
            })"""
        )
        self.shot(page, f"visualization-{output}")
        page.close()
        return dict(seen)

    def read_markdown(self, run_id: str, task: str, output: str) -> dict[str, Any]:
        """The artifact's Markdown as rendered: headings and table cells."""
        page = self.visualization(run_id, task, output)
        view = page.locator(".markdown-viewer").first
        error = self._error(page, view, "Markdown", output)
        if error:
            return {"error": error}
        view.locator("h1").wait_for()
        seen = view.evaluate(
            """v => ({
                headings: [...v.querySelectorAll('h1,h2,h3')].map(h => h.textContent.trim()),
                cells: [...v.querySelectorAll('td')].map(c => c.textContent.trim()),
            })"""
        )
        self.shot(page, f"visualization-{output}")
        page.close()
        return dict(seen)

    def _error(self, page: Any, content: Any, kind: str, output: str) -> str:
        """The error banner the Visualization shows instead of ``content`` (closing the page), else ''."""
        banner = page.get_by_text(f"Error in retrieving {kind} visualization information")
        content.or_(banner).first.wait_for()
        if not banner.count():
            return ""
        text = str(banner.first.inner_text())
        self.shot(page, f"visualization-{output}")
        page.close()
        return text

    def read_logs(self, run_id: str, task: str) -> str:
        """The Logs tab of ``task`` (its task key), or the banner that shows instead."""
        page = self.run_page(run_id)
        page.locator(f'[id="task.{task}"]').dispatch_event("click")
        page.get_by_role("button", name="Logs", exact=True).click()
        logs = page.locator('[data-testid="logs-view-window"]')
        banner = page.get_by_text("Failed to retrieve pod logs")
        # the log window shows one empty line until the log arrives
        page.wait_for_function(
            """() => [...document.querySelectorAll('[data-testid="logs-view-window"]')]
                       .some(w => w.innerText.split('\\n').length > 2)
                     || document.body.innerText.includes('Failed to retrieve pod logs')"""
        )
        text = logs.inner_text() if logs.count() else "BANNER: " + banner.first.inner_text()
        self.shot(page, f"logs-{task}")
        page.close()
        return str(text)

    # ----- Compare runs
    def read_compare(self, run_ids: list[str], run_names: list[str], matrices: bool = True) -> dict[str, Any]:
        """``#/compare`` of the runs: the Scalar Metrics table (run -> artifact column -> metric -> value as shown)
        and, with ``matrices``, the Confusion Matrix tab with each run's matrix chosen in its own panel."""
        page = self.page(f"compare?runlist={','.join(run_ids)}")
        page.get_by_role("button", name="Scalar Metrics", exact=True).wait_for()
        table = page.locator("table").filter(has_text="accuracy-top1").or_(page.get_by_text("There are no Scalar"))
        table.first.wait_for()
        grid = page.locator("table").filter(has_text="accuracy-top1").first
        cells = grid.evaluate(TABLE_SPANS) if grid.count() else []
        if grid.count():
            page.get_by_text("Metrics", exact=True).first.scroll_into_view_if_needed()
        self.shot(page, "compare-scalar-metrics")
        seen: dict[str, Any] = {"scalars": scalar_table(cells), "matrices": []}
        if matrices:
            page.get_by_role("button", name="Confusion Matrix", exact=True).click()
            for ordinal, name in zip(("first", "second"), run_names, strict=True):
                page.get_by_text(f"Choose a {ordinal} Confusion Matrix artifact").click()
                page.locator("li").filter(has_text=name).first.hover()
                page.locator("ul ul li").filter(has_text="confusion_matrix").first.click()
            headings = page.get_by_role("heading", name="Confusion Matrix: confusion_matrix")
            headings.nth(len(run_names) - 1).wait_for()
            for heading in headings.all():
                table = heading.locator("xpath=ancestor::div[2]").locator("table").first
                seen["matrices"].append(matrix_from_table(table.evaluate(TABLE_TEXT)))
            headings.first.scroll_into_view_if_needed()
            self.shot(page, "compare-confusion-matrix")
        page.close()
        return seen


def _node_states(page: Any) -> dict[str, str]:
    """Every execution and sub-DAG node on the graph: label -> state (its icon), '' where it shows none."""
    found = page.evaluate(
        """() => [...document.querySelectorAll(
                '.react-flow__node-EXECUTION [title], .react-flow__node-SUB_DAG [title]')]
            .map(n => [n.title, [...n.querySelectorAll('svg[data-testid]')].map(s => s.dataset.testid)])"""
    )
    states = {}
    for label, icons in found:
        shown = [STATE_ICONS[i] for i in icons if i in STATE_ICONS]
        states[label] = shown[0] if shown else ""
    return states


TABLE_TEXT = "t => [...t.querySelectorAll('tr')].map(r => [...r.children].map(c => c.textContent.trim()))"
TABLE_SPANS = "t => [...t.querySelectorAll('tr')].map(r => [...r.children].map(c => [c.textContent.trim(), c.colSpan]))"


def scalar_table(grid: list[list[list[Any]]]) -> dict[str, dict[str, dict[str, str]]]:
    """KFP's comparison table of scalar metrics: a row of run names (each spanning its artifacts' columns), a row
    of artifact names, then a row per metric. Returns run -> artifact -> metric -> the value shown ('' for none)."""
    if len(grid) < 3:
        return {}
    runs = [name for name, span in grid[0][1:] for _ in range(span)]
    artifacts = [name for name, _ in grid[1][1:]]
    table: dict[str, dict[str, dict[str, str]]] = {}
    for row in grid[2:]:
        metric, values = row[0][0], [text for text, _ in row[1:]]
        for run, artifact, value in zip(runs, artifacts, values, strict=True):
            table.setdefault(run, {}).setdefault(artifact, {})[metric] = value
    return table


def matrix_from_table(grid: list[list[str]]) -> dict[str, Any]:
    """The confusion matrix the page draws: ``grid`` is its table's text, row by row.

    KFP's ConfusionMatrix viewer draws one axis label above the rows, a row per class (its label, then a cell per
    class), and a footer (an empty corner, a label per class, the other axis label). Returns ``row_axis`` and
    ``column_axis`` (the labels the page gives them), ``row_labels``, ``column_labels`` and ``cells[r][c]``.
    """
    if len(grid) < 3:
        raise ValueError(f"no confusion matrix drawn: {grid}")
    [row_axis], footer, body = grid[0], grid[-1], grid[1:-1]
    return {
        "row_axis": row_axis,
        "column_axis": footer[-1],
        "row_labels": [r[0] for r in body],
        "column_labels": footer[1:-1],
        "cells": [[int(v) for v in r[1:]] for r in body],
    }
