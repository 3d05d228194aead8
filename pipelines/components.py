"""The pipeline's Python components: each body imports and calls the ``steps`` functions.

The functions are plain module-level functions; :func:`build` turns them into KFP components for one
image. KFP copies each function's source into the compiled YAML and runs it with ``kfp.dsl.executor_main``
in the step image (where ``steps`` and ``pipelines`` are installed), or in a subprocess under ``kfp.local``:
the bodies must be self-contained (imports inside) and the signatures must use names that the
generated module has (``typing.*`` and ``kfp.dsl.*``).

No ``from __future__ import annotations`` here: KFP reads these annotations as objects when it builds the
component interfaces, and string annotations would be refused.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Markdown, Metrics, Output
from kfp.dsl.python_component import PythonComponent

from pipelines import trainjob_component


def prepare_data(
    volume: str, data_source: str, run_id: str, run_dir_name: str
) -> NamedTuple("PreparedData", [("data_root", str), ("run_dir", str)]):  # type: ignore[valid-type]  # fmt: skip
    """prepare-data: CIFAR-10 into ``<volume>/data/<key>`` once; names the run directory."""
    import collections

    from pipelines import runtime
    from steps import prepare_data

    runtime.setup_logging()
    data_root = runtime.data_dir(volume, data_source)
    run_dir = runtime.run_dir(volume, run_id, run_dir_name)
    manifest = prepare_data.prepare(data_root, source=data_source)
    print(f"prepare-data: {manifest.train_size} train / {manifest.test_size} test images in {data_root}")
    PreparedData = collections.namedtuple("PreparedData", ["data_root", "run_dir"])
    return PreparedData(data_root, run_dir)


def train_resnet(
    run_dir: str,
    data_root: str,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    amp: str,
    augment: str,
    num_workers: int,
    train_metrics: Output[Metrics],
) -> None:
    """train-resnet: ResNet-18 with mmcls; a retried task resumes from the run's latest checkpoint.

    ``amp``/``augment`` ``auto`` and ``num_workers`` -1 leave the choice to the device (``steps.params``).
    """
    inputs = dict(locals())  # the parameters, named as steps.params names them
    from pipelines import runtime
    from steps import launch

    runtime.setup_logging()
    runtime.run_dir_checked(run_dir)
    summary = launch.train(inputs)
    train_metrics.log_metric("final-loss", summary.final_loss)
    train_metrics.log_metric("epochs", summary.epochs)
    train_metrics.log_metric("images-per-s", summary.images_per_s)
    train_metrics.log_metric("wall-time-s", summary.wall_time_s)
    print(f"train-resnet: {summary.epochs} epochs, final loss {summary.final_loss:.4f}, {summary.checkpoint}")


def test_resnet(run_dir: str, data_root: str, batch_size: int, device: str, num_workers: int) -> None:
    """test-resnet: evaluate the verified checkpoint of ``checkpoints/latest.json``; write ``eval/eval_result.json``.

    ``num_workers`` -1 leaves the choice to the device (``steps.params``).
    """
    inputs = dict(locals())  # the parameters, named as steps.params names them
    from pipelines import runtime
    from steps import launch

    runtime.setup_logging()
    runtime.run_dir_checked(run_dir)
    result = launch.evaluate(inputs)
    print(f"test-resnet: top-1 {result.top1:.4f}, top-5 {result.top5:.4f} on {result.size} images")


def produce_metrics(
    run_dir: str,
    metrics: Output[Metrics],
    confusion_matrix: Output[ClassificationMetrics],
    report: Output[HTML],
    summary: Output[Markdown],
) -> None:
    """produce-metrics: the run's metrics as KFP artifacts (and ``metrics/`` on the volume)."""
    import json

    from pipelines import runtime
    from steps import produce_metrics

    runtime.setup_logging()
    bundle = produce_metrics.produce(runtime.run_dir_checked(run_dir))
    for name, value in bundle.scalars.items():
        metrics.log_metric(name, value)
    confusion_matrix.log_confusion_matrix(bundle.categories, bundle.confusion_matrix)
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(bundle.html)
    with open(summary.path, "w", encoding="utf-8") as f:
        f.write(bundle.markdown)
    # One machine-readable line: `sharedvol submit` reads it from this pod's log (the KFP REST API has no metric
    # values).
    print("sharedvol-metrics " + json.dumps(bundle.scalars, sort_keys=True))
    print(f"produce-metrics: report {bundle.files.get('report.html', '')}")


@dataclasses.dataclass(frozen=True)
class Components:
    """The four components, built for one image, and the TrainJob variant's train-resnet (``--workers N``)."""

    prepare_data: PythonComponent
    train_resnet: PythonComponent
    test_resnet: PythonComponent
    produce_metrics: PythonComponent
    train_resnet_trainjob: PythonComponent


def build(image: str) -> Components:
    """The components with ``image`` as ``base_image``, installing nothing (the image holds everything)."""

    def make(func: Callable[..., Any]) -> PythonComponent:
        return dsl.component(func, base_image=image, install_kfp_package=False, packages_to_install=[])

    return Components(
        prepare_data=make(prepare_data),
        train_resnet=make(train_resnet),
        test_resnet=make(test_resnet),
        produce_metrics=make(produce_metrics),
        train_resnet_trainjob=make(trainjob_component.train_resnet),
    )
