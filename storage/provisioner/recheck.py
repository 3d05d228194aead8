"""The periodic re-check of ``sharedvol serve``, and the state ``/healthz`` reports.

List the claims every ``recheck_s`` seconds, provision the
Pending ones of its provisioner that are due (a failed claim waits 1, 2, 4... periods, at most
``max_backoff_s``), and remember whether listing claims works: that is what ``/healthz`` reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from storage.provisioner import handlers
from storage.provisioner import settings as settings_mod

log = logging.getLogger("sharedvol.provisioner")


@dataclass
class Recheck:
    """State of the re-check loop.

    Attributes:
        settings: the service's settings.
        last_ok: ``time.monotonic()`` of the last successful list of claims (None: never).
        last_error: why the last list failed ("" when it worked).
        failures: claim UID -> (failed attempts, monotonic time of the next try).
    """

    settings: settings_mod.Settings
    last_ok: float | None = None
    last_error: str = "claims not listed yet"
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def failed(self, uid: str) -> None:
        """Count a failed attempt for claim ``uid`` and schedule the next one."""
        count = self.failures.get(uid, (0, 0.0))[0] + 1
        delay = min(self.settings.recheck_s * 2 ** (count - 1), self.settings.max_backoff_s)
        self.failures[uid] = (count, time.monotonic() + delay)
        log.warning("claim uid %s: attempt %d failed; next try in %.0f s", uid, count, delay)

    def due(self, uid: str) -> bool:
        """Whether claim ``uid`` may be tried now."""
        return time.monotonic() >= self.failures.get(uid, (0, 0.0))[1]

    def healthy(self) -> tuple[bool, str]:
        """(healthy, why): healthy while the last list of claims worked and is recent."""
        if self.last_ok is None:
            return False, self.last_error
        age = time.monotonic() - self.last_ok
        if self.last_error or age > 3 * self.settings.recheck_s + 30:
            return False, self.last_error or f"claims last listed {age:.0f} s ago"
        return True, f"claims listed {age:.0f} s ago"

    def once(self, core: Any) -> None:
        """List every claim; provision those that want us and are due (blocking: run it in a thread)."""
        try:
            claims = core.list_persistent_volume_claim_for_all_namespaces().items
        except Exception as e:
            self.last_error = f"cannot list claims: {getattr(e, 'reason', None) or e}"
            log.error("re-check: %s", self.last_error)
            return
        self.last_ok, self.last_error = time.monotonic(), ""
        live = {c.metadata.uid for c in claims}
        self.failures = {uid: v for uid, v in self.failures.items() if uid in live}
        for c in claims:
            if not handlers.wants_claim(c, self.settings) or not self.due(c.metadata.uid):
                continue
            if handlers.try_provision(core, c.metadata.namespace, c.metadata.name, self.settings):
                self.failures.pop(c.metadata.uid, None)
            else:
                self.failed(c.metadata.uid)

    async def run(self, core: Any, *, first_delay: float = 0.0) -> None:
        """Re-check forever (until cancelled), the first time after ``first_delay`` seconds."""
        await asyncio.sleep(first_delay)
        while True:
            await asyncio.to_thread(self.once, core)
            await asyncio.sleep(self.settings.recheck_s)
