"""storage/: specs, validation, the provisioner table, plan choice and claim diagnosis, without a cluster."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client import V1PersistentVolumeClaim

from pipelines import cli
from storage import classes, doctor, errors, kube, plan, provisioners, specs, validate
from storage.provisioner import settings
from tests import objects


def test_the_static_pv_is_pre_bound_rwx_retain_hostpath_with_node_affinity() -> None:
    v = specs.StaticVolume(
        pv_name="sharedvol-team-a-shared",
        claim_namespace="team-a",
        claim_name="shared",
        size="20Gi",
        host_path="/var/lib/sharedvol/team-a/shared",
        node="gpu-node",
    )
    assert specs.static_pv(v) == {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": "sharedvol-team-a-shared",
            "labels": {"app.kubernetes.io/managed-by": "sharedvol"},
            "annotations": {"sharedvol.io/data-path": "gpu-node:/var/lib/sharedvol/team-a/shared"},
        },
        "spec": {
            "capacity": {"storage": "20Gi"},
            "accessModes": ["ReadWriteMany"],
            "volumeMode": "Filesystem",
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "team-a", "name": "shared"},
            "hostPath": {"path": "/var/lib/sharedvol/team-a/shared", "type": "DirectoryOrCreate"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-node"]}
                            ]
                        }
                    ]
                }
            },
        },
    }


def test_an_nfs_pv_carries_the_export_and_mount_options_and_no_node_affinity() -> None:
    v = specs.StaticVolume(
        "pv", "ns", "c", "1Gi", nfs_server="10.0.0.5", nfs_path="/exports/kfp", mount_options=("nfsvers=4.1",)
    )
    spec = specs.static_pv(v)["spec"]
    assert spec["nfs"] == {"server": "10.0.0.5", "path": "/exports/kfp"}
    assert spec["mountOptions"] == ["nfsvers=4.1"]
    assert "nodeAffinity" not in spec and "hostPath" not in spec


def test_the_claim_always_sets_its_storage_class_explicitly() -> None:
    claim = specs.rwx_claim("shared", "ns", "5Gi", "", volume_name="pv-1")
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "",
        "volumeMode": "Filesystem",
        "volumeName": "pv-1",
    }


@pytest.mark.parametrize(
    ("size", "expected"),
    [("20Gi", 20 * 2**30), ("500M", 500 * 10**6), ("1.5Gi", 3 * 2**29), ("1e9", 10**9), ("1Mi", 2**20)],
)
def test_quantities_are_read_by_the_kubernetes_parser(size: str, expected: int) -> None:
    assert validate.quantity_bytes(size) == expected


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: validate.quantity_bytes("20GB"), "size '20GB' is not a Kubernetes quantity: write it like 20Gi"),
        (lambda: validate.quantity_bytes("0Gi"), "size '0Gi' is not positive"),
        (lambda: validate.quantity_bytes("-1Gi"), "size '-1Gi' is not positive"),
        (lambda: validate.quantity_bytes("500m"), "size '500m' is 0.5 bytes, below the minimum of 1Mi"),
        (lambda: validate.quantity_bytes("1023Ki"), "size '1023Ki' is 1047552 bytes, below the minimum of 1Mi"),
        (lambda: validate.quantity_bytes("9Ei"), "size '9Ei' is more than 8Ei, the largest size Kubernetes holds"),
        (
            lambda: validate.quantity_bytes("1e3000000"),  # int() of it alone took a minute: the service stalled
            "size '1e3000000' is more than 8Ei, the largest size Kubernetes holds",
        ),
        (lambda: validate.host_path("/etc"), "host path '/etc' is a system directory"),
        (
            lambda: validate.host_path("/var/lib/kubelet/pods"),
            "host path '/var/lib/kubelet/pods' is in /var/lib/kubelet",
        ),
        (lambda: validate.nfs_export("fd00::5:/x"), "looks like an IPv6 address without brackets"),
        (lambda: validate.nfs_export("[fd00::zz]:/x"), "NFS server [fd00::zz] is not an IPv6 address"),
        (lambda: validate.nfs_export("bad_host!:/x"), "is not an IP address or a host name"),
        (lambda: validate.name("My_Claim", "claim name"), "claim name 'My_Claim' is not a valid Kubernetes name"),
        (lambda: validate.namespace("a" * 64), "is not a valid namespace name"),
        (lambda: validate.host_path("data/kfp"), "host path 'data/kfp' is relative"),
        (lambda: validate.host_path("/"), "host path '/' would put volumes in the node's root"),
        (lambda: validate.host_path("/var/../etc"), "contains '.' or '..'"),
        (lambda: validate.nfs_export("10.0.0.5"), "NFS export '10.0.0.5' is not SERVER:/PATH"),
        (lambda: validate.nfs_export("10.0.0.5:exports"), "is not SERVER:/PATH"),
        (lambda: validate.host_path("/data/a\nb"), "host path '/data/a\\nb' is not a plain path (printable ASCII"),
        (lambda: validate.host_path("/data/a b"), "host path '/data/a b' is not a plain path"),
        (lambda: validate.host_path("/data/é"), "host path '/data/é' is not a plain path"),
        (lambda: validate.quantity_bytes("１Gi"), "size '１Gi' is not a Kubernetes quantity"),
        (
            lambda: settings.Settings.from_env(provisioner=""),
            "provisioner '' (SHAREDVOL_PROVISIONER or --provisioner) is not a provisioner name",
        ),
        (lambda: settings.Settings.from_env(provisioner="a\nb"), "provisioner 'a\\nb' (SHAREDVOL_PROVISIONER"),
    ],
)
def test_bad_input_is_refused_with_one_line_saying_how_to_fix_it(call: object, message: str) -> None:
    with pytest.raises(errors.InvalidRequestError) as e:
        call()  # type: ignore[operator]
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("provisioner", "rwx"),
    [
        ("nfs.csi.k8s.io", "yes"),
        ("k8s-sigs.io/nfs-subdir-external-provisioner", "yes"),
        ("cluster.local/nfs-subdir-external-provisioner", "yes"),
        ("cluster.local/my-release-nfs-subdir-external-provisioner", "yes"),
        ("cephfs.csi.ceph.com", "yes"),
        ("efs.csi.aws.com", "yes"),
        ("driver.longhorn.io", "yes"),
        ("rancher.io/local-path", "no"),
        ("ebs.csi.aws.com", "no"),
        ("topolvm.io", "no"),
        ("openebs.io/local", "no"),
        ("example.com/mystery", "unknown"),
    ],
)
def test_the_provisioner_table_says_who_serves_rwx(provisioner: str, rwx: str) -> None:
    assert classes.rwx_of(provisioner)[0] == rwx


def test_the_provisioner_table_has_at_least_30_verdicts_each_with_where_it_was_checked() -> None:
    definite = {name: v for name, v in provisioners.KNOWN.items() if v.rwx in ("yes", "no")}
    assert len(definite) >= 30
    assert all(v.rwx in ("yes", "no", "unknown") and v.source and v.what for v in provisioners.KNOWN.values())
    assert classes.rwx_of("csi.trident.netapp.io")[0] == "unknown"  # depends on the backend: not guessed


def test_an_nfs_export_by_ipv6_address_is_read_from_brackets() -> None:
    assert validate.nfs_export("[fd00::5]:/exports/kfp") == ("fd00::5", "/exports/kfp")
    assert validate.nfs_export("nfs.example.com:/kfp") == ("nfs.example.com", "/kfp")


LABELS = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
SUBDOMAINS = st.lists(LABELS, min_size=1, max_size=6).map(".".join).filter(lambda s: len(s) <= 253)


@given(st.lists(st.tuples(LABELS, SUBDOMAINS), min_size=2, max_size=2, unique=True))
def test_static_pv_names_never_collide_and_are_valid_names(pairs: list[tuple[str, str]]) -> None:
    names = [specs.static_pv_name(ns, claim) for ns, claim in pairs]
    assert names[0] != names[1]
    assert all(validate.is_subdomain(n) for n in names)


def test_namespace_and_claim_names_that_join_to_the_same_text_map_to_different_pvs() -> None:
    assert specs.static_pv_name("d2-x", "y") != specs.static_pv_name("d2", "x-y")
    long = "a" * 250
    assert specs.static_pv_name("ns", long + "b") != specs.static_pv_name("ns", long + "c")


def test_local_path_serves_rwx_only_with_a_shared_filesystem_path() -> None:
    assert classes.rwx_of("rancher.io/local-path", local_path_shared=True)[0] == "yes"


def _info(name: str, provisioner: str, default: bool = False, mode: str = "Immediate") -> classes.ClassInfo:
    rwx, reason = classes.rwx_of(provisioner)
    return classes.ClassInfo(name, provisioner, mode, "Delete", default, rwx, reason)


LOCAL = _info("local-path", "rancher.io/local-path", default=True, mode="WaitForFirstConsumer")


def test_a_local_path_only_cluster_gets_a_static_pv_on_its_node() -> None:
    p = plan.choose(plan.Request("shared", "kfp", "10Gi"), [LOCAL], ["node-1"])
    assert p.strategy == "static"
    assert p.pv is not None and p.claim is not None
    assert p.pv["spec"]["hostPath"]["path"] == "/var/lib/sharedvol/kfp/shared"
    assert p.claim["spec"]["volumeName"] == p.pv["metadata"]["name"] == "sharedvol.kfp.shared"
    why = "no class can serve ReadWriteMany now (considered: local-path (rancher.io/local-path: RWX no))"
    assert why in p.describe()


def test_the_nfs_class_wins_over_other_rwx_classes() -> None:
    infos = [
        _info("cephfs", "cephfs.csi.ceph.com", default=True),
        _info("sharedvol-nfs", objects.NFS_PROVISIONER),
        LOCAL,
    ]
    p = plan.choose(plan.Request("shared"), infos, ["n"])
    assert (p.strategy, p.storage_class) == ("dynamic", "sharedvol-nfs")
    assert p.claim is not None and p.claim["spec"]["storageClassName"] == "sharedvol-nfs"


def test_the_fallback_class_is_used_only_when_its_provisioner_runs() -> None:
    infos = [LOCAL, _info("sharedvol-hostpath", "sharedvol.io/hostpath")]
    assert plan.choose(plan.Request("s", fallback_running=True), infos, ["n"]).storage_class == "sharedvol-hostpath"
    assert plan.choose(plan.Request("s", fallback_running=False), infos, ["n"]).strategy == "static"


def test_a_named_rwo_class_is_refused_with_the_fix() -> None:
    with pytest.raises(errors.InvalidRequestError, match=r"StorageClass local-path .* cannot serve ReadWriteMany"):
        plan.choose(plan.Request("s", storage_class="local-path"), [LOCAL], ["n"])


def test_a_missing_class_or_node_is_not_found() -> None:
    with pytest.raises(errors.NotFoundError, match="StorageClass 'nfs' does not exist"):
        plan.choose(plan.Request("s", storage_class="nfs"), [LOCAL], ["n"])
    with pytest.raises(errors.NotFoundError, match="node 'gpu-2' does not exist or is not Ready"):
        plan.choose(plan.Request("s", static=True, node="gpu-2"), [LOCAL], ["gpu-1"])


def _claim(name: str, sc: str | None, mode: str = "ReadWriteMany", volume: str = "") -> V1PersistentVolumeClaim:
    """``objects.claim`` in namespace kfp as the model doctor reads (doctor is pure: no API to create it in)."""
    return objects.claim_model(objects.claim(name, sc, size="5Gi", mode=mode, volume_name=volume, namespace="kfp"))


def _event(reason: str, message: str = "") -> NS:
    return NS(reason=reason, message=message)


def test_doctor_explains_an_rwx_claim_on_local_path_and_names_the_fix() -> None:
    d = doctor.diagnose_claim(
        _claim("data", "local-path"),
        {"local-path": LOCAL},
        [_event("ProvisioningFailed", "NodePath only supports ReadWriteOnce and ReadWriteOncePod")],
        {},
        has_consumer=True,
    )
    assert d.cause == "rwx-unsupported"
    assert "cannot make ReadWriteMany volumes" in d.explanation
    assert "sharedvol provision data -n kfp --size 5Gi --static" in d.fix


@pytest.mark.parametrize(
    ("claim", "events", "consumer", "cause", "fix"),
    [
        (_claim("a", "gone"), [], False, "missing-class", "sharedvol provision a -n kfp"),
        (_claim("b", "sharedvol-nfs"), [], False, "missing-class", "kubectl apply -k k8s/nfs"),
        (
            _claim("c", "wffc", "ReadWriteOnce"),
            [_event("WaitForFirstConsumer")],
            False,
            "wait-for-consumer",
            "start the pod",
        ),
        (_claim("d", "nfs"), [_event("ExternalProvisioning")], True, "no-provisioner", "k8s/nfs"),
        (_claim("e", "", volume="pv-x"), [], False, "missing-volume", "--static"),
        (_claim("f", None), [], False, "no-class", "--static"),
    ],
)
def test_doctor_names_the_cause_of_each_kind_of_pending_claim(
    claim: V1PersistentVolumeClaim, events: list[NS], consumer: bool, cause: str, fix: str
) -> None:
    infos = {
        "wffc": _info("wffc", "kubernetes.io/no-provisioner", mode="WaitForFirstConsumer"),
        "nfs": _info("nfs", objects.NFS_PROVISIONER),
    }
    d = doctor.diagnose_claim(claim, infos, events, {}, consumer)
    assert d.cause == cause
    assert fix in d.fix


def test_doctor_tells_a_claim_that_names_another_claims_volume_to_get_its_own_and_never_to_release_the_other() -> None:
    taken = NS(spec=NS(claim_ref=NS(namespace="team-a", name="victim")))
    d = doctor.diagnose_claim(_claim("hostile", "", volume="pv-a"), {}, [], {"pv-a": taken}, has_consumer=False)

    assert (d.cause, d.explanation) == ("volume-taken", "PersistentVolume pv-a is reserved for claim team-a/victim")
    assert d.fix.startswith("this claim cannot have it: kubectl delete pvc hostile -n kfp, then sharedvol provision")
    assert "release" not in d.fix


def test_doctor_takes_events_without_a_reason_and_repeats_a_message_on_one_line_and_bounded() -> None:
    events = [
        NS(reason=None, message=None),  # both optional in core/v1: a TypeError traceback before
        _event("ProvisioningFailed", "\x1b[2Jwiped\r" + "x" * 1_000_000),
    ]
    d = doctor.diagnose_claim(_claim("data", "local-path"), {"local-path": LOCAL}, events, {}, has_consumer=True)

    assert "\x1b" not in d.explanation and "\r" not in d.explanation and "\\x1b[2Jwiped\\r" in d.explanation
    assert len(d.explanation) < 1000


def test_doctor_says_which_sharedvol_class_is_missing_or_not_running() -> None:
    fallback = _info("sharedvol-hostpath", "sharedvol.io/hostpath", mode="WaitForFirstConsumer")
    text = doctor.Report([LOCAL, fallback], "static", ["no class serves RWX"], fallback_running=False).describe()
    assert "(sharedvol-nfs is not installed: kubectl apply -k k8s/nfs)" in text
    assert "sharedvol-hostpath is installed but its provisioner is not running" in text
    assert "A run gets: static" in text
    assert "No Pending claims." in text
    assert "k8s/fallback" not in doctor.Report([LOCAL, fallback], "dynamic", [], fallback_running=True).describe()


@pytest.mark.parametrize(
    "obj",
    [{"metadata": None}, {"metadata": "x"}, {}, NS(metadata=None), NS(metadata=NS(resource_version=None))],
    ids=["dict-null", "dict-string", "dict-none", "model-null", "model-no-version"],
)
def test_an_object_without_a_readable_resource_version_has_an_empty_one(obj: object) -> None:
    assert kube.resource_version(obj) == ""


@pytest.mark.timeout(60)
def test_a_kubeconfig_that_is_a_fifo_is_one_line_without_waiting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "kubeconfig")  # read as a kubeconfig, it would wait for a writer for ever
    code = cli.main(["doctor", "--kubeconfig", str(tmp_path / "kubeconfig")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is not a regular file of at most 16 MiB" in err
