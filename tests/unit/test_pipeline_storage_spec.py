"""One storage grammar (`--storage SPEC`, storage.choice) in compile, submit and run, and the old flags' notes."""

from __future__ import annotations

import argparse

import pytest

from pipelines import commands, errors, flags, options, run_cli
from storage import choice
from storage import errors as storage_errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", choice.Choice("auto")),
        ("nfs", choice.Choice("class", "sharedvol-nfs")),
        ("fallback", choice.Choice("class", "sharedvol-hostpath")),
        ("cephfs", choice.Choice("class", "cephfs")),
        ("class:static", choice.Choice("class", "static")),
        ("pvc:team-data", choice.Choice("claim", "team-data")),
        ("static", choice.Choice("hostpath")),
        ("static:pv-1", choice.Choice("pv", "pv-1")),
        ("static:pv-1:manual", choice.Choice("pv", "pv-1", "manual")),
        ("nfs:10.0.0.5:/exports/kfp", choice.Choice("export", "10.0.0.5:/exports/kfp")),
        ("nfs:[fd00::5]:/exports/kfp", choice.Choice("export", "[fd00::5]:/exports/kfp")),
    ],
)
def test_every_spelling_of_the_grammar_parses_and_prints_back_the_same(text: str, expected: choice.Choice) -> None:
    parsed = choice.parse(text)
    assert parsed == expected
    assert choice.parse(str(parsed)) == parsed


@pytest.mark.parametrize("text", ["", "NFS_Fast", "pvc:", "pvc:Bad_Name", "static:pv:Bad_Class", "gcs:bucket", "class"])
def test_a_value_outside_the_grammar_is_one_line_naming_it_and_the_grammar(text: str) -> None:
    with pytest.raises(storage_errors.InvalidRequestError) as e:
        choice.parse(text)
    assert str(e.value) == f"--storage {text!r} is not a storage choice: use {choice.GRAMMAR}"


def test_an_nfs_choice_without_an_absolute_export_path_names_the_flag_the_reason_and_the_grammar() -> None:
    with pytest.raises(storage_errors.InvalidRequestError) as e:
        choice.parse("nfs:server")
    assert e.value.message.startswith("--storage 'nfs:server' is not a storage choice (NFS export 'server' is not")
    assert e.value.hint == f"use {choice.GRAMMAR}"


def test_each_choice_gives_the_storage_plan_its_request_fields() -> None:
    assert choice.parse("auto").plan_fields() == {}
    assert choice.parse("nfs").plan_fields() == {"storage_class": "sharedvol-nfs"}
    assert choice.parse("pvc:data").plan_fields() == {"existing": "data"}
    assert choice.parse("static").plan_fields() == {"static": True}
    assert choice.parse("nfs:srv:/x").plan_fields() == {"nfs": "srv:/x"}
    with pytest.raises(storage_errors.InvalidRequestError, match="names a volume that exists"):
        choice.parse("static:pv-1").plan_fields()


def _compile(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    return parser.parse_args(["compile", *argv])


@pytest.mark.parametrize(
    ("argv", "volume"),
    [
        ((), options.StorageChoice.dynamic("sharedvol-nfs")),
        (("--storage", "cephfs"), options.StorageChoice.dynamic("cephfs")),
        (("--storage", "fallback"), options.StorageChoice.dynamic("sharedvol-hostpath")),
        (("--storage", "pvc:team-data"), options.StorageChoice.existing("team-data")),
        (("--storage", "static:pv-1"), options.StorageChoice.static("pv-1", "")),
        (("--storage", "static:pv-1:manual"), options.StorageChoice.static("pv-1", "manual")),
    ],
)
def test_compile_turns_the_storage_choice_into_the_pipelines_volume(
    argv: tuple[str, ...], volume: options.StorageChoice
) -> None:
    assert flags.compile_volume(_compile(*argv)) == (volume, "")


@pytest.mark.parametrize("spec", ["static", "nfs:10.0.0.5:/exports"])
def test_compile_refuses_a_choice_that_makes_a_volume_now_and_says_what_to_do(spec: str) -> None:
    with pytest.raises(errors.BadParameterError) as e:
        flags.compile_volume(_compile("--storage", spec))
    assert e.value.message == f"--storage {spec} makes a volume now, which a compiled pipeline cannot"
    assert "--storage pvc:NAME" in e.value.hint and "sharedvol run" in e.value.hint


@pytest.mark.parametrize(
    ("argv", "volume", "note"),
    [
        (("--storage-class", "fast"), options.StorageChoice.dynamic("fast"), "--storage-class"),
        (("--existing-pvc", "data"), options.StorageChoice.existing("data"), "--existing-pvc"),
        (("--static-pv", "pv-1"), options.StorageChoice.static("pv-1", ""), "--static-pv"),
    ],
)
def test_the_old_volume_flags_still_work_and_print_a_one_line_deprecation_note(
    argv: tuple[str, ...], volume: options.StorageChoice, note: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert flags.compile_volume(_compile(*argv)) == (volume, "")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"note: {note} is deprecated; use --storage ")


def test_a_static_pv_with_a_class_in_old_flags_is_the_same_as_in_the_grammar() -> None:
    old = flags.compile_volume(_compile("--static-pv", "pv-1", "--storage-class", "manual"))
    assert old == flags.compile_volume(_compile("--storage", "static:pv-1:manual"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--storage", "nfs", "--storage-class", "x"),
            "--storage nfs and --storage-class both given: use --storage alone",
        ),
        (("--existing-pvc", "a", "--static-pv", "b"), "--existing-pvc and --static-pv both given"),
        (("--existing-pvc", "a", "--storage-class", "x"), "--existing-pvc and --storage-class both given"),
        (("--storage-class", ""), "--storage-class is empty"),
        (("--existing-pvc", "Team_Data"), "--existing-pvc 'Team_Data' is not a valid Kubernetes name"),
        (("--static-pv", "pv-1", "--storage-class", "Bad_Class"), "--storage-class 'Bad_Class' is not a valid"),
    ],
)
def test_conflicting_or_empty_volume_flags_are_refused(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises((errors.BadParameterError, storage_errors.InvalidRequestError), match=message):
        flags.compile_volume(_compile(*argv))


def test_run_and_compile_read_the_same_grammar_with_their_own_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    run_cli.register(sub)
    commands.register(sub)

    def run(*argv: str) -> choice.Choice:
        return run_cli.settings_from(parser.parse_args(["run", "--host", "http://kfp", *argv])).storage

    assert run() == choice.AUTO
    assert flags.storage_choice(parser.parse_args(["compile"])) == choice.parse("nfs")
    for spec in ("nfs", "static", "pvc:data", "static:pv-1", "nfs:srv:/x", "cephfs"):
        assert run("--storage", spec) == flags.storage_choice(parser.parse_args(["compile", "--storage", spec]))
    assert run("--existing-pvc", "data") == choice.parse("pvc:data")
