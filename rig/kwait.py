"""Wait for Kubernetes objects in tests: list once, then watch from that resourceVersion until a
predicate holds or a deadline passes. No sleeping, no polling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import watch


def until(
    list_func: Callable[..., Any],
    predicate: Callable[[Any], bool],
    *args: Any,
    timeout: float = 30.0,
    what: str = "object",
    **kwargs: Any,
) -> Any:
    """The first object from ``list_func(*args, **kwargs)`` (and its watch) for which ``predicate`` holds.

    Raises:
        AssertionError: the deadline passed; the message lists the last state seen.
    """
    deadline = time.monotonic() + timeout
    listing = list_func(*args, **kwargs)
    for item in listing.items:
        if predicate(item):
            return item
    last: Any = listing.items[-1] if listing.items else None
    rv = listing.metadata.resource_version
    while (left := deadline - time.monotonic()) > 0:
        w = watch.Watch()
        for event in w.stream(list_func, *args, resource_version=rv, timeout_seconds=max(1, int(left)), **kwargs):
            obj = event["object"]
            rv = obj.metadata.resource_version
            last = obj
            if event["type"] != "DELETED" and predicate(obj):
                w.stop()
                return obj
            if time.monotonic() > deadline:
                w.stop()
                break
    raise AssertionError(f"{what} did not reach the expected state in {timeout:.0f} s; last seen: {_brief(last)}")


def gone(list_func: Callable[..., Any], name: str, *args: Any, timeout: float = 30.0, what: str = "") -> None:
    """Return once the object ``name`` of ``list_func(*args)`` is gone: listed, then watched for its DELETED event
    until the deadline.

    Raises:
        AssertionError: it still exists at the deadline.
    """
    deadline = time.monotonic() + timeout
    listing = list_func(*args, **named(name))
    if not listing.items:
        return
    rv = listing.metadata.resource_version
    while (left := deadline - time.monotonic()) > 0:
        w = watch.Watch()
        for event in w.stream(list_func, *args, resource_version=rv, timeout_seconds=max(1, int(left)), **named(name)):
            rv = event["object"].metadata.resource_version
            if event["type"] == "DELETED":
                w.stop()
                return
    raise AssertionError(f"{what or name} was not deleted in {timeout:.0f} s")


def _brief(obj: Any) -> str:
    if obj is None:
        return "nothing"
    status = getattr(obj, "status", None)
    phase = getattr(status, "phase", None) if status is not None else None
    reason = getattr(obj, "reason", None)
    return f"{obj.metadata.name} phase={phase} reason={reason}"


def named(name: str) -> dict[str, Any]:
    """The field selector for one object by name, for ``until(..., **named(n))``."""
    return {"field_selector": f"metadata.name={name}"}


def claim_phase(core: Any, namespace: str, name: str, phase: str = "Bound", *, timeout: float = 30.0) -> Any:
    """Claim ``namespace/name`` once it is in ``phase`` (``core``: a ``CoreV1Api``).

    Raises:
        AssertionError: the deadline passed.
    """
    return until(
        core.list_namespaced_persistent_volume_claim,
        lambda c: c.status.phase == phase,
        namespace,
        timeout=timeout,
        what=f"claim {name}",
        **named(name),
    )


def event(core: Any, namespace: str, reason: str, about: str, *, timeout: float = 30.0) -> Any:
    """The first event with ``reason`` about the object named ``about`` in ``namespace`` (``core``: a ``CoreV1Api``).

    Raises:
        AssertionError: the deadline passed.
    """
    return until(
        core.list_namespaced_event,
        lambda e: e.reason == reason,
        namespace,
        timeout=timeout,
        what=f"{reason} event about {about}",
        field_selector=f"involvedObject.name={about}",
    )
