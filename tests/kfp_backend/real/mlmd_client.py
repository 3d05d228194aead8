"""Call one ML Metadata method, JSON in and JSON out: over gRPC (``--port``) or on a store file directly (``--db``).

The tests' window on MLMD. It runs in the ML Metadata venv (``scripts/kfp/mlmd-venv.sh``), since the project's
venv has neither grpcio nor a protobuf that ml-metadata accepts::

    python tests/kfp_backend/real/mlmd_client.py --port 8080 GetArtifactsByType '{"typeName": "system.Metrics"}'

Prints the response as JSON (proto3 JSON names), or ``{"error": CODE, "message": ...}`` and exits 3 when the
store refuses the call.
"""

from __future__ import annotations

import argparse
import json
import sys

from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

SERVICE = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]


def _messages(method: str) -> tuple[type, type]:
    desc = SERVICE.methods_by_name[method]
    module = metadata_store_service_pb2
    return getattr(module, desc.input_type.name), getattr(module, desc.output_type.name)


def call_grpc(host: str, port: int, method: str, request: object, response_type: type) -> object:
    """One unary call to ``ml_metadata.MetadataStoreService/<method>``."""
    import grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = channel.unary_unary(
            f"/ml_metadata.MetadataStoreService/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString,  # type: ignore[attr-defined]
        )
        return stub(request, timeout=30)


def call_store(db: str, method: str, request: object, response_type: type) -> object:
    """The same call on the store's C++ library, without any server."""
    from ml_metadata import errors
    from ml_metadata.metadata_store import metadata_store

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = db
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    response = response_type()
    try:
        store._call(method, request, response)
    except errors.StatusError as e:
        raise CallError(e.error_code, str(e)) from e
    return response


class CallError(Exception):
    """The store refused the call."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    """Parse, call, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--db")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("method")
    parser.add_argument("request", nargs="?", default="{}")
    args = parser.parse_args(argv)
    request_type, response_type = _messages(args.method)
    request = json_format.Parse(args.request, request_type())
    try:
        if args.port:
            response = call_grpc(args.host, args.port, args.method, request, response_type)
        else:
            response = call_store(args.db, args.method, request, response_type)
    except CallError as e:
        print(json.dumps({"error": e.code, "message": str(e)}))
        return 3
    except Exception as e:  # grpc.RpcError, imported lazily
        code = getattr(e, "code", None)
        if code is None:
            raise
        print(json.dumps({"error": code().value[0], "message": e.details()}))  # type: ignore[attr-defined]
        return 3
    print(json_format.MessageToJson(response, indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
