"""The MLMD server is ml-metadata's real store behind gRPC: what goes in through it is in the store's file,
the store's errors reach the client with their status codes, and a method the store lacks says so."""

from __future__ import annotations

from tests.kfp_backend.real import backend as kb

NOT_FOUND, ALREADY_EXISTS, UNIMPLEMENTED = 5, 6, 12


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
