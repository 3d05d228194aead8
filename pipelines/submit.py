"""``sharedvol submit``: compile, upload or reuse the pipeline, start a run in an experiment, follow it to its end.

The pipeline is found by name; a version is named after the compiled YAML's digest, so an unchanged
pipeline reuses its version and a changed one gets a new version. Following a run is polling the KFP
REST API (not Kubernetes) with a growing interval and a deadline.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import errors, kfp_api, logscan, options

log = logging.getLogger(__name__)

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
METRICS_MARKER = "sharedvol-metrics "
STEP_TASKS = ("create-volume", "prepare-data", "train-resnet", "test-resnet", "produce-metrics", "delete-volume")


@dataclass(frozen=True)
class PollSettings:
    """How ``submit --wait`` follows a run.

    Attributes:
        initial_s: seconds between the first polls. Default 3.
        factor: each wait is the previous one times this. Default 1.5.
        max_s: the longest wait between polls. Default 30.
        timeout_s: give up following after this many seconds (the run goes on). Default 6 hours.
        max_consecutive_errors: unreachable-API polls in a row before giving up. Default 10.
    """

    initial_s: float = 3.0
    factor: float = 1.5
    max_s: float = 30.0
    timeout_s: float = 6 * 3600.0
    max_consecutive_errors: int = 10


@dataclass(frozen=True)
class SubmitSettings:
    """One submission.

    Attributes:
        api: where KFP is and how to authenticate.
        compile: image, storage choice, scheduling: what the uploaded YAML holds.
        params: the run's parameter values.
        experiment: the experiment's display name (created when missing). Default ``sharedvol``.
        pipeline_name: the pipeline's name in KFP. Default ``resnet18-cifar10``.
        run_name: the run's display name; empty: ``<pipeline>-<UTC time>``.
        service_account: the Kubernetes service account of the run's pods; empty: KFP's default.
        wait: follow the run until it ends.
        poll: how to follow.
        ui_url: the KFP UI's base URL for links; empty: the API host.
    """

    api: kfp_api.ApiSettings
    compile: options.CompileOptions = field(default_factory=options.CompileOptions)
    params: options.RunParameters = field(default_factory=options.RunParameters)
    experiment: str = "sharedvol"
    pipeline_name: str = "resnet18-cifar10"
    run_name: str = ""
    service_account: str = ""
    wait: bool = False
    poll: PollSettings = field(default_factory=PollSettings)
    ui_url: str = ""

    def validate(self) -> SubmitSettings:
        """Check everything before the first request; return self."""
        self.api.validate()
        self.compile.validate()
        self.params.validate()
        if not self.experiment.strip():
            raise errors.BadParameterError("--experiment is empty", hint="e.g. --experiment sharedvol")
        if self.poll.timeout_s <= 0:
            raise errors.BadParameterError(
                f"--timeout must be positive, got {self.poll.timeout_s:g}", hint="e.g. 21600"
            )
        return self


@dataclass(frozen=True)
class TaskState:
    """One task of a run as the KFP API reports it."""

    name: str
    state: str
    error: str = ""
    pod_name: str = ""


@dataclass
class SubmitResult:
    """What ``submit`` did and, with ``wait``, how the run ended.

    Attributes:
        pipeline_id: the pipeline's id.
        version_id: the pipeline version's id.
        version_name: its name (``<pipeline>-<digest prefix>``).
        version_reused: True when an identical version was already uploaded.
        experiment_id: the experiment's id.
        run_id: the run's id.
        run_url: the run's page in the KFP UI.
        state: the run's last known state (``SUCCEEDED``, ``FAILED``...; ``PENDING`` when not followed).
        tasks: the tasks' last known states.
        metrics: produce-metrics' scalars when they could be read (from its log via the UI server), else empty.
        metrics_note: why there are no metrics, when there are none.
    """

    pipeline_id: str
    version_id: str
    version_name: str
    version_reused: bool
    experiment_id: str
    run_id: str
    run_url: str
    state: str = "PENDING"
    tasks: list[TaskState] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_note: str = ""


Progress = Callable[[str], None]


def submit(
    settings: SubmitSettings,
    *,
    progress: Progress = lambda line: None,
    api: kfp_api.KfpApi | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SubmitResult:
    """Compile, upload or reuse, create the run, and (with ``wait``) follow it until it ends.

    Raises:
        BadParameterError: bad settings (before any request).
        KfpAuthError, KfpUnreachableError, KfpApiError: the API refused or could not be reached.
        RunFailedError: the run ended FAILED or CANCELED (the message names the failed task and why).
        RunTimeoutError: the run had not ended by the deadline.
    """
    settings.validate()
    api = api or kfp_api.KfpApi(settings.api, sleep=sleep)
    package, digest = compile_package(settings.compile)
    api.probe()
    pipeline = _pipeline(api, settings, progress)
    version, reused = _version(api, settings, pipeline["pipeline_id"], package, digest, progress)
    experiment = api.find_experiment(settings.experiment)
    if experiment is None:
        experiment = api.create_experiment(settings.experiment, "sharedvol runs")
        progress(f"created experiment {settings.experiment!r}")
    run = api.create_run(run_body(settings, pipeline["pipeline_id"], version["pipeline_version_id"], experiment))
    run_id = run["run_id"]
    result = SubmitResult(
        pipeline_id=pipeline["pipeline_id"],
        version_id=version["pipeline_version_id"],
        version_name=version.get("name") or version.get("display_name", ""),
        version_reused=reused,
        experiment_id=experiment["experiment_id"],
        run_id=run_id,
        run_url=run_url(settings, run_id),
        state=run.get("state") or "PENDING",
    )
    progress(f"run {run_id} created: {result.run_url}")
    if settings.wait:
        _follow(api, settings, result, progress, sleep, clock)
    return result


def compile_package(opts: options.CompileOptions) -> tuple[bytes, str]:
    """The pipeline YAML for ``opts`` and its sha256."""
    from pipelines import pipeline

    with tempfile.TemporaryDirectory(prefix="sharedvol-") as tmp:
        compiled = pipeline.compile_to(opts, Path(tmp) / "pipeline.yaml")
        return compiled.path.read_bytes(), compiled.sha256


def run_body(settings: SubmitSettings, pipeline_id: str, version_id: str, experiment: dict[str, Any]) -> dict:
    """The ``V2beta1Run`` to create."""
    name = settings.run_name or time.strftime(f"{settings.pipeline_name}-%Y%m%d-%H%M%S", time.gmtime())
    body: dict[str, Any] = {
        "display_name": name,
        "experiment_id": experiment["experiment_id"],
        "pipeline_version_reference": {"pipeline_id": pipeline_id, "pipeline_version_id": version_id},
        "runtime_config": {"parameters": settings.params.as_dict()},
    }
    if settings.service_account:
        body["service_account"] = settings.service_account
    return body


def run_url(settings: SubmitSettings, run_id: str) -> str:
    """The run's page in the KFP UI."""
    base = (settings.ui_url or settings.api.host).rstrip("/")
    return f"{base}/#/runs/details/{run_id}"


def _pipeline(api: kfp_api.KfpApi, settings: SubmitSettings, progress: Progress) -> dict[str, Any]:
    found = api.get_pipeline_by_name(settings.pipeline_name)
    if found:
        return found
    created = api.create_pipeline(settings.pipeline_name, "ResNet-18 on CIFAR-10 on a shared RWX volume (sharedvol)")
    progress(f"created pipeline {settings.pipeline_name!r}")
    return created


def _version(
    api: kfp_api.KfpApi, settings: SubmitSettings, pipeline_id: str, package: bytes, digest: str, progress: Progress
) -> tuple[dict[str, Any], bool]:
    name = f"{settings.pipeline_name}-{digest[:12]}"
    for version in api.list_pipeline_versions(pipeline_id):
        if name in (version.get("name"), version.get("display_name")):
            progress(f"pipeline version {name} is already uploaded: reusing it")
            return version, True
    description = f"sha256:{digest}; image {settings.compile.image}; volume: {settings.compile.storage.describe()}"
    version = api.upload_pipeline_version(pipeline_id, name, package, description)
    progress(f"uploaded pipeline version {name}")
    return version, False


def _follow(
    api: kfp_api.KfpApi,
    settings: SubmitSettings,
    result: SubmitResult,
    progress: Progress,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    poll = settings.poll
    deadline = clock() + poll.timeout_s
    wait = poll.initial_s
    errors_in_a_row = 0
    seen: dict[str, str] = {}
    state = result.state
    while True:
        try:
            run = api.get_run(result.run_id)
            errors_in_a_row = 0
        except errors.KfpUnreachableError:
            errors_in_a_row += 1
            if errors_in_a_row >= poll.max_consecutive_errors:
                raise
            run = None
        if run is not None:
            state = run.get("state") or state
            result.state = state
            result.tasks = tasks_of(run)
            for task in result.tasks:
                if seen.get(task.name) != task.state:
                    seen[task.name] = task.state
                    progress(f"  {task.name}: {task.state}")
            if state in TERMINAL:
                break
        if clock() >= deadline:
            raise errors.RunTimeoutError(
                f"run {result.run_id} is still {state} after {poll.timeout_s:g} s",
                hint=f"it goes on; follow it at {result.run_url} or raise --timeout",
            )
        sleep(min(wait, max(0.0, deadline - clock())))
        wait = min(wait * poll.factor, poll.max_s)
    progress(f"run {result.run_id} {state}")
    if state == "SUCCEEDED":
        _read_metrics(api, settings, run or {}, result)
        return
    raise errors.RunFailedError(failure_message(run or {}, result, api, settings), hint=f"see {result.run_url}")


def tasks_of(run: dict[str, Any]) -> list[TaskState]:
    """The run's tasks (the pipeline's steps; KFP's own DAG and driver entries left out)."""
    tasks = []
    for t in (run.get("run_details") or {}).get("task_details") or []:
        name = t.get("display_name") or ""
        if name not in STEP_TASKS:
            continue
        err = (t.get("error") or {}).get("message") or ""
        tasks.append(TaskState(name=name, state=t.get("state") or "", error=err, pod_name=t.get("pod_name") or ""))
    return tasks


def failure_message(
    run: dict[str, Any], result: SubmitResult, api: kfp_api.KfpApi | None = None, settings: SubmitSettings | None = None
) -> str:
    """``run X FAILED: task T failed: <why>``, from the task's error or, failing that, its log's last error line."""
    state = result.state
    failed = [t for t in result.tasks if t.state == "FAILED"]
    run_error = (run.get("error") or {}).get("message") or ""
    if not failed:
        return f"run {result.run_id} {state}" + (f": {run_error}" if run_error else "")
    task = failed[0]
    why = task.error or _last_error_line(api, settings, task) or run_error or "no reason reported"
    return f"run {result.run_id} {state}: task {task.name} failed: {why}"


def _last_error_line(api: kfp_api.KfpApi | None, settings: SubmitSettings | None, task: TaskState) -> str:
    if api is None or settings is None or not task.pod_name:
        return ""
    text = api.pod_log(task.pod_name, settings.api.namespace or "kubeflow")
    if not text:
        return ""
    return logscan.last_error_line(text.splitlines())


def _read_metrics(api: kfp_api.KfpApi, settings: SubmitSettings, run: dict[str, Any], result: SubmitResult) -> None:
    task = next((t for t in result.tasks if t.name == "produce-metrics"), None)
    note = f"open {result.run_url} (Visualizations) or compare runs in the KFP UI"
    if task is None or not task.pod_name:
        result.metrics_note = f"the KFP API names no produce-metrics pod; {note}"
        return
    text = api.pod_log(task.pod_name, settings.api.namespace or "kubeflow")
    metrics = parse_metrics_line(text or "")
    if metrics:
        result.metrics = metrics
    else:
        result.metrics_note = f"the KFP API returns no metric values and the pod log was not available; {note}"


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
