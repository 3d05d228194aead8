"""``sharedvol run``'s command line: flags into settings, and one real invocation (control plane + fake KFP)."""

from __future__ import annotations

import argparse

import pytest

from pipelines import errors, params, run_cli
from rig.cluster import ClusterHandle
from storage import choice
from storage import errors as storage_errors
from tests import objects
from tests.kfp_fake import GOOD_TOKEN, FakeKfp
from tests.objects import ClusterObjects


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sharedvol")
    run_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["run", *argv])


@pytest.fixture(autouse=True)
def no_ambient_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def test_by_default_run_detects_storage_follows_the_run_and_keeps_the_yaml_defaults() -> None:
    s = run_cli.settings_from(parse("--host", "http://kfp:8080", "--epochs", "3", "--gpus", "0"))
    assert s.storage == choice.AUTO
    assert s.submit.wait is True
    assert s.namespace == "kubeflow"
    assert s.claim_name == "sharedvol-runs"
    assert s.submit.params == params.RunParameters(epochs=3, gpu_count=0)
    assert s.submit.compile.defaults == params.RunParameters()


def test_an_existing_claim_is_a_storage_choice_like_any_other() -> None:
    s = run_cli.settings_from(parse("--host", "http://kfp:8080", "--storage", "pvc:team-data", "--namespace", "ml"))
    assert s.storage == choice.Choice("claim", "team-data")
    assert s.namespace == "ml"


def test_storage_and_an_old_volume_flag_together_are_refused() -> None:
    with pytest.raises(errors.BadParameterError) as e:
        run_cli.settings_from(parse("--host", "http://kfp:8080", "--storage", "nfs", "--storage-class", "other"))
    assert str(e.value) == "--storage nfs and --storage-class both given: use --storage alone"


def test_a_bad_storage_value_is_one_line_naming_it_and_the_grammar() -> None:
    with pytest.raises(storage_errors.InvalidRequestError) as e:
        run_cli.settings_from(parse("--host", "http://kfp:8080", "--storage", "nsf:server"))
    assert str(e.value) == f"--storage 'nsf:server' is not a storage choice: use {choice.GRAMMAR}"


def test_without_a_host_run_says_how_to_reach_kfp() -> None:
    with pytest.raises(errors.BadParameterError) as e:
        run_cli.settings_from(parse())
    assert e.value.message == "no --host"
    assert "port-forward" in e.value.hint


def test_no_wait_starts_the_run_and_returns() -> None:
    assert run_cli.settings_from(parse("--host", "http://kfp:8080", "--no-wait")).submit.wait is False


def test_the_run_command_prints_each_step_and_the_run_link(
    cluster: ClusterHandle,
    namespace: str,
    cluster_objects: ClusterObjects,
    fake_kfp: FakeKfp,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster_objects.storage_class(objects.nfs_class("sharedvol-nfs"))
    args = parse(
        *("--host", fake_kfp.url, "--token", GOOD_TOKEN, "--namespace", namespace),
        *("--kubeconfig", str(cluster.kubeconfig), "--storage", "nfs", "--gpus", "0", "--no-wait"),
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"doctor: StorageClasses: sharedvol-nfs ({objects.NFS_PROVISIONER}, RWX yes)")
    assert f"storage: plan for claim {namespace}/sharedvol-runs: dynamic" in out
    (run_id,) = fake_kfp.runs
    assert out[-2:] == [
        f"run: {fake_kfp.url}/#/runs/details/{run_id}",
        "state: PENDING (follow it with the link, or sharedvol run without --no-wait)",
    ]
