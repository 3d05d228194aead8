"""The train step of the TrainJob variant (``--workers N``, N >= 2): train-resnet on N nodes, by Kubeflow Trainer.

Its function is named ``train_resnet`` like the single-node component (:func:`pipelines.components.train_resnet`),
so the task is ``train-resnet`` in either variant: the DAG, test-resnet, produce-metrics and what ``submit`` follows
stay the same. KFP copies the function's source into the compiled YAML and runs it in the step image: the body
imports what it uses. No ``from __future__ import annotations``: KFP reads the annotations as objects.
"""

from kfp.dsl import Metrics, Output


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
    gpu_count: str,
    workers: int,
    image: str,
    claim: str,
    mount_path: str,
    run_id: str,
    node_selector: dict,
    tolerations: list,
    train_metrics: Output[Metrics],
) -> None:
    """train-resnet as a TrainJob of ``workers`` pods, each mounting ``claim`` at ``mount_path``, followed to its end.

    The TrainJob (``pipelines.trainjob``) runs ``image``'s ``sharedvol train`` under torchrun with the training
    parameters, ``gpu_count`` GPUs per pod, ``node_selector`` and ``tolerations`` on every pod. It is named after
    ``run_id`` and made in this pod's namespace; this step ends when it does: ``Complete`` (the metrics are read
    from ``train/summary.json``) or ``Failed`` (one line: the TrainJob, the reason, the message).
    """
    inputs = dict(locals())  # the parameters, named as pipelines.trainjob_launch.plan_of names them
    from pipelines import runtime, trainjob_launch

    runtime.setup_logging()
    summary = trainjob_launch.train(inputs, progress=lambda line: print(line, flush=True))
    train_metrics.log_metric("final-loss", summary.final_loss)
    train_metrics.log_metric("epochs", summary.epochs)
    train_metrics.log_metric("images-per-s", summary.images_per_s)
    train_metrics.log_metric("wall-time-s", summary.wall_time_s)
    print(f"train-resnet: {summary.epochs} epochs on {workers} nodes, final loss {summary.final_loss:.4f}")
