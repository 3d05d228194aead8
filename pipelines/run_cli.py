"""``sharedvol run``: parse, call :func:`pipelines.run.run`, print what it reports.

kfp and kubernetes are imported when the command runs, so ``sharedvol --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pipelines import commands, flags
from sharedvol import fromargs

if TYPE_CHECKING:
    from pipelines import run


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``sharedvol`` parser."""
    p = sub.add_parser(
        "run",
        help="check the cluster, pick or make storage, then compile, submit and follow the pipeline to its metrics",
    )
    flags.kfp_args(
        p,
        namespace="namespace of the run, its pods and its claims (multi-user Kubeflow: your profile; default kubeflow)",
    )
    p.add_argument(
        "--claim-name", default="sharedvol-runs", help="claim made for the static volume (default sharedvol-runs)"
    )
    p.add_argument("--host-path", default="/var/lib/sharedvol", help="static volume's base directory on the node")
    p.add_argument("--node", help="node for the static volume (default: a node train-resnet can run on)")
    p.add_argument(
        "--bind-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="seconds to wait for the static claim (default 120)",
    )
    p.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the run to its end and print its metrics (default; --no-wait returns once it is started)",
    )
    flags.image_args(p)
    flags.storage_args(p, default="auto")
    flags.parameter_args(p, written=False)
    p.set_defaults(func=_run)


def settings_from(args: argparse.Namespace) -> run.RunSettings:
    """The :class:`pipelines.run.RunSettings` the flags ask for."""
    from pipelines import options
    from pipelines import run as run_lib

    host = flags.kfp_host(args)
    spec = flags.storage_choice(args)
    # the volume is the plan's (run_lib.run); until then, the class that compile would use
    return fromargs.build(
        run_lib.RunSettings,
        args,
        submit=commands.submit_settings(args, host, options.StorageChoice()),
        storage=spec,
        host_path_base=args.host_path,
        bind_timeout_s=args.bind_timeout,
    )


def _run(args: argparse.Namespace) -> int:
    from pipelines import run as run_lib

    settings = settings_from(args)
    result = run_lib.run(settings, progress=lambda line: print(line, flush=True))
    done = result.submitted
    print(f"run: {done.run_url}")
    if not settings.submit.wait:
        print(f"state: {done.state} (follow it with the link, or sharedvol run without --no-wait)")
    elif done.metrics:
        print(commands.format_metrics(done.metrics))
    else:
        print(f"metrics: {done.metrics_note}")
    for note in result.notes:
        print(f"note: {note}")
    return 0
