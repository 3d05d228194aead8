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

from steps import dataplane, documents, errors, localpublish, report, schemas

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


def load_eval_result(url: str) -> schemas.EvalResult:
    """Read and validate an eval_result.json: its schema, and that its numbers agree with each other.

    Raises:
        SchemaError: missing, not a regular file, too large, truncated, foreign, unknown version, or impossible.
    """
    return documents.read(url, schemas.EvalResult, missing_hint="run test-resnet on this run directory first")


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
    """Read the run's eval_result.json (and train/summary.json when present) and publish ``metrics/``.

    ``metrics/`` is published at one commit point (:func:`steps.localpublish.publish_dir`): a full disk or a kill
    leaves the previous metrics whole, never a mix of two runs' files.

    Raises:
        SchemaError: the evaluation result (or a training summary that is there) is missing, damaged or impossible.
        RunDirError: ``metrics/`` cannot be written (nothing of it changed).
    """
    layout = dataplane.RunLayout(run_dir)
    layout.check_own()
    ev = load_eval_result(layout.eval_result)
    summary = _summary(layout)
    scalars: dict[str, float] = {
        "accuracy-top1": ev.top1,
        "accuracy-top5": ev.top5,
        "test-loss": ev.loss,
        "test-samples": float(ev.size),
    }
    if summary:
        scalars["train-final-loss"] = summary.final_loss
        scalars["train-epochs"] = float(summary.epochs)
        scalars["train-images-per-s"] = summary.images_per_s
    v1 = v1_metrics(scalars, percentages={"accuracy-top1", "accuracy-top5"})
    ev_doc = ev.model_dump(mode="json")
    summary_doc = summary.model_dump(mode="json") if summary else None
    curve_png = report.plot_loss(summary_doc) if summary_doc else b""
    epochs_png = report.plot_epochs(summary_doc) if summary_doc else b""
    matrix_png = report.plot_matrix(ev.class_names, ev.confusion_matrix)
    markdown = _markdown(ev, summary)
    page = report.html(ev_doc, summary_doc, {"loss": curve_png, "epochs": epochs_png, "matrix": matrix_png})
    bundle = MetricsBundle(
        scalars=scalars,
        categories=list(ev.class_names),
        confusion_matrix=[list(r) for r in ev.confusion_matrix],
        markdown=markdown,
        html=page,
        v1_metrics=v1,
    )
    ui_metadata = {"version": 1, "outputs": [{"type": "markdown", "storage": "inline", "source": markdown}]}
    outputs: dict[str, bytes] = {
        "mlpipeline-metrics.json": _kfp_json(v1),  # KFP's own formats, as KFP reads them
        "mlpipeline-ui-metadata.json": _kfp_json(ui_metadata),
        "metrics.json": documents.seal(documents.document(schemas.MetricsDoc(scalars=scalars))),
        "report.md": markdown.encode(),
        "report.html": page.encode(),
        "confusion_matrix.png": matrix_png,
    }
    if curve_png:
        outputs["training_curve.png"] = curve_png
    if epochs_png:
        outputs["epochs.png"] = epochs_png
    localpublish.publish_dir(layout.metrics_dir, outputs)
    bundle.files = {name: layout.path("metrics", name) for name in outputs}
    log.info(
        "metrics: top-1 %.2f %%, top-5 %.2f %%; report %s", 100 * ev.top1, 100 * ev.top5, bundle.files["report.html"]
    )
    return bundle


def _kfp_json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode()


def _summary(layout: dataplane.RunLayout) -> schemas.TrainSummary | None:
    """The training summary, or None when there is none (evaluating a checkpoint trained elsewhere).

    Raises:
        SchemaError: there is one, but it is damaged or impossible.
    """
    if not dataplane.exists(layout.summary):
        log.warning("no training curves in the report: %s does not exist", layout.summary)
        return None
    return documents.read(layout.summary, schemas.TrainSummary)


def _markdown(ev: schemas.EvalResult, summary: schemas.TrainSummary | None) -> str:
    lines = [
        "# ResNet-18 on CIFAR-10",
        "",
        "| metric | value |",
        "|---|---|",
        f"| top-1 accuracy | {100 * ev.top1:.2f} % |",
        f"| top-5 accuracy | {100 * ev.top5:.2f} % |",
        f"| test loss | {ev.loss:.4f} |",
        f"| test images | {ev.size} |",
    ]
    if summary:
        lines += [
            f"| epochs | {summary.epochs} |",
            f"| final training loss | {summary.final_loss:.4f} |",
            f"| training throughput | {summary.images_per_s:.1f} images/s |",
        ]
    lines += ["", "| class | accuracy |", "|---|---|"]
    lines += [f"| {_cell(name)} | {100 * acc:.1f} % |" for name, acc in ev.per_class_accuracy.items()]
    lines += ["", f"Checkpoint `{_cell(ev.checkpoint)}` (blake3 `{ev.checkpoint_blake3[:12]}...`)."]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell or code span: no pipes, backticks, line breaks or HTML.

    The KFP UI's Markdown viewer renders HTML written in Markdown: a class name is text, never a tag there.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "/").replace("`", "'").replace("\n", " ").replace("\r", " ")
