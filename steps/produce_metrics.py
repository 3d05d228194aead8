"""produce-metrics: turn ``eval/eval_result.json`` (and the training summary) into what the KFP UI shows.

Returns a :class:`MetricsBundle` a KFP component hands to its ``Metrics``, ``ClassificationMetrics``,
``Markdown`` and ``HTML`` outputs, and writes the same under ``metrics/``: the v1
``mlpipeline-metrics.json`` and ``mlpipeline-ui-metadata.json``, ``metrics.json``, ``report.md``,
``report.html`` (training curves and confusion matrix embedded as PNG) and the two PNGs.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

from steps import dataplane, documents, errors, report, test_resnet, train_resnet

log = logging.getLogger(__name__)

V1_NAME = re.compile(r"^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$")
V1_MAX_METRICS = 50


@dataclass
class MetricsBundle:
    """Everything produce-metrics emits.

    Attributes:
        scalars: name -> value for KFP v2 ``Metrics.log_metric`` (accuracies as fractions).
        categories: class names, for ``ClassificationMetrics.log_confusion_matrix``.
        confusion_matrix: rows true class, columns predicted class.
        markdown: the report as Markdown (table only; the UI's Markdown viewer shows no images).
        html: the report as a self-contained HTML page with the plots embedded.
        v1_metrics: the KFP v1 ``mlpipeline-metrics`` document.
        files: what was written under ``metrics/``: file name -> URL.
    """

    scalars: dict[str, float]
    categories: list[str]
    confusion_matrix: list[list[int]]
    markdown: str
    html: str
    v1_metrics: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)


def load_eval_result(url: str) -> dict[str, Any]:
    """Read and validate an eval_result.json: schema, version, and that its numbers agree with each other.

    Raises:
        SchemaError: truncated, foreign, unknown version, or inconsistent.
    """
    doc = documents.read_json(
        url,
        schema=test_resnet.EVAL_SCHEMA,
        versions=(test_resnet.EVAL_VERSION,),
        required={
            "size": int,
            "top1": (int, float),
            "top5": (int, float),
            "loss": (int, float),
            "class_names": list,
            "confusion_matrix": list,
            "per_class_accuracy": dict,
        },
    )
    names, matrix = doc["class_names"], doc["confusion_matrix"]
    square = len(matrix) == len(names) and all(isinstance(r, list) and len(r) == len(names) for r in matrix)
    if not names or not square:
        raise errors.SchemaError(
            f"{url}: the confusion matrix is not {len(names)} x {len(names)}", hint="rerun test-resnet"
        )
    if sum(sum(r) for r in matrix) != doc["size"]:
        raise errors.SchemaError(
            f"{url}: the confusion matrix does not add up to size {doc['size']}", hint="rerun test-resnet"
        )
    for key in ("top1", "top5"):
        if not 0.0 <= doc[key] <= 1.0:
            raise errors.SchemaError(f"{url}: {key} {doc[key]} is not a fraction in [0, 1]", hint="rerun test-resnet")
    return doc


def v1_metrics(scalars: dict[str, float], percentages: set[str]) -> dict[str, Any]:
    """The KFP v1 ``mlpipeline-metrics`` document: names made valid for KFP, at most 50 entries.

    Raises:
        SchemaError: a name that cannot be made valid.
    """
    metrics = []
    for name, value in list(scalars.items())[:V1_MAX_METRICS]:
        v1 = re.sub(r"[^-_a-zA-Z0-9]", "-", name).strip("-_")[:64].rstrip("-_")
        if not V1_NAME.match(v1):
            raise errors.SchemaError(f"metric name {name!r} cannot be made a valid KFP metric name", hint="rename it")
        if not math.isfinite(value):
            continue
        metrics.append({"name": v1, "numberValue": value, "format": "PERCENTAGE" if name in percentages else "RAW"})
    return {"metrics": metrics}


def produce(run_dir: str) -> MetricsBundle:
    """Read the run's eval_result.json (and train/summary.json when present) and write ``metrics/``.

    Raises:
        SchemaError: the evaluation result is missing, truncated, foreign or inconsistent.
    """
    layout = dataplane.RunLayout(run_dir)
    ev = load_eval_result(layout.eval_result)
    summary = _summary(layout)
    scalars: dict[str, float] = {
        "accuracy-top1": float(ev["top1"]),
        "accuracy-top5": float(ev["top5"]),
        "test-loss": float(ev["loss"]),
        "test-samples": float(ev["size"]),
    }
    if summary:
        scalars["train-final-loss"] = float(summary["final_loss"])
        scalars["train-epochs"] = float(summary["epochs"])
        scalars["train-images-per-s"] = float(summary["images_per_s"])
    v1 = v1_metrics(scalars, percentages={"accuracy-top1", "accuracy-top5"})
    curve_png = report.plot_loss(summary) if summary else b""
    epochs_png = report.plot_epochs(summary) if summary else b""
    matrix_png = report.plot_matrix(ev["class_names"], ev["confusion_matrix"])
    markdown = _markdown(ev, summary)
    page = report.html(ev, summary, {"loss": curve_png, "epochs": epochs_png, "matrix": matrix_png})
    bundle = MetricsBundle(
        scalars=scalars,
        categories=list(ev["class_names"]),
        confusion_matrix=[list(r) for r in ev["confusion_matrix"]],
        markdown=markdown,
        html=page,
        v1_metrics=v1,
    )
    ui_metadata = {"version": 1, "outputs": [{"type": "markdown", "storage": "inline", "source": markdown}]}
    outputs: dict[str, bytes | dict[str, Any]] = {
        "mlpipeline-metrics.json": v1,
        "mlpipeline-ui-metadata.json": ui_metadata,
        "metrics.json": {"schema": "sharedvol.metrics", "schema_version": 1, "scalars": scalars},
        "report.md": markdown.encode(),
        "report.html": page.encode(),
        "confusion_matrix.png": matrix_png,
    }
    if curve_png:
        outputs["training_curve.png"] = curve_png
    if epochs_png:
        outputs["epochs.png"] = epochs_png
    for name, content in outputs.items():
        url = layout.path("metrics", name)
        if isinstance(content, dict) and name.startswith("mlpipeline-"):
            dataplane.publish_bytes(url, (json.dumps(content, indent=2) + "\n").encode())  # KFP's own format, as is
        elif isinstance(content, dict):
            documents.write_json(url, content)
        else:
            dataplane.publish_bytes(url, content)
        bundle.files[name] = url
    log.info(
        "metrics: top-1 %.2f %%, top-5 %.2f %%; report %s",
        100 * ev["top1"],
        100 * ev["top5"],
        bundle.files["report.html"],
    )
    return bundle


def _summary(layout: dataplane.RunLayout) -> dict[str, Any] | None:
    """The training summary, or None when there is none (evaluating a checkpoint trained elsewhere)."""
    try:
        return documents.read_json(
            layout.summary,
            schema=train_resnet.SUMMARY_SCHEMA,
            versions=(train_resnet.SUMMARY_VERSION,),
            required={"loss_per_epoch": list, "final_loss": (int, float), "epochs": int, "images_per_s": (int, float)},
        )
    except errors.SchemaError as e:
        log.warning("no training curves in the report: %s", e)
        return None


def _markdown(ev: dict[str, Any], summary: dict[str, Any] | None) -> str:
    lines = [
        "# ResNet-18 on CIFAR-10",
        "",
        "| metric | value |",
        "|---|---|",
        f"| top-1 accuracy | {100 * ev['top1']:.2f} % |",
        f"| top-5 accuracy | {100 * ev['top5']:.2f} % |",
        f"| test loss | {ev['loss']:.4f} |",
        f"| test images | {ev['size']} |",
    ]
    if summary:
        lines += [
            f"| epochs | {summary['epochs']} |",
            f"| final training loss | {summary['final_loss']:.4f} |",
            f"| training throughput | {summary['images_per_s']:.1f} images/s |",
        ]
    lines += ["", "| class | accuracy |", "|---|---|"]
    lines += [f"| {name} | {100 * acc:.1f} % |" for name, acc in ev["per_class_accuracy"].items()]
    lines += [
        "",
        f"Checkpoint `{ev.get('checkpoint', '?')}` (blake3 `{str(ev.get('checkpoint_blake3', ''))[:12]}...`).",
    ]
    return "\n".join(lines) + "\n"
