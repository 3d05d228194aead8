"""Carry out a plan: create the PV and the claim idempotently, then watch until Bound or a clear failure.

A rerun finds what exists and checks that it matches. A PV created for a claim that then could not be
created is deleted again. Waiting is a watch with a deadline that also reads the claim's events, so a
claim that will never bind fails early with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storage import errors, plan, validate

log = logging.getLogger(__name__)

FATAL_EVENT_REASONS = ("ProvisioningFailed", "VolumeMismatch", "FailedBinding")
WAIT_FIRST_CONSUMER = "WaitForFirstConsumer"
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


@dataclass
class Result:
    """What :func:`apply` did.

    Attributes:
        plan: the plan carried out.
        phase: the claim's phase at the end (Bound, or Pending when waiting for a first consumer or not waiting).
        volume: the bound PV's name ("" when not bound yet).
        created: ``kind/name`` of each object this call created (a rerun creates nothing).
        waited_s: seconds spent waiting.
        note: what the claim is waiting for, when it is not Bound.
    """

    plan: plan.Plan
    phase: str
    volume: str
    created: list[str] = field(default_factory=list)
    waited_s: float = 0.0
    note: str = ""


def _call(fn: Callable[..., Any], action: str, *args: Any, **kwargs: Any) -> Any:
    """Call the API; retry 429 and 5xx along a finite backoff, logging each attempt; map errors."""
    from kubernetes import client

    for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        try:
            return fn(*args, **kwargs)
        except client.ApiException as e:
            retriable = e.status == 429 or (e.status or 0) >= 500
            if not retriable or delay is None:
                raise errors.from_api(e, action) from e
            log.warning("%s: attempt %d failed (HTTP %s); will retry in %.1f s", action, attempt, e.status, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def apply(api: Any, p: plan.Plan, *, timeout: float = 120.0, wait: bool = True) -> Result:
    """Create what ``p`` says (or find it), then wait for the claim to bind.

    Raises:
        ConflictError: an object exists and does not match (a PV bound to another claim, other access modes...).
        ForbiddenError: RBAC denied a call.
        BindError: the claim did not bind; the message carries the reason from its events.
    """
    from kubernetes import client

    core = client.CoreV1Api(api)
    r = p.request
    created: list[str] = []
    if p.strategy == "existing":
        existing = _read_claim(core, r.namespace, r.existing or r.name)
        if existing is None:
            raise errors.NotFoundError(
                f"claim {r.namespace}/{r.existing} does not exist", hint="create it, or drop --existing"
            )
        _check_rwx(existing)
        return Result(p, existing.status.phase, existing.spec.volume_name or "")
    assert p.claim is not None
    if p.pv is not None:
        if _ensure_pv(core, p):
            created.append(f"PersistentVolume/{p.pv['metadata']['name']}")
        _wait_volume_seen(core, p.pv["metadata"]["name"], timeout=min(timeout, 30.0))
    try:
        claim = _read_claim(core, r.namespace, r.name)
        if claim is None:
            _call(
                core.create_namespaced_persistent_volume_claim,
                f"create claim {r.namespace}/{r.name}",
                r.namespace,
                p.claim,
            )
            created.append(f"PersistentVolumeClaim/{r.name}")
            log.info("created claim %s/%s", r.namespace, r.name)
        else:
            _check_matches(claim, p)
            log.info("claim %s/%s exists and matches the plan", r.namespace, r.name)
    except errors.StorageError:
        if created and p.pv is not None:
            _call(core.delete_persistent_volume, "delete the PV made for the claim", p.pv["metadata"]["name"])
            log.info("deleted PersistentVolume %s again: its claim could not be created", p.pv["metadata"]["name"])
        raise
    if not wait:
        claim = _read_claim(core, r.namespace, r.name)
        return Result(
            p, claim.status.phase if claim else "Pending", (claim.spec.volume_name or "") if claim else "", created
        )
    started = time.monotonic()
    try:
        phase, volume, note = wait_bound(api, r.namespace, r.name, timeout=timeout, nudge=p.pv is not None)
    except errors.BindError as e:
        left = ", ".join(created) or f"PersistentVolumeClaim/{r.name}"
        raise errors.BindError(
            e.message,
            hint=f"{e.hint}; left in place: {left} (remove with: sharedvol release {r.name} -n {r.namespace})",
        ) from e
    return Result(p, phase, volume, created, round(time.monotonic() - started, 3), note)


def _read_claim(core: Any, namespace: str, name: str) -> Any:
    from kubernetes import client

    try:
        return core.read_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise errors.from_api(e, f"read claim {namespace}/{name}") from e


def _ensure_pv(core: Any, p: plan.Plan) -> bool:
    """Create the plan's PV, or check the one that exists; True when created."""
    from kubernetes import client

    assert p.pv is not None
    name = p.pv["metadata"]["name"]
    try:
        pv = core.read_persistent_volume(name)
    except client.ApiException as e:
        if e.status != 404:
            raise errors.from_api(e, f"read PersistentVolume {name}") from e
        _call(core.create_persistent_volume, f"create PersistentVolume {name}", p.pv)
        log.info("created PersistentVolume %s", name)
        return True
    ref = pv.spec.claim_ref
    want = (p.request.namespace, p.request.name)
    if ref is not None and (ref.namespace, ref.name) != want:
        raise errors.ConflictError(
            f"PersistentVolume {name} is bound to claim {ref.namespace}/{ref.name}, not {want[0]}/{want[1]}",
            hint="release that claim first, or pick another claim name",
        )
    if "ReadWriteMany" not in (pv.spec.access_modes or []):
        raise errors.ConflictError(f"PersistentVolume {name} exists without ReadWriteMany", hint="delete it or rename")
    have = validate.quantity_bytes(pv.spec.capacity.get("storage", "0") or "0")
    if have < validate.quantity_bytes(p.request.size):
        raise errors.ConflictError(
            f"PersistentVolume {name} holds {pv.spec.capacity['storage']}, less than the {p.request.size} asked for",
            hint="ask for at most that size, or release it and provision again",
        )
    log.info("PersistentVolume %s exists and matches the plan", name)
    return False


def _wait_volume_seen(core: Any, name: str, *, timeout: float) -> None:
    """Watch the PV until the PV controller has synced it (phase Available, or Bound).

    The controller binds a pre-bound claim when it syncs the claim; if the claim arrives before the
    controller has seen its volume, binding waits for the controller's 15-second resync. Creating the
    claim only after the volume left phase Pending avoids that.
    """
    from kubernetes import watch

    listing = _call(core.list_persistent_volume, "list PersistentVolumes", field_selector=f"metadata.name={name}")
    if any(pv.status.phase in ("Available", "Bound") for pv in listing.items):
        return
    w = watch.Watch()
    for event in w.stream(
        core.list_persistent_volume,
        field_selector=f"metadata.name={name}",
        resource_version=listing.metadata.resource_version,
        timeout_seconds=max(1, int(timeout)),
    ):
        if event["object"].status.phase in ("Available", "Bound"):
            w.stop()
            return
    log.warning(
        "PersistentVolume %s was not synced by the PV controller in %.0f s; creating the claim anyway", name, timeout
    )


def _check_rwx(claim: Any) -> None:
    modes = claim.spec.access_modes or []
    if "ReadWriteMany" not in modes:
        raise errors.ConflictError(
            f"claim {claim.metadata.namespace}/{claim.metadata.name} exists with access modes {modes}, "
            "not ReadWriteMany",
            hint="steps on different pods need ReadWriteMany: release it (sharedvol release NAME) or pick another name",
        )


def _check_matches(claim: Any, p: plan.Plan) -> None:
    _check_rwx(claim)
    want_class = p.storage_class
    have_class = claim.spec.storage_class_name or ""
    if have_class != want_class:
        raise errors.ConflictError(
            f"claim {claim.metadata.namespace}/{claim.metadata.name} exists with StorageClass {have_class!r}, "
            f"not {want_class!r}",
            hint="release it first (sharedvol release NAME), or use --existing to keep it",
        )
    if p.pv is not None and claim.spec.volume_name not in (None, p.pv["metadata"]["name"]):
        raise errors.ConflictError(
            f"claim {claim.metadata.name} is bound to volume {claim.spec.volume_name}, not {p.pv['metadata']['name']}",
            hint="release it first, or use --existing",
        )


def _events(core: Any, namespace: str, name: str) -> list[Any]:
    from kubernetes import client

    try:
        items = core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=PersistentVolumeClaim"
        ).items
    except client.ApiException:
        return []
    return sorted(items, key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp or ""))


def wait_bound(
    api: Any, namespace: str, name: str, *, timeout: float = 120.0, nudge: bool = False
) -> tuple[str, str, str]:
    """Watch the claim until it is Bound, waits for its first consumer, or a deadline passes.

    With ``nudge`` (a claim pre-bound to a PV sharedvol made), each quiet watch window ends with a
    touch of the claim's ``sharedvol.io/resync`` annotation: the PV controller then syncs the claim
    at once instead of at its next 15-second resync (it misses the pair when the claim reaches it
    before its cache holds the volume's latest version).

    Returns:
        (phase, volume name, note): note says what a Pending claim waits for.

    Raises:
        BindError: an event says it will not bind, or the deadline passed (with the last event's message).
    """
    from kubernetes import client, watch

    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    selector = f"metadata.name={name}"
    listing = _call(core.list_namespaced_persistent_volume_claim, "list claims", namespace, field_selector=selector)
    rv = listing.metadata.resource_version
    claim = listing.items[0] if listing.items else None
    log.info("waiting up to %.0f s for claim %s/%s to bind", timeout, namespace, name)
    while True:
        if claim is not None and claim.status.phase == "Bound":
            log.info("claim %s/%s is Bound to %s", namespace, name, claim.spec.volume_name)
            return "Bound", claim.spec.volume_name or "", ""
        events = _events(core, namespace, name)
        for event in events:
            if event.reason in FATAL_EVENT_REASONS:
                raise errors.BindError(
                    f"claim {namespace}/{name} will not bind: {event.reason}: {event.message}",
                    hint="run `sharedvol doctor -n " + namespace + "` for the fix",
                )
        if events and events[-1].reason == WAIT_FIRST_CONSUMER:
            return "Pending", "", "waits for the first pod that uses it (WaitForFirstConsumer)"
        left = deadline - time.monotonic()
        if left <= 0:
            last = f"{events[-1].reason}: {events[-1].message}" if events else "no events"
            raise errors.BindError(
                f"claim {namespace}/{name} was not Bound after {timeout:.0f} s ({last})",
                hint="run `sharedvol doctor -n " + namespace + "` to see why",
            )
        w = watch.Watch()
        # Short watch windows: between them the claim's events are read again.
        try:
            for event in w.stream(
                core.list_namespaced_persistent_volume_claim,
                namespace,
                field_selector=selector,
                resource_version=rv,
                timeout_seconds=max(1, min(1 if nudge else 5, int(left))),
            ):
                claim = event["object"]
                rv = claim.metadata.resource_version
                if claim.status.phase == "Bound":
                    w.stop()
                    break
        except client.ApiException as e:
            if e.status != 410:  # 410 Gone: our resourceVersion expired; list again and go on watching
                raise errors.from_api(e, f"watch claim {namespace}/{name}") from e
            listing = _call(
                core.list_namespaced_persistent_volume_claim, "list claims", namespace, field_selector=selector
            )
            rv = listing.metadata.resource_version
            claim = listing.items[0] if listing.items else None
        if nudge and (claim is None or claim.status.phase != "Bound"):
            touch = {"metadata": {"annotations": {"sharedvol.io/resync": f"{time.time():.3f}"}}}
            _call(
                core.patch_namespaced_persistent_volume_claim,
                f"annotate claim {namespace}/{name}",
                name,
                namespace,
                touch,
            )
