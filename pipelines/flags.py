"""The flags ``compile``, ``submit`` and ``run`` share, and how they are read into options.

Three groups: the image and scheduling (fixed in the YAML), the volume (``--storage``, one grammar:
:mod:`storage.choice`) and the run parameters (one table: :mod:`pipelines.params`). The old volume flags
``--storage-class``, ``--existing-pvc`` and ``--static-pv`` still work as deprecated spellings of
``--storage`` and print a one-line note saying so.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelines import errors, options, params
from steps import params as steps_params
from storage import choice

STORAGE_METAVAR = "SPEC"
STORAGE_HELP = f"where the volume comes from: {choice.GRAMMAR} (docs/pipeline.md)"
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
DEPRECATED = {  # old flag -> how --storage says it
    "--storage-class": "--storage CLASS (with --static-pv: --storage static:PV:CLASS)",
    "--existing-pvc": "--storage pvc:NAME",
    "--static-pv": "--storage static:PV",
}


def kfp_args(p: argparse.ArgumentParser, *, namespace: str) -> None:
    """The KFP endpoint and the run's names (submit and run); ``namespace``: the help of ``--namespace``."""
    p.add_argument(
        "--host",
        default=os.environ.get("KF_PIPELINES_ENDPOINT", ""),
        help="KFP endpoint, e.g. http://localhost:8080 after port-forwarding svc/ml-pipeline-ui "
        f"(env KF_PIPELINES_ENDPOINT; in a pod: {IN_CLUSTER_HOST})",
    )
    p.add_argument("--namespace", help=namespace)
    p.add_argument("--token", help="KFP bearer token; default: the in-cluster KFP service-account token when mounted")
    p.add_argument("--experiment", default="sharedvol", help="experiment display name (created when missing)")
    p.add_argument("--pipeline-name", default="resnet18-cifar10", help="pipeline name in KFP")
    p.add_argument("--run-name", default="", help="run display name (default <pipeline>-<UTC time>)")
    p.add_argument("--service-account", default="", help="service account of the run's pods (default KFP's)")
    p.add_argument(
        "--timeout", type=float, default=6 * 3600.0, metavar="SECONDS", help="seconds to follow the run (default 21600)"
    )
    p.add_argument(
        "--ui-url",
        default="",
        help="KFP UI base URL: the run link, and the metrics from its ML Metadata proxy (default --host)",
    )


def kfp_host(args: argparse.Namespace) -> str:
    """``--host``, else the in-cluster KFP address inside a pod.

    Raises:
        BadParameterError: neither.
    """
    host = str(args.host or (IN_CLUSTER_HOST if os.environ.get("KUBERNETES_SERVICE_HOST") else ""))
    if not host:
        raise errors.BadParameterError(
            "no --host",
            hint="pass --host http://localhost:8080 after kubectl port-forward, or set KF_PIPELINES_ENDPOINT",
        )
    return host


def image_args(p: argparse.ArgumentParser) -> None:
    """The flags fixed in the YAML: image, scheduling, retries, the succeeded run's TTL and the workers."""
    g = p.add_argument_group("image and scheduling (fixed in the YAML)")
    g.add_argument(
        "--image",
        default=os.environ.get("SHAREDVOL_IMAGE", options.DEFAULT_IMAGE),
        help=f"step image of every component; env SHAREDVOL_IMAGE (default {options.DEFAULT_IMAGE})",
    )
    g.add_argument(
        "--node-selector", action="append", default=[], metavar="KEY=VALUE", help="train-resnet node selector"
    )
    g.add_argument(
        "--toleration",
        action="append",
        default=[],
        metavar="KEY[=VALUE][:EFFECT]",
        help="extra train-resnet toleration (nvidia.com/gpu:NoSchedule is always there)",
    )
    g.add_argument(
        "--train-retries", type=int, default=2, metavar="N", help="retries of train-resnet, which resumes (default 2)"
    )
    g.add_argument(
        "--ttl-after-success",
        type=int,
        default=options.DEFAULT_TTL_S,
        metavar="SECONDS",
        help="seconds a succeeded run's pods stay; their going frees the run's deleted volume, the run and its "
        f"metrics stay in the UI; 0: the cluster's own TTL (default {options.DEFAULT_TTL_S})",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="train-resnet's nodes: 1 trains in the step's pod; 2 or more run a Kubeflow Trainer TrainJob of N "
        "nodes, each with --gpus GPUs (docs/scaling-out.md) (default 1)",
    )


def workspace_arg(p: argparse.ArgumentParser) -> None:
    """``--workspace`` (compile and submit): KFP's own per-run workspace instead of create-volume/delete-volume."""
    p.add_argument(
        "--workspace",
        action="store_true",
        help="use KFP's own per-run workspace (KFP >= 2.15: ReadWriteMany, the chosen class, at /kfp-workspace) "
        "instead of create-volume/delete-volume",
    )


def storage_args(p: argparse.ArgumentParser, *, default: str) -> None:
    """``--storage SPEC`` with its ``default``, the deprecated volume flags, and the cluster access ``auto`` needs."""
    g = p.add_argument_group("volume")
    g.add_argument("--storage", default=None, metavar=STORAGE_METAVAR, help=f"{STORAGE_HELP} (default {default})")
    for flag in DEPRECATED:
        g.add_argument(flag, dest=flag[2:].replace("-", "_"), help=argparse.SUPPRESS)
    p.set_defaults(storage_default=default)
    g.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
    g.add_argument("--context", help="kubeconfig context")


def parameter_args(p: argparse.ArgumentParser, *, written: bool) -> None:
    """The run-parameter flags; ``written``: their values become the defaults written into the YAML."""
    title = "run parameters (defaults written into the YAML)" if written else "run parameters (of this run)"
    steps_params.add_arguments(p.add_argument_group(title), params.RunParameters())


def storage_choice(args: argparse.Namespace) -> choice.Choice:
    """The ``--storage`` choice the flags make (the command's default when none is given).

    Raises:
        InvalidRequestError: a value outside the grammar, or a bad name.
        BadParameterError: ``--storage`` together with an old volume flag, or old flags that exclude each other.
    """
    old = {flag: getattr(args, flag[2:].replace("-", "_"), None) for flag in DEPRECATED}
    given = [flag for flag, value in old.items() if value is not None]
    for flag in given:
        print(f"note: {flag} is deprecated; use {DEPRECATED[flag]}", file=sys.stderr)
    if args.storage is not None and given:
        raise errors.BadParameterError(
            f"--storage {args.storage} and {given[0]} both given", hint="use --storage alone"
        )
    if not given:
        return choice.parse(args.storage if args.storage is not None else args.storage_default)
    cls, pvc, pv = old["--storage-class"], old["--existing-pvc"], old["--static-pv"]
    if pvc is not None and (pv is not None or cls is not None):
        other = "--static-pv" if pv is not None else "--storage-class"
        raise errors.BadParameterError(
            f"--existing-pvc and {other} both given", hint="choose one way to get the volume"
        )
    if pvc is not None:
        return choice.named("claim", pvc, flag="--existing-pvc")
    if pv is not None:
        return choice.named("pv", pv, flag="--static-pv", storage_class=cls or "")
    return choice.named("class", str(cls), flag="--storage-class")


def pipeline_volume(spec: choice.Choice) -> options.StorageChoice:
    """What the compiled pipeline does for a class, claim or PV choice.

    Raises:
        BadParameterError: ``auto`` (resolve it first) or a choice that makes a volume now.
    """
    if spec.kind == "class":
        return options.StorageChoice.dynamic(spec.name)
    if spec.kind == "claim":
        return options.StorageChoice.existing(spec.name)
    if spec.kind == "pv":
        return options.StorageChoice.static(spec.name, spec.storage_class)
    if spec.makes_volume:
        raise errors.BadParameterError(
            f"--storage {spec} makes a volume now, which a compiled pipeline cannot",
            hint="make it once with `sharedvol provision NAME --static` and pass --storage pvc:NAME, "
            "or use `sharedvol run`, which makes it",
        )
    raise errors.BadParameterError(f"--storage {spec} is not resolved", hint="resolve auto against the cluster first")


def compile_volume(args: argparse.Namespace) -> tuple[options.StorageChoice, str]:
    """The pipeline's volume for compile and submit, and (for ``auto``, which asks the cluster) what and why."""
    spec = storage_choice(args)
    if spec.kind != "auto":
        return pipeline_volume(spec), ""
    storage_class, reasons = auto_class(args.kubeconfig, args.context)
    return options.StorageChoice.dynamic(storage_class), f"StorageClass {storage_class}: {'; '.join(reasons)}"


def auto_class(kubeconfig: str | None, context: str | None) -> tuple[str, list[str]]:
    """The RWX StorageClass ``--storage auto`` gives a compiled pipeline (:func:`storage.plan.auto_class`).

    Raises:
        BadParameterError: no class on the cluster serves ReadWriteMany.
    """
    from storage import (  # the CLI boundary: the Kubernetes client loads only when a command asks the cluster
        hints,
        kube,
        plan,
    )

    storage_class, reasons = plan.auto_class(kube.load_api_client(kubeconfig, context))
    if storage_class is None:
        raise errors.BadParameterError(
            "--storage auto: no StorageClass on this cluster serves ReadWriteMany",
            hint=hints.NO_RWX_COMPILE,
        )
    return storage_class, reasons


def compile_options(args: argparse.Namespace, volume: options.StorageChoice) -> options.CompileOptions:
    """The compile-time choices and parameter defaults the flags ask for, with ``volume`` (validated)."""
    tolerations = options.CompileOptions().tolerations + tuple(options.Toleration.parse(t) for t in args.toleration)
    return options.CompileOptions(
        image=args.image,
        storage=volume,
        node_selector=options.parse_node_selector(args.node_selector),
        tolerations=tolerations,
        train_retries=args.train_retries,
        defaults=params.from_args(args),
        workspace=bool(getattr(args, "workspace", False)),
        workers=args.workers,
        ttl_after_success_s=args.ttl_after_success,
    ).validate()
