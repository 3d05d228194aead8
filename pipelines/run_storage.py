"""Where ``sharedvol run``'s volume comes from: the ``--storage`` choice carried out on the cluster.

``auto``, ``static`` and ``nfs:SERVER:/PATH`` go through the storage plan (:func:`storage.plan.make`; a static
volume is made now and waited on until Bound); a class or claim the user names is checked (the class exists
and serves RWX, sharedvol-hostpath's provisioner runs, the claim exists and is RWX); ``static:PV`` is used as
given. Nothing is created for a choice that fails its checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipelines import errors, flags, options
from storage import apply as storage_apply
from storage import choice as storage_choice
from storage import classes as storage_classes
from storage import errors as storage_errors
from storage import plan as storage_plan

if TYPE_CHECKING:
    from pipelines import run

INSTALL_HINT = (
    "install RWX storage (kubectl apply -k k8s/nfs) or the fallback provisioner (kubectl apply -k k8s/fallback), "
    "or let an admin run `sharedvol provision NAME -n NAMESPACE --static` and pass --storage pvc:NAME"
)

Progress = Callable[[str], None]


def volume(
    api: Any, settings: run.RunSettings, nodes: list[str], progress: Progress, notes: list[str]
) -> tuple[options.StorageChoice, storage_plan.Plan | None, list[str]]:
    """The pipeline's storage choice, the plan behind it, and what was created for it (in order)."""
    ns = settings.namespace
    spec = settings.storage
    base = storage_plan.Request(
        name=settings.claim_name,
        namespace=ns,
        size=settings.submit.params.volume_size,
        host_path_base=settings.host_path_base,
    )
    if spec.kind in ("class", "claim", "pv"):
        return _explicit(api, spec, base, progress, notes)
    req = dataclasses.replace(base, **spec.plan_fields(), node=settings.node or (nodes[0] if nodes else None))
    try:
        p = storage_plan.make(api, req)
    except storage_errors.StorageError as e:
        raise errors.StorageUnavailableError(
            f"no storage for the run ({e.message})", hint=e.hint or INSTALL_HINT
        ) from e
    progress(f"storage: {p.describe()}")
    if p.strategy == "dynamic":  # the plan takes sharedvol-hostpath only when its provisioner runs
        return options.StorageChoice.dynamic(p.storage_class), p, []
    try:
        done = storage_apply.apply(
            api,
            p,
            timeout=settings.bind_timeout_s,
            prepare=storage_apply.PrepareSettings(image=settings.submit.compile.image),
        )
    except storage_errors.StorageError as e:
        raise errors.StorageUnavailableError(
            f"no RWX StorageClass and the one-shot static volume could not be made: {e.message}",
            hint=INSTALL_HINT,
        ) from e
    for made in done.created:
        progress(f"storage: created {made}")
    if not done.created:
        progress(f"storage: claim {ns}/{req.name} exists already and matches: reusing it")
    progress(f"storage: claim {ns}/{req.name} is {done.phase} to PersistentVolume {done.volume}")
    return options.StorageChoice.existing(req.name), p, done.created


def _check_fallback(api: Any, storage_class: str) -> None:
    """Refuse StorageClass sharedvol-hostpath when its provisioner is not running (its claims would stay Pending)."""
    if storage_class == storage_classes.FALLBACK_CLASS and not storage_plan.fallback_running(api):
        raise errors.StorageUnavailableError(
            f"no storage for the run (StorageClass {storage_classes.FALLBACK_CLASS} exists but its provisioner "
            "(`sharedvol serve`) is not running in namespace sharedvol-system)",
            hint="kubectl apply -k k8s/fallback, then check: kubectl -n sharedvol-system get pods",
        )


def _explicit(
    api: Any, spec: storage_choice.Choice, base: storage_plan.Request, progress: Progress, notes: list[str]
) -> tuple[options.StorageChoice, storage_plan.Plan | None, list[str]]:
    """Check a class, claim or PV the user named (class exists and serves RWX, claim exists and is RWX)."""
    given = flags.pipeline_volume(spec)
    if spec.kind == "pv":
        progress(f"storage: {given.describe()} (as given)")
        return given, None, []
    req = dataclasses.replace(base, **spec.plan_fields())
    try:
        p = storage_plan.make(api, req)
        if p.strategy == "existing":
            storage_apply.apply(api, p, wait=False)
        _check_fallback(api, p.storage_class)
    except storage_errors.ForbiddenError as e:
        progress(f"storage: {given.describe()} (as given; not checked: {e.message})")
        notes.append("the storage choice was not checked (no permission); a wrong one shows as a Pending claim")
        return given, None, []
    except storage_errors.StorageError as e:
        hint = e.hint or INSTALL_HINT
        raise errors.StorageUnavailableError(f"no storage for the run ({e.message})", hint=hint) from e
    progress(f"storage: {p.describe()}")
    return given, p, []
