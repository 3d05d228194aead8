"""The tests' object builders (tests/objects.py) make what the API and the code under test expect."""

from __future__ import annotations

from storage import classes, specs
from tests import objects


def test_the_claim_builder_makes_the_claim_storage_makes_without_its_labels() -> None:
    built = objects.claim("shared", "sharedvol-nfs", size="3Gi", volume_name="pv-1")
    made = specs.rwx_claim("shared", "ns", "3Gi", "sharedvol-nfs", volume_name="pv-1")
    assert built["spec"] == {k: v for k, v in made["spec"].items() if k != "volumeMode"}
    assert built["metadata"] == {"name": "shared"}


def test_each_class_builder_names_its_provisioner_and_a_name_no_other_test_uses() -> None:
    nfs, local, fallback = objects.nfs_class(), objects.local_path_class(), objects.fallback_class(on_delete="retain")
    assert [c["provisioner"] for c in (nfs, local, fallback)] == [
        objects.NFS_PROVISIONER,
        classes.LOCAL_PATH,
        classes.FALLBACK_PROVISIONER,
    ]
    assert local["volumeBindingMode"] == "WaitForFirstConsumer" and nfs["volumeBindingMode"] == "Immediate"
    assert fallback["parameters"] == {"basePath": "/var/lib/sharedvol", "onDelete": "retain"}
    assert objects.nfs_class()["metadata"]["name"] != nfs["metadata"]["name"]


def test_a_default_class_carries_the_default_class_annotation() -> None:
    sc = objects.storage_class("example.com/x", name="x", default=True)
    assert sc["metadata"] == {"name": "x", "annotations": {classes.DEFAULT_CLASS_ANNOTATION: "true"}}


def test_a_claim_of_no_class_omits_the_field_and_its_model_reads_like_its_body() -> None:
    body = objects.claim("c", None, namespace="kfp", annotations={"a": "b"}, spec={"volumeMode": "Block"})
    assert "storageClassName" not in body["spec"] and body["spec"]["volumeMode"] == "Block"
    model = objects.claim_model(body, uid="u-1")
    assert (model.metadata.name, model.metadata.namespace, model.metadata.uid) == ("c", "kfp", "u-1")
    assert model.metadata.annotations == {"a": "b"} and model.spec.storage_class_name is None
    assert model.spec.access_modes == ["ReadWriteMany"] and model.spec.volume_mode == "Block"
    assert model.spec.resources.requests == {"storage": "1Gi"}
