"""``sharedvol run``: the whole journey in one command, from a cluster and a KFP endpoint to metrics.

In order, each step reported through ``progress`` before the next one starts:

1. doctor: the cluster's StorageClasses and the strategy they give, Pending claims in the run's namespace, a node
   that can run train-resnet (a GPU node when it asks for GPUs), and the KFP API answering;
2. storage: the plan (``auto``: StorageClass ``sharedvol-nfs`` when installed and not found broken, else another
   RWX class, else ``sharedvol-hostpath`` when its provisioner runs, else a one-shot static PV made now by
   :mod:`storage.apply`, pre-bound to a claim and waited on until Bound);
3. compile, upload or reuse, start the run, follow it with progress, read the metrics (:func:`pipelines.submit.submit`).

Nothing is created before every check has passed. A dynamic class makes each run's claim inside the pipeline
(create-volume) and deletes it at the end; the one-shot static claim is made once, reused by later runs (each run
writes under ``runs/<run id>/``, the dataset is prepared once) and kept until ``sharedvol release``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client as kube_client

from pipelines import errors, kfp_api, options, run_storage, submit
from storage import choice as storage_choice
from storage import kube
from storage import plan as storage_plan
from storage import validate as storage_validate

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "kubeflow"
DEFAULT_CLAIM = "sharedvol-runs"

Progress = Callable[[str], None]


StorageUnavailableError = errors.StorageUnavailableError
NoTrainingNodeError = errors.NoTrainingNodeError  # the errors run raises, where its callers look for them


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
        if not 0 < self.bind_timeout_s < math.inf:  # nan too
            raise errors.BadParameterError(
                f"--bind-timeout must be a positive number of seconds, got {self.bind_timeout_s:g}", hint="120"
            )
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
    api: kube_client.ApiClient | None = None,
    kfp: kfp_api.KfpApi | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Check, choose storage, create it when needed, then compile, submit and follow the run.

    Storage is one call down (:func:`pipelines.run_storage.volume`, over :func:`storage.provide.provide`):
    doctor's survey and a node for train-resnet, then this run's own check (the KFP API answers), then the
    plan and the volume it makes. Then compile, submit and follow (:func:`pipelines.submit.submit`).

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
        StorageError: the cluster refused a check, or did not answer (one line).
        KfpApiError, RunFailedError, RunTimeoutError: as ``sharedvol submit``.
    """
    settings.validate()
    ns = settings.namespace
    cluster = api if api is not None else kube.load_api_client(settings.kubeconfig, settings.context)
    client = kfp or kfp_api.KfpApi(settings.submit.api, sleep=sleep)
    client.kube = cluster  # a failed task's reason from its pod's log: the KFP API names no pod

    def kfp_answers() -> None:
        client.probe()
        progress(f"doctor: the KFP API at {settings.submit.api.base} answers")

    compile_opts = settings.submit.compile
    wanted = run_storage.Wanted(
        storage=settings.storage,
        namespace=ns,
        claim_name=settings.claim_name,
        size=settings.submit.params.volume_size,
        host_path_base=settings.host_path_base,
        node=settings.node,
        bind_timeout_s=settings.bind_timeout_s,
        image=compile_opts.image,
        node_selector=dict(compile_opts.node_selector),
        gpus=settings.submit.params.gpu_count,
    )
    got = run_storage.volume(cluster, wanted, kfp_answers, progress)
    compile_opts = dataclasses.replace(compile_opts, storage=got.choice)
    progress(f"pipeline: image {compile_opts.image}; volume: {got.choice.describe()}")
    submitted = submit.submit(
        dataclasses.replace(settings.submit, compile=compile_opts), progress=progress, api=client, sleep=sleep
    )
    notes = list(got.notes)
    if got.choice.strategy == "existing" and got.created:
        notes.append(
            f"claim {ns}/{got.choice.existing_pvc} stays for the next runs; free it with "
            f"`sharedvol release {got.choice.existing_pvc} -n {ns}`"
        )
    return RunResult(ns, got.strategy, got.plan, got.choice, got.created, got.nodes, submitted, notes)
