"""Compile-time choices and run parameters: what is accepted, what is refused, and the message."""

from __future__ import annotations

import argparse

import pytest

from pipelines import commands, errors, flags, options, params
from storage import errors as storage_errors


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        ("0", "is not positive"),
        ("-1Gi", "is not positive"),
        ("10GB", "is not a Kubernetes quantity"),
        ("twenty", "is not a Kubernetes quantity"),
        ("", "is not a Kubernetes quantity"),
        ("500Ki", "is 512000 bytes, below the minimum of 1Mi"),
    ],
)
def test_a_volume_size_the_claim_cannot_have_is_refused_by_storages_rule(size: str, reason: str) -> None:
    with pytest.raises(errors.BadParameterError) as e:
        params.RunParameters(volume_size=size).validate()
    assert e.value.message == f"volume_size {size!r} {reason}"


@pytest.mark.parametrize("size", ["20Gi", "500M", "1e9", "0.5Gi"])
def test_a_volume_size_storage_accepts_is_accepted(size: str) -> None:
    assert params.RunParameters(volume_size=size).validate().volume_size == size


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
def test_storage_class_names_that_are_not_dns_1123_are_refused_by_storages_check(name: str) -> None:
    with pytest.raises(storage_errors.InvalidRequestError, match=f"StorageClass '{name}' is not a valid Kubernetes"):
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
    with pytest.raises(errors.BadParameterError, match="the StorageClass of a new claim is empty"):
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
        ({"gpu_count": -1}, "--gpus must be at least 0, got -1"),
        ({"epochs": 0}, "--epochs must be at least 1, got 0"),
        ({"num_workers": -2}, "--num-workers must be at least -1, got -2"),
        ({"amp": "true"}, "--amp 'true' is unknown"),
        ({"lr": 0.0}, "--lr must be a positive number"),
        ({"device": "tpu"}, "--device 'tpu' is unknown"),
        ({"run_dir_name": "../etc"}, "run name '../etc' cannot name a directory"),
        ({"volume_size": "lots"}, "volume_size 'lots' is not a Kubernetes quantity"),
        ({"data_source": " "}, "--data-source is empty"),
        ({"gpu_count": 10**23}, f"--gpus must be at most 64, got {10**23}"),
        ({"data_source": "synthetic:0:0"}, "data source 'synthetic:0:0': TRAIN 0 is out of range"),
        ({"data_source": "synthetic:²:10"}, "data source 'synthetic:²:10' is not synthetic:TRAIN:TEST"),
    ],
)
def test_run_parameters_that_cannot_work_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(errors.BadParameterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        params.RunParameters().replace(**changes).validate()


def test_an_unknown_run_parameter_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(errors.BadParameterError) as e:
        params.RunParameters().replace(epoch=3)
    assert str(e.value).startswith("unknown pipeline parameter(s) epoch: known: epochs, batch_size, lr,")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    commands.register(sub)
    return parser.parse_args(["compile", *argv])


def test_parameter_flags_become_the_defaults_written_into_the_yaml() -> None:
    opts = flags.compile_options(
        parse("--epochs", "7", "--gpus", "0", "--keep-volume", "--volume-size", "2Gi"), options.StorageChoice()
    )
    assert opts.defaults == params.RunParameters(epochs=7, gpu_count=0, keep_volume=True, volume_size="2Gi")


def test_without_parameter_flags_the_yaml_gets_the_tables_defaults() -> None:
    assert flags.compile_options(parse(), options.StorageChoice()).defaults == params.RunParameters()
