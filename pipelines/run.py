"""``sharedvol run``: the whole journey in one command, from a cluster and a KFP endpoint to metrics.

In order, each step reported through ``progress`` before the next one starts:

1. doctor: the cluster's StorageClasses and the strategy they give, Pending claims in the run's namespace, a node
   that can run train-resnet (a GPU node when it asks for GPUs), and the KFP API answering;
2. storage: the plan (``auto``: StorageClass ``sharedvol-nfs`` when installed, else another RWX class, else
   ``sharedvol-hostpath`` when its provisioner runs, else a one-shot static PV made now by :mod:`storage.apply`,
   pre-bound to a claim and waited on until Bound);
3. compile, upload or reuse, start the run, follow it with progress, read the metrics (:func:`pipelines.submit.submit`).

Nothing is created before every check has passed. A dynamic class makes each run's claim inside the pipeline
(create-volume) and deletes it at the end; the one-shot static claim is made once, reused by later runs (each run
writes under ``runs/<run id>/``, the dataset is prepared once) and kept until ``sharedvol release``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipelines import errors, kfp_api, options, run_storage, submit
from storage import choice as storage_choice
from storage import classes as storage_classes
from storage import doctor as storage_doctor
from storage import errors as storage_errors
from storage import nodes as storage_nodes
from storage import plan as storage_plan
from storage import validate as storage_validate

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "kubeflow"
DEFAULT_CLAIM = "sharedvol-runs"

Progress = Callable[[str], None]


StorageUnavailableError = errors.StorageUnavailableError
NoTrainingNodeError = errors.NoTrainingNodeError


@dataclass(frozen=True)
class RunSettings:
    """One ``sharedvol run``.

    Attributes:
        submit: the KFP endpoint, compile choices, run parameters and how to follow (as ``sharedvol submit``).
            ``submit.compile.storage`` is replaced by what ``storage`` gives.
        storage: where the volume comes from (:mod:`storage.choice`): ``auto`` detects (a class, else a
            one-shot hostPath PV made now); a class is checked (it exists and serves RWX; ``sharedvol-hostpath``
            also needs its provisioner running); ``pvc:NAME`` is checked (it exists and is RWX); ``static`` and
            ``nfs:SERVER:/PATH`` make a PV now; ``static:PV`` is used as given. Default ``auto``.
        kubeconfig: kubeconfig file; None: ``$KUBECONFIG``, in-cluster, ``~/.kube/config``.
        context: kubeconfig context; None: the current one.
        claim_name: the claim made for the ``static`` strategy (``PersistentVolumeClaim.metadata.name``).
            Default ``sharedvol-runs``.
        host_path_base: base directory on the node for a static hostPath PV. Default ``/var/lib/sharedvol``.
        node: the node that holds a static hostPath PV; None: a Ready node train-resnet can run on (a GPU node
            when it asks for GPUs).
        bind_timeout_s: seconds to wait for the static claim to be Bound. Default 120.
    """

    submit: submit.SubmitSettings
    storage: storage_choice.Choice = storage_choice.AUTO
    kubeconfig: str | None = None
    context: str | None = None
    claim_name: str = DEFAULT_CLAIM
    host_path_base: str = storage_plan.DEFAULT_BASE
    node: str | None = None
    bind_timeout_s: float = 120.0

    @property
    def namespace(self) -> str:
        """Where the run's pods and claims live: the KFP namespace, else ``kubeflow`` (single-user KFP)."""
        return self.submit.api.namespace or DEFAULT_NAMESPACE

    def validate(self) -> RunSettings:
        """Check everything that can be checked before talking to a server; return self."""
        self.submit.validate()
        storage_validate.name(self.claim_name, "--claim-name")
        if self.bind_timeout_s <= 0:
            raise errors.BadParameterError(f"--bind-timeout must be positive, got {self.bind_timeout_s:g}", hint="120")
        return self


@dataclass
class RunResult:
    """What ``run`` found, made and started.

    Attributes:
        namespace: the run's namespace.
        doctor_strategy: the strategy doctor reported (``dynamic``/``static``/``existing``, ``none`` or ``unknown``).
        plan: the storage plan carried out (None when an explicit choice could not be checked).
        storage: what the compiled pipeline does for its volume.
        created: ``Kind/name`` of what ``run`` created before submitting, in order.
        training_nodes: the Ready nodes train-resnet can run on (empty when nodes could not be listed).
        submitted: the submission and, when followed, how the run ended and its metrics.
        notes: what the user should know (a kept volume, skipped checks).
    """

    namespace: str
    doctor_strategy: str
    plan: storage_plan.Plan | None
    storage: options.StorageChoice
    created: list[str]
    training_nodes: list[str]
    submitted: submit.SubmitResult
    notes: list[str] = field(default_factory=list)


def run(
    settings: RunSettings,
    *,
    progress: Progress = lambda line: None,
    api: Any = None,
    kfp: kfp_api.KfpApi | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Check, choose storage, create it when needed, then compile, submit and follow the run.

    Args:
        settings: what to run and where.
        progress: receives one line per step, as it happens.
        api: a ``kubernetes.client.ApiClient``; default from ``settings.kubeconfig``/``context``.
        kfp: the KFP API client; default from ``settings.submit.api``.
        sleep: how to wait between polls of the run (tests pass a no-op).

    Raises:
        BadParameterError, InvalidRequestError: bad settings (before any request).
        StorageUnavailableError: no usable storage and none could be made (nothing is left half-made).
        NoTrainingNodeError: no Ready node can run train-resnet.
        StorageError: the cluster refused a check (e.g. no permission to list StorageClasses).
        KfpApiError, RunFailedError, RunTimeoutError: as ``sharedvol submit``.
    """
    from storage import kube

    settings.validate()
    ns = settings.namespace
    cluster = api if api is not None else kube.load_api_client(settings.kubeconfig, settings.context)
    client = kfp or kfp_api.KfpApi(settings.submit.api, sleep=sleep)
    client.kube = cluster  # a failed task's reason from its pod's log: the KFP API names no pod
    notes: list[str] = []

    strategy = _doctor(cluster, ns, progress, notes)
    nodes = _training_nodes(cluster, settings, progress, notes)
    client.probe()
    progress(f"doctor: the KFP API at {settings.submit.api.base} answers")

    choice, p, created = run_storage.volume(cluster, settings, nodes, progress, notes)
    compile_opts = dataclasses.replace(settings.submit.compile, storage=choice)
    progress(f"pipeline: image {compile_opts.image}; volume: {choice.describe()}")
    submitted = submit.submit(
        dataclasses.replace(settings.submit, compile=compile_opts), progress=progress, api=client, sleep=sleep
    )
    if choice.strategy == "existing" and created:
        notes.append(
            f"claim {ns}/{choice.existing_pvc} stays for the next runs; free it with "
            f"`sharedvol release {choice.existing_pvc} -n {ns}`"
        )
    return RunResult(ns, strategy, p, choice, created, nodes, submitted, notes)


def _doctor(api: Any, ns: str, progress: Progress, notes: list[str]) -> str:
    """Doctor's view of the cluster, as progress lines; its strategy (``unknown`` when not allowed to look)."""
    try:
        report = storage_doctor.diagnose(api, ns)
    except storage_errors.ForbiddenError as e:
        progress(f"doctor: skipped ({e.message})")
        notes.append("doctor could not inspect the cluster with these credentials; `sharedvol doctor` as an admin can")
        return "unknown"
    found = ", ".join(f"{c.name} ({c.provisioner}, RWX {c.rwx})" for c in report.classes) or "none"
    progress(f"doctor: StorageClasses: {found}")
    names = {c.name for c in report.classes}
    for name, kustomization in (
        (storage_classes.NFS_CLASS, "k8s/nfs"),
        (storage_classes.FALLBACK_CLASS, "k8s/fallback"),
    ):
        if name not in names:
            progress(f"doctor: {name} is not installed (kubectl apply -k {kustomization})")
    progress(f"doctor: a run gets: {report.strategy} ({'; '.join(report.strategy_reasons)})")
    for d in report.pending:
        progress(f"doctor: Pending claim {d.namespace}/{d.name}: {d.explanation}; fix: {d.fix}")
    return report.strategy


def _training_nodes(api: Any, settings: RunSettings, progress: Progress, notes: list[str]) -> list[str]:
    """Ready nodes matching train-resnet's node selector and offering its GPUs (empty: could not list nodes).

    Raises:
        NoTrainingNodeError: nodes could be listed and none fits.
    """
    selector = settings.submit.compile.node_selector
    gpus = settings.submit.params.gpu_count
    try:
        ready = storage_nodes.list_ready(api)
    except storage_errors.ForbiddenError:
        progress("doctor: nodes: not allowed to list them; not checked")
        notes.append("could not check that a node fits train-resnet (no permission to list nodes)")
        return []
    matching = [n for n in ready if all((n.metadata.labels or {}).get(k) == v for k, v in selector.items())]
    wanted = " matching " + ",".join(f"{k}={v}" for k, v in selector.items()) if selector else ""
    if not matching:
        listed = ", ".join(n.metadata.name for n in ready) or "none"
        raise NoTrainingNodeError(
            f"no Ready node{wanted} for train-resnet (Ready nodes: {listed})",
            hint="fix --node-selector (kubectl get nodes --show-labels), or join a node",
        )
    fitting = [n for n in matching if _gpus(n) >= gpus] if gpus > 0 else matching
    if not fitting:
        raise NoTrainingNodeError(
            f"train-resnet asks for {gpus} {options.GPU_RESOURCE} and no Ready node{wanted} offers that many",
            hint="install the NVIDIA device plugin (or GPU operator) so the GPU node reports nvidia.com/gpu, "
            "or pass --gpus 0 to train on the CPU",
        )
    names = sorted(n.metadata.name for n in fitting)
    what = f" with {gpus} {options.GPU_RESOURCE}" if gpus > 0 else ""
    progress(f"doctor: nodes for train-resnet{what}{wanted}: {', '.join(names)}")
    return names


def _gpus(node: Any) -> int:
    value = ((node.status.allocatable or {}) if node.status else {}).get(options.GPU_RESOURCE, "0")
    try:
        return int(value)
    except ValueError:
        return 0
