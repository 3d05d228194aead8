"""``sharedvol compile``, ``sharedvol submit`` and ``sharedvol demo``: parse, call one library function, print.

kfp, torch and requests are imported inside the handlers, so ``sharedvol --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from pipelines import options

IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
PARAM_FLAGS = {
    # flag -> RunParameters field
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "data_source": "data_source",
    "volume_size": "volume_size",
    "gpus": "gpu_count",
    "keep_volume": "keep_volume",
    "run_dir_name": "run_dir_name",
    "seed": "seed",
    "device": "device",
    "amp": "amp",
    "num_workers": "num_workers",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``compile``, ``submit`` and ``demo`` to the ``sharedvol`` parser."""
    p = sub.add_parser("compile", help="write the pipeline YAML for upload in the KFP UI")
    p.add_argument("-o", "--output", type=Path, default=Path("resnet18_cifar10.yaml"), help="YAML file to write")
    compile_args(p, defaults_help="the default of")
    storage_spec_args(p)
    p.add_argument(
        "--workspace",
        action="store_true",
        help="use KFP's own per-run workspace (KFP >= 2.15: ReadWriteMany, the chosen class, at /kfp-workspace) "
        "instead of create-volume/delete-volume",
    )
    p.set_defaults(func=_compile)

    p = sub.add_parser("submit", help="upload or reuse the pipeline, start a run, and follow it with --wait")
    p.add_argument(
        "--host",
        default=os.environ.get("KF_PIPELINES_ENDPOINT", ""),
        help="KFP endpoint, e.g. http://localhost:8080 after port-forwarding svc/ml-pipeline-ui "
        f"(env KF_PIPELINES_ENDPOINT; in a pod: {IN_CLUSTER_HOST})",
    )
    p.add_argument("--namespace", help="Kubernetes namespace of the run (multi-user Kubeflow: your profile)")
    p.add_argument("--token", help="bearer token; default: the in-cluster KFP service-account token when mounted")
    p.add_argument("--experiment", default="sharedvol", help="experiment display name (created when missing)")
    p.add_argument("--pipeline-name", default="resnet18-cifar10", help="pipeline name in KFP")
    p.add_argument("--run-name", default="", help="run display name (default <pipeline>-<UTC time>)")
    p.add_argument("--service-account", default="", help="service account of the run's pods (default KFP's)")
    p.add_argument("--wait", action="store_true", help="follow the run until it ends; non-zero exit unless it succeeds")
    p.add_argument("--timeout", type=float, default=6 * 3600.0, help="seconds to follow the run (default 21600)")
    p.add_argument("--ui-url", default="", help="KFP UI base URL for the run link (default --host)")
    compile_args(p, defaults_help="")
    storage_spec_args(p)
    p.set_defaults(func=_submit)

    p = sub.add_parser("demo", help="the whole pipeline on this machine (kfp.local), a local directory as the volume")
    p.add_argument("--output", type=Path, default=Path("runs"), help="local directory standing in for the volume")
    p.add_argument("--data", type=Path, help="directory holding cifar-10-batches-py (default: generate a small set)")
    p.add_argument("--train-images", type=int, default=512, help="generated training images (default 512)")
    p.add_argument("--test-images", type=int, default=128, help="generated test images (default 128)")
    p.add_argument("--epochs", type=int, default=2, help="training epochs (default 2)")
    p.add_argument("--batch-size", type=int, default=32, help="images per iteration (default 32)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--run-name", default="", help="run directory name under OUTPUT/runs (default demo-<UTC time>)")
    p.add_argument("--device", default="cpu", choices=options.DEVICES, help="default cpu")
    p.add_argument("--num-workers", type=int, default=0, help="data-loader workers (default 0)")
    p.set_defaults(func=_demo)


def storage_spec_args(p: argparse.ArgumentParser) -> None:
    """Add ``--storage SPEC`` (and the cluster access ``auto`` needs) to compile and submit."""
    g = p.add_argument_group("storage shorthand")
    g.add_argument(
        "--storage",
        metavar="SPEC",
        help="CLASS (= --storage-class), pvc:NAME (= --existing-pvc), static:PV (= --static-pv), or auto: "
        "ask the cluster for its RWX class (sharedvol-nfs first, as sharedvol doctor does)",
    )
    g.add_argument("--kubeconfig", help="kubeconfig for --storage auto (default: $KUBECONFIG, in-cluster)")
    g.add_argument("--context", help="kubeconfig context for --storage auto")


def apply_storage_spec(args: argparse.Namespace) -> str:
    """Turn ``--storage SPEC`` into the explicit volume flags; return what was chosen and why ("" without SPEC).

    Raises:
        BadParameterError: SPEC together with an explicit volume flag, or ``auto`` on a cluster with no RWX class.
    """
    from pipelines import errors

    spec = getattr(args, "storage", None)
    if not spec:
        return ""
    if args.storage_class or args.existing_pvc or args.static_pv:
        raise errors.BadParameterError(
            f"--storage {spec} and an explicit volume flag both given",
            hint="use --storage alone, or --storage-class / --existing-pvc / --static-pv alone",
        )
    kind, sep, value = spec.partition(":")
    if sep and kind == "pvc":
        args.existing_pvc = value
        return f"existing claim {value}"
    if sep and kind == "static":
        args.static_pv = value
        return f"each run's claim pre-bound to PersistentVolume {value}"
    if sep:
        raise errors.BadParameterError(
            f"--storage {spec!r} is not understood", hint="use CLASS, pvc:NAME, static:PV or auto"
        )
    if spec != "auto":
        args.storage_class = spec
        return f"StorageClass {spec}"
    from storage import kube, plan

    storage_class, reasons = plan.auto_class(kube.load_api_client(args.kubeconfig, args.context))
    if storage_class is None:
        raise errors.BadParameterError(
            "--storage auto: no StorageClass on this cluster serves ReadWriteMany",
            hint="kubectl apply -k k8s/nfs (or k8s/fallback); or make a volume with "
            "`sharedvol provision NAME --static` and pass --storage pvc:NAME; or use `sharedvol run`, which makes one",
        )
    args.storage_class = storage_class
    return f"StorageClass {storage_class}: {'; '.join(reasons)}"


def compile_args(p: argparse.ArgumentParser, *, defaults_help: str) -> None:
    """Add the image, volume, scheduling and run-parameter flags shared by compile, submit and run."""
    g = p.add_argument_group("image and volume (fixed in the YAML)")
    g.add_argument(
        "--image",
        default=os.environ.get("SHAREDVOL_IMAGE", options.DEFAULT_IMAGE),
        help=f"step image (env SHAREDVOL_IMAGE; default {options.DEFAULT_IMAGE})",
    )
    g.add_argument(
        "--storage-class",
        help=f"StorageClass of the run's new RWX claim (default {options.DEFAULT_STORAGE_CLASS}; with --static-pv: "
        "the claim's class, default none)",
    )
    g.add_argument("--existing-pvc", metavar="NAME", help="mount this existing claim; no create/delete-volume")
    g.add_argument("--static-pv", metavar="NAME", help="pre-bind each run's claim to this PersistentVolume")
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
    g.add_argument("--train-retries", type=int, default=2, help="retries of train-resnet, which resumes (default 2)")

    word = f"{defaults_help} " if defaults_help else ""
    d = options.RunParameters()
    g = p.add_argument_group(f"run parameters ({'defaults written into the YAML' if defaults_help else 'of this run'})")
    g.add_argument("--epochs", type=int, help=f"{word}training epochs ({d.epochs})")
    g.add_argument("--batch-size", type=int, help=f"{word}images per iteration ({d.batch_size})")
    g.add_argument("--lr", type=float, help=f"{word}learning rate ({d.lr})")
    g.add_argument("--data-source", help=f"{word}download | synthetic[:TRAIN:TEST] | DIR in the pod ({d.data_source})")
    g.add_argument("--volume-size", help=f"{word}claim size, a Kubernetes quantity ({d.volume_size})")
    g.add_argument("--gpus", type=int, help=f"{word}nvidia.com/gpu limit of train-resnet, 0 for CPU ({d.gpu_count})")
    g.add_argument("--keep-volume", action="store_true", default=None, help=f"{word}keep the claim after the run")
    g.add_argument("--run-dir-name", help=f"{word}run directory under /mnt/shared/runs (the KFP run id)")
    g.add_argument("--seed", type=int, help=f"{word}random seed ({d.seed})")
    g.add_argument("--device", choices=options.DEVICES, help=f"{word}device ({d.device})")
    g.add_argument("--amp", action="store_true", default=None, help=f"{word}mixed precision on CUDA")
    g.add_argument("--num-workers", type=int, help=f"{word}data-loader workers ({d.num_workers})")


def compile_options(args: argparse.Namespace) -> options.CompileOptions:
    """The compile-time choices and parameter defaults the flags ask for (validated)."""
    if args.existing_pvc and args.static_pv:
        from pipelines import errors

        raise errors.BadParameterError(
            "--existing-pvc and --static-pv both given", hint="choose one way to get the volume"
        )
    if args.existing_pvc:
        if args.storage_class:
            from pipelines import errors

            raise errors.BadParameterError(
                "--storage-class has no effect with --existing-pvc", hint="the existing claim already has its class"
            )
        storage = options.StorageChoice.existing(args.existing_pvc)
    elif args.static_pv:
        storage = options.StorageChoice.static(args.static_pv, args.storage_class or "")
    else:
        cls = options.DEFAULT_STORAGE_CLASS if args.storage_class is None else args.storage_class
        storage = options.StorageChoice.dynamic(cls)
    tolerations = options.CompileOptions().tolerations + tuple(options.Toleration.parse(t) for t in args.toleration)
    return options.CompileOptions(
        image=args.image,
        storage=storage,
        node_selector=options.parse_node_selector(args.node_selector),
        tolerations=tolerations,
        train_retries=args.train_retries,
        defaults=run_parameters(args),
        workspace=bool(getattr(args, "workspace", False)),
    ).validate()


def run_parameters(args: argparse.Namespace, base: options.RunParameters | None = None) -> options.RunParameters:
    """``base`` (default: the pipeline's defaults) with the parameter flags that were given applied."""
    changes: dict[str, Any] = {
        field: getattr(args, flag) for flag, field in PARAM_FLAGS.items() if getattr(args, flag, None) is not None
    }
    return (base or options.RunParameters()).replace(**changes).validate()


def _compile(args: argparse.Namespace) -> int:
    from pipelines import pipeline

    chosen = apply_storage_spec(args)
    if chosen:
        print(f"storage: {chosen}")
    result = pipeline.compile_to(compile_options(args), args.output)
    print(f"wrote {result.path} (sha256 {result.sha256[:12]})")
    print(f"  image:  {result.image}")
    print(f"  volume: {result.storage}")
    print("  upload it in the KFP UI (Pipelines > Upload pipeline), or run: sharedvol submit --host URL --wait")
    return 0


def submit_settings(args: argparse.Namespace, host: str) -> Any:
    """The ``submit.SubmitSettings`` of the submit/run flags in ``args`` for KFP at ``host``."""
    from pipelines import kfp_api, submit

    opts = compile_options(args)
    return submit.SubmitSettings(
        api=kfp_api.ApiSettings(host=host, token=args.token or kfp_api.read_token_file(), namespace=args.namespace),
        # the flags are this run's values; the uploaded YAML keeps the standard defaults, so runs with other
        # values reuse the same pipeline version
        compile=dataclasses.replace(opts, defaults=options.RunParameters()),
        params=opts.defaults,
        experiment=args.experiment,
        pipeline_name=args.pipeline_name,
        run_name=args.run_name,
        service_account=args.service_account,
        wait=args.wait,
        poll=submit.PollSettings(timeout_s=args.timeout),
        ui_url=args.ui_url,
    )


def _submit(args: argparse.Namespace) -> int:
    from pipelines import submit

    chosen = apply_storage_spec(args)
    if chosen:
        print(f"storage: {chosen}")
    host = args.host or (IN_CLUSTER_HOST if os.environ.get("KUBERNETES_SERVICE_HOST") else "")
    if not host:
        from pipelines import errors

        raise errors.BadParameterError(
            "no --host",
            hint="pass --host http://localhost:8080 after kubectl port-forward, or set KF_PIPELINES_ENDPOINT",
        )
    settings = submit_settings(args, host)
    result = submit.submit(settings, progress=lambda line: print(line, flush=True))
    print(f"run: {result.run_url}")
    if not args.wait:
        print(f"state: {result.state} (follow it with the link, or submit with --wait)")
        return 0
    if result.metrics:
        print(format_metrics(result.metrics))
    else:
        print(f"metrics: {result.metrics_note}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pipelines import local

    settings = local.DemoSettings(
        output=args.output,
        data=args.data,
        train_images=args.train_images,
        test_images=args.test_images,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        run_name=args.run_name,
        device=args.device,
        num_workers=args.num_workers,
    )
    result = local.run_demo(settings)
    print()
    print(f"demo finished in {result.wall_time_s:.1f} s; run directory {result.run_dir}")
    print(format_metrics(result.metrics))
    print("files:")
    width = max(len(k) for k in result.files)
    for label, path in result.files.items():
        print(f"  {label:<{width}}  {path}")
    print(f"report: {result.files['report (HTML)']}")
    return 0


def format_metrics(metrics: dict[str, float]) -> str:
    """The metrics as an aligned table; accuracies as percentages."""
    width = max((len(k) for k in metrics), default=0)
    lines = ["metrics:"]
    for name, value in metrics.items():
        if name.startswith("accuracy"):
            text = f"{100 * value:10.2f} %"
        elif float(value).is_integer():
            text = f"{int(value):10d}"
        else:
            text = f"{value:10.4f}"
        lines.append(f"  {name:<{width}}  {text}")
    return "\n".join(lines)
