"""``sharedvol run``: parse, call :func:`pipelines.run.run`, print what it reports.

kfp and kubernetes are imported when the command runs, so ``sharedvol --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from pipelines import commands, flags

if TYPE_CHECKING:
    from pipelines import run


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``sharedvol`` parser."""
    p = sub.add_parser(
        "run",
        help="check the cluster, pick or make storage, then compile, submit and follow the pipeline to its metrics",
    )
    p.add_argument(
        "--host",
        default=os.environ.get("KF_PIPELINES_ENDPOINT", ""),
        help="KFP endpoint, e.g. http://localhost:8080 after port-forwarding svc/ml-pipeline-ui "
        f"(env KF_PIPELINES_ENDPOINT; in a pod: {commands.IN_CLUSTER_HOST})",
    )
    p.add_argument(
        "--namespace",
        help="namespace of the run, its pods and its claims (multi-user Kubeflow: your profile; default kubeflow)",
    )
    p.add_argument("--token", help="KFP bearer token; default: the in-cluster KFP service-account token when mounted")
    p.add_argument(
        "--claim-name", default="sharedvol-runs", help="claim made for the static volume (default sharedvol-runs)"
    )
    p.add_argument("--host-path", default="/var/lib/sharedvol", help="static volume's base directory on the node")
    p.add_argument("--node", help="node for the static volume (default: a node train-resnet can run on)")
    p.add_argument("--bind-timeout", type=float, default=120.0, help="seconds to wait for the static claim (120)")
    p.add_argument("--experiment", default="sharedvol", help="experiment display name (created when missing)")
    p.add_argument("--pipeline-name", default="resnet18-cifar10", help="pipeline name in KFP")
    p.add_argument("--run-name", default="", help="run display name (default <pipeline>-<UTC time>)")
    p.add_argument("--service-account", default="", help="service account of the run's pods (default KFP's)")
    p.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the run to its end and print its metrics (default; --no-wait returns once it is started)",
    )
    p.add_argument("--timeout", type=float, default=6 * 3600.0, help="seconds to follow the run (default 21600)")
    p.add_argument("--ui-url", default="", help="KFP UI base URL for the run link (default --host)")
    flags.image_args(p)
    flags.storage_args(p, default="auto")
    flags.parameter_args(p, written=False)
    p.set_defaults(func=_run)


def settings_from(args: argparse.Namespace) -> run.RunSettings:
    """The :class:`pipelines.run.RunSettings` the flags ask for."""
    from pipelines import errors, options
    from pipelines import run as run_lib

    host = args.host or (commands.IN_CLUSTER_HOST if os.environ.get("KUBERNETES_SERVICE_HOST") else "")
    if not host:
        raise errors.BadParameterError(
            "no --host",
            hint="pass --host http://localhost:8080 after kubectl port-forward, or set KF_PIPELINES_ENDPOINT",
        )
    spec = flags.storage_choice(args)
    # the volume is the plan's (run_lib.run); until then, the class that compile would use
    return run_lib.RunSettings(
        submit=commands.submit_settings(args, host, options.StorageChoice()),
        storage=spec,
        kubeconfig=args.kubeconfig,
        context=args.context,
        claim_name=args.claim_name,
        host_path_base=args.host_path,
        node=args.node,
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
