"""A fault-injecting HTTP proxy between the Kubernetes client and the real API server, for tests.

It accepts plain HTTP on loopback and forwards each request to the API server with the credentials of an
``ApiClient`` (its own connection pool, so its CA and client certificate, plus its token). It records every
request, and answers the first watch requests of a chosen resource with 410 Gone, as an API server does when the
watched resourceVersion is too old: an HTTP 410, or a 200 stream that holds one ERROR event with code 410.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "authorization"}
HOP_HEADERS |= {"proxy-authorization", "proxy-connection", "content-length"}
EXPIRED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "reason": "Expired",
    "code": 410,
    "message": "too old resource version",
}
HOW = ("status", "event")  # an HTTP 410, or a 200 stream holding one ERROR event with code 410


@dataclass(frozen=True)
class Seen:
    """One request the proxy answered.

    Attributes:
        method: the HTTP method.
        resource: the resource of the path (``persistentvolumeclaims``), "" for other paths.
        name: the object's name in the path, "" for a collection.
        verb: ``watch``, ``list``, ``get`` (GETs) or the method in lower case; ``watch 410`` when it was failed.
    """

    method: str
    resource: str
    name: str
    verb: str


def parse(method: str, target: str, failed: bool = False) -> Seen:
    """What request ``method target`` (a path with its query) is."""
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    parts = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else []
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    resource, name = [*parts, "", ""][:2]
    verb = method.lower()
    if method == "GET":
        watching = parse_qs(url.query).get("watch", [""])[0].lower() in ("true", "1")
        verb = "watch" if watching else ("get" if name else "list")
    return Seen(method, resource, name, verb + (" 410" if failed else ""))


class FaultProxy:
    """The proxy: ``with FaultProxy(api) as proxy: proxy.fail_watches("pods"); proxy.client()...``."""

    def __init__(self, upstream: Any) -> None:
        self.upstream = upstream
        self.seen: list[Seen] = []
        self._faults: list[tuple[str, str]] = []
        self._open: set[Any] = set()  # upstream responses being streamed
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)

    @property
    def url(self) -> str:
        """Where the proxy listens (plain HTTP on loopback)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._cond:  # end the watches still streaming: their handlers return at once
            for resp in self._open:
                with contextlib.suppress(OSError, AttributeError):
                    resp.connection.sock.shutdown(socket.SHUT_RDWR)

    def client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` that talks to the API server through the proxy."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        return client.ApiClient(cfg)

    def fail_watches(self, resource: str, how: str = "status", times: int = 1) -> None:
        """Answer the next ``times`` watch requests of ``resource`` with 410 Gone, the way ``how`` (:data:`HOW`)."""
        assert how in HOW, how
        with self._cond:
            self._faults += [(resource, how)] * times

    def verbs(self, resource: str) -> list[str]:
        """The verbs of the requests for ``resource`` so far, in order (``list``, ``watch 410``, ``watch``...)."""
        with self._cond:
            return [s.verb for s in self.seen if s.resource == resource]

    def wait_for_run(
        self, resource: str, run: list[str], *, timeout: float, give_up: Callable[[], bool] = lambda: False
    ) -> bool:
        """Wait until the verbs of ``resource`` hold ``run`` in a row; False after ``timeout`` s or ``give_up()``."""
        with self._cond:
            self._cond.wait_for(lambda: self._has_run(resource, run) or give_up(), timeout)
            return self._has_run(resource, run)

    def _has_run(self, resource: str, run: list[str]) -> bool:
        verbs = [s.verb for s in self.seen if s.resource == resource]
        return any(verbs[i : i + len(run)] == run for i in range(len(verbs)))

    def wake(self) -> None:
        """Let :meth:`wait_for_run` look at ``give_up`` again (call it when the code under test returned)."""
        with self._cond:
            self._cond.notify_all()

    def _record(self, method: str, target: str) -> str:
        """Record the request; the way to fail it (:data:`HOW`), or "" to forward it."""
        seen = parse(method, target)
        with self._cond:
            how = ""
            for i, (resource, way) in enumerate(self._faults):
                if seen.verb == "watch" and seen.resource == resource:
                    how = way
                    del self._faults[i]
                    seen = parse(method, target, failed=True)
                    break
            self.seen.append(seen)
            self._cond.notify_all()
        return how


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked responses, so a watch's events arrive one by one

    def do_GET(self) -> None:
        self._forward()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        how = proxy._record(self.command, self.path)
        if how:
            self._expired(how)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        cfg = proxy.upstream.configuration
        auth = cfg.get_api_key_with_prefix("authorization")
        if auth:
            headers["Authorization"] = auth
        try:
            resp = proxy.upstream.rest_client.pool_manager.request(
                self.command,
                cfg.host.rstrip("/") + self.path,
                body=body,
                headers=headers,
                preload_content=False,
                redirect=False,
                retries=False,
                timeout=urllib3.Timeout(connect=10, read=None),
            )
        except urllib3.exceptions.HTTPError as e:
            self.send_error(502, f"upstream: {e}")
            return
        chunked = resp.headers.get("Transfer-Encoding", "").lower() == "chunked"
        with proxy._cond:
            proxy._open.add(resp)
        try:
            self.send_response(resp.status)
            for k, v in resp.headers.items():
                if k.lower() not in HOP_HEADERS - {"content-length", "transfer-encoding"}:
                    self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            # A watch is a chunked stream: pass each chunk on as it comes (the client reads events from chunks).
            for chunk in filter(None, resp.stream(65536, decode_content=False)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (OSError, urllib3.exceptions.HTTPError):
            self.close_connection = True  # the client stopped reading (a watch it stopped), or the proxy stops
        finally:
            with proxy._cond:
                proxy._open.discard(resp)
            resp.close()  # a watch stream may be unfinished: never hand its connection to another request
            resp.release_conn()

    def _expired(self, how: str) -> None:
        if how == "status":
            body = json.dumps(EXPIRED).encode()
            self.send_response(410)
            self.send_header("Content-Length", str(len(body)))
        else:
            body = json.dumps({"type": "ERROR", "object": EXPIRED}).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
