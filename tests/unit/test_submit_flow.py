"""``sharedvol submit`` through kfp.Client against the fake KFP server: upload or reuse, experiment, run, follow,
metrics, failures."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines import cli, commands, errors, follow, kfp_api, options, params, submit
from tests.kfp_fake import FORBIDDEN_TOKEN, GOOD_TOKEN, METRICS, FakeKfp, RunStep, running

NO_WAIT = submit.PollSettings(initial_s=0.0, max_s=0.0, timeout_s=60.0)
# The pipeline's steps as KFP names its tasks (the taskInfo names in pipelines/golden/resnet18_cifar10.yaml).
STEPS = ["create-volume", "prepare-data", "train-resnet", "test-resnet", "produce-metrics", "delete-volume"]


@pytest.fixture
def kfp_server() -> Iterator[FakeKfp]:
    with running() as server:
        yield server


class FakeClock:
    """Time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def settings(server: FakeKfp, **kw: object) -> submit.SubmitSettings:
    api = kfp_api.ApiSettings(host=server.url, token=kw.pop("token", GOOD_TOKEN), namespace=kw.pop("namespace", None))  # type: ignore[arg-type]
    base: dict[str, object] = {"api": api, "wait": True, "poll": NO_WAIT}
    base.update(kw)
    return submit.SubmitSettings(**base)  # type: ignore[arg-type]


def run(server: FakeKfp, **kw: object) -> submit.SubmitResult:
    clock = FakeClock()
    return submit.submit(settings(server, **kw), sleep=clock.sleep, clock=clock)


def test_a_first_submit_creates_the_pipeline_a_version_the_experiment_and_a_run_and_reads_the_metrics(
    kfp_server: FakeKfp,
) -> None:
    lines: list[str] = []
    clock = FakeClock()
    result = submit.submit(settings(kfp_server), progress=lines.append, sleep=clock.sleep, clock=clock)

    assert result.state == "SUCCEEDED"
    assert result.metrics == METRICS
    assert result.metrics_source == "ML Metadata"
    assert result.run_url == f"{kfp_server.url}/#/runs/details/{result.run_id}"
    assert [p["name"] for p in kfp_server.pipelines.values()] == ["resnet18-cifar10"]
    (version,) = kfp_server.versions[result.pipeline_id]
    assert version["name"] == result.version_name
    assert (
        result.version_name.startswith("resnet18-cifar10-")
        and len(result.version_name) == len("resnet18-cifar10-") + 12
    )
    assert not result.version_reused
    assert [e["display_name"] for e in kfp_server.experiments.values()] == ["sharedvol"]
    (create,) = kfp_server.calls("POST", "/apis/v2beta1/runs")
    assert create.body["pipeline_version_reference"] == {
        "pipeline_id": result.pipeline_id,
        "pipeline_version_id": result.version_id,
    }
    assert create.body["runtime_config"]["parameters"] == params.RunParameters().as_dict()
    assert create.body["experiment_id"] == result.experiment_id
    # progress: what was created, then each task's state changes, then the end
    assert lines[0] == "created pipeline 'resnet18-cifar10'"
    assert "  train-resnet: RUNNING" in lines and "  train-resnet: SUCCEEDED" in lines
    assert lines[-2:] == [
        f"run {result.run_id} SUCCEEDED",
        "metrics read from ML Metadata (the produce-metrics task's Metrics artifact)",
    ]
    assert sorted(t.name for t in result.tasks) == sorted(STEPS)


def test_task_events_print_in_the_pipelines_order_naming_create_volume_and_delete_volume(kfp_server: FakeKfp) -> None:
    # every task ended between two polls, and the API lists them in another order
    kfp_server.script = [RunStep("SUCCEEDED", dict.fromkeys(reversed(STEPS), "SUCCEEDED"))]
    lines: list[str] = []
    clock = FakeClock()
    submit.submit(settings(kfp_server), progress=lines.append, sleep=clock.sleep, clock=clock)

    assert [line for line in lines if line.startswith("  ")] == [f"  {step}: SUCCEEDED" for step in STEPS]


def test_every_request_carries_the_bearer_token_and_the_namespace(kfp_server: FakeKfp) -> None:
    run(kfp_server, namespace="team-a")

    assert kfp_server.requests
    assert all(r.headers.get("Authorization") == f"Bearer {GOOD_TOKEN}" for r in kfp_server.requests)
    assert kfp_server.calls("GET", "/apis/v2beta1/pipelines/names/resnet18-cifar10")[0].query["namespace"] == ["team-a"]
    assert kfp_server.calls("GET", "/apis/v2beta1/experiments")[0].query["namespace"] == ["team-a"]
    assert [p["namespace"] for p in kfp_server.pipelines.values()] == ["team-a"]
    assert [e["namespace"] for e in kfp_server.experiments.values()] == ["team-a"]


def test_the_pod_log_is_asked_in_the_runs_namespace_when_mlmd_is_not_served(kfp_server: FakeKfp) -> None:
    kfp_server.serve_mlmd = False
    result = run(kfp_server, namespace="team-a")

    (logs,) = kfp_server.calls("GET", "/k8s/pod/logs")
    assert logs.query == {"podname": ["pod-produce-metrics"], "podnamespace": ["team-a"]}
    assert logs.headers.get("Authorization") == f"Bearer {GOOD_TOKEN}"
    assert (result.metrics, result.metrics_source) == (METRICS, "pod log")


def test_submitting_the_same_pipeline_again_reuses_its_version_and_experiment(kfp_server: FakeKfp) -> None:
    first = run(kfp_server)
    second = run(kfp_server)

    assert second.version_reused
    assert (second.pipeline_id, second.version_id, second.experiment_id) == (
        first.pipeline_id,
        first.version_id,
        first.experiment_id,
    )
    assert len(kfp_server.calls("POST", "/apis/v2beta1/pipelines/upload_version")) == 1
    assert len(kfp_server.calls("POST", "/apis/v2beta1/pipelines")) == 1
    assert len(kfp_server.calls("POST", "/apis/v2beta1/runs")) == 2


def test_a_changed_pipeline_is_uploaded_as_a_new_version_of_the_same_pipeline(kfp_server: FakeKfp) -> None:
    first = run(kfp_server)
    second = run(kfp_server, compile=options.CompileOptions(image="registry.example.com/ml/sharedvol:0.2.0"))

    assert second.pipeline_id == first.pipeline_id
    assert second.version_id != first.version_id and not second.version_reused
    assert len(kfp_server.versions[first.pipeline_id]) == 2


def test_run_parameters_given_to_submit_reach_the_run(kfp_server: FakeKfp) -> None:
    values = params.RunParameters(epochs=3, gpu_count=0, keep_volume=True, data_source="synthetic:512:128")
    run(kfp_server, params=values)

    (create,) = kfp_server.calls("POST", "/apis/v2beta1/runs")
    sent = create.body["runtime_config"]["parameters"]
    assert (sent["epochs"], sent["gpu_count"], sent["keep_volume"], sent["data_source"]) == (
        3,
        "0",  # a string: KFP's driver reads a parameterized accelerator count only as one
        True,
        "synthetic:512:128",
    )


def test_a_failed_run_names_the_failed_task_and_the_reason_from_its_error(kfp_server: FakeKfp) -> None:
    kfp_server.script = [
        RunStep("RUNNING", {"create-volume": "SUCCEEDED", "prepare-data": "SUCCEEDED", "train-resnet": "RUNNING"}),
        RunStep(
            "FAILED",
            {"create-volume": "SUCCEEDED", "prepare-data": "SUCCEEDED", "train-resnet": "FAILED"},
            errors={"train-resnet": "ImagePullBackOff: image sharedvol:0.1.0 not found"},
        ),
    ]
    with pytest.raises(errors.RunFailedError) as e:
        run(kfp_server)
    assert "task train-resnet failed: ImagePullBackOff: image sharedvol:0.1.0 not found" in str(e.value)
    assert "/#/runs/details/run-" in e.value.hint


def test_a_failed_task_without_an_error_message_is_explained_by_the_last_error_in_its_log(kfp_server: FakeKfp) -> None:
    kfp_server.script = [RunStep("FAILED", {"prepare-data": "FAILED"})]
    kfp_server.pod_logs["pod-prepare-data"] = (
        "Traceback (most recent call last):\n  File x\n"
        "steps.errors.DatasetError: /mnt/shared/data/cifar10: MD5 mismatch in data_batch_3\n"
    )
    with pytest.raises(errors.RunFailedError) as e:
        run(kfp_server)
    assert str(e.value).endswith(
        "task prepare-data failed: steps.errors.DatasetError: /mnt/shared/data/cifar10: MD5 mismatch in data_batch_3: "
        + e.value.hint
    )


def test_a_wrong_token_is_one_clear_401_error(kfp_server: FakeKfp) -> None:
    with pytest.raises(errors.KfpAuthError) as e:
        run(kfp_server, token="stale")
    assert "401 Unauthorized" in str(e.value) and "--token" in e.value.hint
    assert kfp_server.calls("POST", r"/apis/v2beta1/.*") == []


def test_a_token_without_access_to_the_namespace_is_one_clear_403_error(kfp_server: FakeKfp) -> None:
    with pytest.raises(errors.KfpAuthError) as e:
        run(kfp_server, token=FORBIDDEN_TOKEN, namespace="team-a")
    assert "403 Forbidden (user 'someone' is not allowed to access namespace 'team-a')" in str(e.value)
    assert "'team-a'" in e.value.hint


def test_an_unreachable_host_fails_at_once_without_retrying() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = FakeClock()
    api = kfp_api.ApiSettings(host=f"http://127.0.0.1:{port}", token=GOOD_TOKEN)
    with pytest.raises(errors.KfpUnreachableError) as e:
        submit.submit(submit.SubmitSettings(api=api), sleep=clock.sleep, clock=clock)
    assert f"cannot reach the KFP API at http://127.0.0.1:{port}" in str(e.value)
    assert "port-forward" in e.value.hint
    assert clock.sleeps == []


def test_a_refused_token_costs_one_health_check_not_kfp_clients_five(kfp_server: FakeKfp) -> None:
    clock = FakeClock()
    with pytest.raises(errors.KfpAuthError):
        submit.submit(settings(kfp_server, token="stale"), sleep=clock.sleep, clock=clock)

    assert len(kfp_server.calls("GET", "/apis/v2beta1/healthz")) == 1
    assert clock.sleeps == []


def test_a_host_that_never_answers_fails_after_the_request_timeout_with_one_connection() -> None:
    connections: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(5)

        def accept() -> None:
            while True:
                try:
                    connections.append(listener.accept()[0])  # and never answer
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        api = kfp_api.ApiSettings(host=f"http://127.0.0.1:{listener.getsockname()[1]}", request_timeout_s=0.3)
        with pytest.raises(errors.KfpUnreachableError) as e:
            submit.submit(submit.SubmitSettings(api=api), sleep=FakeClock().sleep)
    assert "did not answer within 0.3 s" in str(e.value)
    assert len(connections) == 1
    for c in connections:
        c.close()


def test_a_server_error_on_create_run_is_not_retried(kfp_server: FakeKfp) -> None:
    kfp_server.create_run_failures = 1
    with pytest.raises(errors.KfpApiError) as e:
        run(kfp_server)

    assert "POST /runs failed: HTTP 503 (upstream connect error)" in str(e.value)
    assert len(kfp_server.calls("POST", "/apis/v2beta1/runs")) == 1


def test_server_errors_while_following_are_retried_along_the_backoff(kfp_server: FakeKfp) -> None:
    kfp_server.get_run_failures = 2
    clock = FakeClock()
    result = submit.submit(settings(kfp_server), sleep=clock.sleep, clock=clock)

    assert result.state == "SUCCEEDED"
    assert clock.sleeps[:2] == [1.0, 2.0]
    assert len(kfp_server.calls("GET", "/apis/v2beta1/runs/.*")) >= 3


def test_a_run_that_stays_unreachable_while_following_fails_naming_the_run_that_goes_on(kfp_server: FakeKfp) -> None:
    kfp_server.get_run_failures = 100
    clock = FakeClock()
    with pytest.raises(errors.KfpApiError) as e:
        submit.submit(settings(kfp_server), sleep=clock.sleep, clock=clock)

    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert "HTTP 503" in str(e.value) and "goes on: " in e.value.hint


def test_following_stops_at_the_deadline_with_the_run_still_running(kfp_server: FakeKfp) -> None:
    kfp_server.script = [RunStep("RUNNING", {"train-resnet": "RUNNING"})]
    poll = submit.PollSettings(initial_s=2.0, factor=2.0, max_s=10.0, timeout_s=60.0)
    clock = FakeClock()
    with pytest.raises(errors.RunTimeoutError) as e:
        submit.submit(settings(kfp_server, poll=poll), sleep=clock.sleep, clock=clock)
    assert "is still RUNNING after 60 s" in str(e.value)
    assert clock.sleeps[:4] == [2.0, 4.0, 8.0, 10.0]
    assert clock.now == 60.0


def test_without_wait_submit_returns_once_the_run_is_created(kfp_server: FakeKfp) -> None:
    result = run(kfp_server, wait=False)

    assert result.state == "PENDING"
    assert kfp_server.calls("GET", r"/apis/v2beta1/runs/.*") == []


def test_the_metrics_are_the_produce_metrics_artifact_in_mlmd_not_the_pod_log_nor_the_training_metrics(
    kfp_server: FakeKfp,
) -> None:
    kfp_server.run_artifacts = [
        ("train_metrics", "system.Metrics", {"accuracy-top1": 0.5}),
        ("metrics", "system.Metrics", {"accuracy-top1": 0.75, "test-samples": 128.0}),
    ]
    result = run(kfp_server)

    assert (result.metrics, result.metrics_source) == ({"accuracy-top1": 0.75, "test-samples": 128.0}, "ML Metadata")
    assert kfp_server.calls("GET", "/k8s/pod/logs") == []
    mlmd_calls = kfp_server.calls("POST", "/ml_metadata.*")
    # the path the KFP UI's own browser code calls, which its server forwards to ML Metadata's gRPC-web proxy
    assert [c.path for c in mlmd_calls] == [
        "/ml_metadata.MetadataStoreService/GetContextByTypeAndName",
        "/ml_metadata.MetadataStoreService/GetArtifactsByContext",
    ]
    assert all(c.headers.get("Authorization") == f"Bearer {GOOD_TOKEN}" for c in mlmd_calls)


def test_when_mlmd_holds_no_metrics_artifact_the_pod_log_is_read_and_the_reason_shown(kfp_server: FakeKfp) -> None:
    kfp_server.run_artifacts = [("train_metrics", "system.Metrics", {"accuracy-top1": 0.5})]
    lines: list[str] = []
    clock = FakeClock()
    result = submit.submit(settings(kfp_server), progress=lines.append, sleep=clock.sleep, clock=clock)

    assert (result.metrics, result.metrics_source) == (METRICS, "pod log")
    assert lines[-1] == (
        "metrics read from the produce-metrics pod's log "
        f"(ML Metadata holds no 'metrics' artifact with values for run {result.run_id})"
    )


def test_when_neither_mlmd_nor_the_pod_log_is_served_the_metrics_point_to_the_ui(kfp_server: FakeKfp) -> None:
    kfp_server.serve_pod_logs = False
    kfp_server.serve_mlmd = False
    result = run(kfp_server)

    assert result.state == "SUCCEEDED" and result.metrics == {} and result.metrics_source == ""
    assert result.metrics_note.startswith("ML Metadata is not served at ")
    assert result.metrics_note.endswith(f"open {result.run_url} (Visualizations) or compare runs in the KFP UI")


def test_the_metrics_line_is_parsed_from_a_pod_log() -> None:
    text = 'x\nsharedvol-metrics {"accuracy-top1": 0.5}\n[main] sharedvol-metrics {"accuracy-top1": 0.75, "n": "x"}\n'
    assert follow.parse_metrics_line(text) == {"accuracy-top1": 0.75}
    assert follow.parse_metrics_line("sharedvol-metrics {broken") == {}


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(submit, "PollSettings", lambda timeout_s: NO_WAIT)
    yield


def test_the_submit_command_prints_the_run_url_and_the_metrics(
    kfp_server: FakeKfp, fast_polls: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN, "--wait", "--epochs", "3"])

    out = capsys.readouterr().out
    assert code == 0
    run_id = next(iter(kfp_server.runs))
    assert f"run: {kfp_server.url}/#/runs/details/{run_id}" in out
    assert "  accuracy-top1       91.20 %" in out
    assert kfp_server.runs[run_id]["runtime_config"]["parameters"]["epochs"] == 3


def test_runs_with_other_parameter_values_reuse_the_uploaded_version(
    kfp_server: FakeKfp, fast_polls: None, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN, "--wait"]
    assert cli.main([*base, "--epochs", "3"]) == 0
    assert cli.main([*base, "--epochs", "5", "--gpus", "0"]) == 0

    assert len(kfp_server.calls("POST", "/apis/v2beta1/pipelines/upload_version")) == 1
    assert [r["runtime_config"]["parameters"]["epochs"] for r in kfp_server.runs.values()] == [3, 5]
    assert "is already uploaded: reusing it" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--token", "stale"], "401 Unauthorized"),
        (["--token", FORBIDDEN_TOKEN], "403 Forbidden"),
    ],
)
def test_the_submit_command_reports_a_refused_token_in_one_line_and_writes_nothing(
    kfp_server: FakeKfp, fast_polls: None, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code = cli.main(["submit", "--host", kfp_server.url, "--wait", *argv])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sharedvol submit: error: ") and expected in err
    assert [(r.method, r.path) for r in kfp_server.requests] == [("GET", "/apis/v2beta1/healthz")]
    assert kfp_server.pipelines == {} and kfp_server.runs == {}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--gpus", "-1"], "--gpus must be at least 0, got -1"),
        (["--volume-size", "0"], "volume_size '0' is not positive"),
        (["--storage", "NFS_Fast"], "--storage 'NFS_Fast' is not a storage choice"),
        (["--image", ""], "--image is empty"),
    ],
)
def test_the_submit_command_reports_bad_input_in_one_line_before_sending_anything(
    kfp_server: FakeKfp, fast_polls: None, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code = cli.main(["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN, "--wait", *argv])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sharedvol submit: error: ") and expected in err
    assert kfp_server.requests == []


@pytest.mark.parametrize("value", ["0", "nan", "inf"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_one_line_before_sending_anything(
    kfp_server: FakeKfp, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code = cli.main(["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN, "--wait", "--timeout", value])

    err = capsys.readouterr().err
    assert code == 2  # nan was taken: its deadline never came, and the run was polled without a pause, for ever
    assert err == f"sharedvol submit: error: --timeout must be a positive number of seconds, got {value}: e.g. 21600\n"
    assert kfp_server.requests == []


def test_task_states_and_errors_from_kfp_reach_the_terminal_escaped_and_bounded(
    kfp_server: FakeKfp, fast_polls: None, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = "\x1b]0;pwned\x07\x1b[2J"  # a title change and a cleared screen, were they printed as they are
    kfp_server.script = [
        RunStep("FAILED", {"train-resnet": "FAILED", "test-resnet": hostile}, {"train-resnet": "x" * 2**20})
    ]

    code = cli.main(["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN, "--wait"])

    captured = capsys.readouterr()
    assert code == 2
    assert "\x1b" not in captured.out + captured.err and "\\x1b]0;pwned\\x07" in captured.out
    assert captured.err.count("\n") == 1 and len(captured.err) < 2000  # a 1 MiB error was repeated whole


def test_the_submit_command_exits_non_zero_naming_the_failed_task(
    kfp_server: FakeKfp, fast_polls: None, capsys: pytest.CaptureFixture[str]
) -> None:
    kfp_server.script = [RunStep("FAILED", {"test-resnet": "FAILED"}, errors={"test-resnet": "OOMKilled"})]
    code = cli.main(["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN, "--wait"])

    captured = capsys.readouterr()
    assert code == 2
    assert "task test-resnet failed: OOMKilled" in captured.err
    assert "  test-resnet: FAILED" in captured.out


def test_the_submit_command_without_token_sends_the_mounted_service_account_token(
    kfp_server: FakeKfp, fast_polls: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text(f"{GOOD_TOKEN}\n")
    monkeypatch.setenv(kfp_api.TOKEN_PATH_ENV, str(token))

    assert cli.main(["submit", "--host", kfp_server.url, "--wait"]) == 0
    assert kfp_server.runs
    assert all(r.headers.get("Authorization") == f"Bearer {GOOD_TOKEN}" for r in kfp_server.requests)


def test_the_in_cluster_token_file_is_read_when_no_token_is_given(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("sa-token\n")

    assert kfp_api.read_token_file(paths=(str(tmp_path / "missing"),), env={}) is None
    assert kfp_api.read_token_file(paths=(str(token),), env={}) == "sa-token"
    assert kfp_api.read_token_file(paths=(), env={kfp_api.TOKEN_PATH_ENV: str(token)}) == "sa-token"


def test_a_hostile_metrics_line_in_a_pod_log_gives_no_metrics_and_no_traceback() -> None:
    deep = "sharedvol-metrics " + "[" * 200_000 + "]" * 200_000
    assert follow.parse_metrics_line(deep) == {}
    assert follow.parse_metrics_line('sharedvol-metrics {"a": NaN, "b": 1e999}') == {}
    huge = 'sharedvol-metrics {"a": ' + "9" * 400 + ', "b": true, "c": 0.5}'
    assert follow.parse_metrics_line(huge) == {"c": 0.5}


def test_submit_with_workspace_uploads_kfps_workspace_sized_by_volume_size_and_makes_no_claim_task(
    kfp_server: FakeKfp, fast_polls: None
) -> None:
    argv = ["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN, "--wait", "--workspace"]
    code = cli.main([*argv, "--storage", "sharedvol-hostpath", "--volume-size", "3Gi"])

    assert code == 0
    [version_id] = kfp_server.specs
    workspace = kfp_server.platform_specs[version_id]["platforms"]["kubernetes"]["pipelineConfig"]["workspace"]
    assert workspace["size"] == "3Gi"
    assert workspace["kubernetes"]["pvcSpecPatch"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "sharedvol-hostpath",
    }
    tasks = kfp_server.specs[version_id]["root"]["dag"]["tasks"]
    assert "create-volume" not in tasks and "delete-volume" not in str(tasks)


def test_two_submits_at_once_share_the_pipeline_its_version_and_the_experiment(kfp_server: FakeKfp) -> None:
    raced: list[str] = []
    creates = ("/apis/v2beta1/pipelines", "/apis/v2beta1/pipelines/upload_version", "/apis/v2beta1/experiments")

    def another_submit_first(method: str, path: str, query: Any, headers: Any, body: Any) -> None:
        # the other submit found nothing either, and its identical create arrives just before this one's
        if method == "POST" and path in creates and path not in raced:
            raced.append(path)
            kfp_server._route(method, path, query, headers, body)

    kfp_server.before = another_submit_first
    lines: list[str] = []
    clock = FakeClock()
    result = submit.submit(settings(kfp_server), progress=lines.append, sleep=clock.sleep, clock=clock)

    assert result.state == "SUCCEEDED"
    assert sorted(raced) == sorted(creates)
    assert len(kfp_server.pipelines) == 1 and len(kfp_server.experiments) == 1
    assert [len(v) for v in kfp_server.versions.values()] == [1]
    assert any("was created meanwhile: using it" in line for line in lines)
    assert any("was uploaded meanwhile: using it" in line for line in lines)


def test_a_run_answer_whose_time_is_not_a_time_is_called_not_a_kfp_answer_and_not_unreachable(
    kfp_server: FakeKfp, fast_polls: None, capsys: pytest.CaptureFixture[str]
) -> None:
    kfp_server.script = [RunStep("RUNNING", created_at="yesterday-ish")]

    code = cli.main(["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN, "--wait"])

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "with something that is not a KFP answer" in err and "yesterday-ish" in err
    assert "cannot reach" not in err


@pytest.mark.parametrize("body", ["hello", [1, 2], 123, {"state": 7}, {"run_id": "another", "state": "RUNNING"}])
def test_a_run_answer_that_is_not_the_run_is_one_line_not_a_run_still_pending(
    kfp_server: FakeKfp, fast_polls: None, capsys: pytest.CaptureFixture[str], body: object
) -> None:
    kfp_server.script = [RunStep("RUNNING", body=body)]

    code = cli.main(["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN, "--wait", "--timeout", "60"])

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "with something that is not that run" in err


def test_a_run_answer_of_json_null_is_not_a_run() -> None:
    status = follow.RunStatus(run_id="r1", run_url="u")
    with pytest.raises(errors.KfpApiError, match="with something that is not that run"):
        follow.run_answer(None, status)  # what kfp_server_api makes of a body of null: .to_dict() was a traceback


def test_a_created_run_without_a_run_id_is_one_line_not_a_url_ending_in_none(
    kfp_server: FakeKfp, capsys: pytest.CaptureFixture[str]
) -> None:
    kfp_server.create_run_answer = {"display_name": "x", "state": "PENDING"}

    code = cli.main(["submit", "--host", kfp_server.url, "--token", GOOD_TOKEN])

    captured = capsys.readouterr()
    assert code == 2 and "the KFP API answered POST /runs without a run id (None)" in captured.err
    assert "None" not in captured.out


@pytest.mark.parametrize("token", ["abc\ndef", "tökén", "a b"])
def test_a_token_that_cannot_be_a_bearer_token_is_one_line_before_anything_is_sent(
    kfp_server: FakeKfp, capsys: pytest.CaptureFixture[str], token: str
) -> None:
    code = cli.main(["submit", "--host", kfp_server.url, "--token", token])

    assert code == 2 and "--token is not a bearer token" in capsys.readouterr().err
    assert kfp_server.requests == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "binary", "directory"])
def test_a_token_file_that_is_not_a_token_is_one_line_without_waiting(
    kfp_server: FakeKfp, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = tmp_path / "token"
    if kind == "fifo":
        os.mkfifo(path)  # opened to be read, it would wait for a writer for ever
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe")
    else:
        path.mkdir()
    monkeypatch.setenv(kfp_api.TOKEN_PATH_ENV, str(path))

    code = cli.main(["submit", "--host", kfp_server.url])

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"token file {path}" in err, err


def test_metrics_from_a_server_are_finite_few_and_printable() -> None:
    hostile = {"accuracy-top1": 0.9, "nan": float("nan"), "inf": float("inf"), "\x1b[2Jevil\nline": 1.0}
    hostile |= {f"k{i}": float(i) for i in range(100)} | {"x" * 10**6: 2.0}

    values = follow.metric_values(hostile.items())

    assert len(values) == 48 and "nan" not in values and "inf" not in values  # of the first 50, the finite ones
    assert "\\x1b[2Jevil\\nline" in values and all(len(k) <= 64 for k in values)
    assert "\x1b" not in commands.format_metrics(values)


def test_huge_and_tiny_metrics_print_in_ten_columns() -> None:
    table = commands.format_metrics({"test-loss": 1e308, "test-samples": 10000.0, "eps": 1e-9})
    assert all(len(line) < 40 for line in table.splitlines()), table
