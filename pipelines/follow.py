"""Following a run of ``sharedvol submit`` to its end: task progress, the reason of a failure, the metrics.

``kfp.Client.wait_for_run_completion`` polls at a fixed interval and reports nothing on the way; this asks for the
run with a growing interval and a deadline and reports each task's state changes. A failed poll is retried
along the one backoff of :mod:`pipelines.kfp_api`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines import errors, kfp_api, logscan, mlmd, tasklogs

if TYPE_CHECKING:
    from pipelines.submit import SubmitResult, SubmitSettings

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
METRICS_MARKER = "sharedvol-metrics "
METRICS_TASK = "produce-metrics"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TaskState:
    """One task of a run as the KFP API reports it (``V2beta1PipelineTaskDetail``)."""

    name: str
    state: str
    error: str = ""
    pod_name: str = ""


def follow(
    api: kfp_api.KfpApi,
    settings: SubmitSettings,
    result: SubmitResult,
    steps: tuple[str, ...],
    progress: Progress,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    """Ask for the run until it ends or the deadline passes; report task state changes; read the metrics.

    Raises:
        RunFailedError: the run ended other than SUCCEEDED (the message names the failed task and why).
        RunTimeoutError: the run had not ended by ``settings.poll.timeout_s``.
        KfpApiError: the API failed after the retries (the run goes on).
    """
    poll = settings.poll
    deadline = clock() + poll.timeout_s
    wait = poll.initial_s
    seen: dict[str, str] = {}
    while True:
        try:
            run = api.read(f"GET /runs/{result.run_id}", lambda c: c.get_run(result.run_id)).to_dict()
        except errors.KfpApiError as e:
            e.hint = f"{e.hint}; run {result.run_id} goes on: {result.run_url}"
            raise
        result.state = run.get("state") or result.state
        result.tasks = tasks_of(run, steps)
        for task in result.tasks:
            if seen.get(task.name) != task.state:
                seen[task.name] = task.state
                progress(f"  {task.name}: {task.state}")
        if result.state in TERMINAL:
            break
        if clock() >= deadline:
            raise errors.RunTimeoutError(
                f"run {result.run_id} is still {result.state} after {poll.timeout_s:g} s",
                hint=f"it goes on; follow it at {result.run_url} or raise --timeout",
            )
        sleep(min(wait, max(0.0, deadline - clock())))
        wait = min(wait * poll.factor, poll.max_s)
    progress(f"run {result.run_id} {result.state}")
    if result.state != "SUCCEEDED":
        raise errors.RunFailedError(failure_message(run, result, api), hint=f"see {result.run_url}")
    read_metrics(api, settings, result, progress)


def tasks_of(run: dict[str, Any], steps: tuple[str, ...]) -> list[TaskState]:
    """The run's tasks named in ``steps`` (KFP's own DAG, driver and executor entries left out)."""
    tasks = []
    for t in (run.get("run_details") or {}).get("task_details") or []:
        name = t.get("display_name") or ""
        if name not in steps:
            continue
        err = (t.get("error") or {}).get("message") or ""
        tasks.append(TaskState(name=name, state=t.get("state") or "", error=err, pod_name=t.get("pod_name") or ""))
    return tasks


def failure_message(run: dict[str, Any], result: SubmitResult, api: kfp_api.KfpApi | None = None) -> str:
    """``run X FAILED: task T failed: <why>``, from the task's error or, failing that, its log's last error line."""
    failed = [t for t in result.tasks if t.state == "FAILED"]
    run_error = (run.get("error") or {}).get("message") or ""
    if not failed:
        return f"run {result.run_id} {result.state}" + (f": {run_error}" if run_error else "")
    task = failed[0]
    text = task_log(api, result, task) if api is not None else None
    why = task.error or logscan.last_error_line((text or "").splitlines()) or run_error or "no reason reported"
    return f"run {result.run_id} {result.state}: task {task.name} failed: {why}"


def read_metrics(api: kfp_api.KfpApi, settings: SubmitSettings, result: SubmitResult, progress: Progress) -> None:
    """produce-metrics' Metrics artifact from ML Metadata; where that is not offered, the line its log printed."""
    a = settings.api
    try:
        result.metrics = mlmd.run_metrics(
            settings.ui_url or a.host, result.run_id, token=a.token, timeout_s=a.request_timeout_s, verify=a.verify_tls
        )
        result.metrics_source = "ML Metadata"
        progress(f"metrics read from ML Metadata (the {METRICS_TASK} task's Metrics artifact)")
        return
    except mlmd.MlmdUnavailable as e:
        why = str(e)
    task = next((t for t in result.tasks if t.name == METRICS_TASK), None)
    note = f"open {result.run_url} (Visualizations) or compare runs in the KFP UI"
    if task is None:
        result.metrics_note = f"{why}, and the KFP API names no {METRICS_TASK} task; {note}"
        return
    result.metrics = parse_metrics_line(task_log(api, result, task) or "")
    if result.metrics:
        result.metrics_source = "pod log"
        progress(f"metrics read from the {METRICS_TASK} pod's log ({why})")
    else:
        result.metrics_note = f"{why}, and the {METRICS_TASK} pod's log was not available; {note}"


def task_log(api: kfp_api.KfpApi, result: SubmitResult, task: TaskState) -> str | None:
    """The task's pod log, or None.

    Through the KFP UI server where the API names the pod, else from Kubernetes where ``api.kube`` is set
    (``sharedvol run``).
    """
    text = api.pod_log(task.pod_name) if task.pod_name else None
    if text is None and api.kube is not None:
        text = tasklogs.read(api.kube, api.settings.namespace or "kubeflow", result.run_id, task.name)
    return text


def parse_metrics_line(log_text: str) -> dict[str, float]:
    """The scalars produce-metrics printed as ``sharedvol-metrics {json}`` (the last such line), or empty."""
    for line in reversed(log_text.splitlines()):
        start = line.find(METRICS_MARKER)
        if start < 0:
            continue
        try:
            doc = json.loads(line[start + len(METRICS_MARKER) :])
        except ValueError:
            continue
        if isinstance(doc, dict):
            return {str(k): float(v) for k, v in doc.items() if isinstance(v, int | float)}
    return {}
