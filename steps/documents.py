"""Schema-versioned JSON documents that carry their own BLAKE3 digest: one file, one rename, verifiable.

``write_json`` seals a document with the digest of its other fields (field ``blake3``, last) and refuses a
non-finite number. :func:`read` reads one with the bounded reader (:mod:`steps.volread`: a regular file, at
most :data:`steps.volread.JSON_CAP` bytes), parses it under a depth cap with NaN and infinities refused, checks
the schema name, the version and the digest, then validates it against its strict model (:mod:`steps.schemas`).
A truncated, foreign, newer, edited or impossible file is refused with one line. The digest proves integrity,
not origin.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

import blake3
import pydantic
import pydantic_core

from steps import dataplane, errors, schemas, volread

DIGEST_FIELD = "blake3"
D = TypeVar("D", bound=schemas.Document)


def _body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=False, allow_nan=False).encode()


def write_json(url: str, doc: dict[str, Any]) -> dataplane.Published:
    """Publish ``doc`` as indented JSON at ``url`` atomically, sealed with the BLAKE3 of its other fields.

    Raises:
        IntegrityError: ``doc`` holds NaN or an infinity (nothing is written).
        RunDirError: the write failed.
    """
    return dataplane.publish_bytes(url, seal(doc, url))


def seal(doc: dict[str, Any], url: str = "the document") -> bytes:
    """The bytes of ``doc`` as indented JSON, sealed with the BLAKE3 of its other fields (field ``blake3``, last).

    Raises:
        IntegrityError: ``doc`` holds NaN or an infinity.
    """
    body = {k: v for k, v in doc.items() if k != DIGEST_FIELD}
    try:
        encoded = _body(body)
    except ValueError as e:
        raise errors.IntegrityError(
            f"refusing to publish {url}: it would hold a non-finite number ({e})",
            hint="a result that is not a number is not a result; see the step's log for where it came from",
        ) from e
    sealed = {**body, DIGEST_FIELD: blake3.blake3(encoded).hexdigest()}
    return _body(sealed) + b"\n"


def write(url: str, doc: schemas.Document) -> dataplane.Published:
    """Publish the document ``doc`` at ``url`` (:func:`write_json`), with its schema name and version."""
    return write_json(url, document(doc))


def document(doc: schemas.Document) -> dict[str, Any]:
    """``doc`` as the JSON object written to its file: its schema name and version, then its fields."""
    return {"schema": doc.SCHEMA, "schema_version": doc.VERSION, **doc.model_dump(mode="json")}


def parse(raw: bytes, url: str) -> Any:
    """The JSON value of ``raw``: numbers finite, nesting at most about 200 deep (the parser's own cap).

    The parser refuses ``NaN`` and ``Infinity``, but a number too large for a float (``1e400``) becomes an
    infinity: every number is checked after parsing, so none reaches the digest or the schema.

    Raises:
        SchemaError: not JSON, NaN or infinity, a number too large to be finite, or nested too deep.
    """
    try:
        value = pydantic_core.from_json(raw, allow_inf_nan=False, cache_strings=False)
    except ValueError as e:
        raise errors.SchemaError(
            f"{volread.shown(url)} is not valid JSON ({schemas.printable(str(e), 120)})",
            hint="truncated or damaged: rerun the step that writes it",
        ) from e
    where = _non_finite(value)
    if where is not None:
        raise errors.SchemaError(
            f"{volread.shown(url)}: field {where or '(the document)'}: a number too large to be finite",
            hint="the file is not what sharedvol wrote; rerun the step that writes it",
        )
    return value


def _non_finite(value: Any) -> str | None:
    """The dotted path of the first non-finite number in the JSON value ``value`` (``""``: itself), else None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return path
        items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
        prefix = f"{path}." if path else ""
        stack.extend((prefix + schemas.printable(str(k), 60), item) for k, item in reversed(list(items)))
    return None


def read(url: str, model: type[D], *, missing_hint: str = "") -> D:
    """Read the document at ``url`` and validate it against ``model``.

    Args:
        url: where the document is.
        model: its strict schema (:mod:`steps.schemas`); its ``SCHEMA`` and ``VERSION`` are the ``schema`` and
            ``schema_version`` the document must have.
        missing_hint: how to fix a missing file.

    Raises:
        SchemaError: missing, not a regular file, too large, not JSON, foreign, of another version, changed after it
            was written, or breaking its schema (one line naming the field and the rule).
    """
    try:
        raw = volread.read(url, cap=volread.JSON_CAP, missing_hint=missing_hint or "run the step that writes it first")
    except errors.RunDirError as e:
        raise errors.SchemaError(e.message, hint=e.hint) from e
    schema, versions = model.SCHEMA, (model.VERSION,)
    doc = parse(raw, url)
    shown = volread.shown(url)
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise errors.SchemaError(
            f"{shown} is not a {schema} document (schema: {str(found)[:80]!r})",
            hint="point at the file sharedvol wrote",
        )
    version = doc.get("schema_version")
    if type(version) is not int or version not in versions:
        raise errors.SchemaError(
            f"{shown} has schema_version {schemas.printable(str(version), 20)}; "
            f"this sharedvol reads {', '.join(map(str, versions))}",
            hint="use the sharedvol version that wrote it, or rerun that step with this one",
        )
    claimed = doc.pop(DIGEST_FIELD, None)
    if claimed != blake3.blake3(_body(doc)).hexdigest():
        raise errors.SchemaError(
            f"{shown} does not match its digest (changed after it was written)",
            hint="rerun the step that writes it; never edit it by hand",
        )
    fields = {k: v for k, v in doc.items() if k not in ("schema", "schema_version")}
    try:
        return model.model_validate_json(json.dumps(fields))  # JSON mode: a JSON list is a tuple field's value
    except pydantic.ValidationError as e:
        raise schemas.error(shown, e) from e
