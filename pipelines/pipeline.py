"""The ``resnet18-cifar10`` KFP v2 pipeline, for a cluster and for ``kfp.local``.

On a cluster::

    create-volume (CreatePVC, RWX, explicit class) -> prepare-data -> train-resnet (GPU) -> test-resnet
        -> produce-metrics -> delete-volume (DeletePVC, skipped when keep_volume)

Every step mounts the claim at ``/mnt/shared`` and works in ``/mnt/shared/runs/<run>``; caching is off on
every task (they all touch the volume). The workspace variant (``CompileOptions.workspace``) uses KFP's own
per-run workspace instead of create-volume/delete-volume: KFP makes the claim (ReadWriteMany, the planned
class) and mounts it at ``/kfp-workspace`` in every step. The local variant has the same parameters and the same
components, without the two volume tasks and the Kubernetes settings (``kfp.local`` cannot run CreatePVC
and ignores the rest): a local directory stands in for the volume. The TrainJob variant
(``CompileOptions.workers`` 2 or more) runs train-resnet as a Kubeflow Trainer TrainJob of that many pods: its
train-resnet task (:mod:`pipelines.trainjob_component`) asks for no GPU itself, creates the TrainJob with the run's
claim, the image, the GPUs, the node selector and the tolerations, and follows it to its end.

The pipeline function's parameters are :class:`pipelines.params.RunParameters`' fields (its signature is
built from that table), and each component task gets the ones among its inputs by name. No
``from __future__ import annotations``: KFP reads the pipeline function's annotations as objects.
"""

import contextlib
import dataclasses
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

from kfp import compiler, dsl, kubernetes
from kfp.dsl.graph_component import GraphComponent
from kfp.dsl.pipeline_channel import PipelineChannel

from pipelines import components, errors, options, params, trainjob_component

PIPELINE_NAME = "resnet18-cifar10"
DESCRIPTION = (
    "ResNet-18 on CIFAR-10 with mmcls + mmengine: prepare-data, train-resnet, test-resnet and produce-metrics "
    "exchange checkpoints and eval_result.json on a shared ReadWriteMany volume (sharedvol)."
)
PVC_SUFFIX = "-sharedvol"
PVC_ANNOTATIONS = {"sharedvol.io/pipeline": PIPELINE_NAME}


def build(opts: options.CompileOptions) -> GraphComponent:
    """The cluster pipeline for ``opts`` (a KFP graph component, ready to compile)."""
    opts.validate()
    return _define(opts, local_volume=None)


def build_local(volume: str, opts: options.CompileOptions | None = None) -> GraphComponent:
    """The same pipeline for ``kfp.local``, with the local directory ``volume`` as the shared volume."""
    opts = opts or options.CompileOptions()
    opts.defaults.validate()
    return _define(opts, local_volume=volume)


def _define(opts: options.CompileOptions, *, local_volume: str | None) -> GraphComponent:
    comps = components.build(opts.image)
    volume = local_volume if local_volume is not None else opts.mount_path
    if local_volume is None and opts.workspace:
        volume = dsl.WORKSPACE_PATH_PLACEHOLDER

    signature = params.signature(opts.defaults)

    def resnet18_cifar10(*args: Any, **kwargs: Any) -> None:
        p = signature.bind(*args, **kwargs).arguments  # parameter name -> pipeline channel
        volume_size, gpu_count, keep_volume = p["volume_size"], p["gpu_count"], p["keep_volume"]
        claim: _Claim | None = None
        if local_volume is None and not opts.workspace:
            claim = _create_volume(opts.storage, volume_size)

        prepare = comps.prepare_data(
            volume=volume,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            **params.task_arguments(components.prepare_data, p),
        ).set_display_name("prepare-data")
        run_dir, data_root = prepare.outputs["run_dir"], prepare.outputs["data_root"]
        if local_volume is None and opts.trainjob and claim is not None:
            train = _train_trainjob(comps, opts, p, run_dir, data_root, claim)
        else:
            train = comps.train_resnet(
                run_dir=run_dir, data_root=data_root, **params.task_arguments(components.train_resnet, p)
            ).set_display_name("train-resnet")
        test = (
            comps.test_resnet(run_dir=run_dir, data_root=data_root, **params.task_arguments(components.test_resnet, p))
            .set_display_name("test-resnet")
            .after(train)
        )
        produce = comps.produce_metrics(run_dir=run_dir).set_display_name("produce-metrics").after(test)
        steps = (prepare, train, test, produce)
        for task in steps:
            task.set_caching_options(False)
        if local_volume is not None:
            return

        train.set_retry(opts.train_retries, backoff_duration="30s", backoff_factor=2.0)
        if not opts.trainjob:  # the TrainJob's workers ask for the GPUs, on the nodes chosen for them
            train.set_accelerator_type(options.GPU_RESOURCE).set_accelerator_limit(gpu_count)
            for key, value in opts.node_selector.items():
                kubernetes.add_node_selector(train, label_key=key, label_value=value)
            for tol in opts.tolerations:
                kubernetes.add_toleration(
                    train, key=tol.key, operator=tol.operator, value=tol.value or None, effect=tol.effect or None
                )
        if claim is None:  # the workspace: KFP mounts it in every step that names its path
            return
        for task in steps:
            kubernetes.mount_pvc(task, pvc_name=claim.name, mount_path=opts.mount_path)  # also .after(create)
        if claim.task is not None:
            with dsl.If(keep_volume == False, name="unless-keep-volume"):  # noqa: E712 (a pipeline condition)
                kubernetes.DeletePVC(pvc_name=claim.name).set_display_name("delete-volume").set_caching_options(
                    False
                ).after(produce)

    resnet18_cifar10.__signature__ = signature  # type: ignore[attr-defined]
    resnet18_cifar10.__annotations__ = {n: x.annotation for n, x in signature.parameters.items()} | {"return": None}
    return dsl.pipeline(
        resnet18_cifar10,
        name=PIPELINE_NAME,
        description=DESCRIPTION,
        pipeline_config=_pipeline_config(opts, local_volume),
    )


def _pipeline_config(opts: options.CompileOptions, local_volume: str | None) -> dsl.PipelineConfig | None:
    """The cluster pipeline's config (None locally, or when it has nothing to say).

    A succeeded run's TTL (its pods go, and its deleted claim with them), and KFP's per-run workspace for the
    workspace variant (ReadWriteMany, the planned class).
    """
    if local_volume is not None:
        return None
    workspace = None
    if opts.workspace:
        workspace = dsl.WorkspaceConfig(
            size=opts.defaults.volume_size,
            kubernetes=dsl.KubernetesWorkspaceConfig(
                pvcSpecPatch={
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": opts.storage.storage_class,
                }
            ),
        )
    ttl = opts.ttl_after_success_s or None
    if workspace is None and ttl is None:
        return None
    return dsl.PipelineConfig(workspace=workspace, ttl_seconds_after_success=ttl)


@dataclasses.dataclass(frozen=True)
class _Claim:
    name: str | PipelineChannel  # the claim name: a constant or create-volume's output
    task: dsl.PipelineTask | None  # create-volume, or None for an existing claim


def _create_volume(storage: options.StorageChoice, size: PipelineChannel) -> _Claim:
    if storage.strategy == "existing":
        return _Claim(name=storage.existing_pvc, task=None)
    static = {"volume_name": storage.static_pv} if storage.strategy == "static" else {}
    create = kubernetes.CreatePVC(
        access_modes=["ReadWriteMany"],
        size=size,
        pvc_name_suffix=PVC_SUFFIX,
        storage_class_name=storage.storage_class,  # always explicit: absent means "standard" to the driver
        annotations=PVC_ANNOTATIONS,
        **static,
    )
    create.set_display_name("create-volume").set_caching_options(False)
    return _Claim(name=create.outputs["name"], task=create)


def _train_trainjob(
    comps: components.Components,
    opts: options.CompileOptions,
    p: dict[str, Any],
    run_dir: PipelineChannel,
    data_root: PipelineChannel,
    claim: _Claim,
) -> dsl.PipelineTask:
    """train-resnet as a TrainJob of ``opts.workers`` pods that mount the run's claim (``claim.name``)."""
    return comps.train_resnet_trainjob(
        run_dir=run_dir,
        data_root=data_root,
        workers=opts.workers,
        image=opts.image,
        claim=claim.name,
        mount_path=opts.mount_path,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        node_selector=dict(opts.node_selector),
        tolerations=[tol.fields() for tol in opts.tolerations],
        **params.task_arguments(trainjob_component.train_resnet, p),
    ).set_display_name("train-resnet")


@dataclasses.dataclass(frozen=True)
class CompileResult:
    """What ``compile`` wrote.

    Attributes:
        path: the pipeline YAML.
        sha256: its digest (``submit`` names pipeline versions by it).
        image: the step image the components run in.
        storage: one line on where the volume comes from.
    """

    path: Path
    sha256: str
    image: str
    storage: str


def compile_to(opts: options.CompileOptions, path: Path) -> CompileResult:
    """Compile the cluster pipeline for ``opts`` into ``path`` (YAML: pipeline spec + Kubernetes platform spec).

    The YAML is written beside ``path`` under a fresh name, then renamed over it: a full disk or a kill leaves the
    previous file whole, and a FIFO or a link at ``path`` is replaced, never written through.

    Raises:
        BadParameterError: ``path`` is not a .yaml file's name, or something other than a file is there.
        OSError: the file cannot be written (the command line reports it in one line).
    """
    if path.suffix not in (".yaml", ".yml"):
        raise errors.BadParameterError(
            f"-o {str(path)[:200]!r} does not name a .yaml file", hint="e.g. -o pipeline.yaml"
        )
    if os.path.lexists(path) and not (path.is_file() and not path.is_symlink()):
        raise errors.BadParameterError(
            f"-o {str(path)[:200]!r} exists and is not a regular file", hint="name a new file, or a file to replace"
        )
    pipeline = build(opts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        compiler.Compiler().compile(pipeline, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return CompileResult(
        path=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        image=opts.image,
        storage=opts.storage.describe(),
    )
