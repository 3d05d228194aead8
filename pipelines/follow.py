"""Following a run of ``sharedvol submit`` to its end: task progress, the reason of a failure, the metrics.

``kfp.Client.wait_for_run_completion`` polls at a fixed interval and reports nothing on the way; this asks for the
run with a growing interval and a deadline and reports each task's state changes. A failed poll is retried
along the one backoff of :mod:`pipelines.kfp_api`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pydantic_core
import yaml

from pipelines import errors, kfp_api, logscan, mlmd, tasklogs
from sharedvol.errors import one_line

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
METRICS_MARKER = "sharedvol-metrics "
METRICS_TASK = "produce-metrics"
Progress = Callable[[str], None]


class Polling(Protocol):
    """How often to ask for a run, and until when (``submit.PollSettings`` is the one the commands fill)."""

    @property
    def initial_s(self) -> float:
        """Seconds between the first polls."""

    @property
    def factor(self) -> float:
        """Each wait is the previous one times this."""

    @property
    def max_s(self) -> float:
        """The longest wait between polls, in seconds."""

    @property
    def timeout_s(self) -> float:
        """Give up following after this many seconds (the run goes on)."""


@dataclass(frozen=True)
class TaskState:
    """One task of a run as the KFP API reports it (``V2beta1PipelineTaskDetail``)."""

    name: str
    state: str
    error: str = ""
    pod_name: str = ""


@dataclass
class RunStatus:
    """A run being followed, as last seen.

    Attributes:
        run_id: the run's id.
        run_url: the run's page in the KFP UI.
        state: the run's last known state (``SUCCEEDED``, ``FAILED``...; ``PENDING`` when not followed).
        tasks: the tasks' last known states, in the pipeline's order.
        metrics: produce-metrics' scalars when they could be read (from ML Metadata, else from its log via the
            UI server), else empty.
        metrics_source: where the metrics were read (``ML Metadata`` or ``pod log``), empty without metrics.
        metrics_note: why there are no metrics, when there are none.
    """

    run_id: str
    run_url: str
    state: str = "PENDING"
    tasks: list[TaskState] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_source: str = ""
    metrics_note: str = ""


def pipeline_tasks(package: bytes) -> dict[str, str]:
    """The pipeline's container tasks in the order they run: their DAG key -> their display name (``taskInfo``).

    KFP reports a run's tasks by display name, except the tasks it runs in its driver alone (``CreatePVC``,
    ``DeletePVC``), which it reports by their key (``createpvc``). A sub-DAG's tasks (a condition's) come at the
    place of the sub-DAG.
    """
    spec = next(yaml.safe_load_all(package))
    components = spec.get("components") or {}

    def walk(dag: dict[str, Any]) -> Iterator[tuple[str, str]]:
        for key in _dag_order(dag.get("tasks") or {}):
            task = dag["tasks"][key]
            component = components.get(task["componentRef"]["name"]) or {}
            if "dag" in component:
                yield from walk(component["dag"])
            else:
                yield key, task["taskInfo"]["name"]

    return dict(walk(spec["root"]["dag"]))


def _dag_order(tasks: Mapping[str, dict[str, Any]]) -> list[str]:
    """The keys of ``tasks`` with every task after the ones it depends on (ties: the compiled file's order)."""
    done: list[str] = []
    left = list(tasks)
    while left:
        ready = [k for k in left if set(tasks[k].get("dependentTasks") or ()) <= set(done)] or left[:1]
        done.append(ready[0])
        left.remove(ready[0])
    return done


def follow(
    api: kfp_api.KfpApi,
    status: RunStatus,
    *,
    poll: Polling,
    ui_url: str,
    tasks: Mapping[str, str],
    progress: Progress,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    """Ask for the run until it ends or the deadline passes; report task state changes; read the metrics.

    Args:
        api: the KFP API.
        status: the run; updated as it goes.
        poll: how often to ask, and until when.
        ui_url: the KFP UI's base URL (ML Metadata is read through it); empty: the API host.
        tasks: the pipeline's tasks (:func:`pipeline_tasks`): which tasks to report, in this order.
        progress: called with each line to show.
        sleep: waits this many seconds (tests pass a fake).
        clock: the time in seconds (tests pass a fake).

    Raises:
        RunFailedError: the run ended other than SUCCEEDED (the message names the failed task and why).
        RunTimeoutError: the run had not ended by ``poll.timeout_s``.
        KfpApiError: the API failed after the retries (the run goes on).
    """
    deadline = clock() + poll.timeout_s
    wait = poll.initial_s
    seen: dict[str, str] = {}
    while True:
        try:
            run = run_answer(api.read(f"GET /runs/{status.run_id}", lambda c: c.get_run(status.run_id)), status)
        except errors.KfpApiError as e:
            e.hint = f"{e.hint}; run {status.run_id} goes on: {status.run_url}"
            raise
        status.state = field_text(run.get("state"), 40) or status.state
        status.tasks = tasks_of(run, tasks)
        for task in status.tasks:
            if seen.get(task.name) != task.state:
                seen[task.name] = task.state
                progress(f"  {task.name}: {task.state}")
        if status.state in TERMINAL:
            break
        if clock() >= deadline:
            raise errors.RunTimeoutError(
                f"run {status.run_id} is still {status.state} after {poll.timeout_s:g} s",
                hint=f"it goes on; follow it at {status.run_url} or raise --timeout",
            )
        sleep(min(wait, max(0.0, deadline - clock())))
        wait = min(wait * poll.factor, poll.max_s)
    progress(f"run {status.run_id} {status.state}")
    if status.state != "SUCCEEDED":
        raise errors.RunFailedError(failure_message(run, status, api), hint=f"see {status.run_url}")
    read_metrics(api, ui_url, status, progress)


def tasks_of(run: dict[str, Any], tasks: Mapping[str, str]) -> list[TaskState]:
    """The run's tasks among ``tasks`` (key -> display name), in that order, each by its display name.

    KFP's own DAG, driver and executor entries are left out.
    """
    names = list(tasks.values())
    found: dict[str, TaskState] = {}
    details = run.get("run_details")
    listed = details.get("task_details") if isinstance(details, dict) else None
    for t in listed if isinstance(listed, list) else []:
        if not isinstance(t, dict):
            continue
        shown = field_text(t.get("display_name"), 200)
        name = tasks.get(shown, shown)
        if name not in names:
            continue
        error = t.get("error")
        err = field_text(error.get("message"), ERROR_CAP) if isinstance(error, dict) else ""
        found[name] = TaskState(
            name=name, state=field_text(t.get("state"), 40), error=err, pod_name=field_text(t.get("pod_name"), 253)
        )
    return [found[name] for name in names if name in found]


ERROR_CAP = 500  # characters of a task's or run's error that are repeated


def run_answer(answer: Any, status: RunStatus) -> dict[str, Any]:
    """KFP's answer to GET /runs/ID as a dict, when it is the run asked for.

    Raises:
        KfpApiError: it is not a run (null, text, a list...) or it names another run.
    """
    run = answer.to_dict() if hasattr(answer, "to_dict") else None
    if not isinstance(run, dict) or run.get("run_id") != status.run_id:
        raise errors.KfpApiError(
            f"the KFP API answered GET /runs/{field_text(status.run_id, 80)} with something that is not that run",
            hint="check that --host names a KFP API server (2.x) and not another service",
        )
    return run


def field_text(value: Any, cap: int) -> str:
    """A string field of KFP's answer on one line, at most ``cap`` characters; "" when it is not a string."""
    return one_line(value[:cap]) if isinstance(value, str) else ""


def failure_message(run: dict[str, Any], status: RunStatus, api: kfp_api.KfpApi | None = None) -> str:
    """``run X FAILED: task T failed: <why>``, from the task's error or, failing that, its log's last error line."""
    failed = [t for t in status.tasks if t.state == "FAILED"]
    error = run.get("error")
    run_error = field_text(error.get("message"), ERROR_CAP) if isinstance(error, dict) else ""
    if not failed:
        return f"run {status.run_id} {status.state}" + (f": {run_error}" if run_error else "")
    task = failed[0]
    text = task_log(api, status, task) if api is not None else None
    why = task.error or logscan.last_error_line((text or "").splitlines()) or run_error or "no reason reported"
    return f"run {status.run_id} {status.state}: task {task.name} failed: {why}"


def read_metrics(api: kfp_api.KfpApi, ui_url: str, status: RunStatus, progress: Progress) -> None:
    """produce-metrics' Metrics artifact from ML Metadata; where that is not offered, the line its log printed."""
    a = api.settings
    try:
        status.metrics = metric_values(
            mlmd.run_metrics(
                ui_url or a.host, status.run_id, token=a.token, timeout_s=a.request_timeout_s, verify=a.verify_tls
            ).items()
        )
        status.metrics_source = "ML Metadata"
        progress(f"metrics read from ML Metadata (the {METRICS_TASK} task's Metrics artifact)")
        return
    except mlmd.MlmdUnavailable as e:
        why = str(e)
    task = next((t for t in status.tasks if t.name == METRICS_TASK), None)
    note = f"open {status.run_url} (Visualizations) or compare runs in the KFP UI"
    if task is None:
        status.metrics_note = f"{field_text(why, 300)}, and the KFP API names no {METRICS_TASK} task; {note}"
        return
    status.metrics = parse_metrics_line(task_log(api, status, task) or "")
    if status.metrics:
        status.metrics_source = "pod log"
        progress(f"metrics read from the {METRICS_TASK} pod's log ({why})")
    else:
        status.metrics_note = f"{field_text(why, 300)}, and the {METRICS_TASK} pod's log was not available; {note}"


def task_log(api: kfp_api.KfpApi, status: RunStatus, task: TaskState) -> str | None:
    """The task's pod log, or None.

    Through the KFP UI server where the API names the pod, else from Kubernetes where ``api.kube`` is set
    (``sharedvol run``).
    """
    text = api.pod_log(task.pod_name) if task.pod_name else None
    if text is None and api.kube is not None:
        text = tasklogs.read(api.kube, api.settings.namespace or "kubeflow", status.run_id, task.name)
    return text


def parse_metrics_line(log_text: str) -> dict[str, float]:
    """The scalars produce-metrics printed as ``sharedvol-metrics {json}`` (the last such line), or empty."""
    for line in reversed(log_text.splitlines()):
        start = line.find(METRICS_MARKER)
        if start < 0:
            continue
        try:  # a pod's log is anyone's text: the parser caps nesting and refuses NaN; values must be finite numbers
            doc = pydantic_core.from_json(line[start + len(METRICS_MARKER) :], allow_inf_nan=False)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return metric_values(doc.items())
    return {}


def metric_values(items: Iterable[tuple[Any, Any]]) -> dict[str, float]:
    """Metrics from a server (ML Metadata, a pod's log): the first 50, finite numbers only.

    Names are escaped (one line, no terminal control) and cut to 64 characters.
    """
    found = {field_text(str(k), 64): _number(v) for k, v in itertools.islice(items, 50)}
    return {k: v for k, v in found.items() if v is not None}


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a number (a bool, text, an int too large for a float)."""
    if type(value) not in (int, float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
