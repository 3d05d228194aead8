"""The fallback provisioner with one instance per node (k8s/fallback's DaemonSet): which node a PV is on, which
instance answers for what, the node name it is given, and each instance's own heartbeat Lease."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from kubernetes import client as k

from storage import errors, heartbeat, validate
from storage.provisioner import features, placement, settings, volumes
from tests import objects

UID = "3f2a9c1e-0000-4000-8000-000000000001"
PROVISIONER = "sharedvol.io/hostpath"


@dataclass
class _Response:
    """What ``ApiClient.deserialize`` reads of an HTTP response: its body."""

    data: str


def _claim() -> k.V1PersistentVolumeClaim:
    body = objects.claim("data", "sharedvol-hostpath", size="1Gi", namespace="kubeflow")
    return objects.claim_model(body, uid=UID)


def _pv(affinity: k.V1VolumeNodeAffinity | None) -> k.V1PersistentVolume:
    return k.V1PersistentVolume(metadata=k.V1ObjectMeta(name=f"pvc-{UID}"), spec=k.V1PersistentVolumeSpec(
        node_affinity=affinity))  # fmt: skip


def _affinity(*expressions: k.V1NodeSelectorRequirement) -> k.V1VolumeNodeAffinity:
    term = k.V1NodeSelectorTerm(match_expressions=list(expressions))
    return k.V1VolumeNodeAffinity(required=k.V1NodeSelector(node_selector_terms=[term]))


def test_the_node_of_a_pv_the_service_makes_is_the_node_it_was_made_for() -> None:
    cls = features.class_config(
        k.V1StorageClass(metadata=k.V1ObjectMeta(name="sharedvol-hostpath"), provisioner=PROVISIONER), PROVISIONER
    )
    body = volumes.pv_for(_claim(), cls, "sharedvol-vm", PROVISIONER)
    pv = k.ApiClient().deserialize(_Response(json.dumps(body)), "V1PersistentVolume")
    assert volumes.node_of(pv) == "sharedvol-vm"


@pytest.mark.parametrize(
    "affinity",
    [
        None,
        _affinity(k.V1NodeSelectorRequirement(key="kubernetes.io/hostname", operator="In", values=["a", "b"])),
        _affinity(k.V1NodeSelectorRequirement(key="kubernetes.io/hostname", operator="NotIn", values=["a"])),
        _affinity(k.V1NodeSelectorRequirement(key="topology.kubernetes.io/zone", operator="In", values=["a"])),
        _affinity(
            k.V1NodeSelectorRequirement(key="kubernetes.io/hostname", operator="In", values=["a"]),
            k.V1NodeSelectorRequirement(key="gpu", operator="In", values=["yes"]),
        ),
    ],
    ids=["none", "two-nodes", "not-in", "zone", "two-expressions"],
)
def test_a_pv_whose_affinity_is_not_one_hostname_is_of_no_node(affinity: k.V1VolumeNodeAffinity | None) -> None:
    assert volumes.node_of(_pv(affinity)) is None


def test_an_instance_with_a_node_serves_only_that_node_and_one_without_serves_every_node() -> None:
    on_vm = settings.Settings(node_name="sharedvol-vm")
    assert placement.serves(on_vm, "sharedvol-vm")
    assert not placement.serves(on_vm, "sharedvol-node")
    assert not placement.serves(on_vm, None)
    assert placement.serves(settings.Settings(), "sharedvol-node") and placement.serves(settings.Settings(), None)


def test_the_node_name_comes_from_sharedvol_node_name_and_a_malformed_one_stops_the_service_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHAREDVOL_NODE_NAME", "sharedvol-vm")
    assert settings.Settings.from_env().node_name == "sharedvol-vm"
    assert settings.Settings.from_env(node_name="other").node_name == "other"
    monkeypatch.setenv("SHAREDVOL_NODE_NAME", "Node_1")
    named = re.escape("node name 'Node_1' (SHAREDVOL_NODE_NAME or --node-name) is not a node name")
    with pytest.raises(errors.InvalidRequestError, match=named):
        settings.Settings.from_env()


def test_each_instance_has_its_own_lease_and_a_service_of_every_node_keeps_the_plain_name() -> None:
    assert heartbeat.lease_name() == "sharedvol-provisioner"
    assert heartbeat.lease_name("sharedvol-vm") == "sharedvol-provisioner-sharedvol-vm"


def test_a_lease_name_for_the_longest_node_name_is_a_valid_name_of_its_own() -> None:
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    other = longest[:-1] + "e"
    assert len(longest) == 253
    name = heartbeat.lease_name(longest)
    assert len(name) <= 253 and validate.SUBDOMAIN.matches(name)
    assert name != heartbeat.lease_name(other)
