"""The re-check's own state: what /healthz says during a long pass, and how failed objects' retries spread."""

from __future__ import annotations

import time

from storage.provisioner import recheck, settings


def _state(**kw: float) -> recheck.Recheck:
    """A re-check whose last list of claims worked (healthy while heard from within 3 periods + 30 s: 60 s)."""
    return recheck.Recheck(settings.Settings(recheck_s=10.0), last_error="", **kw)


def test_a_pass_that_lists_long_ago_but_still_tries_claims_is_healthy_and_says_so() -> None:
    now = time.monotonic()  # 900 failing claims made one pass outlast the limit: the liveness probe restarted it
    ok, why = _state(last_ok=now - 200, last_step=now - 1).healthy()
    assert ok and why == "claims listed 200 s ago; the re-check is still trying them one by one"


def test_a_pass_that_stopped_trying_is_unhealthy() -> None:
    now = time.monotonic()
    ok, why = _state(last_ok=now - 200, last_step=now - 100).healthy()
    assert not ok and why == "claims last listed 200 s ago"


def test_objects_that_failed_together_are_tried_again_at_spread_out_times_never_later_than_the_backoff() -> None:
    state = _state()
    before = time.monotonic()
    for n in range(50):
        state.failed(f"claim-{n}")
    waits = [due - before for _, due in state.failures.values()]
    assert len({round(w, 3) for w in waits}) > 25
    assert all(7.4 <= w <= 10.1 for w in waits)  # between 3/4 of a period and the period
