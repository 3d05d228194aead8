"""``sharedvol data|train|test|metrics``: the step programs, thin over :mod:`steps`' library functions.

Each handler imports torch/mmengine only when it runs, so ``sharedvol --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from steps import params


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data``, ``train``, ``test`` and ``metrics`` to the ``sharedvol`` parser."""
    data = sub.add_parser("data", help="prepare CIFAR-10 (download, synthesize, or copy) in its official format")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = data_sub.add_parser("synth", help="write a small learnable dataset in cifar-10-batches-py format")
    synth.add_argument("dir", help="directory that will hold cifar-10-batches-py")
    synth.add_argument("--train", type=int, default=512, help="training images (default 512)")
    synth.add_argument("--test", type=int, default=128, help="test images (default 128)")
    synth.add_argument("--seed", type=int, default=0, help="random seed, 0 or more (default 0)")
    synth.set_defaults(func=_synth)
    prep = data_sub.add_parser("prepare", help="make CIFAR-10 available in DIR once (reused when already there)")
    prep.add_argument("dir")
    prep.add_argument(
        "--source",
        default="synthetic",
        help="synthetic | synthetic:TRAIN:TEST | download | DIR holding cifar-10-batches-py",
    )
    prep.set_defaults(func=_prepare)

    train_help = "train-resnet: ResNet-18 on CIFAR-10 (mmcls + mmengine)"
    train = _step_parser(sub, "train", params.TRAINING, _train, train_help)
    train.add_argument("--log-interval", type=int, default=10, help="iterations between progress lines")
    train.add_argument(
        "--keep-checkpoints", type=int, default=1, help="epochs whose checkpoint files stay on the volume (default 1)"
    )
    train.add_argument(
        "--allow-changed-settings",
        action="store_true",
        help="resume although the settings that shape training differ from the checkpoint's; the new ones take effect",
    )
    train.add_argument(
        "--cfg-options",
        nargs="+",
        action=CfgOptions,
        default={},
        metavar="KEY=VALUE",
        help="mmengine config overrides (mmengine's DictAction), e.g. model.head.topk=(1,)",
    )

    test_help = "test-resnet: evaluate the published checkpoint, write eval/eval_result.json"
    test = _step_parser(sub, "test", params.TESTING, _test, test_help)
    test.add_argument("--checkpoint", help="another checkpoint manifest URL (.../checkpoints/latest.json)")

    metrics = sub.add_parser("metrics", help="produce-metrics: the KFP metrics and the report from eval_result.json")
    metrics.add_argument("--run-dir", required=True, help="the run directory (path or fsspec URL)")
    metrics.set_defaults(func=_metrics)


_RUN_PARAMETERS = ("device", "num_workers")  # the table's parameters that train and test share


def _step_parser(
    sub: argparse._SubParsersAction, name: str, table: tuple[str, ...], func: Any, text: str
) -> argparse.ArgumentParser:
    """The ``name`` step's parser: the run's directories, then the parameters of ``table`` (shared ones first)."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=text)
    p.add_argument("--run-dir", required=True, help="the run directory (path or fsspec URL), e.g. /mnt/shared/runs/r1")
    p.add_argument("--data-root", required=True, help="the directory holding cifar-10-batches-py")
    params.add_arguments(p, params.DEFAULTS, _RUN_PARAMETERS)
    params.add_arguments(p, params.DEFAULTS, [n for n in table if n not in _RUN_PARAMETERS])
    p.set_defaults(func=func)
    return p


class CfgOptions(argparse.Action):
    """``--cfg-options KEY=VALUE ...`` parsed by mmengine's ``DictAction`` (imported only when the flag is used).

    An item without ``=`` is an argparse error naming it, not a traceback.
    """

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        """Check every item has ``=``, then let mmengine's ``DictAction`` parse the values."""
        from mmengine.config import DictAction

        bad = [v for v in values if "=" not in v or v.startswith("=")]
        if bad:
            raise argparse.ArgumentError(self, f"{bad[0]!r} is not KEY=VALUE (e.g. model.head.topk=(1,))")
        DictAction(self.option_strings, self.dest)(parser, namespace, values, option)


def _synth(args: argparse.Namespace) -> int:
    from steps import data

    m = data.synthesize(args.dir, train=args.train, test=args.test, seed=args.seed)
    print(json.dumps(m.model_dump(mode="json"), indent=2))
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from steps import prepare_data

    m = prepare_data.prepare(args.dir, args.source)
    print(f"CIFAR-10 ({m.source}): {m.train_size} train / {m.test_size} test images in {m.root}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from steps import launch

    s = launch.train({**vars(args), "cfg_options": dict(args.cfg_options)})
    print(f"trained {s.epochs} epochs, final loss {s.final_loss:.4f}, {s.images_per_s:.1f} images/s -> {s.checkpoint}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from steps import launch

    r = launch.evaluate(vars(args))
    print(f"top-1 {100 * r.top1:.2f} %, top-5 {100 * r.top5:.2f} % on {r.size} test images")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from steps import produce_metrics

    bundle = produce_metrics.produce(args.run_dir)
    width = max(len(k) for k in bundle.scalars)
    for name, value in bundle.scalars.items():
        print(f"{name:<{width}}  {value:.4f}")
    print(f"report: {bundle.files['report.html']}")
    return 0
