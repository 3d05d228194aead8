"""The periodic re-check of ``sharedvol serve``, and the state ``/healthz`` reports.

Every ``recheck_s`` seconds: list the claims and provision the Pending ones of its provisioner that are due
(a failed claim waits 1, 2, 4... periods, at most ``max_backoff_s``); list the PVs and reclaim the Released
ones of its provisioner; settle what a killed service left (:func:`storage.provisioner.reclaim.sweep`).
Each object is handled on its own: none can end the loop. It remembers whether listing claims works, and
whether the loop goes on: that is what ``/healthz`` reports. Objects are listed in pages, keeping only what the
loop needs of each (a claim may carry 256 KiB of annotations), and failed objects' retries are spread out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import CoreV1Api

from storage import errors, heartbeat
from storage.provisioner import provision, reclaim
from storage.provisioner import settings as settings_mod

log = logging.getLogger("sharedvol.provisioner")
PAGE = 250  # objects per list call


def paged(list_call: Callable[..., Any]) -> Iterator[Any]:
    """Every object ``list_call`` lists, one page of :data:`PAGE` at a time."""
    token = ""
    while True:
        page = list_call(limit=PAGE, _continue=token) if token else list_call(limit=PAGE)
        yield from page.items
        token = page.metadata._continue if page.metadata else ""
        if not token:
            return


@dataclass
class Recheck:
    """State of the re-check loop.

    Attributes:
        settings: the service's settings.
        last_ok: ``time.monotonic()`` of the last successful list of claims (None: never).
        last_error: why the last list failed ("" when it worked).
        last_step: ``time.monotonic()`` of the last object the loop tried (a long pass is working, not stuck).
        failures: claim UID (or ``pv/<PV UID>``) -> (failed attempts, monotonic time of the next try).
        heartbeat_error: why the last heartbeat failed ("" when it worked; None before the first).
        refused: set when the API server answered 401 (credentials revoked or expired while running): the
            service stops, since nothing it does can work any more and a restart may bring a new token.
    """

    settings: settings_mod.Settings
    last_ok: float | None = None
    last_error: str = "claims not listed yet"
    last_step: float = 0.0
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    heartbeat_error: str | None = None
    refused: str = ""

    def failed(self, uid: str) -> None:
        """Count a failed attempt for object ``uid`` and schedule the next one."""
        count = self.failures.get(uid, (0, 0.0))[0] + 1
        delay = min(self.settings.recheck_s * 2 ** (count - 1), self.settings.max_backoff_s)
        delay *= random.uniform(0.75, 1.0)  # objects that failed together are not all tried again together
        self.failures[uid] = (count, time.monotonic() + delay)
        log.warning("%s: attempt %d failed; next try in %.0f s", uid, count, delay)

    def due(self, uid: str) -> bool:
        """Whether claim ``uid`` may be tried now."""
        return time.monotonic() >= self.failures.get(uid, (0, 0.0))[1]

    def healthy(self) -> tuple[bool, str]:
        """(healthy, why): healthy while the last list of claims worked and is recent."""
        if self.last_ok is None:
            return False, self.last_error or "claims not listed yet"
        now, limit = time.monotonic(), 3 * self.settings.recheck_s + 30
        age = now - self.last_ok
        if self.last_error or now - max(self.last_ok, self.last_step) > limit:
            return False, self.last_error or f"claims last listed {age:.0f} s ago"
        if age > limit:  # one long pass (many claims to try): it goes on
            return True, f"claims listed {age:.0f} s ago; the re-check is still trying them one by one"
        return True, f"claims listed {age:.0f} s ago"

    def once(self, core: CoreV1Api) -> None:
        """Re-check claims, then volumes, then pending records (blocking: run it in a thread). Never raises.

        Each part on its own: whatever one raises is logged, and the loop goes on (a part that raised once
        ended the loop for good: no claim was tried again).
        """
        for part in (self.claims, self.volumes, lambda c: reclaim.sweep(c, self.settings)):
            try:
                part(core)
            except Exception as e:  # isolation: the re-check must outlive anything one part meets
                log.error("re-check: unexpected %s: %s", type(e).__name__, str(e)[:300])

    def beat(self, core: CoreV1Api) -> None:
        """Renew the heartbeat Lease (:mod:`storage.heartbeat`); log only when its state changes."""
        duration = int(3 * self.settings.recheck_s + 5)
        config = self.settings
        why = heartbeat.beat(core.api_client, config.namespace, config.provisioner, duration, config.node_name)
        if why != self.heartbeat_error:
            (log.warning if why else log.info)("heartbeat: %s", why or "Lease renewed")
        self.heartbeat_error = why

    def claims(self, core: CoreV1Api) -> None:
        """List every claim; provision those that want us and are due."""
        provisioner = self.settings.provisioner
        try:
            live: set[str] = set()
            wanted: list[tuple[str, str, str]] = []
            for c in paged(core.list_persistent_volume_claim_for_all_namespaces):
                live.add(c.metadata.uid)
                if provision.wants_claim(c, provisioner):
                    wanted.append((c.metadata.namespace, c.metadata.name, c.metadata.uid))
        except Exception as e:  # reported by /healthz; the next period tries again
            if getattr(e, "status", None) == 401:
                self.refused = "the API server refused the service's credentials (401 Unauthorized) while it ran"
            self.last_error = f"cannot list claims: {getattr(e, 'reason', None) or e}"
            log.error("re-check: %s", self.last_error)
            return
        self.last_ok, self.last_error = time.monotonic(), ""
        self.failures = {k: v for k, v in self.failures.items() if k in live or k.startswith("pv/")}
        for namespace, name, uid in wanted:
            if not self.due(uid):
                continue
            if provision.try_provision(core, namespace, name, self.settings):
                self.failures.pop(uid, None)
            else:
                self.failed(uid)
            self.last_step = time.monotonic()

    def volumes(self, core: CoreV1Api) -> None:
        """List every PV; reclaim those that are ours, Released and due (a failed one waits as a claim does)."""
        try:
            wanted: list[tuple[str, str]] = []
            for pv in paged(core.list_persistent_volume):
                phase = pv.status.phase if pv.status else None
                policy = pv.spec.persistent_volume_reclaim_policy if pv.spec else None
                if reclaim.wants(pv.metadata.annotations or {}, phase, policy, self.settings.provisioner):
                    wanted.append((pv.metadata.name, f"pv/{pv.metadata.uid}"))
        except Exception as e:  # the next period tries again
            log.error("re-check: cannot list PersistentVolumes: %s", getattr(e, "reason", None) or e)
            return
        for name, key in wanted:
            if not self.due(key):
                continue
            if reclaim.try_reclaim(core, name, self.settings):
                self.failures.pop(key, None)
            else:
                self.failed(key)
            self.last_step = time.monotonic()

    async def run(self, core: CoreV1Api, *, first_delay: float = 0.0) -> None:
        """Re-check until cancelled, the first time after ``first_delay`` seconds.

        Raises:
            ForbiddenError: the API server refused the credentials (401): revoked or expired while running.
        """
        await asyncio.sleep(first_delay)
        while True:
            await asyncio.to_thread(self.once, core)
            if self.refused:
                raise errors.ForbiddenError(
                    self.refused, hint="give it a valid token (the pod's service account, or --kubeconfig FILE)"
                )
            await asyncio.sleep(self.settings.recheck_s)

    async def beating(self, core: CoreV1Api, done: asyncio.Event) -> None:
        """Renew the heartbeat every re-check period, on its own (a long re-check does not delay it), until ``done``.

        A renewal under way when ``done`` is set finishes first: the Lease deleted after this returns stays deleted
        (a renewal cancelled mid-call went on in its thread and could make the Lease again).
        """
        while not done.is_set():
            await asyncio.to_thread(self.beat, core)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.settings.recheck_s)
