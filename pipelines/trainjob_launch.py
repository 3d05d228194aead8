"""train-resnet on several nodes, from the pipeline's train step: create the TrainJob, follow it, read the summary.

The step's pod (KFP's ``pipeline-runner`` service account: the rights of k8s/trainjob-rbac) creates the TrainJob of
:mod:`pipelines.trainjob` in its own namespace, named after the KFP run, so a retried step finds the TrainJob its
first attempt made and follows it instead of starting another. It follows the TrainJob to its end
(:mod:`pipelines.trainjob_follow`) and reads ``train/summary.json``, which rank 0 wrote on the claim this step
mounts too.

Imported inside the component's body (:mod:`pipelines.trainjob_component`); kubernetes is imported where it is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pipelines import errors, trainjob, trainjob_follow
from steps import dataplane, documents, params, schemas
from storage import errors as storage_errors
from storage import kube, validate

NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
POD_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
INSTALL_HINT = "install Kubeflow Trainer v2.0.0 and JobSet (docs/scaling-out.md), or compile with --workers 1"


def own_namespace(path: str = NAMESPACE_FILE) -> str:
    """The namespace of this pod: its service account's, as Kubernetes mounts it at ``path``.

    Raises:
        BadParameterError: ``path`` cannot be read or is empty (not in a pod).
    """
    try:
        with open(path, encoding="utf-8") as f:
            namespace = f.read().strip()
    except OSError as e:
        raise errors.BadParameterError(
            f"cannot read this pod's namespace from {path} ({e.strerror})",
            hint="the TrainJob step runs in a pod with its service account token mounted (KFP's default)",
        ) from e
    if not namespace:
        raise errors.BadParameterError(f"{path} is empty", hint="run the step in a Kubernetes pod")
    return namespace


def own_pod(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The step's own pod as (name, uid), from KFP's ``KFP_POD_NAME`` and ``KFP_POD_UID`` (the downward API).

    None when KFP did not set them or they are not a pod's name and UID: the TrainJob then gets no owner.
    """
    name, uid = env.get("KFP_POD_NAME", ""), env.get("KFP_POD_UID", "")
    if validate.SUBDOMAIN.matches(name) and POD_UID.fullmatch(uid):
        return name, uid
    return None


def plan_of(values: Mapping[str, Any], namespace: str, owner: tuple[str, str] | None = None) -> trainjob.TrainJobPlan:
    """The TrainJob of the component's inputs ``values``, in ``namespace``.

    ``values`` holds ``run_id`` (the KFP run: the TrainJob's name), ``image``, ``workers``, ``claim``,
    ``mount_path``, ``run_dir``, ``data_root``, ``gpu_count`` (GPUs per worker, a string of digits as KFP passes it),
    ``node_selector``, ``tolerations`` and the training parameters (:data:`steps.params.TRAINING`).
    """
    return trainjob.TrainJobPlan(
        name=trainjob.name_for(str(values["run_id"])),
        namespace=namespace,
        image=str(values["image"]),
        workers=int(values["workers"]),
        claim=str(values["claim"]),
        mount_path=str(values["mount_path"]),
        run_dir=str(values["run_dir"]),
        data_root=str(values["data_root"]),
        values={name: values[name] for name in params.TRAINING if name in values},
        gpus_per_worker=int(values["gpu_count"]),
        node_selector=dict(values.get("node_selector") or {}),
        tolerations=tuple(dict(t) for t in values.get("tolerations") or ()),
        owner=owner,
    )


def create(api: Any, plan: trainjob.TrainJobPlan, progress: trainjob_follow.Progress) -> Mapping[str, Any]:
    """Create the TrainJob of ``plan``; one of that name that exists already (a retried step) is taken as it is.

    Raises:
        BadParameterError: the plan cannot run (:func:`pipelines.trainjob.check`).
        ForbiddenError: the service account may not create TrainJobs (the hint names the Role).
        NotFoundError: the API server has no TrainJobs (Trainer is not installed).
        StorageError: the API server refused the TrainJob (Strict field validation: a field Trainer does not know).
    """
    from kubernetes import client

    body = trainjob.trainjob(plan)
    custom = client.CustomObjectsApi(api)
    where = (trainjob.GROUP, trainjob.VERSION, plan.namespace, trainjob.PLURAL)
    what = f"TrainJob {plan.namespace}/{plan.name}"
    try:
        obj: Mapping[str, Any] = kube.call(
            custom.create_namespaced_custom_object, f"create {what}", *where, body, field_validation="Strict"
        )
    except storage_errors.ConflictError:
        progress(f"TrainJob {plan.name} exists (made by an earlier attempt of this step): following it")
        return kube.call(custom.get_namespaced_custom_object, f"get {what}", *where, plan.name)
    except storage_errors.NotFoundError as e:
        raise storage_errors.NotFoundError(e.message, hint=INSTALL_HINT) from e
    gpus = f", {plan.gpus_per_worker} GPU each" if plan.gpus_per_worker else " on the CPU"
    progress(
        f"TrainJob {plan.name} created in {plan.namespace}: {plan.workers} workers of {plan.image}{gpus}, "
        f"claim {plan.claim} at {plan.mount_path}"
    )
    return obj


def launch(
    api: Any,
    plan: trainjob.TrainJobPlan,
    *,
    settings: trainjob_follow.FollowSettings = trainjob_follow.DEFAULTS,
    progress: trainjob_follow.Progress = lambda line: None,
) -> Mapping[str, Any]:
    """Create the TrainJob of ``plan`` (or take the one a first attempt made) and follow it until it completes.

    Returns:
        The TrainJob as last read (its ``Complete`` condition True).

    Raises:
        RunFailedError: its ``Failed`` condition, one line naming the TrainJob, the reason and the message.
        RunTimeoutError: it did not finish before ``settings.timeout_s``.
        BadParameterError, StorageError: see :func:`create` and :func:`pipelines.trainjob_follow.follow`.
    """
    with kube.reachable(f"create TrainJob {plan.namespace}/{plan.name}", api), trainjob_follow.forbidden_hint():
        create(api, plan, progress)
    return trainjob_follow.follow(api, plan.namespace, plan.name, plan.workers, settings=settings, progress=progress)


def train(
    values: Mapping[str, Any],
    *,
    api: Any = None,
    namespace: str | None = None,
    settings: trainjob_follow.FollowSettings = trainjob_follow.DEFAULTS,
    progress: trainjob_follow.Progress = lambda line: None,
) -> schemas.TrainSummary:
    """What the TrainJob variant's train step does: launch the TrainJob of ``values``, then read what it trained.

    Args:
        values: the component's inputs (:func:`plan_of`).
        api: a ``kubernetes.client.ApiClient``; default: the pod's service account.
        namespace: where the TrainJob runs; default: this pod's namespace (:func:`own_namespace`).
        settings: how long to follow it.
        progress: receives one line per change.

    Raises:
        SchemaError: the TrainJob completed but ``train/summary.json`` is missing or damaged.
        RunFailedError, RunTimeoutError, BadParameterError, StorageError: see :func:`launch`.
    """
    owner = own_pod(os.environ)
    if owner is None:
        progress("no KFP_POD_NAME/KFP_POD_UID: the TrainJob gets no owner and stays until it is deleted")
    the_plan = plan_of(values, namespace or own_namespace(), owner)
    launch(api or kube.load_api_client(), the_plan, settings=settings, progress=progress)
    summary = dataplane.RunLayout(the_plan.run_dir).summary
    return documents.read(summary, schemas.TrainSummary, missing_hint=f"rank 0 of TrainJob {the_plan.name} writes it")
