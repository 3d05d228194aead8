"""The fake KFP server (tests/kfp_fake.py) is strict: a fake that accepts anything would prove nothing."""

from __future__ import annotations

from collections.abc import Iterator

import kfp_server_api
import pytest
import requests

from tests.kfp_fake import API, GOOD_TOKEN, FakeKfp, model_errors, running


@pytest.fixture
def fake_kfp() -> Iterator[FakeKfp]:
    with running() as server:
        yield server


def test_the_fake_refuses_a_field_the_kfp_models_do_not_have(fake_kfp: FakeKfp) -> None:
    r = requests.post(
        f"{fake_kfp.url}{API}/experiments",
        json={"display_name": "x", "name_typo": "y"},
        headers={"Authorization": f"Bearer {GOOD_TOKEN}"},
        timeout=5,
    )
    assert r.status_code == 400
    assert "name_typo: no such field in V2beta1Experiment" in r.json()["message"]


def test_the_model_check_catches_bad_enum_values_and_wrong_types() -> None:
    assert model_errors({"state": "BOGUS"}, "V2beta1Run") == [
        f"$.state: 'BOGUS' is not one of {kfp_server_api.V2beta1RuntimeState.allowable_values}"
    ]
    assert model_errors({"runtime_config": {"parameters": {"a": 1}}}, "V2beta1Run") == []
    assert model_errors({"pipeline_version_reference": {"pipeline_id": 3}}, "V2beta1Run") == [
        "$.pipeline_version_reference.pipeline_id: expected a string, got 3"
    ]


def test_the_fake_refuses_a_query_parameter_the_kfp_client_does_not_send(fake_kfp: FakeKfp) -> None:
    r = requests.get(
        f"{fake_kfp.url}{API}/experiments",
        params={"display_name": "x"},
        headers={"Authorization": f"Bearer {GOOD_TOKEN}"},
        timeout=5,
    )
    assert r.status_code == 400
    assert "unknown query parameter(s) ['display_name']" in r.json()["message"]


def test_the_fake_answers_401_without_the_token(fake_kfp: FakeKfp) -> None:
    r = requests.get(f"{fake_kfp.url}{API}/healthz", timeout=5)
    assert r.status_code == 401


def test_the_model_check_reads_json_as_the_grpc_gateway_does() -> None:
    # kfp.Client sends filter predicates with lowerCamelCase names and the operation's number
    sent = {"predicates": [{"operation": 1, "key": "display_name", "stringValue": "x"}]}
    assert model_errors(sent, "V2beta1Filter") == []
    assert model_errors({"predicates": [{"operation": 4}]}, "V2beta1Filter") == [
        f"$.predicates[0].operation: 4 is not one of {kfp_server_api.V2beta1PredicateOperation.allowable_values}"
    ]


def test_the_fake_refuses_an_mlmd_call_that_is_not_grpc_web(fake_kfp: FakeKfp) -> None:
    r = requests.post(
        f"{fake_kfp.url}/ml_metadata.MetadataStoreService/GetArtifactsByContext",
        json={"context_id": 1},
        headers={"Authorization": f"Bearer {GOOD_TOKEN}"},
        timeout=5,
    )
    assert r.status_code == 415
