"""Properties of the provisioner's pure decisions over generated claims and classes: no input crashes them."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client as k

from storage import errors, validate
from storage.provisioner import events, features, volumes

PROVISIONER = "sharedvol.io/hostpath"
LABEL_CHARS = string.ascii_lowercase + string.digits + "-"
labels = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
subdomains = st.lists(labels, min_size=1, max_size=5).map(".".join).filter(lambda s: len(s) <= 253)
long_names = st.integers(min_value=200, max_value=253).map(lambda n: ("ab.c-d" * 60)[: n - 1] + "z")
uids = st.uuids().map(str)
anything = st.text(max_size=80) | st.sampled_from(["/", "\x00", "..", "/var/lib/sharedvol/../etc", "/data\x00/x"])


@settings(max_examples=300, deadline=None)
@given(claim_namespace=labels, name=subdomains | long_names, uid=uids)
def test_every_legal_namespace_and_claim_name_gives_a_short_plain_directory_name(
    claim_namespace: str, name: str, uid: str
) -> None:
    directory = volumes.directory_name(claim_namespace, name, uid)
    assert 0 < len(directory) <= 127 and "/" not in directory and "\x00" not in directory
    assert directory[0].isalnum() and directory not in (".", "..")


@settings(max_examples=300, deadline=None)
@given(a=st.tuples(labels, subdomains | long_names), b=st.tuples(labels, subdomains | long_names), uid=uids)
def test_two_claims_never_share_a_directory(a: tuple[str, str], b: tuple[str, str], uid: str) -> None:
    if a != b:
        assert volumes.directory_name(*a, uid) != volumes.directory_name(*b, uid)


@settings(max_examples=200, deadline=None)
@given(name=subdomains | long_names)
def test_an_events_generate_name_is_a_valid_prefix_for_any_claim_name(name: str) -> None:
    prefix = events.generate_name(name)
    assert len(prefix) + 5 <= 253 and validate.SUBDOMAIN.matches(prefix + "abcde")


@settings(max_examples=300, deadline=None)
@given(
    parameters=st.dictionaries(st.sampled_from(["basePath", "onDelete", "node"]) | st.text(max_size=20), anything),
    reclaim=st.sampled_from([None, "Delete", "Retain", "Recycle", ""]),
    mode=st.sampled_from([None, "Immediate", "WaitForFirstConsumer", "Soon"]),
)
def test_any_class_is_taken_or_refused_in_one_line_naming_the_class(
    parameters: dict[str, str], reclaim: str | None, mode: str | None
) -> None:
    sc = k.V1StorageClass(
        metadata=k.V1ObjectMeta(name="c"),
        provisioner=PROVISIONER,
        parameters=parameters,
        reclaim_policy=reclaim,
        volume_binding_mode=mode,
    )
    try:
        config = features.class_config(sc, PROVISIONER)
    except errors.InvalidRequestError as e:
        assert str(e).startswith("StorageClass c: ") and "\n" not in str(e)
        return
    assert config.base_path.startswith("/") and "\x00" not in config.base_path


@settings(max_examples=300, deadline=None)
@given(
    annotations=st.dictionaries(st.text(max_size=60), st.text(max_size=60)),
    selected=st.none() | anything,
    modes=st.lists(st.sampled_from(["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod", "x"]), max_size=3),
    size=st.none() | anything | st.sampled_from(["1Gi", "-1", "1e400", "0"]),
)
def test_any_claim_is_provisioned_or_refused_with_a_storage_error(
    annotations: dict[str, str], selected: str | None, modes: list[str], size: str | None
) -> None:
    if selected is not None:
        annotations = {**annotations, features.SELECTED_NODE: selected}
    resources = k.V1VolumeResourceRequirements(requests={"storage": size} if size is not None else None)
    claim = k.V1PersistentVolumeClaim(
        metadata=k.V1ObjectMeta(namespace="ns", name="c", uid="3f2a9c1e-0000", annotations=annotations),
        spec=k.V1PersistentVolumeClaimSpec(storage_class_name="c", access_modes=modes, resources=resources),
    )
    node = k.V1Node(
        metadata=k.V1ObjectMeta(name="n1"),
        status=k.V1NodeStatus(conditions=[k.V1NodeCondition(status="True", type="Ready")]),
    )
    config = features.ClassConfig(name="c")
    try:
        features.check_claim(claim)
        chosen: Any = features.node_for(claim, config, [node])
    except errors.StorageError as e:
        assert "\n" not in str(e)
        return
    assert chosen == "n1"
