"""A property of provision and release against the real API server, for random sequences of operations.

Operations over two names in two namespaces: provision (static), release, release --keep-data, and a
claim deleted behind sharedvol's back (kubectl delete). After each operation, every Bound claim's PV
exists and is not being deleted, and every PV sharedvol made is reserved for the claim its name says
(none orphaned); at the end a rerun of provision for every name converges: all Bound, each to its own PV,
and a second rerun creates nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from rig import kwait
from storage import apply, errors, plan, release, specs
from tests.objects import ClusterObjects

NAMES = ("alpha", "beta")
OPS = ("provision", "release", "release-keep", "delete-claim")


@pytest.fixture
def two_namespaces(api: Any, namespace: str) -> Iterator[list[str]]:
    core = client.CoreV1Api(api)
    other = f"{namespace[:50]}-{uuid.uuid4().hex[:4]}"
    core.create_namespace({"metadata": {"name": other, "labels": {"sharedvol.io/test": "true"}}})
    kwait.until(core.list_namespaced_service_account, lambda sa: True, other, **kwait.named("default"))
    try:
        yield [namespace, other]
    finally:
        core.delete_namespace(other)


def _provision(api: Any, ns: str, name: str) -> apply.Result:
    return apply.apply(api, plan.make(api, plan.Request(name, ns, "1Gi", static=True)), timeout=90)


def _check(api: Any, namespaces: list[str]) -> None:
    core = client.CoreV1Api(api)
    claims = {
        (c.metadata.namespace, c.metadata.name): c
        for ns in namespaces
        for c in core.list_namespaced_persistent_volume_claim(ns).items
    }
    ours = {
        pv.metadata.name: pv
        for pv in core.list_persistent_volume(label_selector=f"{specs.MANAGED_BY}={specs.MANAGER}").items
        if pv.spec.claim_ref is not None and pv.spec.claim_ref.namespace in namespaces
    }
    for (ns, name), claim in claims.items():
        if claim.status.phase == "Bound" and not claim.metadata.deletion_timestamp:
            pv = ours.get(claim.spec.volume_name)
            assert pv is not None, f"claim {ns}/{name} is Bound to a PV that is gone"
            assert pv.metadata.deletion_timestamp is None, f"claim {ns}/{name} is Bound to a terminating PV"
    for name, pv in ours.items():
        ref = pv.spec.claim_ref
        assert name == specs.static_pv_name(ref.namespace, ref.name), f"PV {name} is reserved for another claim"


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(st.tuples(st.sampled_from(OPS), st.sampled_from(NAMES), st.integers(0, 1)), min_size=2, max_size=6)
)
def test_random_provisions_and_releases_keep_every_bound_claim_on_a_live_pv_and_a_rerun_converges(
    api: Any, two_namespaces: list[str], cluster_objects: ClusterObjects, steps: list[tuple[str, str, int]]
) -> None:
    core = client.CoreV1Api(api)
    for ns in two_namespaces:
        for name in NAMES:
            cluster_objects.track_pv(specs.static_pv_name(ns, name))
    for op, name, which in steps:
        ns = two_namespaces[which]
        try:
            if op == "provision":
                assert _provision(api, ns, name).phase == "Bound"
            elif op in ("release", "release-keep"):
                release.release(api, name, ns, keep_data=op == "release-keep")
            else:
                core.delete_namespaced_persistent_volume_claim(name, ns)
        except (errors.NotFoundError, client.ApiException) as e:  # releasing or deleting what is not there
            assert isinstance(e, errors.NotFoundError) or e.status == 404, e
        _check(api, two_namespaces)
    first = {(ns, name): _provision(api, ns, name) for ns in two_namespaces for name in NAMES}
    assert all(r.phase == "Bound" for r in first.values())
    assert {r.volume for r in first.values()} == {specs.static_pv_name(ns, n) for ns, n in first}
    again = [_provision(api, ns, name) for ns in two_namespaces for name in NAMES]
    assert all(r.created == [] and r.phase == "Bound" for r in again)
    _check(api, two_namespaces)
