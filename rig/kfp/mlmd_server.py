"""ML Metadata over gRPC: a thin service forwarding every call to the real MLMD store.

KFP's v2 driver and launcher (and the KFP UI, through its gRPC-web proxy) talk to MLMD's
``ml_metadata.MetadataStoreService``. Its C++ server image cannot be had on these machines, but PyPI's
``ml-metadata`` wheel carries the real store (the same C++ library, SQLite backend) behind a pybind11
module whose functions take and return serialized protos. This server hands each request's bytes to
the function of the same name and returns its bytes: no message is parsed or rebuilt here, so the store's
own behaviour (types, lineage, queries, errors) is what clients see.

With ``--web-port`` it also answers gRPC-web (``application/grpc-web+proto``, what the KFP UI's browser code sends)
on 127.0.0.1 at ``/ml_metadata.MetadataStoreService/METHOD``, as a KFP deployment's ``metadata-envoy`` does with its
grpc_web filter (the UI server forwards the browser's calls there unchanged): the same store functions, the request
and the answer in gRPC-web frames, the status in a trailer frame.

Runs in the separate venv made by ``scripts/kfp/mlmd-venv.sh`` (ml-metadata needs protobuf<5)::

    $(scripts/kfp/mlmd-venv.sh)/bin/python rig/kfp/mlmd_server.py --db DIR/mlmd.sqlite --port 8080
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import logging
import signal
import struct
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from ml_metadata.metadata_store import metadata_store
from ml_metadata.metadata_store.pywrap.metadata_store_extension import metadata_store as store_ext
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

SERVICE = "ml_metadata.MetadataStoreService"
log = logging.getLogger("mlmd-server")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the store lives and where the service listens."""

    db: str
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 8
    web_port: int | None = None


class Forwarder:
    """Calls the store's C++ functions with serialized requests, one call at a time."""

    def __init__(self, db: str) -> None:
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = db
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        # MetadataStore opens the store and creates or upgrades its schema; its handle is what the C++
        # functions take.
        self._store = metadata_store.MetadataStore(config)
        self._lock = threading.Lock()  # one SQLite connection: serialize the calls

    def call(self, method: str, request: bytes) -> tuple[bytes, int, str]:
        """``method`` of the store on the serialized ``request``: (answer, absl status code, message)."""
        function: Callable[[Any, bytes], tuple[bytes, bytes, int]] | None = getattr(store_ext, method, None)
        if function is None:
            return b"", grpc.StatusCode.UNIMPLEMENTED.value[0], f"{method} is not offered by ml-metadata's store"
        with self._lock:
            response, message, code = function(self._store._metadata_store, request)
        return bytes(response), code, message.decode("utf-8", "replace")

    def handler(self, method: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        """The unary handler that forwards ``method`` (UNIMPLEMENTED where the store lacks it)."""

        def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
            response, code, message = self.call(method, request)
            if code != 0:
                context.abort(_status(code), message)
            return response

        return forward

    def web_server(self, host: str, port: int) -> http.server.ThreadingHTTPServer:
        """A gRPC-web endpoint over the same store (what envoy serves for ML Metadata in a KFP deployment)."""
        forwarder = self
        prefix = f"/{SERVICE}/"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = self.headers.get("Content-Type", "")
                if not self.path.startswith(prefix):
                    self.send_error(404, f"not a {SERVICE} method")
                    return
                if not kind.startswith("application/grpc-web"):
                    self.send_error(415, "gRPC-web only (application/grpc-web+proto)")
                    return
                if len(body) < 5 or body[0] != 0:
                    self.send_error(400, "not one uncompressed gRPC-web data frame")
                    return
                size = struct.unpack(">I", body[1:5])[0]
                response, code, message = forwarder.call(self.path[len(prefix) :], body[5 : 5 + size])
                trailer = f"grpc-status:{code}\r\ngrpc-message:{message}\r\n".encode()
                data = b"" if code else b"\0" + struct.pack(">I", len(response)) + response
                out = data + b"\x80" + struct.pack(">I", len(trailer)) + trailer
                self.send_response(200)
                self.send_header("Content-Type", "application/grpc-web+proto")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.info("grpc-web %s", fmt % args)

        return http.server.ThreadingHTTPServer((host, port), Handler)


def _status(code: int) -> grpc.StatusCode:
    """The gRPC status for an absl status code (the two share their numbering)."""
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN


def methods() -> list[str]:
    """Every method of MLMD's gRPC service, as its service definition names them."""
    service = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]
    return [m.name for m in service.methods]


def serve(settings: Settings) -> grpc.Server:
    """Start the server (bytes in, bytes out: no (de)serializers) and return it once it listens."""
    forwarder = Forwarder(settings.db)
    if settings.web_port is not None:
        web = forwarder.web_server("127.0.0.1", settings.web_port)  # its one client: the UI server on this machine
        threading.Thread(target=web.serve_forever, name="grpc-web", daemon=True).start()
        log.info("gRPC-web on 127.0.0.1:%d/%s/", settings.web_port, SERVICE)
    handlers: dict[str, Any] = {m: grpc.unary_unary_rpc_method_handler(forwarder.handler(m)) for m in methods()}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=settings.workers))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    address = f"{settings.host}:{settings.port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    missing = [m for m in methods() if not hasattr(store_ext, m)]
    log.info(
        "MLMD store %s served on %s (%d methods; not in the store: %s)", settings.db, address, len(handlers), missing
    )
    return server


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the SQLite file of the store (created if missing)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--web-port", type=int, help=f"also answer gRPC-web on 127.0.0.1 there, at /{SERVICE}/METHOD")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = serve(Settings(db=args.db, host=args.host, port=args.port, web_port=args.web_port))
    except OSError as e:
        print(f"mlmd-server: error: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"mlmd-server: listening on {args.host}:{args.port}", flush=True)
    stop.wait()
    server.stop(grace=2).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
