"""``sharedvol demo``: the pipeline on this machine with ``kfp.local``, a local directory standing in for the volume.

Same components, same step code as on a cluster; ``kfp.local``'s SubprocessRunner runs each component in a
Python subprocess of this interpreter. The volume tasks are left out (``kfp.local`` cannot run CreatePVC).
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import io
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pipelines import errors, logscan, options, params, runtime
from steps import dataplane
from steps import params as steps_params


@dataclass(frozen=True)
class DemoSettings:
    """What ``sharedvol demo`` runs.

    Attributes:
        output: the local directory that stands in for the shared volume (``data/`` and ``runs/`` under it).
        data: a directory holding the real ``cifar-10-batches-py``; None generates a small dataset.
        train_images: images in the generated training split. Default 512.
        test_images: images in the generated test split. Default 128.
        run_name: the run directory's name under ``runs/``; empty: ``demo-<UTC time>``.
        train: the step parameters; default :data:`steps.params.DEMO` (2 epochs of 32 images on the CPU,
            in-process loading: minutes on a small machine). Its ``data_source`` is replaced by ``data`` or the
            generated set.
    """

    output: Path
    data: Path | None = None
    train_images: int = 512
    test_images: int = 128
    run_name: str = ""
    train: steps_params.StepParams = steps_params.DEMO

    def data_source(self) -> str:
        """The ``data_source`` pipeline parameter these settings stand for."""
        if self.data is not None:
            return str(self.data.resolve())
        return f"synthetic:{self.train_images}:{self.test_images}"

    def parameters(self, run_name: str) -> params.RunParameters:
        """The pipeline's run-time parameters."""
        steps = {name: getattr(self.train, name) for name in steps_params.TRAINING}
        return params.RunParameters(
            **steps, data_source=self.data_source(), gpu_count=0, keep_volume=True, run_dir_name=run_name
        ).validate()

    def validate(self) -> DemoSettings:
        """Refuse settings that cannot work before anything runs; return self."""
        if self.data is None and (self.train_images < 10 or self.test_images < 10):
            raise errors.BadParameterError(
                f"--train-images {self.train_images} / --test-images {self.test_images}: too few",
                hint="generate at least 10 images per split (one per class)",
            )
        if self.data is not None and not (self.data / "cifar-10-batches-py").is_dir():
            raise errors.BadParameterError(
                f"--data {self.data} holds no cifar-10-batches-py directory",
                hint="point --data at the directory that contains cifar-10-batches-py (the extracted official archive)",
            )
        return self


@dataclass(frozen=True)
class DemoResult:
    """What a demo run left behind.

    Attributes:
        run_dir: the run directory.
        data_root: where the dataset is.
        metrics: the scalar metrics (``metrics/metrics.json``), accuracies as fractions.
        files: label -> path of the files a user looks at (eval result, checkpoint manifest, v1 metrics, reports).
        wall_time_s: seconds from start to end of the pipeline run.
        log: the run's full output (every task's, mmengine's configuration and hooks included).
    """

    run_dir: Path
    data_root: Path
    metrics: dict[str, float]
    files: dict[str, Path] = field(default_factory=dict)
    wall_time_s: float = 0.0
    log: Path | None = None


def run_demo(settings: DemoSettings) -> DemoResult:
    """Run the pipeline under ``kfp.local`` and return where its results are.

    Raises:
        BadParameterError: bad settings.
        DemoFailedError: a task failed (the message names it and its last error line).
    """
    settings.validate()
    volume = settings.output.resolve()
    try:
        volume.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise errors.BadParameterError(
            f"--output {settings.output}: cannot create it ({e.strerror})", hint="choose a writable directory"
        ) from e
    run_name = settings.run_name or time.strftime("demo-%Y%m%d-%H%M%S", time.gmtime())
    params = settings.parameters(run_name)

    # kfp (which pipelines.pipeline imports) pulls in kfp.local, whose Docker handler the shield must stop first:
    # these two imports cannot move to the top of the module.
    _shield_from_docker_dir()
    from kfp import local

    from pipelines import pipeline

    _make_steps_importable()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(volume / "kfp-local"))
    job = pipeline.build_local(str(volume), options.CompileOptions(defaults=params))
    log_path = volume / "logs" / f"{run_name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"demo: volume {volume}, run {run_name}, data {params.data_source}, {params.epochs} epoch(s), "
        f"batch {params.batch_size}\ndemo: the full log goes to {log_path}",
        flush=True,
    )
    started = time.monotonic()
    with log_path.open("a") as log_file, _progress_only(log_file) as lines, warnings.catch_warnings():
        # kfp.local warns for every task whose base image name lacks "python"; here that is expected.
        warnings.filterwarnings("ignore", message=".*non-Python base image", category=RuntimeWarning)
        try:
            job()
        except RuntimeError as e:
            raise _failure(str(e), lines, log_path) from e
    wall = time.monotonic() - started
    return dataclasses.replace(collect(volume, run_name, params.data_source, wall), log=log_path)


def collect(volume: Path, run_name: str, data_source: str, wall_time_s: float = 0.0) -> DemoResult:
    """Find a finished run's results under ``volume`` and check the files a user expects are there.

    Raises:
        DemoFailedError: a file is missing.
    """
    from steps import documents, schemas

    run_dir = Path(runtime.run_dir(str(volume), "", run_name))
    layout = dataplane.RunLayout(str(run_dir))
    files = {
        "eval result": Path(layout.eval_result),
        "checkpoint manifest": Path(layout.checkpoint),
        "v1 metrics": Path(layout.metrics_dir) / "mlpipeline-metrics.json",
        "report (HTML)": Path(layout.metrics_dir) / "report.html",
        "report (Markdown)": Path(layout.metrics_dir) / "report.md",
    }
    missing = [f"{label} ({path})" for label, path in files.items() if not path.is_file()]
    if missing:
        raise errors.DemoFailedError(
            f"the run finished but left no {', '.join(missing)}", hint="rerun with -v and read the task logs"
        )
    metrics = dict(documents.read(str(Path(layout.metrics_dir) / "metrics.json"), schemas.MetricsDoc).scalars)
    data_root = Path(runtime.data_dir(str(volume), data_source))
    return DemoResult(run_dir=run_dir, data_root=data_root, metrics=metrics, files=files, wall_time_s=wall_time_s)


def _failure(message: str, lines: collections.deque[str], log_path: Path) -> errors.DemoFailedError:
    text = logscan.strip_ansi(message)
    tasks = re.findall(r"'([^']+)'", text)
    failed = tasks[-1] if tasks and "Inner task failed" in text else (tasks[0] if tasks else "a task")
    reason = logscan.last_error_line(lines)
    why = f": {reason}" if reason else ""
    return errors.DemoFailedError(
        f"task {failed} failed{why}", hint=f"its log is in {log_path}; fix the cause and run the demo again"
    )


def _shield_from_docker_dir() -> None:
    """Keep ``kfp.local`` from taking a ``docker/`` directory on ``sys.path`` for the Docker SDK.

    ``kfp.local`` imports its Docker task handler when ``import docker`` works; run from this repository
    (which has a ``docker/`` folder, a namespace package to Python) that import finds the folder and the
    handler fails with ``AttributeError``. Marking the handler unavailable makes ``kfp.local`` fall back to
    what it does when the Docker SDK is not installed; the SubprocessRunner does not need it.
    """
    spec = importlib.util.find_spec("docker")
    if spec is not None and spec.origin in (None, "namespace") and "kfp.local" not in sys.modules:
        sys.modules["kfp.local.docker_task_handler"] = None  # type: ignore[assignment]


def _make_steps_importable() -> None:
    """Let the component subprocesses import ``steps`` and ``pipelines`` even when they are not installed."""
    spec = importlib.util.find_spec("steps")
    if spec is None or spec.origin is None:  # pragma: no cover - this package imports steps itself
        raise errors.PipelineError("the steps package is not importable", hint="install sharedvol")
    root = str(Path(spec.origin).resolve().parent.parent)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


# What the terminal shows of a run: each task's start and end (kfp.local's lines), and each epoch of training.
_TASK_STARTED = re.compile(r"Executing task '([^']+)'")
_TASK_ENDED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_EPOCH = re.compile(r"steps\.hooks: (epoch \d+/\d+: mean loss [^;]+)")


def progress_line(line: str, started: dict[str, float], now: float) -> str | None:
    """The line to show for one line of the run's output, or None; ``started``: task -> start time, kept here."""
    text = logscan.strip_ansi(line)
    if m := _TASK_STARTED.search(text):
        started[m.group(1)] = now
        return f"  {m.group(1)}: started"
    if m := _TASK_ENDED.search(text):
        took = now - started.get(m.group(1), now)
        return f"  {m.group(1)}: {m.group(2)} in {took:.1f} s"
    if m := _EPOCH.search(text):
        return f"    {m.group(1)}"
    return None


class _Progress(io.TextIOBase):
    """Writes everything to the log, shows the progress lines on the terminal, keeps the last lines for errors."""

    def __init__(self, log: TextIO, terminal: TextIO, lines: collections.deque[str]) -> None:
        self._log = log
        self._terminal = terminal
        self._lines = lines
        self._partial = ""
        self._started: dict[str, float] = {}

    def write(self, s: str) -> int:
        self._log.write(s)
        self._partial += s
        *done, self._partial = self._partial.split("\n")
        self._lines.extend(done)
        for line in done:
            shown = progress_line(line, self._started, time.monotonic())
            if shown is not None:
                self._terminal.write(shown + "\n")
                self._terminal.flush()
        return len(s)

    def flush(self) -> None:
        self._log.flush()
        self._terminal.flush()

    def isatty(self) -> bool:
        return False


@contextmanager
def _progress_only(log: TextIO, keep: int = 400) -> Iterator[collections.deque[str]]:
    """While inside, ``print`` and kfp.local's logging go to ``log``; the terminal shows only progress lines."""
    lines: collections.deque[str] = collections.deque(maxlen=keep)
    original = sys.stdout
    sys.stdout = _Progress(log, original, lines)
    try:
        yield lines
    finally:
        sys.stdout.flush()
        sys.stdout = original
