"""A KFP server that answers without end: every reader stops at its cap, in one line, with its memory bounded."""

from __future__ import annotations

import resource
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines import answers, cli, kfp_api, mlmd

CHUNK = b"{" * 2**20


class _Endless(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            for _ in range(4 * answers.CAP // len(CHUNK)):  # four times the cap, then stop (the test must end)
                self.wfile.write(CHUNK)
        except OSError:
            pass  # the reader hung up at its cap

    do_GET = _answer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()


@pytest.fixture
def endless() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
    assert grown_mib(before) < 3 * answers.CAP / 2**20  # the whole 256 MiB was never held


def test_a_task_log_that_never_ends_is_not_offered(endless: str) -> None:
    api = kfp_api.KfpApi(kfp_api.ApiSettings(host=endless, token="t"))
    assert api.pod_log("pod-1") is None


def test_an_ml_metadata_answer_that_never_ends_is_unavailable_naming_the_cap(endless: str) -> None:
    with pytest.raises(mlmd.MlmdUnavailable, match="larger than 64 MiB"):
        mlmd.run_metrics(endless, "run-1", token="t", timeout_s=30, verify=False)
