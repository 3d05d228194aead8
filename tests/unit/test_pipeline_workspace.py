"""The workspace variant (KFP's own per-run workspace) and the string gpu_count parameter."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from pipelines import commands, errors, flags, options, params, pipeline


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    return parser.parse_args(["compile", *argv])


def compile_options(args: argparse.Namespace) -> options.CompileOptions:
    return flags.compile_options(args, flags.compile_volume(args)[0])


def test_the_workspace_flag_selects_kfps_workspace_with_the_chosen_class() -> None:
    opts = compile_options(parse("--workspace", "--storage", "fast-nfs"))
    assert opts.workspace and opts.storage == options.StorageChoice.dynamic("fast-nfs")


@pytest.mark.parametrize("spec", ["pvc:team-data", "static:pv-0"])
def test_the_workspace_is_refused_with_an_existing_claim_or_a_static_pv(spec: str) -> None:
    with pytest.raises(errors.BadParameterError, match="--workspace cannot use"):
        compile_options(parse("--workspace", "--storage", spec))


def test_the_workspace_pipeline_asks_kfp_for_a_readwritemany_claim_of_the_class_and_no_volume_tasks(
    tmp_path: Path,
) -> None:
    opts = options.CompileOptions(storage=options.StorageChoice.dynamic("fast-nfs"), workspace=True)
    spec, platform = yaml.safe_load_all(pipeline.compile_to(opts, tmp_path / "ws.yaml").path.read_text())
    workspace = platform["platforms"]["kubernetes"]["pipelineConfig"]["workspace"]

    assert workspace["size"] == params.RunParameters().volume_size
    assert workspace["kubernetes"]["pvcSpecPatch"] == {"accessModes": ["ReadWriteMany"], "storageClassName": "fast-nfs"}
    assert not {"createpvc", "deletepvc"} & set(spec["root"]["dag"]["tasks"])
    prepare = spec["root"]["dag"]["tasks"]["prepare-data"]["inputs"]["parameters"]
    assert prepare["volume"] == {"runtimeValue": {"constant": "{{$.workspace_path}}"}}


@pytest.mark.parametrize(("count", "sent"), [(0, "0"), (1, "1"), (2, "2"), ("3", "3")])
def test_gpu_count_is_sent_to_kfp_as_a_string_of_digits(count: int | str, sent: str) -> None:
    assert params.gpu_count_parameter(count) == sent
    if isinstance(count, int):
        assert params.RunParameters(gpu_count=count).as_dict()["gpu_count"] == sent


@pytest.mark.parametrize("bad", [-1, "1.5", "one", "", True])
def test_a_gpu_count_that_is_not_a_non_negative_integer_is_refused(bad: object) -> None:
    with pytest.raises(errors.BadParameterError, match="is not a non-negative integer"):
        params.gpu_count_parameter(bad)  # type: ignore[arg-type]
