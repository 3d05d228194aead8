"""The run report (``metrics/report.html`` and the KFP HTML artifact): what a person looks for first.

Top-1/top-5 and loss; the settings and the time taken; the training loss per iteration; the training accuracy
and the learning rate per epoch; the confusion matrix and a per-class accuracy table. Self-contained: the
plots are embedded PNGs (matplotlib, Agg).
"""

from __future__ import annotations

import base64
import html as html_lib
import io
from typing import Any

from steps import schemas

SETTINGS = ("epochs", "batch_size", "lr", "seed", "device", "amp", "augment", "num_workers", "train_size")
MAX_LABELLED_CLASSES = 30  # above: the matrix as an image, no counts or names (10^6 cell texts take minutes)
PLOT_LIMIT = 1e12  # a value past it is drawn at it: matplotlib cannot lay out an axis spanning +-1.7e308
LABEL_CHARS = 40  # a class name on an axis: at most this many characters, on one line


def _png(fig: Any) -> bytes:
    from matplotlib import pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def plot_loss(summary: dict[str, Any]) -> bytes:
    """The training loss per iteration (per epoch when the run recorded no iterations)."""
    plt = _pyplot()
    points = summary.get("curves", {}).get("loss_curve") or []
    fig, ax = plt.subplots(figsize=(6, 3))
    if points:
        x, x_clipped = _clip([p[0] for p in points])
        y, y_clipped = _clip([p[1] for p in points])
        ax.plot(x, y, color="tab:blue", linewidth=1)
        ax.set_xlabel("iteration")
    else:
        losses = summary["loss_per_epoch"]
        y, y_clipped = _clip(losses)
        x_clipped = False
        ax.plot(range(1, len(losses) + 1), y, color="tab:blue", marker="o")
        ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    _note_clipped(ax, x_clipped or y_clipped)
    ax.grid(alpha=0.3)
    return _png(fig)


def _clip(values: list[Any]) -> tuple[list[float], bool]:
    """``values`` as floats within +-:data:`PLOT_LIMIT` (an int of any size included), and whether any was past it."""
    clipped = [float(min(max(v, -PLOT_LIMIT), PLOT_LIMIT)) for v in values]
    return clipped, any(c != v for c, v in zip(clipped, values, strict=True))


def _note_clipped(ax: Any, clipped: bool) -> None:
    if clipped:
        ax.set_title(f"values past +-{PLOT_LIMIT:.0e} drawn at +-{PLOT_LIMIT:.0e}", fontsize=8)


def plot_epochs(summary: dict[str, Any]) -> bytes:
    """Training top-1 (on the augmented batches) and the learning rate, per epoch; empty without them."""
    fig = epochs_figure(summary)
    return _png(fig) if fig is not None else b""


def epochs_figure(summary: dict[str, Any]) -> Any:
    """The per-epoch plot, or None without per-epoch curves.

    Epoch ``e`` spans ``e-1 .. e`` on the axis, whose ticks are whole epochs: the accuracy is a point at the end of
    each epoch, the learning rate a step, flat over each epoch (mmengine changes it between epochs).
    """
    curves = summary.get("curves", {})
    top1, lr = curves.get("train_top1_per_epoch") or [], curves.get("lr_per_epoch") or []
    if not top1 and not lr:
        return None
    plt = _pyplot()
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(range(1, len(top1) + 1), [100 * (a or 0) for a in top1], color="tab:green", marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training top-1 (%)", color="tab:green")
    right = ax.twinx()
    if lr:
        rates, clipped = _clip(lr)
        right.stairs(rates, range(len(lr) + 1), baseline=None, color="tab:orange", linestyle="--", linewidth=1.5)
        _note_clipped(ax, clipped)
    right.set_ylabel("learning rate", color="tab:orange")
    epochs = max(len(top1), len(lr))
    ax.set_xlim(0, epochs)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3)
    return fig


def plot_matrix(names: list[str], matrix: list[list[int]]) -> bytes:
    """The confusion matrix as a PNG (:func:`matrix_figure`)."""
    return _png(matrix_figure(names, matrix))


def matrix_figure(names: list[str], matrix: list[list[int]]) -> Any:
    """The confusion matrix (rows: true class, columns: predicted class).

    Up to :data:`MAX_LABELLED_CLASSES` classes, the counts are written in the cells and the class names on the axes,
    as written (no mathtext: a ``$`` in a name is a dollar sign); above, the matrix is an image only, and its title
    says so (:func:`unlabelled_note`).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(names) > MAX_LABELLED_CLASSES:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(unlabelled_note(len(names)), fontsize=8, parse_math=False)
    else:
        labels = [_label(name) for name in names]
        ax.set_xticks(range(len(names)), labels, rotation=45, ha="right", parse_math=False)
        ax.set_yticks(range(len(names)), labels, parse_math=False)
        top = max((max(r) for r in matrix), default=0)
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                color = "white" if count > top / 2 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8, parse_math=False)
    fig.colorbar(image, ax=ax)
    return fig


def unlabelled_note(classes: int) -> str:
    """What a confusion matrix of more than :data:`MAX_LABELLED_CLASSES` classes leaves out."""
    return (
        f"{classes} classes: the counts are not written in the cells,\nnor the class names on the axes "
        f"(only up to {MAX_LABELLED_CLASSES} classes)"
    )


def _label(name: str) -> str:
    """A class name for an axis: one line, at most :data:`LABEL_CHARS` characters."""
    return schemas.printable(name, LABEL_CHARS)


def _table(rows: list[tuple[str, Any]], head: tuple[str, str] | None = None) -> str:
    top = f"<tr><th>{html_lib.escape(head[0])}</th><th>{html_lib.escape(head[1])}</th></tr>" if head else ""
    body = "".join(f"<tr><td>{html_lib.escape(str(k))}</td><td>{html_lib.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{top}{body}</table>"


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(data).decode()}">' if data else ""


def html(ev: dict[str, Any], summary: dict[str, Any] | None, images: dict[str, bytes]) -> str:
    """The report page for an evaluation result, the training summary (when there is one) and the plots."""
    results = [
        ("top-1 accuracy", f"{100 * ev['top1']:.2f} %"),
        ("top-5 accuracy", f"{100 * ev['top5']:.2f} %"),
        ("test loss", f"{ev['loss']:.4f}"),
        ("test images", ev["size"]),
    ]
    settings: list[tuple[str, Any]] = []
    if summary:
        results.append(("final training loss", f"{summary['final_loss']:.4f}"))
        config = summary.get("config", {})
        settings = [(k, "auto (device default)" if config[k] is None else config[k]) for k in SETTINGS if k in config]
        settings += [
            ("training time", f"{summary.get('wall_time_s', 0):.1f} s ({summary.get('images_per_s', 0):.1f} images/s)"),
            ("resumed from epoch", summary.get("resumed_from_epoch", 0)),
        ]
    settings.append(("evaluation time", f"{ev.get('wall_time_s', 0):.1f} s on {ev.get('device', '?')}"))
    per_class = [(name, f"{100 * acc:.1f} %") for name, acc in ev["per_class_accuracy"].items()]
    no_summary = "<p>no training summary</p>"
    classes = len(ev["class_names"])
    matrix_note = f"<p>{html_lib.escape(unlabelled_note(classes))}</p>" if classes > MAX_LABELLED_CLASSES else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>sharedvol: ResNet-18 on CIFAR-10</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:.3em .8em;text-align:left}th{background:#eee}</style></head><body>"
        f"<h1>ResNet-18 on CIFAR-10</h1>{_table(results, ('result', 'value'))}"
        f"<h2>Settings and time</h2>{_table(settings, ('setting', 'value'))}"
        "<h2>Training loss per iteration</h2>"
        f"{_img(images.get('loss', b''), 'training loss per iteration') or no_summary}"
        f"<h2>Training accuracy and learning rate per epoch</h2>"
        f"{_img(images.get('epochs', b''), 'training accuracy and learning rate per epoch') or no_summary}"
        f"<h2>Confusion matrix</h2>{_img(images.get('matrix', b''), 'confusion matrix')}{matrix_note}"
        f"<h2>Accuracy per class</h2>{_table(per_class, ('class', 'top-1'))}"
        "</body></html>\n"
    )
