"""Flags and table values become settings in one place: sharedvol.fromargs for every CLI, steps.launch for the steps."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from sharedvol import fromargs
from steps import config, errors, launch, test_resnet
from storage import errors as storage_errors
from storage.provisioner import settings


@dataclasses.dataclass(frozen=True)
class Example:
    name: str
    size: str = "20Gi"
    node: str | None = None


def test_a_field_takes_the_flag_of_its_name_and_a_given_value_wins_over_the_flag() -> None:
    args = argparse.Namespace(name="data", size="5Gi", node="n1", func=print)
    assert fromargs.build(Example, args) == Example("data", "5Gi", "n1")
    assert fromargs.build(Example, args, node="n2") == Example("data", "5Gi", "n2")


def test_a_field_that_no_flag_names_keeps_its_default() -> None:
    assert fromargs.build(Example, argparse.Namespace(name="data")) == Example("data")


def test_a_given_value_for_no_field_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="Example has no field host_path"):
        fromargs.build(Example, argparse.Namespace(name="data"), host_path="/x")


def test_the_table_values_become_the_train_configs_forms_and_other_entries_are_left_out() -> None:
    values = {"run_dir": "/r", "data_root": "/d", "epochs": 3, "amp": "off", "num_workers": -1, "train_metrics": 1}
    cfg = launch.config(config.TrainConfig, values)
    assert (cfg.run_dir, cfg.data_root, cfg.epochs, cfg.amp, cfg.num_workers) == ("/r", "/d", 3, False, None)
    assert cfg.lr == config.TrainConfig("/r", "/d").lr


def test_the_test_config_takes_only_its_own_fields_from_the_same_values() -> None:
    values = {"run_dir": "/r", "data_root": "/d", "epochs": 3, "amp": "on", "num_workers": 2, "checkpoint": None}
    assert launch.config(test_resnet.TestConfig, values) == test_resnet.TestConfig("/r", "/d", num_workers=2)


@pytest.mark.parametrize(("name", "value", "flag"), [("amp", "true", "--amp"), ("num_workers", -2, "--num-workers")])
def test_a_table_value_the_table_refuses_is_a_config_error_naming_the_flag(name: str, value: object, flag: str) -> None:
    with pytest.raises(errors.ConfigError) as e:
        launch.config(config.TrainConfig, {"run_dir": "/r", "data_root": "/d", name: value})
    assert str(e.value).startswith(f"{flag} ")


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        ("SHAREDVOL_HEALTH_PORT", "8o8o", "SHAREDVOL_HEALTH_PORT='8o8o' is not a port number: e.g. 8080"),
        ("SHAREDVOL_RECHECK_SECONDS", "ten", "SHAREDVOL_RECHECK_SECONDS='ten' is not a number: e.g. 10"),
    ],
)
def test_a_malformed_number_in_the_services_environment_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, line: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(storage_errors.InvalidRequestError) as e:
        settings.Settings.from_env()
    assert str(e.value) == line


def test_the_services_numbers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHAREDVOL_HEALTH_PORT", "9090")
    monkeypatch.setenv("SHAREDVOL_RECHECK_SECONDS", "2.5")
    s = settings.Settings.from_env()
    assert (s.health_port, s.recheck_s) == (9090, 2.5)


@pytest.mark.parametrize("value", ["0", "0.01", "3601", "inf", "nan", "1e-300"])
def test_a_re_check_period_outside_a_tenth_of_a_second_to_an_hour_is_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SHAREDVOL_RECHECK_SECONDS", value)  # inf: the heartbeat task died at start (held-out test)
    with pytest.raises(storage_errors.InvalidRequestError) as e:
        settings.Settings.from_env()
    assert str(e.value).startswith(f"re-check period {float(value):g} s is not between 0.1 s and 3600 s (an hour)")
