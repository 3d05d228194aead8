"""Compile-time choices and run parameters: what is accepted, what is refused, and the message."""

from __future__ import annotations

import argparse
from decimal import Decimal

import pytest

from pipelines import commands, errors, options


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("20Gi", Decimal(20 * 2**30)),
        ("500M", Decimal(500 * 10**6)),
        ("1e9", Decimal(10**9)),
        ("0.5Gi", Decimal(2**29)),
        ("1", Decimal(1)),
    ],
)
def test_kubernetes_quantities_are_read_as_bytes(size: str, expected: Decimal) -> None:
    assert options.quantity_bytes(size) == expected


@pytest.mark.parametrize("size", ["0", "0Gi", "-1Gi", "500m"])
def test_a_size_that_is_not_positive_is_refused(size: str) -> None:
    with pytest.raises(errors.BadParameterError, match=f"--volume-size '{size}' is not a positive size"):
        options.quantity_bytes(size)


@pytest.mark.parametrize("size", ["10GB", "", " 1Gi", "Gi", "1.2.3Gi", "twenty"])
def test_a_size_that_is_not_a_quantity_is_refused(size: str) -> None:
    with pytest.raises(errors.BadParameterError) as e:
        options.quantity_bytes(size)
    assert (
        str(e.value)
        == f"--volume-size {size!r} is not a Kubernetes quantity: use a number with a unit, e.g. 20Gi or 500Mi"
    )


@pytest.mark.parametrize(
    "image",
    [
        "sharedvol:0.1.0",
        "ghcr.io/acme/sharedvol:1.2.3",
        "localhost:5000/ml/sharedvol",
        "registry.example.com/a/b/c@sha256:" + "a" * 64,
        "docker.io/library/python:3.11-slim",
    ],
)
def test_image_references_are_accepted(image: str) -> None:
    assert options.check_image(image) == image


@pytest.mark.parametrize(
    "image", ["Sharedvol:1", "a b", "sharedvol:", "sharedvol@sha256:xyz", "/sharedvol", "ghcr.io//x"]
)
def test_malformed_image_references_are_refused(image: str) -> None:
    with pytest.raises(errors.BadParameterError, match="is not a container image reference"):
        options.check_image(image)


def test_an_empty_image_is_refused() -> None:
    with pytest.raises(errors.BadParameterError, match="--image is empty"):
        options.check_image("  ")


@pytest.mark.parametrize("name", ["NFS_Fast", "-nfs", "nfs-", "nfs..a", "a" * 254])
def test_storage_class_names_that_are_not_dns_1123_are_refused(name: str) -> None:
    with pytest.raises(errors.BadParameterError, match="is not a valid Kubernetes name"):
        options.StorageChoice.dynamic(name).validate()


def test_the_storage_choices_say_what_they_do() -> None:
    assert (
        options.StorageChoice().validate().describe()
        == "a new ReadWriteMany claim of StorageClass 'sharedvol-nfs' per run"
    )
    assert options.StorageChoice.static("pv-1").validate().describe() == (
        "a new claim per run pre-bound to PersistentVolume 'pv-1' (class '')"
    )
    assert options.StorageChoice.existing("team-data").validate().describe() == "the existing claim 'team-data'"


def test_an_empty_storage_class_is_refused_for_a_dynamic_claim() -> None:
    with pytest.raises(errors.BadParameterError, match="--storage-class is empty"):
        options.StorageChoice.dynamic("").validate()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nvidia.com/gpu:NoSchedule", options.Toleration("nvidia.com/gpu", "Exists", "", "NoSchedule")),
        ("dedicated=ml:NoExecute", options.Toleration("dedicated", "Equal", "ml", "NoExecute")),
        ("spot", options.Toleration("spot", "Exists", "", "")),
    ],
)
def test_tolerations_are_parsed_from_key_value_effect(text: str, expected: options.Toleration) -> None:
    assert options.Toleration.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpu:NoWay", "--toleration effect 'NoWay' is unknown"),
        ("bad key:NoSchedule", "--toleration key 'bad key' is not a valid Kubernetes label key"),
    ],
)
def test_bad_tolerations_are_refused(text: str, message: str) -> None:
    with pytest.raises(errors.BadParameterError, match=message):
        options.Toleration.parse(text)


def test_node_selectors_are_key_value_pairs() -> None:
    assert options.parse_node_selector(["nvidia.com/gpu.present=true", "zone=a"]) == {
        "nvidia.com/gpu.present": "true",
        "zone": "a",
    }
    with pytest.raises(errors.BadParameterError, match="--node-selector 'zone' is not KEY=VALUE"):
        options.parse_node_selector(["zone"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gpu_count": -1}, "gpu_count must be 0 or more, got -1"),
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"device": "tpu"}, "device 'tpu' is unknown"),
        ({"run_dir_name": "../etc"}, "run name '../etc' cannot name a directory"),
        ({"volume_size": "lots"}, "volume_size 'lots' is not a Kubernetes quantity"),
        ({"data_source": " "}, "data_source is empty"),
    ],
)
def test_run_parameters_that_cannot_work_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(errors.BadParameterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        options.RunParameters().replace(**changes).validate()


def test_an_unknown_run_parameter_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(errors.BadParameterError) as e:
        options.RunParameters().replace(epoch=3)
    assert str(e.value).startswith("unknown pipeline parameter(s) epoch: known: epochs, batch_size, lr,")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    commands.register(sub)
    return parser.parse_args(["compile", *argv])


def test_the_compile_flags_choose_the_storage() -> None:
    assert commands.compile_options(parse()).storage == options.StorageChoice.dynamic("sharedvol-nfs")
    assert commands.compile_options(parse("--storage-class", "fast")).storage == options.StorageChoice.dynamic("fast")
    assert commands.compile_options(parse("--static-pv", "pv-1")).storage == options.StorageChoice.static("pv-1", "")
    assert commands.compile_options(parse("--static-pv", "pv-1", "--storage-class", "manual")).storage == (
        options.StorageChoice.static("pv-1", "manual")
    )
    assert commands.compile_options(parse("--existing-pvc", "data")).storage == options.StorageChoice.existing("data")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--existing-pvc", "a", "--static-pv", "b"], "--existing-pvc and --static-pv both given"),
        (["--existing-pvc", "a", "--storage-class", "x"], "--storage-class has no effect with --existing-pvc"),
        (["--storage-class", ""], "--storage-class is empty"),
    ],
)
def test_conflicting_storage_flags_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(errors.BadParameterError, match=message):
        commands.compile_options(parse(*argv))


def test_parameter_flags_become_the_defaults_written_into_the_yaml() -> None:
    opts = commands.compile_options(parse("--epochs", "7", "--gpus", "0", "--keep-volume", "--volume-size", "2Gi"))
    assert opts.defaults == options.RunParameters(epochs=7, gpu_count=0, keep_volume=True, volume_size="2Gi")
