"""The MLMD server is ml-metadata's real store behind gRPC: what goes in through it is in the store's file,
the store's errors reach the client with their status codes, and a method the store lacks says so. Its gRPC-web
endpoint answers where envoy does in a KFP deployment: ``/ml_metadata.MetadataStoreService/<Method>``."""

from __future__ import annotations

import requests

from pipelines import mlmd as mlmd_web
from rig.kfp import backend as kb

NOT_FOUND, ALREADY_EXISTS, UNIMPLEMENTED = 5, 6, 12
SERVICE = "ml_metadata.MetadataStoreService"


def test_an_artifact_put_through_the_server_is_read_back_from_the_store_file_without_the_server(mlmd_server) -> None:
    mlmd, server = mlmd_server
    type_id = mlmd.call("PutArtifactType", {"artifactType": {"name": "system.Metrics"}})["typeId"]
    artifact = {"typeId": type_id, "uri": "minio://mlpipeline/m", "customProperties": {"top1": {"doubleValue": 0.25}}}
    [artifact_id] = mlmd.call("PutArtifacts", {"artifacts": [artifact]})["artifactIds"]
    kb.stop_pid(server.pid, server)

    [stored] = mlmd.call_store("GetArtifactsByID", {"artifactIds": [artifact_id]})["artifacts"]

    assert stored["uri"] == "minio://mlpipeline/m"
    assert stored["type"] == "system.Metrics"
    assert stored["customProperties"] == {"top1": {"doubleValue": 0.25}}


def test_the_stores_errors_reach_the_client_with_their_grpc_status_codes(mlmd_server) -> None:
    mlmd, _ = mlmd_server
    mlmd.call("PutContextType", {"contextType": {"name": "system.PipelineRun"}})
    type_id = mlmd.call("GetContextType", {"typeName": "system.PipelineRun"})["contextType"]["id"]
    mlmd.call("PutContexts", {"contexts": [{"typeId": type_id, "name": "run-1"}]})

    missing = mlmd.call("GetArtifactType", {"typeName": "no-such-type"})
    duplicate = mlmd.call("PutContexts", {"contexts": [{"typeId": type_id, "name": "run-1"}]})

    assert missing["error"] == NOT_FOUND and "no-such-type" in missing["message"]
    assert duplicate["error"] == ALREADY_EXISTS


def test_a_service_method_the_store_library_lacks_answers_unimplemented_and_names_itself(mlmd_server) -> None:
    mlmd, _ = mlmd_server

    answer = mlmd.call("GetLineageGraph", {})

    assert answer["error"] == UNIMPLEMENTED
    assert "GetLineageGraph" in answer["message"]


def test_grpc_web_at_the_path_the_kfp_ui_forwards_reads_a_runs_metrics_with_sharedvols_client(mlmd_server) -> None:
    mlmd, _ = mlmd_server
    context_type = mlmd.call("PutContextType", {"contextType": {"name": "system.PipelineRun"}})["typeId"]
    [context] = mlmd.call("PutContexts", {"contexts": [{"typeId": context_type, "name": "run-1"}]})["contextIds"]
    metrics_type = mlmd.call("PutArtifactType", {"artifactType": {"name": "system.Metrics"}})["typeId"]
    props = {"display_name": {"stringValue": "metrics"}, "accuracy-top1": {"doubleValue": 0.5}}
    [artifact] = mlmd.call("PutArtifacts", {"artifacts": [{"typeId": metrics_type, "customProperties": props}]})[
        "artifactIds"
    ]
    mlmd.call("PutAttributionsAndAssociations", {"attributions": [{"artifactId": artifact, "contextId": context}]})

    metrics = mlmd_web.run_metrics(f"http://127.0.0.1:{mlmd.web_port}", "run-1")

    assert metrics == {"accuracy-top1": 0.5}


def test_grpc_web_answers_only_at_the_services_path_and_only_grpc_web(mlmd_server) -> None:
    mlmd, _ = mlmd_server
    base = f"http://127.0.0.1:{mlmd.web_port}"
    frame = b"\0\0\0\0\0"  # an empty GetArtifactTypesRequest
    web = {"Content-Type": "application/grpc-web+proto"}

    good = requests.post(f"{base}/{SERVICE}/GetArtifactTypes", data=frame, headers=web, timeout=10)
    prefixed = requests.post(f"{base}/ml_metadata/{SERVICE}/GetArtifactTypes", data=frame, headers=web, timeout=10)
    plain = requests.post(f"{base}/{SERVICE}/GetArtifactTypes", json={}, timeout=10)

    assert (good.status_code, good.headers["Content-Type"]) == (200, "application/grpc-web+proto")
    assert good.content.endswith(b"grpc-status:0\r\ngrpc-message:\r\n")
    assert (prefixed.status_code, plain.status_code) == (404, 415)
