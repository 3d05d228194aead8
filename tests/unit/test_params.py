"""One table of run parameters: the flags, the pipeline signature, the components and the docs agree with it."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import components, flagdocs, local, options, params, pipeline, trainjob_component
from steps import cli as steps_cli
from steps import config
from steps import errors as steps_errors
from steps import params as steps_params
from steps import schemas as steps_schemas

DOCS = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"
FIELDS = steps_params.fields(params.RunParameters)
KFP_TYPES = {int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", str: "STRING", bool: "BOOLEAN"}
PIPELINE_ONLY = {"volume_size", "gpu_count", "keep_volume"}  # used by the pipeline itself, not by a component


def flag_defaults(parser: argparse.ArgumentParser) -> dict[str, tuple[str, Any]]:
    """dest -> (first option string, default) of every flag of ``parser``."""
    return {a.dest: (a.option_strings[0], a.default) for a in parser._actions if a.option_strings}


def test_compile_submit_and_run_take_every_run_parameter_with_the_tables_flag_and_default() -> None:
    parsers = flagdocs.subparsers()
    expected = {f.name: (steps_params.meta(f).flag, f.default) for f in FIELDS}
    for command in ("compile", "submit", "run"):
        got = flag_defaults(parsers[command])
        assert {name: got[name] for name in expected} == expected, command


def test_the_demo_takes_the_step_parameters_with_the_demo_profiles_defaults() -> None:
    got = flag_defaults(flagdocs.subparsers()["demo"])
    assert {n: got[n][1] for n in steps_params.TRAINING} == {
        n: getattr(steps_params.DEMO, n) for n in steps_params.TRAINING
    }
    assert local.DemoSettings(output=Path("x")).parameters("r").epochs == steps_params.DEMO.epochs


def test_the_step_programs_take_their_parameters_with_the_tables_defaults() -> None:
    parser = argparse.ArgumentParser()
    steps_cli.register(parser.add_subparsers())
    train = parser.parse_args(["train", "--run-dir", "r", "--data-root", "d"])
    test = parser.parse_args(["test", "--run-dir", "r", "--data-root", "d"])

    assert {n: getattr(train, n) for n in steps_params.TRAINING} == {
        n: getattr(steps_params.DEFAULTS, n) for n in steps_params.TRAINING
    }
    assert {n: getattr(test, n) for n in steps_params.TESTING} == {
        n: getattr(steps_params.DEFAULTS, n) for n in steps_params.TESTING
    }
    cfg = config.TrainConfig(run_dir="r", data_root="d")
    d = steps_params.DEFAULTS
    assert {n: getattr(cfg, n) for n in steps_params.TRAINING} == {
        **{n: getattr(d, n) for n in steps_params.TRAINING},
        "amp": steps_params.amp_setting(d.amp),
        "num_workers": steps_params.workers_setting(d.num_workers),
    }


def test_the_tables_defaults_leave_amp_augmentation_and_loader_workers_to_the_device() -> None:
    d = steps_params.DEFAULTS
    assert (d.amp, d.augment, d.num_workers) == ("auto", "auto", steps_params.AUTO_WORKERS)
    cfg = config.TrainConfig(run_dir="r", data_root="d")
    assert (cfg.amp, cfg.augment, cfg.num_workers) == (None, "auto", None)


def test_the_train_program_passes_explicit_amp_augmentation_and_workers_and_auto_by_default() -> None:
    parser = argparse.ArgumentParser()
    steps_cli.register(parser.add_subparsers())
    base = ["train", "--run-dir", "r", "--data-root", "d"]
    auto = parser.parse_args(base)
    chosen = parser.parse_args([*base, "--amp", "on", "--augment", "stock", "--num-workers", "3"])

    assert (auto.amp, auto.augment, auto.num_workers) == ("auto", "auto", -1)
    assert (chosen.amp, chosen.augment, chosen.num_workers) == ("on", "stock", 3)


@pytest.mark.parametrize(("amp", "setting"), [("auto", None), ("on", True), ("off", False)])
def test_amp_auto_on_and_off_become_the_train_configs_none_true_and_false(amp: str, setting: bool | None) -> None:
    assert steps_params.amp_setting(amp) is setting


@pytest.mark.parametrize(("workers", "setting"), [(-1, None), (0, 0), (4, 4)])
def test_minus_one_loader_workers_becomes_none_and_a_count_stays_itself(workers: int, setting: int | None) -> None:
    assert steps_params.workers_setting(workers) == setting


def test_a_bad_amp_or_worker_count_from_a_pipeline_run_is_refused_naming_its_flag() -> None:
    with pytest.raises(steps_errors.ConfigError) as amp:
        steps_params.amp_setting("true")
    with pytest.raises(steps_errors.ConfigError) as workers:
        steps_params.workers_setting(-2)
    assert (amp.value.message, amp.value.hint) == ("--amp 'true' is unknown", "use auto, on, off")
    assert (workers.value.message, workers.value.hint) == (
        "--num-workers must be at least -1, got -2",
        "e.g. --num-workers -1",
    )


def test_the_compiled_pipelines_parameters_are_the_tables_names_types_and_defaults(tmp_path: Path) -> None:
    out = pipeline.compile_to(options.CompileOptions(), tmp_path / "p.yaml").path
    spec = next(yaml.safe_load_all(out.read_text()))
    compiled = spec["root"]["inputDefinitions"]["parameters"]

    assert set(compiled) == {f.name for f in FIELDS}
    for f in FIELDS:
        assert compiled[f.name]["parameterType"] == KFP_TYPES[params.kfp_type(f)], f.name
        assert compiled[f.name]["defaultValue"] == params.RunParameters().as_dict()[f.name], f.name
    assert compiled["gpu_count"] == {"defaultValue": "1", "isOptional": True, "parameterType": "STRING"}


def test_every_component_input_named_like_a_run_parameter_has_the_tables_type_and_every_parameter_is_used() -> None:
    types = {f.name: params.kfp_type(f) for f in FIELDS}
    used = set()
    funcs = (components.prepare_data, components.train_resnet, components.test_resnet, components.produce_metrics)
    for func in (*funcs, trainjob_component.train_resnet):
        for name, p in inspect.signature(func).parameters.items():
            if name in types:
                assert p.annotation is types[name], f"{func.__name__}({name}: {p.annotation})"
                used.add(name)
    assert used | PIPELINE_ONLY == set(types)


def test_train_and_test_components_take_exactly_the_tables_training_and_testing_parameters() -> None:
    names = {f.name for f in FIELDS}

    def run_inputs(func: Any) -> set[str]:
        return set(inspect.signature(func).parameters) & names

    assert run_inputs(components.train_resnet) == set(steps_params.TRAINING)
    assert run_inputs(trainjob_component.train_resnet) == {*steps_params.TRAINING, "gpu_count"}  # GPUs per worker
    assert run_inputs(components.test_resnet) == set(steps_params.TESTING)
    assert run_inputs(components.prepare_data) == {"data_source", "run_dir_name"}


def test_the_pipeline_signature_is_built_from_the_compile_defaults() -> None:
    defaults = params.RunParameters(epochs=5, gpu_count=2, keep_volume=True)
    sig = params.signature(defaults)

    assert list(sig.parameters) == [f.name for f in FIELDS]
    assert sig.parameters["epochs"].default == 5 and sig.parameters["epochs"].annotation is int
    assert sig.parameters["gpu_count"].default == "2" and sig.parameters["gpu_count"].annotation is str
    assert sig.parameters["keep_volume"].default is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "--epochs must be at least 1, got 0"),
        ("batch_size", -3, "--batch-size must be at least 1, got -3"),
        ("batch_size", 10**20, f"--batch-size must be at most 65536, got {10**20}"),
        ("epochs", 100_001, "--epochs must be at most 100000, got 100001"),
        ("lr", 1e7, "--lr must be at most 1000000.0, got 10000000.0"),
        ("num_workers", 257, "--num-workers must be at most 256, got 257"),
        ("lr", -0.1, "--lr must be a positive number, got -0.1"),
        ("lr", float("nan"), "--lr must be a positive number, got nan"),
        ("seed", -1, "--seed must be at least 0, got -1"),
        ("seed", 2**32, "--seed must be at most 4294967295, got 4294967296"),
        ("device", "tpu", "--device 'tpu' is unknown"),
        ("num_workers", -2, "--num-workers must be at least -1, got -2"),
        ("amp", "yes", "--amp 'yes' is unknown"),
        ("augment", "gpu", "--augment 'gpu' is unknown"),
        ("data_source", "", "--data-source is empty"),
    ],
)
def test_a_step_parameter_outside_the_tables_rules_is_refused_naming_its_flag(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(steps_errors.ConfigError) as e:
        dataclasses.replace(steps_params.DEFAULTS, **{field: value}).validate()
    assert e.value.message == message


def test_the_docs_flag_table_is_the_one_argparse_generates() -> None:
    if os.environ.get("SHAREDVOL_UPDATE_DOCS") == "1":
        flagdocs.update(DOCS)
    documented = flagdocs.documented(DOCS).splitlines()
    generated = flagdocs.table().splitlines()
    assert documented, f"{DOCS.name} has no generated flag table (markers {flagdocs.BEGIN!r} ... {flagdocs.END!r})"
    missing = [row for row in generated if row not in documented]
    stale = [row for row in documented if row not in generated]
    assert (missing, stale) == ([], []), "regenerate with SHAREDVOL_UPDATE_DOCS=1 and review the diff"


def test_a_default_written_in_a_flags_help_is_argparses_default() -> None:
    said = re.compile(r"\(default:? ([^()]*)\)\s*$")
    wrong = []
    for command, parser in flagdocs.subparsers().items():
        for action in parser._actions:
            m = said.search(action.help or "")
            if not m or action.default in (None, "", [], False, True):
                continue
            value = action.default
            text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
            if not m.group(1).startswith(text):
                wrong.append(f"{command} {action.option_strings[0]}: help says {m.group(1)!r}, default {text!r}")
    assert wrong == []


def test_a_parameters_flag_is_its_name_with_dashes_unless_the_table_names_another() -> None:
    flags = {f.name: steps_params.meta(f).flag for f in FIELDS}
    assert flags["batch_size"] == "--batch-size"
    assert flags["run_dir_name"] == "--run-dir-name"
    assert flags["gpu_count"] == "--gpus"
    assert all(flag.startswith("--") and "_" not in flag for flag in flags.values())


def test_the_largest_epoch_count_a_run_takes_is_the_one_its_documents_admit() -> None:
    assert steps_params.MAX_EPOCHS == steps_schemas.MAX_EPOCHS
