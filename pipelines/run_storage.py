"""``sharedvol run``'s one call down into storage, and what comes back up as the pipeline's volume.

:func:`storage.provide.provide` does the storage side in one call (doctor's survey, a node for train-resnet,
the caller's KFP check, the plan, and the volume made when the plan makes one); this module turns the
settings into that call, its lines into progress, its outcome into the pipeline's
:class:`~pipelines.options.StorageChoice`, and storage's errors into the run's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client

from pipelines import errors, flags, options
from storage import choice as storage_choice
from storage import errors as storage_errors
from storage import hints, provide
from storage import plan as storage_plan
from storage import prepare as storage_prepare

TRAINING_STEP = "train-resnet"


@dataclass(frozen=True)
class Wanted:
    """What ``run`` asks of storage (from :class:`pipelines.run.RunSettings`).

    Attributes:
        storage: the ``--storage`` choice.
        namespace: the run's namespace.
        claim_name: the claim made for a static volume.
        size: the volume's size.
        host_path_base: base directory of a static hostPath volume.
        node: the node of a static hostPath volume (None: a node train-resnet fits).
        bind_timeout_s: seconds to wait for Bound.
        image: the steps' image (it hands a static volume's root to the steps' user).
        node_selector: train-resnet's node selector.
        gpus: train-resnet's GPUs.
    """

    storage: storage_choice.Choice
    namespace: str
    claim_name: str
    size: str
    host_path_base: str
    node: str | None
    bind_timeout_s: float
    image: str
    node_selector: dict[str, str]
    gpus: int


@dataclass
class Volume:
    """What came back: the pipeline's volume and what storage planned, made and found."""

    choice: options.StorageChoice
    plan: storage_plan.Plan | None
    created: list[str]
    strategy: str
    nodes: list[str]
    notes: list[str]


def volume(
    api: client.ApiClient, wanted: Wanted, checks: Callable[[], None], progress: Callable[[str], None]
) -> Volume:
    """Survey, check, plan and make the run's volume; nothing is made before every check passed.

    Raises:
        NoTrainingNodeError: no Ready node fits train-resnet.
        StorageUnavailableError: no usable storage, and none could be made (nothing is left half-made).
    """
    ask = provide.Ask(
        choice=wanted.storage,
        name=wanted.claim_name,
        namespace=wanted.namespace,
        size=wanted.size,
        host_path_base=wanted.host_path_base,
        node=wanted.node,
        timeout_s=wanted.bind_timeout_s,
        prepare=storage_prepare.Settings(image=wanted.image),
        per_run_claims=True,
        survey=provide.Survey(TRAINING_STEP, wanted.node_selector, wanted.gpus),
        checks=checks,
        progress=lambda stage, line: progress(f"{stage}: {line}"),
    )
    try:
        done = provide.provide(api, ask)
    except storage_errors.NoNodeError as e:
        raise errors.NoTrainingNodeError(e.message, hint=e.hint) from e
    except storage_errors.ApiError:
        raise  # no answer from the API server: its own line says so
    except storage_errors.StorageError as e:
        hint = e.hint or hints.NO_RWX
        if wanted.storage.kind == "auto" and hints.NO_RWX not in hint:
            hint = f"{hint}; or {hints.NO_RWX}"
        raise errors.StorageUnavailableError(f"no storage for the run ({e.message})", hint=hint) from e
    return Volume(_pipeline_volume(wanted, done), done.plan, done.created, done.strategy, done.nodes, done.notes)


def _pipeline_volume(wanted: Wanted, done: provide.Provided) -> options.StorageChoice:
    """What the compiled pipeline does for its volume: a class makes one per run, else the claim made or given."""
    p = done.plan
    if p is None:  # static:PV, or a choice used as given
        return flags.pipeline_volume(wanted.storage)
    if p.strategy == "dynamic":
        return options.StorageChoice.dynamic(p.storage_class)
    return options.StorageChoice.existing(p.request.existing or p.request.name)
