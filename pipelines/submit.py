"""``sharedvol submit``: compile, upload or reuse the pipeline, start a run in an experiment, follow it to its end.

The calls go through ``kfp.Client`` (:mod:`pipelines.kfp_api`). The pipeline is found by name; a version is named
after the compiled YAML's digest, so an unchanged pipeline reuses its version and a changed one gets a new
version. Following a run is asking the KFP API for it with a growing interval and a deadline, printing each
task's state changes (``kfp.Client.wait_for_run_completion`` prints nothing and polls at a fixed interval).
The metrics come from ML Metadata (:mod:`pipelines.mlmd`), else from produce-metrics' log.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import kfp_server_api

from pipelines import errors, follow, kfp_api, options, params, pipeline

T = TypeVar("T")
log = logging.getLogger(__name__)

_RUN_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # KFP run ids are UUIDs


@dataclass(frozen=True)
class PollSettings:
    """How ``submit --wait`` follows a run (:func:`pipelines.follow.follow`).

    Attributes:
        initial_s: seconds between the first polls. Default 3.
        factor: each wait is the previous one times this. Default 1.5.
        max_s: the longest wait between polls. Default 30.
        timeout_s: give up following after this many seconds (the run goes on). Default 6 hours.

    A poll that fails is retried along ``ApiSettings.read_backoff_s`` (the one retry policy, in kfp_api).
    """

    initial_s: float = 3.0
    factor: float = 1.5
    max_s: float = 30.0
    timeout_s: float = 6 * 3600.0


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
    params: params.RunParameters = field(default_factory=params.RunParameters)
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
        if not 0 < self.poll.timeout_s < math.inf:  # nan too: a deadline of nan never comes
            raise errors.BadParameterError(
                f"--timeout must be a positive number of seconds, got {self.poll.timeout_s:g}", hint="e.g. 21600"
            )
        return self


@dataclass(kw_only=True)
class SubmitResult(follow.RunStatus):
    """What ``submit`` did and, with ``wait``, how the run ended (the :class:`~pipelines.follow.RunStatus` fields).

    Attributes:
        pipeline_id: the pipeline's id.
        version_id: the pipeline version's id.
        version_name: its name (``<pipeline>-<digest prefix>``).
        version_reused: True when an identical version was already uploaded.
        experiment_id: the experiment's id.
    """

    pipeline_id: str
    version_id: str
    version_name: str
    version_reused: bool
    experiment_id: str


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
    ns = settings.api.namespace
    with tempfile.TemporaryDirectory(prefix="sharedvol-") as tmp:
        package, digest = compile_package(settings.compile, Path(tmp) / "pipeline.yaml")
        api.probe()
        pipeline_id = _pipeline(api, settings, progress)
        version, reused = _version(api, settings, pipeline_id, package, digest, progress)
        tasks = follow.pipeline_tasks(package.read_bytes())
    experiment_id = _experiment(api, settings, progress)
    name = settings.run_name or time.strftime(f"{settings.pipeline_name}-%Y%m%d-%H%M%S", time.gmtime())
    run = api.write(
        "POST /runs",
        lambda c: c.run_pipeline(
            experiment_id=experiment_id,
            job_name=name,
            params=settings.params.as_dict(),
            pipeline_id=pipeline_id,
            version_id=version.pipeline_version_id,
            service_account=settings.service_account or None,
        ),
    )
    if not isinstance(getattr(run, "run_id", None), str) or not _RUN_ID.match(run.run_id):
        raise errors.KfpApiError(
            f"the KFP API answered POST /runs without a run id ({repr(getattr(run, 'run_id', None))[:80]})",
            hint="check that --host names a KFP API server (2.x) and not another service",
        )
    log.debug("run %s created in namespace %s", run.run_id, ns)
    result = SubmitResult(
        pipeline_id=pipeline_id,
        version_id=version.pipeline_version_id,
        version_name=version.name or version.display_name or "",
        version_reused=reused,
        experiment_id=experiment_id,
        run_id=run.run_id,
        run_url=run_url(settings, run.run_id),
        state=run.state or "PENDING",
    )
    progress(f"run {run.run_id} created: {result.run_url}")
    if settings.wait:
        poll, ui_url = settings.poll, settings.ui_url
        follow.follow(api, result, poll=poll, ui_url=ui_url, tasks=tasks, progress=progress, sleep=sleep, clock=clock)
    return result


def compile_package(opts: options.CompileOptions, path: Path) -> tuple[Path, str]:
    """Compile the pipeline of ``opts`` to ``path``: the file and its sha256."""
    compiled = pipeline.compile_to(opts, path)
    return compiled.path, compiled.sha256


def run_url(settings: SubmitSettings, run_id: str) -> str:
    """The run's page in the KFP UI."""
    base = (settings.ui_url or settings.api.host).rstrip("/")
    return f"{base}/#/runs/details/{run_id}"


def _pipeline(api: kfp_api.KfpApi, settings: SubmitSettings, progress: Progress) -> str:
    """The id of the pipeline named ``pipeline_name`` in the namespace, created (without versions) when missing."""
    name, ns = settings.pipeline_name, settings.api.namespace

    def find() -> kfp_server_api.V2beta1Pipeline | None:
        return api.find(
            f"GET /pipelines/names/{name}",
            lambda c: c.pipelines.pipeline_service_get_pipeline_by_name(name=name, namespace=ns),
        )

    found = find()
    if found is not None:
        return str(found.pipeline_id)
    body = kfp_server_api.V2beta1Pipeline(
        name=name,
        display_name=name,
        description="ResNet-18 on CIFAR-10 on a shared RWX volume (sharedvol)",
        namespace=ns,
    )
    created, made = _create_or_adopt(
        lambda: api.write("POST /pipelines", lambda c: c.pipelines.pipeline_service_create_pipeline(pipeline=body)),
        find,
    )
    progress(f"created pipeline {name!r}" if made else f"pipeline {name!r} was created meanwhile: using it")
    return str(created.pipeline_id)


def _version(
    api: kfp_api.KfpApi, settings: SubmitSettings, pipeline_id: str, package: Path, digest: str, progress: Progress
) -> tuple[kfp_server_api.V2beta1PipelineVersion, bool]:
    """The version named after ``digest``: found among the pipeline's versions (newest first), else uploaded."""
    name = f"{settings.pipeline_name}-{digest[:12]}"

    def find() -> kfp_server_api.V2beta1PipelineVersion | None:
        token = ""
        for _ in range(50):  # at most 5000 versions are looked through
            page = api.read(
                f"GET /pipelines/{pipeline_id}/versions",
                lambda c, t=token: c.list_pipeline_versions(  # type: ignore[misc]
                    pipeline_id, page_token=t, page_size=100, sort_by="created_at desc"
                ),
            )
            for version in page.pipeline_versions or []:
                if name in (version.name, version.display_name):
                    return version
            token = page.next_page_token or ""
            if not token:
                break
        return None

    found = find()
    if found is not None:
        progress(f"pipeline version {name} is already uploaded: reusing it")
        return found, True
    description = f"sha256:{digest}; image {settings.compile.image}; volume: {settings.compile.storage.describe()}"
    version, made = _create_or_adopt(
        lambda: api.write(
            "POST /pipelines/upload_version",
            lambda c: c.upload_pipeline_version(str(package), name, pipeline_id=pipeline_id, description=description),
        ),
        find,
    )
    progress(
        f"uploaded pipeline version {name}" if made else f"pipeline version {name} was uploaded meanwhile: using it"
    )
    return version, not made


def _create_or_adopt(create: Callable[[], T], find: Callable[[], T | None]) -> tuple[T, bool]:
    """What ``create()`` made and True; when another submit made the same thing first (HTTP 409), that one and False.

    Two submits at once both find nothing and both create: the second's 409 is not an error.

    Raises:
        KfpApiError: the create failed otherwise, or its 409 named something ``find`` does not see.
    """
    try:
        return create(), True
    except errors.KfpApiError as e:
        if getattr(e.__cause__, "status", None) != 409:
            raise
        found = find()
        if found is None:
            raise
        return found, False


def _experiment(api: kfp_api.KfpApi, settings: SubmitSettings, progress: Progress) -> str:
    """The id of the experiment with the display name ``experiment``, created when missing."""
    name, ns = settings.experiment, settings.api.namespace

    def find() -> kfp_server_api.V2beta1Experiment | None:
        try:
            return api.read("GET /experiments", lambda c: c.get_experiment(experiment_name=name, namespace=ns))
        except ValueError as e:  # kfp.Client: "No experiment is found with name ..." or "Multiple experiments ..."
            if not str(e).startswith("No experiment"):
                raise errors.KfpApiError(str(e), hint="pass --experiment with a name no other experiment has") from e
            return None

    found = find()
    if found is not None:
        return str(found.experiment_id)
    created, made = _create_or_adopt(
        lambda: api.write(
            "POST /experiments", lambda c: c.create_experiment(name, description="sharedvol runs", namespace=ns)
        ),
        find,
    )
    progress(f"created experiment {name!r}" if made else f"experiment {name!r} was created meanwhile: using it")
    return str(created.experiment_id)
