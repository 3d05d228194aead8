"""Servers that answer without end, or a byte now and then: every reader stops at its cap, in one line."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator

import pytest

from pipelines import cli, kfp_api, mlmd
from sharedvol import answers
from tests import httpfakes


@pytest.fixture
def endless() -> Iterator[str]:
    with httpfakes.serving(httpfakes.Endless) as url:
        yield url


def grown_mib(before_kib: int) -> float:
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib) / 1024


def test_submit_against_a_server_whose_answer_never_ends_is_one_line_and_reads_at_most_the_cap(
    endless: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = cli.main(["submit", "--host", endless, "--token", "t"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "is larger than 64 MiB" in err and "not a KFP answer" in err
    assert grown_mib(before) < 3 * answers.CAP / 2**20  # the whole 512 MiB was never held


def test_a_task_log_that_never_ends_is_not_offered(endless: str) -> None:
    api = kfp_api.KfpApi(kfp_api.ApiSettings(host=endless, token="t"))
    assert api.pod_log("pod-1") is None


def test_an_ml_metadata_answer_that_never_ends_is_unavailable_naming_the_cap(endless: str) -> None:
    with pytest.raises(mlmd.MlmdUnavailable, match="larger than 64 MiB"):
        mlmd.run_metrics(endless, "run-1", token="t", timeout_s=30, verify=False)


def test_submit_against_a_server_that_sends_a_byte_now_and_then_gives_up_at_its_deadline_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kfp_api, "ANSWER_DEADLINE_S", 2.0)
    started = time.monotonic()
    with httpfakes.serving(httpfakes.Drip) as url:
        code = cli.main(["submit", "--host", url, "--token", "t"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "was still coming after 2 s" in err, err
    assert time.monotonic() - started < 30
