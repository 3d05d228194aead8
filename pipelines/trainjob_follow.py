"""Following a TrainJob to its end: one progress line per change, success on ``Complete``, one line on ``Failed``.

The TrainJob is read, then watched from that resourceVersion in windows until a deadline (:func:`storage.kube.follow`:
a watch whose resourceVersion expired reads it again). Trainer v2.0.0 tells how a TrainJob goes only by its
conditions (``Suspended``, ``Complete``, ``Failed``; its ``jobsStatus`` stays empty), so the pods of its JobSet
(label ``jobset.sigs.k8s.io/jobset-name``) are listed at each event of the TrainJob and at the end of each quiet
window, and their phases are reported when they change. :class:`Seen` is the state machine: it takes what was read
and returns the lines to print; :func:`pipelines.trainjob.finished` decides the end.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines import errors, trainjob
from storage import errors as storage_errors
from storage import kube

Progress = Callable[[str], None]
RBAC_HINT = "give the step's service account the Role of k8s/trainjob-rbac (docs/scaling-out.md)"


@dataclass(frozen=True)
class FollowSettings:
    """How long to follow a TrainJob, and how often to look at its pods.

    Attributes:
        timeout_s: give up following after this many seconds (the TrainJob goes on). Default 72 hours.
        window_s: at most this many seconds per watch request of the TrainJob; its pods are listed after each
            (and at each event of the TrainJob). Default 30.
    """

    timeout_s: float = 72 * 3600.0
    window_s: float = 30.0


DEFAULTS = FollowSettings()


def describe_pods(phases: list[str], workers: int) -> str:
    """The pods' phases in a few words: ``2/2 pods running``, ``0/2 pods running (2 Pending)``."""
    counts = collections.Counter(phases)
    running = counts.pop("Running", 0)
    others = ", ".join(f"{n} {phase}" for phase, n in sorted(counts.items()))
    return f"{running}/{workers} pods running" + (f" ({others})" if others else "")


@dataclass
class Seen:
    """What has been reported of TrainJob ``name``: each update returns the lines for what changed since.

    Attributes:
        name: the TrainJob's name.
        workers: its pods (``spec.trainer.numNodes``).
        conditions: per condition type (``Complete``...), the status and reason last reported.
        pods: the pods' phases as last reported (:func:`describe_pods`); empty until a pod was seen.
    """

    name: str
    workers: int
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    pods: str = ""

    def trainjob(self, obj: Mapping[str, Any]) -> list[str]:
        """The lines for the conditions of ``obj`` (the TrainJob as read) that changed: type, status, reason, text."""
        lines = []
        for c in trainjob.conditions(obj):
            if self.conditions.get(c.type) == (c.status, c.reason):
                continue
            self.conditions[c.type] = (c.status, c.reason)
            said = ": ".join(part for part in (c.reason, c.message) if part)
            lines.append(f"TrainJob {self.name}: {c.type} {c.status}" + (f" ({said})" if said else ""))
        return lines

    def pod_phases(self, phases: list[str]) -> list[str]:
        """The line for the pods' ``phases`` (``status.phase`` of each) when they changed; none before the first pod."""
        if not phases and not self.pods:
            return []
        text = describe_pods(phases, self.workers)
        if text == self.pods:
            return []
        self.pods = text
        return [f"TrainJob {self.name}: {text}"]


class _Pods:
    """The phases of the TrainJob's pods; after a 403 it says so once and lists no more."""

    def __init__(self, api: Any, namespace: str, name: str, progress: Progress) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.namespace, self.name, self.progress = namespace, name, progress
        self.allowed = True

    def phases(self) -> list[str]:
        if not self.allowed:
            return []
        try:
            listing = kube.call(
                self.core.list_namespaced_pod,
                f"list the pods of TrainJob {self.namespace}/{self.name}",
                self.namespace,
                label_selector=f"{trainjob.POD_LABEL}={self.name}",
            )
        except storage_errors.ForbiddenError as e:
            self.allowed = False
            self.progress(f"TrainJob {self.name}: {e.message}; following its conditions only ({RBAC_HINT})")
            return []
        return [(p.status.phase if p.status else "") or "Unknown" for p in listing.items]


def follow(
    api: Any,
    namespace: str,
    name: str,
    workers: int,
    *,
    settings: FollowSettings = DEFAULTS,
    progress: Progress = lambda line: None,
) -> Mapping[str, Any]:
    """Follow TrainJob ``namespace/name`` until its ``Complete`` condition; return it as last read.

    Args:
        api: a ``kubernetes.client.ApiClient``.
        namespace: the TrainJob's namespace.
        name: its name.
        workers: its pods, for the progress lines.
        settings: the deadline and the watch window.
        progress: receives one line per change (the pods' phases, each condition).

    Raises:
        RunFailedError: its ``Failed`` condition (one line: the TrainJob, the reason, the message), or it was deleted.
        RunTimeoutError: it did not finish before the deadline (it may still run).
        StorageError: it could not be read or watched (403 ForbiddenError, ...).
    """
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    what = f"TrainJob {namespace}/{name}"
    seen, pods = Seen(name, workers), _Pods(api, namespace, name, progress)
    last: Mapping[str, Any] = {}

    def read() -> Any:
        try:
            return kube.call(
                custom.get_namespaced_custom_object,
                f"get {what}",
                trainjob.GROUP,
                trainjob.VERSION,
                namespace,
                trainjob.PLURAL,
                name,
            )
        except storage_errors.NotFoundError:
            return None

    events = kube.follow(
        custom.list_namespaced_custom_object,
        trainjob.GROUP,
        trainjob.VERSION,
        namespace,
        trainjob.PLURAL,
        name=name,
        what=what,
        kind="TrainJobs",
        deadline=time.monotonic() + settings.timeout_s,
        window=settings.window_s,
        read=read,
    )
    with kube.reachable(f"follow {what}", api), forbidden_hint():
        for kind, obj in events:
            if kind == "DELETED" or (kind == kube.LISTED and obj is None):
                raise errors.RunFailedError(
                    f"TrainJob {name} was deleted before it finished",
                    hint="run the pipeline again: train-resnet resumes from the last published epoch",
                )
            last = obj if obj is not None else last
            for line in seen.pod_phases(pods.phases()) + seen.trainjob(last):
                progress(line)
            if trainjob.finished(last, name):
                return last
    state = ", ".join(f"{k} {s}" for k, (s, _) in seen.conditions.items()) or "no condition"
    raise errors.RunTimeoutError(
        f"TrainJob {name} did not finish in {settings.timeout_s:.0f} s; last seen: {state}, {seen.pods or 'no pod'}",
        hint=f"it may still run: kubectl get trainjob {name} -n {namespace}; delete it to stop it",
    )


@contextlib.contextmanager
def forbidden_hint() -> Iterator[None]:
    """Give a 403 inside the block the hint that fixes it: the Role of k8s/trainjob-rbac."""
    try:
        yield
    except storage_errors.ForbiddenError as e:
        raise storage_errors.ForbiddenError(e.message, hint=RBAC_HINT) from e
