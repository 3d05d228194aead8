"""``sharedvol compile``, ``sharedvol submit`` and ``sharedvol demo``: parse, call one library function, print.

kfp, torch and requests are imported inside the handlers, so ``sharedvol --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from pipelines import flags, params
from sharedvol import fromargs
from steps import params as steps_params


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``compile``, ``submit`` and ``demo`` to the ``sharedvol`` parser."""
    p = sub.add_parser("compile", help="write the pipeline YAML for upload in the KFP UI")
    p.add_argument("-o", "--output", type=Path, default=Path("resnet18_cifar10.yaml"), help="YAML file to write")
    flags.image_args(p)
    flags.storage_args(p, default="nfs")
    flags.parameter_args(p, written=True)
    flags.workspace_arg(p)
    p.set_defaults(func=_compile)

    p = sub.add_parser("submit", help="upload or reuse the pipeline, start a run, and follow it with --wait")
    flags.kfp_args(p, namespace="Kubernetes namespace of the run (multi-user Kubeflow: your profile)")
    p.add_argument("--wait", action="store_true", help="follow the run until it ends; non-zero exit unless it succeeds")
    flags.image_args(p)
    flags.storage_args(p, default="nfs")
    flags.parameter_args(p, written=False)
    flags.workspace_arg(p)
    p.set_defaults(func=_submit)

    p = sub.add_parser("demo", help="the whole pipeline on this machine (kfp.local), a local directory as the volume")
    p.add_argument("--output", type=Path, default=Path("runs"), help="local directory standing in for the volume")
    p.add_argument("--data", type=Path, help="directory holding cifar-10-batches-py (default: generate a small set)")
    p.add_argument("--train-images", type=int, default=512, help="generated training images (default 512)")
    p.add_argument("--test-images", type=int, default=128, help="generated test images (default 128)")
    p.add_argument("--run-name", default="", help="run directory name under OUTPUT/runs (default demo-<UTC time>)")
    steps_params.add_arguments(
        p.add_argument_group("training (the CPU demo's defaults)"), steps_params.DEMO, steps_params.TRAINING
    )
    p.set_defaults(func=_demo)


def _compile(args: argparse.Namespace) -> int:
    from pipelines import pipeline

    volume, chosen = flags.compile_volume(args)
    if chosen:
        print(f"storage: {chosen}")
    opts = flags.compile_options(args, volume)
    result = pipeline.compile_to(opts, args.output)
    print(f"wrote {result.path} (sha256 {result.sha256[:12]})")
    print(f"  image:  {result.image}")
    print(f"  volume: {result.storage}")
    if opts.trainjob:
        print(f"  train:  a Kubeflow Trainer TrainJob of {opts.workers} nodes (docs/scaling-out.md)")
    print("  upload it in the KFP UI (Pipelines > Upload pipeline), or run: sharedvol submit --host URL --wait")
    return 0


def submit_settings(args: argparse.Namespace, host: str, volume: Any) -> Any:
    """The ``submit.SubmitSettings`` of the submit/run flags in ``args`` for KFP at ``host`` and ``volume``."""
    from pipelines import kfp_api, submit

    opts = flags.compile_options(args, volume)
    return fromargs.build(
        submit.SubmitSettings,
        args,
        api=kfp_api.ApiSettings(host=host, token=args.token or kfp_api.read_token_file(), namespace=args.namespace),
        # the flags are this run's values; the uploaded YAML keeps the standard defaults, so runs with other
        # values reuse the same pipeline version. KFP's workspace is sized in the YAML, so with --workspace
        # --volume-size is written there too.
        compile=dataclasses.replace(opts, defaults=_yaml_defaults(opts)),
        params=opts.defaults,
        poll=submit.PollSettings(timeout_s=args.timeout),
    )


def _yaml_defaults(opts: Any) -> params.RunParameters:
    """The parameter defaults the uploaded YAML holds: the standard ones, and the workspace's size if it has one."""
    if opts.workspace:
        return params.RunParameters(volume_size=opts.defaults.volume_size)
    return params.RunParameters()


def _submit(args: argparse.Namespace) -> int:
    from pipelines import submit

    host = flags.kfp_host(args)
    volume, chosen = flags.compile_volume(args)
    if chosen:
        print(f"storage: {chosen}")
    settings = submit_settings(args, host, volume)
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

    train = dataclasses.replace(steps_params.DEMO, **{name: getattr(args, name) for name in steps_params.TRAINING})
    given = {name: getattr(args, name) for name in ("output", "data", "train_images", "test_images", "run_name")}
    settings = local.DemoSettings(train=train, **given)
    result = local.run_demo(settings)
    print()
    print(f"demo finished in {result.wall_time_s:.1f} s; run directory {result.run_dir}")
    print(format_metrics(result.metrics))
    print("files:")
    width = max(len(k) for k in result.files)
    for label, path in result.files.items():
        print(f"  {label:<{width}}  {path}")
    print(f"report: {result.files['report (HTML)']}")
    print(f"full log: {result.log}")
    return 0


def format_metrics(metrics: dict[str, float]) -> str:
    """The metrics as an aligned table; accuracies as percentages."""
    width = max((len(k) for k in metrics), default=0)
    lines = ["metrics:"]
    for name, value in metrics.items():
        if name.startswith("accuracy"):
            text = f"{100 * value:10.2f} %"
        elif float(value).is_integer() and abs(value) < 1e15:
            text = f"{int(value):10d}"
        elif not 1e-4 <= abs(value) < 1e15:
            text = f"{value:10.4g}"
        else:
            text = f"{value:10.4f}"
        lines.append(f"  {name:<{width}}  {text}")
    return "\n".join(lines)
