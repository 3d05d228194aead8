"""A run's metrics from ML Metadata, read the way the KFP UI reads them: gRPC-web through the UI server.

KFP v2's launcher records each output artifact in ML Metadata (MLMD), attributed to the run's context (type
``system.PipelineRun``, named after the run id), with the artifact's metadata as custom properties: a Metrics
artifact's ``log_metric`` values are ``double_value`` properties, its output name is ``display_name``. The KFP UI
server (and a Kubeflow gateway) forwards ``/ml_metadata.MetadataStoreService/<Method>``, the path its browser code
calls, to MLMD's gRPC-web proxy (envoy); the v2beta1 REST API does not serve artifact values (its task details leave
``outputs`` empty in KFP 2.17).

The two calls' messages are declared here, a subset of ``ml_metadata/proto/metadata_store*.proto`` (field numbers as
there), so that no MLMD package is needed; unknown fields in answers are skipped.
"""

from __future__ import annotations

import functools
import struct

import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2
from google.protobuf.message import DecodeError, Message

from sharedvol import answers

SERVICE = "ml_metadata.MetadataStoreService"
RUN_CONTEXT_TYPE = "system.PipelineRun"


class MlmdUnavailable(Exception):
    """ML Metadata could not be asked, or it holds nothing for the run; the message says which."""


@functools.cache
def messages() -> dict[str, type[Message]]:
    """The message classes of the MLMD subset, by short name."""
    fdp = descriptor_pb2.FileDescriptorProto(name="sharedvol/mlmd_subset.proto", package="ml_metadata", syntax="proto2")
    fdp.dependency.append(struct_pb2.DESCRIPTOR.name)
    f = descriptor_pb2.FieldDescriptorProto
    scalar = {"int64": f.TYPE_INT64, "double": f.TYPE_DOUBLE, "string": f.TYPE_STRING, "bool": f.TYPE_BOOL}

    def message(name: str, *fields: tuple[str, int, str, bool]) -> descriptor_pb2.DescriptorProto:
        m = fdp.message_type.add(name=name)
        for field_name, number, kind, repeated in fields:
            fd = m.field.add(name=field_name, number=number)
            fd.label = f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL
            if kind in scalar:
                fd.type = scalar[kind]
            else:
                fd.type, fd.type_name = f.TYPE_MESSAGE, kind
        return m

    value = message(
        "Value",
        ("int_value", 1, "int64", False),
        ("double_value", 2, "double", False),
        ("string_value", 3, "string", False),
        ("struct_value", 4, ".google.protobuf.Struct", False),
        ("bool_value", 6, "bool", False),
    )
    value.oneof_decl.add(name="value")
    for fd in value.field:
        fd.oneof_index = 0
    for owner in ("Artifact", "Context"):
        m = message(owner)
        entry = m.nested_type.add(name="CustomPropertiesEntry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
        entry.field.add(
            name="value", number=2, type=f.TYPE_MESSAGE, type_name=".ml_metadata.Value", label=f.LABEL_OPTIONAL
        )
        m.field.add(name="id", number=1, type=f.TYPE_INT64, label=f.LABEL_OPTIONAL)
        m.field.add(
            name="custom_properties",
            number=5,
            type=f.TYPE_MESSAGE,
            type_name=f".ml_metadata.{owner}.CustomPropertiesEntry",
            label=f.LABEL_REPEATED,
        )
    artifact, context = fdp.message_type[1], fdp.message_type[2]
    artifact.field.add(name="uri", number=3, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    artifact.field.add(name="name", number=7, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    artifact.field.add(name="type", number=8, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    context.field.add(name="name", number=3, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    context.field.add(name="type", number=6, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    message("GetContextByTypeAndNameRequest", ("type_name", 1, "string", False), ("context_name", 2, "string", False))
    message("GetContextByTypeAndNameResponse", ("context", 1, ".ml_metadata.Context", False))
    message("GetArtifactsByContextRequest", ("context_id", 1, "int64", False))
    message(
        "GetArtifactsByContextResponse",
        ("artifacts", 1, ".ml_metadata.Artifact", True),
        ("next_page_token", 2, "string", False),
    )
    pool = descriptor_pool.DescriptorPool()
    struct_fdp = descriptor_pb2.FileDescriptorProto()
    struct_pb2.DESCRIPTOR.CopyToProto(struct_fdp)
    pool.Add(struct_fdp)
    pool.Add(fdp)
    return {
        m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"ml_metadata.{m.name}"))
        for m in fdp.message_type
    }


def run_metrics(
    base: str,
    run_id: str,
    *,
    output: str = "metrics",
    token: str | None = None,
    timeout_s: float = 30.0,
    verify: bool | str = True,
) -> dict[str, float]:
    """The numeric values of the run's artifact named ``output`` (the latest one, after a retried task).

    Args:
        base: the KFP UI's (or gateway's) base URL; ``/ml_metadata.MetadataStoreService/`` is asked below it.
        run_id: the KFP run id (the name of its MLMD context).
        output: the output's name in the component (its artifact's ``display_name``).
        token: bearer token, as for the API.
        timeout_s: seconds to wait for each answer.
        verify: TLS verification, as for the API.

    Raises:
        MlmdUnavailable: MLMD is not served there, refused, or holds no such artifact with numbers.
    """
    m = messages()
    call = functools.partial(_call, base, token=token, timeout_s=timeout_s, verify=verify)
    found = call(
        "GetContextByTypeAndName",
        m["GetContextByTypeAndNameRequest"](type_name=RUN_CONTEXT_TYPE, context_name=run_id),
        m["GetContextByTypeAndNameResponse"],
    )
    if not found.HasField("context") or not found.context.id:
        raise MlmdUnavailable(f"ML Metadata has no context for run {run_id}")
    listed = call(
        "GetArtifactsByContext",
        m["GetArtifactsByContextRequest"](context_id=found.context.id),
        m["GetArtifactsByContextResponse"],
    )
    named = [
        a
        for a in listed.artifacts
        if "display_name" in a.custom_properties and a.custom_properties["display_name"].string_value == output
    ]
    for artifact in sorted(named, key=lambda a: a.id, reverse=True):
        values = {
            key: v.double_value if v.WhichOneof("value") == "double_value" else float(v.int_value)
            for key, v in artifact.custom_properties.items()
            if v.WhichOneof("value") in ("double_value", "int_value")
        }
        if values:
            return values
    raise MlmdUnavailable(f"ML Metadata holds no {output!r} artifact with values for run {run_id}")


def _call(
    base: str,
    method: str,
    request: Message,
    answer: type[Message],
    *,
    token: str | None,
    timeout_s: float,
    verify: bool | str,
) -> Message:
    """One unary gRPC-web call (``application/grpc-web+proto``): the decoded answer."""
    payload = request.SerializeToString()
    headers = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1", "Accept": "application/grpc-web+proto"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{base.rstrip('/')}/{SERVICE}/{method}"  # the path the KFP UI server forwards to ML Metadata
    try:
        frame = b"\0" + struct.pack(">I", len(payload)) + payload
        with requests.post(url, data=frame, headers=headers, timeout=timeout_s, verify=verify, stream=True) as r:
            if r.status_code != 200:
                raise MlmdUnavailable(f"ML Metadata is not served at {url} (HTTP {r.status_code})")
            body = answers.read(answers.arriving(r.raw), f"ML Metadata's {method}", deadline_s=4 * timeout_s)
    except requests.RequestException as e:
        raise MlmdUnavailable(f"ML Metadata at {url} could not be reached ({type(e).__name__})") from e
    except answers.TooLarge as e:
        raise MlmdUnavailable(str(e)) from e
    data, trailers = _frames(body)
    status = trailers.get("grpc-status", r.headers.get("grpc-status", "0"))
    if status != "0":
        said = trailers.get("grpc-message", r.headers.get("grpc-message", ""))
        raise MlmdUnavailable(f"ML Metadata refused {method}: gRPC status {status} {said}".rstrip())
    try:
        return answer.FromString(data)
    except DecodeError as e:
        raise MlmdUnavailable(f"ML Metadata's answer to {method} is not a {answer.__name__}") from e


def _frames(body: bytes) -> tuple[bytes, dict[str, str]]:
    """The data and the trailers of a gRPC-web answer (frames: 1 flag byte, 4 length bytes, payload)."""
    data, trailers, at = b"", {}, 0
    while at + 5 <= len(body):
        flag, size = body[at], struct.unpack(">I", body[at + 1 : at + 5])[0]
        chunk = body[at + 5 : at + 5 + size]
        at += 5 + size
        if flag & 0x80:
            for line in chunk.decode("utf-8", "replace").split("\r\n"):
                key, sep, val = line.partition(":")
                if sep:
                    trailers[key.strip().lower()] = val.strip()
        else:
            data += chunk
    return data, trailers
