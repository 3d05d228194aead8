"""Every command that talks to the cluster says in one line when its API server does not answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig import cluster as cp
from rig.paths import REPO
from tests import httpfakes


@pytest.fixture
def silent_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose server is a local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return cp.write_kubeconfig(tmp_path / "silent.kubeconfig", f"https://127.0.0.1:{port}", "token", None, "u")


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "--host", "http://127.0.0.1:9", "--gpus", "0"),
        ("compile", "--storage", "auto", "-o", "{tmp}/p.yaml"),
        ("doctor",),
        ("provision", "data", "--static"),
        ("release", "data"),
        ("serve", "--health-port", "0", "--text-logs"),
    ],
    ids=["run", "compile-auto", "doctor", "provision", "release", "serve"],
)
def test_a_command_against_an_api_server_that_does_not_answer_says_so_in_one_line(
    silent_kubeconfig: Path, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    error = _one_error_line(args, silent_kubeconfig)
    assert "no answer from https://127.0.0.1:" in error


def _one_error_line(argv: list[str] | tuple[str, ...], kubeconfig: Path, **env: str) -> str:
    """The one line ``sharedvol ARGV`` prints on stderr against ``kubeconfig``'s server; it must fail, tracebackless."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), "KUBECONFIG": str(kubeconfig), **env}
    environ.pop("KF_PIPELINES_ENDPOINT", None)
    out = subprocess.run(
        [sys.executable, "-m", "pipelines", *argv], cwd=REPO, env=environ, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, out.stderr
    return errors[0]


@pytest.fixture
def mute_kubeconfig(tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig whose server takes connections (the kernel's backlog) and never says a byte."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        port = s.getsockname()[1]
        yield cp.write_kubeconfig(tmp_path / "mute.kubeconfig", f"https://127.0.0.1:{port}", "token", None, "u")


@pytest.mark.parametrize(
    "argv",
    [("doctor",), ("release", "data"), ("serve", "--health-port", "0", "--text-logs")],
    ids=["doctor", "release", "serve"],
)
def test_a_command_against_an_api_server_that_takes_the_connection_and_never_answers_gives_up_in_one_line(
    mute_kubeconfig: Path, argv: tuple[str, ...]
) -> None:
    error = _one_error_line(argv, mute_kubeconfig, SHAREDVOL_KUBE_TIMEOUT="1")
    assert "no answer from https://127.0.0.1:" in error


def test_a_kube_timeout_that_is_not_a_number_of_seconds_is_refused_in_one_line(silent_kubeconfig: Path) -> None:
    assert "SHAREDVOL_KUBE_TIMEOUT='nan'" in _one_error_line(
        ["doctor"], silent_kubeconfig, SHAREDVOL_KUBE_TIMEOUT="nan"
    )


def test_a_command_against_an_api_server_whose_answer_never_ends_refuses_it_in_one_line(tmp_path: Path) -> None:
    with httpfakes.serving(httpfakes.Endless) as endless:
        kubeconfig = cp.write_kubeconfig(tmp_path / "endless.kubeconfig", endless, "token", None, "u")
        error = _one_error_line(["doctor"], kubeconfig)
    assert "answered too much or too slowly (the answer to GET" in error and "is larger than 256 MiB" in error
