"""storage/nfshealth.py and its use by the plan and doctor, without a cluster: the server's name, EndpointSlices as
the API sends them (and as it should not), the reasons' text, and the bounds on what is read."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from storage import classes, doctor, nfshealth, plan
from tests import objects

NFS = classes.ClassInfo(
    "sharedvol-nfs", objects.NFS_PROVISIONER, "Immediate", "Delete", False, "yes", "CSI NFS driver", {}
)
CEPH = classes.ClassInfo("cephfs", "cephfs.csi.ceph.com", "Immediate", "Delete", False, "yes", "CephFS CSI", {})
LOCAL = classes.ClassInfo("local-path", classes.LOCAL_PATH, "WaitForFirstConsumer", "Delete", True, "no", "RWO", {})
FALLBACK = classes.ClassInfo(
    "sharedvol-hostpath", classes.FALLBACK_PROVISIONER, "WaitForFirstConsumer", "Delete", False, "yes", "hostPath", {}
)
DOWN = "the NFS server is down: the NFS server's Service sharedvol-nfs/nfs-server has no ready endpoint (kubectl ...)"
BROKEN = nfshealth.Health(problems=["the CSIDriver nfs.csi.k8s.io is missing (kubectl apply -k k8s/nfs)", DOWN])
NOT_WORKING = (
    "sharedvol-nfs is installed but not working: the CSIDriver nfs.csi.k8s.io is missing (kubectl apply -k k8s/nfs); "
    + DOWN
)
UNREADABLE = nfshealth.Health(unknown=["not allowed to read CSIDriver nfs.csi.k8s.io"])


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (objects.NFS_SERVER, nfshealth.Server("cluster", objects.NFS_SERVER, "nfs-server", "sharedvol-nfs")),
        ("NFS.Team-A.svc.", nfshealth.Server("cluster", "nfs.team-a.svc", "nfs", "team-a")),
        ("10.0.0.5", nfshealth.Server("external", "10.0.0.5")),
        ("[fd00::0005]", nfshealth.Server("external", "fd00::5")),
        ("nfs.example.internal", nfshealth.Server("external", "nfs.example.internal")),
        ("a.b.svc.example.com", nfshealth.Server("external", "a.b.svc.example.com")),  # not the cluster's domain
        ("nfs-server.sharedvol-nfs", nfshealth.Server("external", "nfs-server.sharedvol-nfs")),
        ("", nfshealth.Server("missing")),
        ("  ", nfshealth.Server("missing")),
        ("nfs server; rm -rf", nfshealth.Server("invalid", "'nfs server; rm -rf'")),
    ],
)
def test_the_server_parameter_is_a_service_of_the_cluster_only_as_svc_or_svc_cluster_local(
    server: str, expected: nfshealth.Server
) -> None:
    assert nfshealth.server_of({"server": server}) == expected


def test_a_class_without_a_server_or_with_an_overlong_one_is_read_without_trusting_it() -> None:
    assert nfshealth.server_of({}) == nfshealth.Server("missing")
    long = nfshealth.server_of({"server": "a" * 10_000})
    assert long.kind == "invalid"
    assert long.host == "a" * nfshealth.SHOWN + "..."


def test_a_value_from_the_cluster_is_shown_short_and_quoted_unless_a_plain_name() -> None:
    assert nfshealth.shown("nfs.example.com") == "nfs.example.com"
    assert nfshealth.shown("x\n" * 100) == repr("x\n" * (nfshealth.SHOWN // 2) + "...")


def slices(*endpoints: client.V1Endpoint | None) -> list[dict[str, Any]]:
    """EndpointSlices as the API sends them (JSON), one per argument; None: a slice without endpoints."""
    made = [
        client.V1EndpointSlice(
            address_type="IPv4", endpoints=[ep] if ep else [], metadata=client.V1ObjectMeta(name="s")
        )
        for ep in endpoints
    ]
    return [client.ApiClient().sanitize_for_serialization(s) for s in made]


def endpoint(ready: bool | None, addresses: tuple[str, ...] = ("10.244.0.7",)) -> client.V1Endpoint:
    return client.V1Endpoint(addresses=list(addresses), conditions=client.V1EndpointConditions(ready=ready))


def test_an_endpoint_is_ready_unless_its_ready_condition_says_false() -> None:
    assert nfshealth.has_ready_endpoint(slices(endpoint(True)))
    assert nfshealth.has_ready_endpoint(slices(endpoint(None)))  # the API's rule: unset means ready
    assert not nfshealth.has_ready_endpoint(slices(endpoint(False)))
    assert nfshealth.has_ready_endpoint(slices(endpoint(False), endpoint(True)))


def test_a_slice_without_endpoints_or_addresses_has_no_ready_endpoint() -> None:
    assert not nfshealth.has_ready_endpoint(slices(None))
    assert slices(None)[0].get("endpoints") in (None, [])
    assert not nfshealth.has_ready_endpoint(slices(endpoint(True, ())))
    assert not nfshealth.has_ready_endpoint([])


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "items",
        {"endpoints": []},
        [None, 3, "x"],
        [{"endpoints": "all"}],
        [{"endpoints": [None, 5, {"addresses": "10.0.0.1"}]}],
        [{"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": False}}]}],
    ],
)
def test_slices_not_shaped_like_slices_count_as_no_ready_endpoint(junk: Any) -> None:
    assert nfshealth.has_ready_endpoint(junk) is False


def test_only_the_first_max_slices_slices_are_read() -> None:
    ready_last = [*slices(*[None] * nfshealth.MAX_SLICES), *slices(endpoint(True))]
    assert not nfshealth.has_ready_endpoint(ready_last)
    assert nfshealth.has_ready_endpoint(ready_last[1:])


@pytest.mark.parametrize(("value", "count"), [(None, 0), (-1, 0), ("3", 0), (0, 0), (2, 2)])
def test_a_ready_count_is_a_positive_int_or_zero(value: Any, count: int) -> None:
    assert nfshealth.ready_count(value) == count


def test_working_is_false_with_a_problem_unknown_with_only_unreadable_parts_and_true_otherwise() -> None:
    assert BROKEN.working is False
    assert nfshealth.Health(problems=["p"], unknown=["u"]).working is False
    assert UNREADABLE.working is None
    assert nfshealth.Health(not_checked=["the NFS server 10.0.0.5 is outside the cluster"]).working is True
    assert UNREADABLE.to_json() == {
        "working": None,
        "problems": [],
        "unknown": ["not allowed to read CSIDriver nfs.csi.k8s.io"],
        "not_checked": [],
    }


def test_a_class_of_another_provisioner_is_not_checked_and_nothing_is_read() -> None:
    health = nfshealth.check(None, "example.com/nfs", {"server": "x"})  # type: ignore[arg-type]
    assert health.to_json() == {
        "working": True,
        "problems": [],
        "unknown": [],
        "not_checked": ["its provisioner example.com/nfs is not nfs.csi.k8s.io, which doctor checks"],
    }


def test_auto_passes_a_broken_sharedvol_nfs_over_for_the_next_rwx_class_saying_why() -> None:
    p = plan.choose(plan.Request("s", nfs_health=BROKEN), [LOCAL, CEPH, NFS], ["n"])
    assert (p.strategy, p.storage_class) == ("dynamic", "cephfs")
    assert p.reasons == [NOT_WORKING, "StorageClass cephfs serves RWX (CephFS CSI)"]


def test_auto_passes_a_broken_sharedvol_nfs_over_for_the_fallback_class_or_a_static_volume() -> None:
    with_fallback = plan.choose(plan.Request("s", fallback_running=True, nfs_health=BROKEN), [NFS, FALLBACK], ["n"])
    assert (with_fallback.storage_class, with_fallback.reasons[0]) == ("sharedvol-hostpath", NOT_WORKING)
    static = plan.choose(plan.Request("s", nfs_health=BROKEN), [NFS, LOCAL], ["n"])
    assert static.strategy == "static"
    assert static.reasons[:2] == [
        NOT_WORKING,
        "no class can serve ReadWriteMany now (considered: sharedvol-nfs (nfs.csi.k8s.io: RWX yes, but not working), "
        "local-path (rancher.io/local-path: RWX no))",
    ]


@pytest.mark.parametrize("health", [None, UNREADABLE, nfshealth.Health()])
def test_auto_chooses_sharedvol_nfs_as_before_when_it_works_or_cannot_be_checked(
    health: nfshealth.Health | None,
) -> None:
    p = plan.choose(plan.Request("s", nfs_health=health), [CEPH, NFS], ["n"])
    assert (p.storage_class, p.reasons) == (
        "sharedvol-nfs",
        ["StorageClass sharedvol-nfs is installed (CSI NFS driver)"],
    )


def test_sharedvol_nfs_named_is_used_even_when_broken_with_a_warning() -> None:
    p = plan.choose(plan.Request("s", storage_class="sharedvol-nfs", nfs_health=BROKEN), [CEPH, NFS], ["n"])
    assert (p.strategy, p.storage_class) == ("dynamic", "sharedvol-nfs")
    assert p.reasons[-1] == f"warning: {NOT_WORKING}; its claims may stay Pending until that is fixed"


def report(health: nfshealth.Health | None, infos: list[classes.ClassInfo] | None = None) -> doctor.Report:
    return doctor.Report(infos or [NFS], "static", ["why"], nfs_health=health)


def test_doctor_lists_each_problem_unknown_and_unchecked_part_under_the_nfs_class() -> None:
    health = nfshealth.Health(problems=["p1", "p2"], unknown=["u1"], not_checked=["n1"])
    text = report(health).describe()
    assert (
        "  sharedvol-nfs health: not working\n    problem: p1\n    problem: p2\n    unknown: u1\n    not checked: n1\n"
    ) in text
    assert "  sharedvol-nfs health: working\n" in report(nfshealth.Health()).describe()
    assert "  sharedvol-nfs health: unknown (no problem found; not everything readable)\n" in (
        report(UNREADABLE).describe()
    )


def test_doctor_says_in_one_progress_line_whether_sharedvol_nfs_works() -> None:
    assert NOT_WORKING in report(BROKEN).progress_lines()
    assert (
        "sharedvol-nfs: no problem found, but it could not all be checked: not allowed to read CSIDriver nfs.csi.k8s.io"
        in report(UNREADABLE).progress_lines()
    )
    assert (
        "sharedvol-nfs works as far as doctor checks (not checked: n1)"
        in report(nfshealth.Health(not_checked=["n1"])).progress_lines()
    )


def test_doctor_json_has_nfs_health_and_null_when_the_class_is_not_installed() -> None:
    assert report(BROKEN).to_json()["nfs_health"] == {
        "working": False,
        "problems": BROKEN.problems,
        "unknown": [],
        "not_checked": [],
    }
    not_installed = report(None, [LOCAL])
    assert not_installed.to_json()["nfs_health"] is None
    assert not any("health" in line for line in not_installed.describe().splitlines())
