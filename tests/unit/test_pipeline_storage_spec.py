"""`--storage SPEC` on compile and submit: a shorthand for the explicit volume flags."""

from __future__ import annotations

import argparse

import pytest

from pipelines import commands, errors


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.compile_args(parser, defaults_help="")
    commands.storage_spec_args(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("spec", "field", "value", "said"),
    [
        ("pvc:kfp-shared", "existing_pvc", "kfp-shared", "existing claim kfp-shared"),
        ("static:sharedvol-kfp-shared", "static_pv", "sharedvol-kfp-shared", "pre-bound to PersistentVolume"),
        ("cephfs", "storage_class", "cephfs", "StorageClass cephfs"),
    ],
)
def test_a_storage_spec_sets_the_matching_volume_flag(spec: str, field: str, value: str, said: str) -> None:
    args = _args("--storage", spec)
    assert said in commands.apply_storage_spec(args)
    assert getattr(args, field) == value
    assert commands.compile_options(args).storage.describe()


def test_a_storage_spec_with_an_explicit_volume_flag_or_an_unknown_kind_is_refused() -> None:
    with pytest.raises(errors.BadParameterError, match="and an explicit volume flag both given"):
        commands.apply_storage_spec(_args("--storage", "pvc:a", "--static-pv", "b"))
    with pytest.raises(errors.BadParameterError, match="'nfs:server' is not understood"):
        commands.apply_storage_spec(_args("--storage", "nfs:server"))


def test_no_storage_spec_changes_nothing() -> None:
    args = _args("--storage-class", "x")
    assert commands.apply_storage_spec(args) == ""
    assert args.storage_class == "x"
