"""The TrainJob that runs train-resnet on several nodes: Kubeflow Trainer v2.0.0's API, as a pure spec builder.

Kubeflow Trainer's ``torch-distributed`` ClusterTrainingRuntime runs ``numNodes`` pods of one JobSet replicated job
(``node``) and sets ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR`` and
``PET_MASTER_PORT`` in the trainer container, which torchrun reads as its own flags. The TrainJob here runs the step
image's train-resnet (``python -m pipelines train``: ``sharedvol train``) under torchrun, one rank per GPU (one
per pod on the CPU), and mounts the run's claim in every pod at the same path through ``podSpecOverrides`` (the
v2.0.0 name of that field), so every rank reads and rank 0 publishes on the same volume (:mod:`steps.distributed`).

Pure: nothing here talks to a cluster; :func:`trainjob` returns the object to create.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines import errors
from steps import params, schemas

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "trainjobs"
POD_LABEL = "jobset.sigs.k8s.io/jobset-name"  # on every pod of the TrainJob's JobSet (named as the TrainJob)
RUNTIME = "torch-distributed"  # the ClusterTrainingRuntime scripts/trainer/build.sh renders
NODE = "node"  # the runtime's replicated job and its trainer container
VOLUME = "sharedvol"  # the name of the claim's volume in the trainer pods
MIN_WORKERS = 2
NAME_PREFIX = "train-"
NAME_MAX = 40  # JobSet's pods are <name>-node-0-<i>-<5 chars>, which must stay within 63 characters


@dataclass(frozen=True)
class TrainJobPlan:
    """What one distributed train-resnet needs.

    Attributes:
        name: the TrainJob's name (a DNS label; its pods are ``<name>-node-0-<i>``).
        namespace: where it runs (the run's namespace, beside the claim).
        image: the step image (holds ``sharedvol`` and torchrun).
        workers: pods (at least 2): one rank each on the CPU, one per GPU with ``gpus_per_worker``.
        claim: the run's PersistentVolumeClaim (ReadWriteMany: every pod mounts it).
        mount_path: where each pod mounts it (the path the run directory and the data are under).
        run_dir, data_root: train-resnet's ``--run-dir`` and ``--data-root`` (under ``mount_path``).
        values: the step parameters of :data:`steps.params.TRAINING`, as the table names them.
        gpus_per_worker: ``nvidia.com/gpu`` each pod asks for (0: CPU, gloo).
        node_selector: ``Pod.spec.nodeSelector`` of every worker (``podSpecOverrides[].nodeSelector``). Default none.
        tolerations: ``Pod.spec.tolerations`` of every worker (``podSpecOverrides[].tolerations``), each a
            toleration's fields. Default none.
        owner: the train step's pod, as (name, uid): the TrainJob's ``metadata.ownerReferences``, so Kubernetes'
            garbage collector deletes it, and its pods, which hold the run's claim, once the step's pod goes (a
            succeeded run's Workflow TTL: ``--ttl-after-success``). None: no owner (it stays until deleted).
    """

    name: str
    namespace: str
    image: str
    workers: int
    claim: str
    mount_path: str
    run_dir: str
    data_root: str
    values: Mapping[str, Any]
    gpus_per_worker: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, str], ...] = ()
    owner: tuple[str, str] | None = None


def name_for(run_id: str) -> str:
    """The TrainJob's name for the KFP run ``run_id``: ``train-<run id>``, a DNS-1035 label of at most 40 characters.

    One name per run, so a retried task finds the TrainJob its first attempt made instead of starting another.

    Raises:
        BadParameterError: ``run_id`` holds no letter or digit.
    """
    stem = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")
    if not stem:
        raise errors.BadParameterError(f"run id {run_id!r} cannot name a TrainJob", hint="pass the KFP run id")
    return (NAME_PREFIX + stem)[:NAME_MAX].rstrip("-")


def train_arguments(plan: TrainJobPlan) -> list[str]:
    """``sharedvol train``'s arguments: the run directory, the data, then each training parameter by its flag."""
    argv = ["--run-dir", plan.run_dir, "--data-root", plan.data_root]
    for f in params.fields(params.StepParams, params.TRAINING):
        value = plan.values[f.name]
        argv += [params.meta(f).flag, str(value)]
    return argv


def command(plan: TrainJobPlan) -> list[str]:
    """The trainer container's command: torchrun (nodes and rank from ``PET_*``) running ``sharedvol train``."""
    return ["torchrun", "-m", "pipelines", "train", *train_arguments(plan)]


def check(plan: TrainJobPlan) -> None:
    """Refuse a plan that cannot run.

    Raises:
        BadParameterError: fewer than two workers, a negative GPU count, a training parameter missing, or a run
            directory or data outside the mounted claim.
    """
    if plan.workers < MIN_WORKERS:
        raise errors.BadParameterError(
            f"a TrainJob needs at least {MIN_WORKERS} workers, got {plan.workers}",
            hint="pass --workers 2 or more, or leave --workers at 1 for the single-GPU train step",
        )
    if plan.gpus_per_worker < 0:
        raise errors.BadParameterError(f"GPUs per worker must be 0 or more, got {plan.gpus_per_worker}", hint="e.g. 1")
    missing = [name for name in params.TRAINING if name not in plan.values]
    if missing:
        raise errors.BadParameterError(
            f"the TrainJob lacks training parameters: {', '.join(missing)}", hint="pass every train-resnet parameter"
        )
    root = plan.mount_path.rstrip("/") + "/"
    for flag, path in (("--run-dir", plan.run_dir), ("--data-root", plan.data_root)):
        if not path.startswith(root):
            raise errors.BadParameterError(
                f"{flag} {path} is not on the claim mounted at {plan.mount_path}",
                hint="every worker sees only the claim: keep the run directory and the data on it",
            )


def trainjob(plan: TrainJobPlan) -> dict[str, Any]:
    """The TrainJob object of ``plan`` (``trainer.kubeflow.org/v1alpha1``, Kubeflow Trainer v2.0.0).

    Raises:
        BadParameterError: see :func:`check`.
    """
    check(plan)
    trainer: dict[str, Any] = {
        "image": plan.image,
        "command": command(plan),
        "numNodes": plan.workers,
        "numProcPerNode": max(1, plan.gpus_per_worker),  # one rank per GPU; on the CPU one per pod
    }
    if plan.gpus_per_worker:
        gpus = {"nvidia.com/gpu": plan.gpus_per_worker}
        trainer["resourcesPerNode"] = {"limits": gpus, "requests": gpus}
    override: dict[str, Any] = {
        "targetJobs": [{"name": NODE}],
        "volumes": [{"name": VOLUME, "persistentVolumeClaim": {"claimName": plan.claim}}],
        "containers": [{"name": NODE, "volumeMounts": [{"name": VOLUME, "mountPath": plan.mount_path}]}],
    }
    if plan.node_selector:
        override["nodeSelector"] = dict(plan.node_selector)
    if plan.tolerations:
        override["tolerations"] = [dict(t) for t in plan.tolerations]
    metadata: dict[str, Any] = {
        "name": plan.name,
        "namespace": plan.namespace,
        "labels": {"app.kubernetes.io/part-of": "sharedvol"},
    }
    if plan.owner is not None:
        # not blockOwnerDeletion: that needs the rights to update the pod's finalizers, which the step lacks
        name, uid = plan.owner
        metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}]
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": metadata,
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": RUNTIME},
            "trainer": trainer,
            "podSpecOverrides": [override],
        },
    }


MAX_CONDITIONS = 16  # Trainer v2.0.0 sets four types; more is not a TrainJob it made
REASON_CHARS = 80
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Condition:
    """One entry of a TrainJob's ``status.conditions`` as read from the cluster: each text one printable line."""

    type: str
    status: str
    reason: str
    message: str


def conditions(obj: object) -> list[Condition]:
    """The ``status.conditions`` of the TrainJob ``obj`` (as the API server returns it), typed and bounded.

    Anything read from the cluster is untrusted: a ``status`` or an entry that is not an object counts as none, a
    field that is not a string as empty, each text is one printable line (reason :data:`REASON_CHARS`, message
    :data:`MESSAGE_CHARS` characters), and only the first :data:`MAX_CONDITIONS` entries are read.
    """
    status = obj.get("status") if isinstance(obj, Mapping) else None
    raw = status.get("conditions") if isinstance(status, Mapping) else None
    if not isinstance(raw, list):
        return []
    return [
        Condition(
            _text(c.get("type"), 40) or "?",
            _text(c.get("status"), 20) or "Unknown",
            _text(c.get("reason"), REASON_CHARS),
            _text(c.get("message"), MESSAGE_CHARS),
        )
        for c in raw[:MAX_CONDITIONS]
        if isinstance(c, Mapping)
    ]


def _text(value: object, limit: int) -> str:
    return schemas.printable(" ".join(value.split()), limit) if isinstance(value, str) else ""


def finished(obj: Mapping[str, Any], name: str) -> bool:
    """Whether TrainJob ``name``, ``obj`` as the API server returns it, completed; False while it runs or waits.

    Reads ``status.conditions`` as Trainer v2.0.0 sets them (:func:`conditions`): ``Complete`` or ``Failed`` True
    ends the job.

    Raises:
        RunFailedError: the TrainJob failed, with its reason and message.
    """
    by_type = {c.type: c for c in conditions(obj)}
    failed = by_type.get("Failed")
    if failed and failed.status == "True":
        raise errors.RunFailedError(
            f"TrainJob {name} failed: {failed.reason or 'Failed'}" + (f": {failed.message}" if failed.message else ""),
            hint=f"see kubectl describe trainjob {name} and its pods' logs ({POD_LABEL}={name})",
        )
    complete = by_type.get("Complete")
    return bool(complete and complete.status == "True")
