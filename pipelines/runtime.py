"""What a component does inside its pod besides calling ``steps``: where things live on the volume, logging.

The volume (``/mnt/shared`` on a cluster, a local directory in the demo) holds::

    data/<dataset key>/cifar-10-batches-py    prepared once, reused by later runs with the same data source
    runs/<run name or KFP run id>/            one run's directory (steps.dataplane.RunLayout)

Imported inside component bodies, so it stays light: no kfp, no torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re

from pipelines import errors, params

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def data_dir(volume: str, source: str) -> str:
    """The directory on the volume that holds the dataset of ``source``.

    Different sources get different directories, so a run asking for the official data never reuses a
    synthetic set prepared by an earlier run (and the other way round).

    Args:
        volume: the volume's mount path.
        source: the ``data_source`` pipeline parameter.
    """
    if source == "download":
        key = "cifar10"
    elif source == "synthetic" or source.startswith("synthetic:"):
        key = "synthetic" + source.removeprefix("synthetic").replace(":", "-")
    else:
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", os.path.basename(source.rstrip("/"))).strip("-.") or "data"
        key = f"local-{name}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
    return no_links(volume, f"{volume.rstrip('/')}/data/{key}")


def run_dir(volume: str, run_id: str, run_dir_name: str = "") -> str:
    """The run directory: ``<volume>/runs/<run_dir_name>``, or ``<volume>/runs/<run_id>`` when no name is given.

    A retried task of the same run gets the same directory (and so resumes); naming a run lets a later
    run continue in an earlier run's directory on a kept volume.

    Raises:
        BadParameterError: the name (or the id) is not one safe path component.
    """
    name = run_dir_name or run_id
    if not name:
        raise errors.BadParameterError("neither a run name nor a run id", hint="pass run_dir_name")
    params.check_run_name(name)
    return no_links(volume, f"{volume.rstrip('/')}/runs/{name}")


def run_dir_checked(run_dir: str) -> str:
    """``run_dir`` (``<volume>/runs/<name>``, as :func:`run_dir` gave it) after the same check for links.

    Raises:
        BadParameterError: ``runs`` or the run's directory is a symbolic link.
    """
    volume = os.path.dirname(os.path.dirname(run_dir.rstrip("/")))
    return no_links(volume or "/", run_dir)


def no_links(volume: str, path: str) -> str:
    """``path`` when no part of it below ``volume`` is a symbolic link (parts not there yet pass).

    The volume is shared: a link planted at ``data``, ``runs`` or a run's name would send every write of the
    step (datasets, checkpoints, results) wherever it points, outside the volume included.

    Raises:
        BadParameterError: naming the link and where it points.
    """
    where = volume.rstrip("/") or "/"
    for part in os.path.relpath(path, where).split(os.sep):
        where = os.path.join(where, part)
        if os.path.islink(where):
            raise errors.BadParameterError(
                f"{where} on the volume is a symbolic link (to {os.readlink(where)[:200]}); refused: "
                "sharedvol writes only into directories of its own",
                hint="remove the link from the volume, then run again",
            )
    return path


def setup_logging() -> None:
    """INFO logging to stderr, so the step's progress shows in the task log."""
    logging.raiseExceptions = False  # a log write that fails (a full disk) is not a traceback in the task's log
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, force=True)
