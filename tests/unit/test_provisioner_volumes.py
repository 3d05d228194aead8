"""The fallback provisioner's decisions, without a cluster: class settings, node choice, the PV, ownership."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k

from storage import errors, ownership, validate
from storage.provisioner import features, settings, volumes
from tests import objects

UID = "3f2a9c1e-0000-4000-8000-000000000001"
PROVISIONER = "sharedvol.io/hostpath"


def _sc(mode: str = "WaitForFirstConsumer", **params: str) -> k.V1StorageClass:
    return k.V1StorageClass(
        metadata=k.V1ObjectMeta(name="sharedvol-hostpath"),
        provisioner=PROVISIONER,
        parameters=params,
        reclaim_policy="Delete",
        volume_binding_mode=mode,
    )


def _claim(annotations: dict[str, str] | None = None, **spec: Any) -> k.V1PersistentVolumeClaim:
    """``objects.claim`` as the model the service reads, with its uid; ``spec``: model fields set over it."""
    body = objects.claim(
        "0f1e-sharedvol", "sharedvol-hostpath", size="20Gi", namespace="kubeflow", annotations=annotations
    )
    claim = objects.claim_model(body, uid=UID)
    for field, value in spec.items():
        setattr(claim.spec, field, value)
    return claim


def _node(name: str, ready: bool = True, **labels: str) -> k.V1Node:
    condition = k.V1NodeCondition(type="Ready", status="True" if ready else "False")
    return k.V1Node(metadata=k.V1ObjectMeta(name=name, labels=labels), status=k.V1NodeStatus(conditions=[condition]))


def test_the_pv_is_named_after_the_claim_uid_and_pre_bound_with_it() -> None:
    config = features.class_config(_sc(basePath="/data/sv"), PROVISIONER)
    pv = volumes.pv_for(_claim(), config, "gpu-node", PROVISIONER)

    assert pv["metadata"]["name"] == f"pvc-{UID}"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    assert pv["metadata"]["annotations"][ownership.ON_DELETE] == "delete"
    assert pv["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "kubeflow",
        "name": "0f1e-sharedvol",
        "uid": UID,
    }
    directory = volumes.directory_name("kubeflow", "0f1e-sharedvol", UID)
    assert directory.startswith("kubeflow-0f1e-sharedvol-") and directory.endswith("-3f2a9c1e")
    assert pv["spec"]["hostPath"] == {"path": f"/data/sv/{directory}", "type": "DirectoryOrCreate"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["storageClassName"] == "sharedvol-hostpath"
    assert pv["spec"]["capacity"] == {"storage": "20Gi"}


def test_a_253_character_claim_name_in_a_63_character_namespace_gets_a_short_distinct_directory() -> None:
    namespace, name = "n" * 63, "c" * 253
    one = volumes.directory_name(namespace, name, UID)
    other = volumes.directory_name(namespace, name[:-1] + "d", UID)
    assert len(one) <= 127 and one != other and one.startswith(namespace)


def test_wait_for_first_consumer_waits_for_the_schedulers_node() -> None:
    config = features.class_config(_sc(), PROVISIONER)
    assert features.node_for(_claim(), config, [_node("n1")]) is None
    chosen = _claim({"volume.kubernetes.io/selected-node": "n2"})
    assert features.node_for(chosen, config, [_node("n1"), _node("n2")]) == "n2"


def test_immediate_uses_the_class_node_or_the_first_ready_node() -> None:
    gpu = features.class_config(_sc("Immediate", node="gpu"), PROVISIONER)
    assert features.node_for(_claim(), gpu, [_node("a"), _node("gpu")]) == "gpu"
    plain = features.class_config(_sc("Immediate"), PROVISIONER)
    assert features.node_for(_claim(), plain, [_node("b"), _node("a", ready=False), _node("c")]) == "b"


def test_immediate_puts_a_volume_on_a_node_open_to_pods_before_a_cordoned_or_tainted_one() -> None:
    plain = features.class_config(_sc("Immediate"), PROVISIONER)
    cordoned, tainted, open_ = _node("a"), _node("b"), _node("c")
    cordoned.spec = k.V1NodeSpec(unschedulable=True)
    tainted.spec = k.V1NodeSpec(taints=[k.V1Taint(key="dedicated", value="gpu", effect="NoSchedule")])
    assert features.node_for(_claim(), plain, [cordoned, tainted, open_]) == "c"
    assert features.node_for(_claim(), plain, [cordoned, tainted]) == "a"  # none open: still a Ready node


def test_a_selected_node_that_does_not_exist_is_refused_naming_the_annotation() -> None:
    claim = _claim({"volume.kubernetes.io/selected-node": "ghost"})
    with pytest.raises(
        errors.InvalidRequestError, match=r"annotation volume\.kubernetes\.io/selected-node: node 'ghost'"
    ):
        features.node_for(claim, features.class_config(_sc(), PROVISIONER), [_node("n1")])


def test_allowed_topologies_are_honoured() -> None:
    sc = _sc("Immediate")
    term = k.V1TopologySelectorLabelRequirement(key="zone", values=["b"])
    sc.allowed_topologies = [k.V1TopologySelectorTerm(match_label_expressions=[term])]
    config = features.class_config(sc, PROVISIONER)
    assert features.node_for(_claim(), config, [_node("a", zone="a"), _node("z", zone="b")]) == "z"
    with pytest.raises(errors.NotFoundError, match="allowedTopologies"):
        features.node_for(_claim(), config, [_node("a", zone="a")])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"parameters": {"onDelete": "shred"}}, "parameters.onDelete"),
        ({"parameters": {"basePath": "/"}}, "parameters.basePath"),
        ({"parameters": {"basePath": "/data/\x00x"}}, "parameters.basePath"),
        ({"parameters": {"basePath": "/data/" + "x" * 600}}, "parameters.basePath"),
        ({"parameters": {"fsType": "ext4"}}, "parameters.fsType"),
        ({"parameters": {"node": "Not A Node"}}, "parameters.node"),
        ({"provisioner": "example.com/other"}, "provisioner"),
        ({"reclaim_policy": "Recycle"}, "reclaimPolicy"),
        ({"volume_binding_mode": "Later"}, "volumeBindingMode"),
        ({"mount_options": ["ro"]}, "mountOptions"),
        ({"allow_volume_expansion": True}, "allowVolumeExpansion"),
    ],
)
def test_a_class_field_the_service_does_not_honour_is_refused_by_name(change: dict[str, Any], field: str) -> None:
    sc = _sc()
    for key, value in change.items():
        setattr(sc, key, value)
    with pytest.raises(errors.InvalidRequestError, match=f"^StorageClass sharedvol-hostpath: {field}:"):
        features.class_config(sc, PROVISIONER)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"storage_class_name": ""}, "storageClassName"),
        ({"selector": k.V1LabelSelector(match_labels={"a": "b"})}, "selector"),
        ({"data_source": k.V1TypedLocalObjectReference(kind="PersistentVolumeClaim", name="x")}, "dataSource"),
        ({"data_source_ref": k.V1TypedObjectReference(kind="VolumeSnapshot", name="x")}, "dataSourceRef"),
        ({"volume_mode": "Block"}, "volumeMode"),
        ({"volume_attributes_class_name": "gold"}, "volumeAttributesClassName"),
        ({"access_modes": ["ReadWriteOncePod"]}, "accessModes"),
        ({"access_modes": []}, "accessModes"),
        ({"resources": k.V1VolumeResourceRequirements(limits={"storage": "1Gi"})}, "resources.limits"),
        ({"resources": k.V1VolumeResourceRequirements(requests={"storage": "lots"})}, "resources.requests.storage"),
    ],
)
def test_a_claim_field_the_service_does_not_honour_is_refused_by_name(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.InvalidRequestError, match=f"^claim spec.{field}:"):
        features.check_claim(_claim(**spec))


def _made_pv(**annotations: str) -> k.V1PersistentVolume:
    directory = volumes.directory_name("kubeflow", "0f1e-sharedvol", UID)
    return k.V1PersistentVolume(
        metadata=k.V1ObjectMeta(
            name=f"pvc-{UID}",
            uid="11111111-2222-4333-8444-555555555555",
            annotations={ownership.PROVISIONED_BY: PROVISIONER, ownership.ON_DELETE: "delete", **annotations},
        ),
        spec=k.V1PersistentVolumeSpec(
            claim_ref=k.V1ObjectReference(namespace="kubeflow", name="0f1e-sharedvol", uid=UID),
            host_path=k.V1HostPathVolumeSource(path=f"/var/lib/sharedvol/{directory}"),
        ),
    )


def test_a_pv_is_ours_only_when_it_carries_its_own_uid_as_the_service_marks_it() -> None:
    assert (
        volumes.not_ours(_made_pv(**{ownership.VOLUME_UID: "11111111-2222-4333-8444-555555555555"}), PROVISIONER) == ""
    )
    assert "made or copied by hand" in volumes.not_ours(_made_pv(), PROVISIONER)
    copied = _made_pv(**{ownership.VOLUME_UID: "99999999-2222-4333-8444-555555555555"})  # copy: new UID, old mark
    assert "made or copied by hand" in volumes.not_ours(copied, PROVISIONER)


def test_settings_map_node_paths_under_the_base_path_root_and_refuse_a_bad_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings.Settings(base_path_root="/host").local_path("/var/lib/sharedvol/x") == "/host/var/lib/sharedvol/x"
    assert settings.Settings().local_path("/var/lib/sharedvol/x") == "/var/lib/sharedvol/x"
    monkeypatch.setenv("SHAREDVOL_HEALTH_PORT", "http")
    with pytest.raises(errors.InvalidRequestError, match="SHAREDVOL_HEALTH_PORT='http' is not a port number"):
        settings.Settings.from_env()


def test_a_name_with_a_trailing_newline_is_not_a_dns_name() -> None:
    assert not validate.SUBDOMAIN.matches("claim\n") and not validate.LABEL.matches("ns\n")
    with pytest.raises(errors.InvalidRequestError):
        validate.name("claim\n", "claim name")
