"""A local HTTP server speaking what ``kfp.Client`` (kfp 2.17) sends, as KFP's API server, UI server and MLMD do.

- The v2beta1 REST API: every request body is checked field by field against the ``kfp_server_api`` models
  installed beside kfp, read the way the real grpc-gateway reads JSON (field names in snake_case or lowerCamelCase,
  enums by name or number); unknown fields, wrong types and bad enum values are refused with 400. Every response is
  built from those models. Uploaded packages must be a compiled pipeline, and a run's parameters must be inputs of
  the uploaded pipeline with the declared types.
- The UI server's ``/k8s/pod/logs``.
- ML Metadata's gRPC-web calls ``GetContextByTypeAndName`` and ``GetArtifactsByContext`` under ``/ml_metadata``,
  encoded here by hand from the field numbers of ``ml_metadata/proto/metadata_store*.proto`` (so the fake does not
  share the product's message declarations).

What a run does is a script written in this file (task names included), not taken from the code under test.
"""

from __future__ import annotations

import contextlib
import datetime
import email.parser
import email.policy
import itertools
import json
import re
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kfp_server_api
import yaml
from requests.structures import CaseInsensitiveDict

API = "/apis/v2beta1"
GOOD_TOKEN = "good-token"
FORBIDDEN_TOKEN = "forbidden-token"
# The query parameters kfp_server_api 2.17.3 sends for each call (from its generated *_service_api.py).
QUERY_PARAMS = {
    ("GET", r"/pipelines/names/[^/]+"): {"namespace"},
    ("GET", r"/pipelines/[^/]+/versions"): {"page_token", "page_size", "sort_by", "filter"},
    ("POST", r"/pipelines/upload_version"): {"name", "display_name", "pipelineid", "description", "tags"},
    ("GET", r"/experiments"): {"page_token", "page_size", "sort_by", "filter", "namespace"},
    ("GET", r"/runs/[^/]+"): set(),
    ("POST", r"/runs"): set(),
    ("POST", r"/experiments"): set(),
    ("POST", r"/pipelines"): set(),
    ("GET", r"/healthz"): set(),
}
# filter.proto's Predicate.Operation numbers (kfp.Client sends the number, the UI the name).
PREDICATE_OPERATIONS = {0: "OPERATION_UNSPECIFIED", 1: "EQUALS", 2: "NOT_EQUALS", 3: "GREATER_THAN"}
PREDICATE_OPERATIONS |= {5: "GREATER_THAN_EQUALS", 6: "LESS_THAN", 7: "LESS_THAN_EQUALS", 8: "IN", 9: "IS_SUBSTRING"}
PARAM_TYPES = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


def model_errors(doc: Any, type_name: str, where: str = "$") -> list[str]:
    """What is wrong with ``doc`` as a JSON value of the kfp_server_api type ``type_name`` (empty: nothing)."""
    if type_name == "object":
        return []
    if type_name == "str":
        return [] if isinstance(doc, str) else [f"{where}: expected a string, got {doc!r}"]
    if type_name == "int":
        ok = (isinstance(doc, int) and not isinstance(doc, bool)) or (
            isinstance(doc, str) and doc.lstrip("-").isdigit()
        )
        return [] if ok else [f"{where}: expected an integer, got {doc!r}"]
    if type_name == "bool":
        return [] if isinstance(doc, bool) else [f"{where}: expected a boolean, got {doc!r}"]
    if type_name == "datetime":
        try:
            datetime.datetime.fromisoformat(str(doc).replace("Z", "+00:00"))
        except ValueError:
            return [f"{where}: expected a timestamp, got {doc!r}"]
        return []
    if m := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(doc, list):
            return [f"{where}: expected a list, got {doc!r}"]
        return [e for i, item in enumerate(doc) for e in model_errors(item, m.group(1), f"{where}[{i}]")]
    if m := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(doc, dict):
            return [f"{where}: expected an object, got {doc!r}"]
        return [e for k, v in doc.items() for e in model_errors(v, m.group(1), f"{where}.{k}")]
    cls = getattr(kfp_server_api, type_name)
    if hasattr(cls, "allowable_values"):
        if type_name == "V2beta1PredicateOperation" and isinstance(doc, int):
            doc = PREDICATE_OPERATIONS.get(doc, doc)
        return [] if doc in cls.allowable_values else [f"{where}: {doc!r} is not one of {cls.allowable_values}"]
    if not isinstance(doc, dict):
        return [f"{where}: expected a {type_name} object, got {doc!r}"]
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    by_json |= {_camel(json_key): attr for attr, json_key in cls.attribute_map.items()}
    found = []
    for key, value in doc.items():
        if key not in by_json:
            found.append(f"{where}.{key}: no such field in {type_name}")
            continue
        found += model_errors(value, cls.openapi_types[by_json[key]], f"{where}.{key}")
    return found


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def serialize(model: Any) -> Any:
    """A kfp_server_api model as the JSON the server sends."""
    return kfp_server_api.ApiClient().sanitize_for_serialization(model)


# KFP 2.17 reports the tasks its driver runs alone (no pod of their own) by their DAG key, as Argo names their node
# (backend/src/v2/compiler/argocompiler/dag.go: a task of a placeholder image is its driver, named after the key).
DRIVER_ONLY_TASKS = {"create-volume": "createpvc", "delete-volume": "deletepvc"}


@dataclass
class RunStep:
    """One answer of ``GET /runs/{id}``: the run's state and its tasks' states (and errors)."""

    state: str
    tasks: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    run_error: str = ""
    created_at: str = ""  # sent as the run's created_at when set (KFP sends an RFC 3339 time)
    body: Any = None  # sent instead of the run when set: an answer that is not one


SUCCESS_SCRIPT = [
    RunStep("PENDING"),
    RunStep("RUNNING", {"create-volume": "SUCCEEDED", "prepare-data": "RUNNING"}),
    RunStep(
        "RUNNING",
        {"create-volume": "SUCCEEDED", "prepare-data": "SUCCEEDED", "train-resnet": "RUNNING"},
    ),
    RunStep(
        "SUCCEEDED",
        {
            "create-volume": "SUCCEEDED",
            "prepare-data": "SUCCEEDED",
            "train-resnet": "SUCCEEDED",
            "test-resnet": "SUCCEEDED",
            "produce-metrics": "SUCCEEDED",
            "delete-volume": "SUCCEEDED",
        },
    ),
]
METRICS = {"accuracy-top1": 0.912, "accuracy-top5": 0.995, "test-loss": 0.31, "test-samples": 10000.0}
METRICS_LOG = (
    "2026-01-01 INFO steps.produce_metrics: metrics: top-1 91.20 %\n"
    'sharedvol-metrics {"accuracy-top1": 0.912, "accuracy-top5": 0.995, "test-loss": 0.31, "test-samples": 10000.0}\n'
    "produce-metrics: report /mnt/shared/runs/x/metrics/report.html\n"
)
# What KFP's launcher records in MLMD for a run of the pipeline: (output name, artifact type, custom properties).
# train-resnet's Metrics output comes first: only produce-metrics' "metrics" holds the run's results.
RUN_ARTIFACTS: list[tuple[str, str, dict[str, Any]]] = [
    ("train_metrics", "system.Metrics", {"final-train-loss": 0.8, "epochs": 3.0}),
    ("metrics", "system.Metrics", dict(METRICS)),
    ("confusion_matrix", "system.ClassificationMetrics", {}),
    ("report", "system.HTML", {}),
]
MLMD_PATH = "/ml_metadata.MetadataStoreService/"  # what the KFP UI server forwards to ML Metadata


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict[str]
    body: Any


class FakeKfp:
    """The fake server's state and behaviour; ``url`` is where it listens."""

    def __init__(self, *, token: str | None = GOOD_TOKEN, script: list[RunStep] | None = None) -> None:
        self.token = token
        self.script = list(script or SUCCESS_SCRIPT)
        self.pod_logs: dict[str, str] = {"pod-produce-metrics": METRICS_LOG}
        self.serve_pod_logs = True
        self.serve_mlmd = True
        self.run_artifacts = list(RUN_ARTIFACTS)  # what MLMD holds for each run created from now on
        self.mlmd: dict[str, list[tuple[int, str, str, dict[str, Any]]]] = {}  # run id: (id, name, type, props)
        self.get_run_failures = 0  # answer this many GET /runs/{id} with 503 first
        self.create_run_failures = 0  # answer this many POST /runs with 503 first
        self.create_run_answer: Any = None  # answer POST /runs with this instead of the run made
        self.requests: list[Recorded] = []
        # called with each request (method, path, query, headers, body) before it is answered
        self.before: Callable[[str, str, dict[str, list[str]], Any, Any], None] | None = None
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.specs: dict[str, dict[str, Any]] = {}
        self.platform_specs: dict[str, dict[str, Any]] = {}  # the package's second document (kubernetes platform)
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self._polls: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeKfp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    # ----------------------------------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body: Any = raw
        if raw and (h.headers.get("Content-Type") or "").startswith("application/json"):
            body = json.loads(raw)
        with self._lock:
            headers = CaseInsensitiveDict(h.headers.items())
            self.requests.append(Recorded(method, url.path, parse_qs(url.query), headers, body))
            if self.before is not None:
                self.before(method, url.path, parse_qs(url.query), h.headers, body)
            status, doc, ctype = self._route(method, url.path, parse_qs(url.query), h.headers, body)
        payload = doc if isinstance(doc, bytes) else doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def _route(self, method: str, path: str, q: dict[str, list[str]], headers: Any, body: Any) -> tuple:
        auth = headers.get("Authorization")
        if self.token is not None and auth != f"Bearer {self.token}":
            if auth == f"Bearer {FORBIDDEN_TOKEN}":
                return _error(403, 7, "user 'someone' is not allowed to access namespace 'team-a'")
            return _error(401, 16, "Unauthenticated: no valid bearer token")
        if path == "/k8s/pod/logs" and method == "GET":
            pod = q.get("podname", [""])[0]
            if not self.serve_pod_logs or pod not in self.pod_logs or not q.get("podnamespace"):
                return 404, "not found", "text/plain"
            return 200, self.pod_logs[pod], "text/plain"
        if path.startswith(MLMD_PATH) and method == "POST":
            if not self.serve_mlmd:
                return 404, "not found", "text/plain"
            return self._mlmd(path[len(MLMD_PATH) :], headers, body)
        if not path.startswith(API):
            return _error(404, 5, f"no route for {path}")
        route = path[len(API) :]
        for (verb, pattern), allowed in QUERY_PARAMS.items():
            if verb == method and re.fullmatch(pattern, route) and (unknown := set(q) - allowed):
                return _error(400, 3, f"unknown query parameter(s) {sorted(unknown)} for {method} {route}")
        if method == "GET" and route == "/healthz":
            return 200, serialize(kfp_server_api.V2beta1GetHealthzResponse(multi_user=False)), "application/json"
        if method == "GET" and (m := re.fullmatch(r"/pipelines/names/([^/]+)", route)):
            found = [p for p in self.pipelines.values() if p["name"] == m.group(1)]
            if not found:
                return _error(404, 5, f"pipeline {m.group(1)} not found")
            return 200, found[0], "application/json"
        if method == "POST" and route == "/pipelines":
            return self._create_pipeline(body)
        if method == "GET" and (m := re.fullmatch(r"/pipelines/([^/]+)/versions", route)):
            return self._list_versions(m.group(1), q)
        if method == "POST" and route == "/pipelines/upload_version":
            return self._upload_version(q, headers, body)
        if method == "GET" and route == "/experiments":
            return self._list_experiments(q)
        if method == "POST" and route == "/experiments":
            return self._create_experiment(body)
        if method == "POST" and route == "/runs":
            return self._create_run(body)
        if method == "GET" and (m := re.fullmatch(r"/runs/([^/]+)", route)):
            return self._get_run(m.group(1))
        return _error(404, 5, f"no route for {method} {path}")

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}"

    def _create_pipeline(self, body: Any) -> tuple:
        if problems := model_errors(body, "V2beta1Pipeline"):
            return _error(400, 3, "; ".join(problems))
        if any(p["name"] == body["name"] for p in self.pipelines.values()):
            return _error(409, 6, f"pipeline {body['name']} exists")
        pid = self._id("pipeline")
        model = kfp_server_api.V2beta1Pipeline(
            pipeline_id=pid,
            name=body["name"],
            display_name=body.get("display_name", body["name"]),
            description=body.get("description", ""),
            namespace=body.get("namespace"),
            created_at=datetime.datetime.now(datetime.UTC),
        )
        self.pipelines[pid] = serialize(model)
        self.versions[pid] = []
        return 200, self.pipelines[pid], "application/json"

    def _list_versions(self, pipeline_id: str, q: dict[str, list[str]]) -> tuple:
        if pipeline_id not in self.pipelines:
            return _error(404, 5, f"pipeline {pipeline_id} not found")
        size = int(q.get("page_size", ["20"])[0])
        start = int(q.get("page_token", ["0"])[0] or 0)
        ordered = sorted(self.versions[pipeline_id], key=lambda v: v["created_at"], reverse=True)
        page = ordered[start : start + size]
        more = start + size < len(ordered)
        resp = kfp_server_api.V2beta1ListPipelineVersionsResponse(
            pipeline_versions=page, total_size=len(ordered), next_page_token=str(start + size) if more else None
        )
        return 200, serialize(resp), "application/json"

    def _upload_version(self, q: dict[str, list[str]], headers: Any, body: bytes) -> tuple:
        pid = q.get("pipelineid", [""])[0]
        name = q.get("name", [""])[0]
        if pid not in self.pipelines or not name:
            return _error(400, 3, "pipelineid and name are required")
        files = _multipart(headers.get("Content-Type", ""), body)
        if "uploadfile" not in files:
            return _error(400, 3, "no uploadfile in the request")
        try:
            docs = list(yaml.safe_load_all(files["uploadfile"]))
        except yaml.YAMLError as e:
            return _error(400, 3, f"the package is not YAML: {e}")
        if not docs or "pipelineInfo" not in docs[0] or "root" not in docs[0]:
            return _error(400, 3, "the package is not a compiled KFP pipeline")
        if any(v["name"] == name for v in self.versions[pid]):
            return _error(409, 6, f"version {name} exists")
        vid = self._id("version")
        model = kfp_server_api.V2beta1PipelineVersion(
            pipeline_id=pid,
            pipeline_version_id=vid,
            name=name,
            display_name=q.get("display_name", [name])[0],
            description=q.get("description", [""])[0],
            created_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(microseconds=next(self._ids)),
        )
        self.versions[pid].append(serialize(model))
        self.specs[vid] = docs[0]
        self.platform_specs[vid] = docs[1] if len(docs) > 1 else {}
        return 200, serialize(model), "application/json"

    def _list_experiments(self, q: dict[str, list[str]]) -> tuple:
        flt = json.loads(q.get("filter", ["{}"])[0] or "{}")
        if problems := model_errors(flt, "V2beta1Filter"):
            return _error(400, 3, "; ".join(problems))
        ns = q.get("namespace", [""])[0]  # "" and no namespace both mean single-user
        found = [e for e in self.experiments.values() if (e.get("namespace") or "") == ns]
        for p in flt.get("predicates", []):
            assert PREDICATE_OPERATIONS.get(p["operation"], p["operation"]) == "EQUALS", "the fake supports EQUALS only"
            value = p.get("string_value", p.get("stringValue"))
            found = [e for e in found if e.get(p["key"]) == value]
        resp = kfp_server_api.V2beta1ListExperimentsResponse(experiments=found, total_size=len(found))
        return 200, serialize(resp), "application/json"

    def _create_experiment(self, body: Any) -> tuple:
        if problems := model_errors(body, "V2beta1Experiment"):
            return _error(400, 3, "; ".join(problems))
        same = (body["display_name"], body.get("namespace"))
        if any((e["display_name"], e.get("namespace")) == same for e in self.experiments.values()):
            return _error(409, 6, f"experiment {body['display_name']} exists")  # as KFP's: unique in a namespace
        eid = self._id("experiment")
        model = kfp_server_api.V2beta1Experiment(
            experiment_id=eid,
            display_name=body["display_name"],
            description=body.get("description"),
            namespace=body.get("namespace"),
            created_at=datetime.datetime.now(datetime.UTC),
            storage_state="AVAILABLE",
        )
        self.experiments[eid] = serialize(model)
        return 200, self.experiments[eid], "application/json"

    def _create_run(self, body: Any) -> tuple:
        if self.create_run_failures > 0:
            self.create_run_failures -= 1
            return _error(503, 14, "upstream connect error")
        if problems := model_errors(body, "V2beta1Run"):
            return _error(400, 3, "; ".join(problems))
        ref = body.get("pipeline_version_reference") or {}
        spec = self.specs.get(ref.get("pipeline_version_id", ""))
        if spec is None or ref.get("pipeline_id") not in self.pipelines:
            return _error(404, 5, "pipeline version not found")
        if body.get("experiment_id") not in self.experiments:
            return _error(404, 5, "experiment not found")
        declared = spec["root"]["inputDefinitions"]["parameters"]
        for key, value in (body.get("runtime_config") or {}).get("parameters", {}).items():
            if key not in declared:
                return _error(400, 3, f"parameter {key} is not an input of the pipeline")
            types = PARAM_TYPES[declared[key]["parameterType"]]
            if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
                return _error(400, 3, f"parameter {key}: {value!r} is not {declared[key]['parameterType']}")
        rid = self._id("run")
        run = dict(body, run_id=rid, state="PENDING", created_at=datetime.datetime.now(datetime.UTC).isoformat())
        if self.create_run_answer is not None:
            return 200, self.create_run_answer, "application/json"
        self.runs[rid] = run
        self._polls[rid] = 0
        self.mlmd[rid] = [(100 + i, name, kind, props) for i, (name, kind, props) in enumerate(self.run_artifacts)]
        return 200, run, "application/json"

    def _mlmd(self, method: str, headers: Any, body: bytes) -> tuple:
        """One gRPC-web call of MLMD's MetadataStoreService (the two the KFP UI makes to show a run's metrics)."""
        if headers.get("Content-Type") != "application/grpc-web+proto" or body[:1] != b"\0":
            return 415, "expected one application/grpc-web+proto frame", "text/plain"
        request = _decode(body[5 : 5 + struct.unpack(">I", body[1:5])[0]])
        if method == "GetContextByTypeAndName":
            run_id = request.get(2, [b""])[0].decode()  # context_name = 2
            if request.get(1, [b""])[0] != b"system.PipelineRun" or run_id not in self.mlmd:
                return _grpc_web(b"")  # MLMD answers an empty response when there is no such context
            context_id = 1000 + list(self.mlmd).index(run_id)
            context = _field(1, context_id) + _field(3, run_id.encode()) + _field(6, b"system.PipelineRun")
            return _grpc_web(_field(1, context))
        if method == "GetArtifactsByContext":
            context_id = request.get(1, [0])[0]  # context_id = 1
            run_ids = list(self.mlmd)
            index = context_id - 1000
            artifacts = self.mlmd[run_ids[index]] if 0 <= index < len(run_ids) else []
            return _grpc_web(b"".join(_field(1, _artifact(*a)) for a in artifacts))
        return _grpc_web(b"", 12, f"method {method} not implemented")

    def _get_run(self, run_id: str) -> tuple:
        if run_id not in self.runs:
            return _error(404, 5, f"run {run_id} not found")
        if self.get_run_failures > 0:
            self.get_run_failures -= 1
            return _error(503, 14, "upstream connect error")
        step = self.script[min(self._polls[run_id], len(self.script) - 1)]
        self._polls[run_id] += 1
        tasks = [
            kfp_server_api.V2beta1PipelineTaskDetail(
                run_id=run_id,
                task_id=f"task-{name}",
                display_name=DRIVER_ONLY_TASKS.get(name, name),
                state=state,
                pod_name=f"pod-{name}",
                error=kfp_server_api.GoogleRpcStatus(code=2, message=step.errors[name])
                if name in step.errors
                else None,
            )
            for name, state in step.tasks.items()
        ]
        # KFP also reports the root DAG as a task: submit must not take it for a step.
        tasks.append(
            kfp_server_api.V2beta1PipelineTaskDetail(
                run_id=run_id, task_id="root", display_name="resnet18-cifar10-x", state=step.state
            )
        )
        run = kfp_server_api.V2beta1Run(
            run_id=run_id,
            experiment_id=self.runs[run_id]["experiment_id"],
            display_name=self.runs[run_id]["display_name"],
            state=step.state,
            error=kfp_server_api.GoogleRpcStatus(code=2, message=step.run_error) if step.run_error else None,
            run_details=kfp_server_api.V2beta1RunDetails(task_details=tasks),
        )
        if step.body is not None:
            return 200, step.body, "application/json"
        answer = serialize(run)
        if step.created_at:
            answer["created_at"] = step.created_at
        return 200, answer, "application/json"


def _error(status: int, code: int, message: str) -> tuple:
    return status, {"error": message, "code": code, "message": message, "details": []}, "application/json"


def _varint(n: int) -> bytes:
    out = b""
    n &= (1 << 64) - 1
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, value: int | bytes | float) -> bytes:
    """One protobuf field: an int as a varint, bytes length-delimited, a float as a double."""
    if isinstance(value, bool | int):
        return _varint(number << 3) + _varint(int(value))
    if isinstance(value, float):
        return _varint(number << 3 | 1) + struct.pack("<d", value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _decode(data: bytes) -> dict[int, list[Any]]:
    """A protobuf message's varint and length-delimited fields, by number."""
    fields: dict[int, list[Any]] = {}
    at = 0

    def varint() -> int:
        nonlocal at
        n = shift = 0
        while True:
            byte = data[at]
            at += 1
            n |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return n

    while at < len(data):
        key = varint()
        if key & 7 == 0:
            fields.setdefault(key >> 3, []).append(varint())
        elif key & 7 == 2:
            size = varint()
            fields.setdefault(key >> 3, []).append(data[at : at + size])
            at += size
        else:
            raise ValueError(f"wire type {key & 7} is not used by these requests")
    return fields


def _artifact(artifact_id: int, name: str, kind: str, props: dict[str, Any]) -> bytes:
    """An MLMD Artifact: id = 1, uri = 3, custom_properties = 5 (map<string, Value>), type = 8.

    Value: int_value = 1, double_value = 2, string_value = 3. The launcher stores the output name as ``display_name``.
    """
    out = (
        _field(1, artifact_id)
        + _field(3, f"minio://mlpipeline/v2/artifacts/{name}".encode())
        + _field(8, kind.encode())
    )
    for key, value in {"display_name": name, **props}.items():
        encoded = _field(3, value.encode()) if isinstance(value, str) else _field(2, float(value))
        out += _field(5, _field(1, key.encode()) + _field(2, encoded))
    return out


def _grpc_web(message: bytes, status: int = 0, text: str = "") -> tuple:
    trailer = f"grpc-status:{status}\r\ngrpc-message:{text}\r\n".encode()
    frames = b"\0" + struct.pack(">I", len(message)) + message + b"\x80" + struct.pack(">I", len(trailer)) + trailer
    return 200, frames, "application/grpc-web+proto"


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    files = {}
    for part in msg.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        files[str(name)] = part.get_payload(decode=True)
    return files


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.fake.handle(self, "GET")  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.server.fake.handle(self, "POST")  # type: ignore[attr-defined]


@contextlib.contextmanager
def running(**kw: Any) -> Iterator[FakeKfp]:
    """A started fake, stopped at the end."""
    server = FakeKfp(**kw).start()
    try:
        yield server
    finally:
        server.stop()
