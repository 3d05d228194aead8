"""Schema-versioned JSON documents that carry their own BLAKE3 digest: one file, one rename, verifiable.

``write_json`` seals a document with the digest of its other fields (field ``blake3``, last); ``read_json``
checks the schema, the version, the digest and the required fields, so a truncated, foreign, newer or
edited file is refused with one line. The digest proves integrity, not origin.
"""

from __future__ import annotations

import json
from typing import Any

import blake3

from steps import dataplane, errors

DIGEST_FIELD = "blake3"


def _body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=False, allow_nan=True).encode()


def write_json(url: str, doc: dict[str, Any]) -> dataplane.Published:
    """Publish ``doc`` as indented JSON at ``url`` atomically, sealed with the BLAKE3 of its other fields."""
    body = {k: v for k, v in doc.items() if k != DIGEST_FIELD}
    sealed = {**body, DIGEST_FIELD: blake3.blake3(_body(body)).hexdigest()}
    return dataplane.publish_bytes(url, _body(sealed) + b"\n")


def read_json(
    url: str, *, schema: str, versions: tuple[int, ...], required: dict[str, type | tuple[type, ...]]
) -> dict[str, Any]:
    """Read a JSON document of ``schema``; check its version, its digest and its required fields.

    Args:
        url: where the document is.
        schema: the expected value of the document's ``schema`` field.
        versions: the ``schema_version`` values this code reads.
        required: field name -> expected Python type(s).

    Raises:
        SchemaError: missing, truncated, foreign, of another version, changed after it was written, or missing a field.
    """
    try:
        raw = dataplane.read_bytes(url)
    except errors.RunDirError as e:
        raise errors.SchemaError(e.message, hint=e.hint) from e
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise errors.SchemaError(
            f"{url} is not valid JSON (truncated or corrupt: {e})", hint="rerun the step that writes it"
        ) from e
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise errors.SchemaError(
            f"{url} is not a {schema} document (schema: {found!r})", hint="point at the file sharedvol wrote"
        )
    version = doc.get("schema_version")
    if version not in versions:
        raise errors.SchemaError(
            f"{url} has schema_version {version!r}; this sharedvol reads {', '.join(map(str, versions))}",
            hint="use the sharedvol version that wrote it, or rerun that step with this one",
        )
    claimed = doc.pop(DIGEST_FIELD, None)
    if claimed != blake3.blake3(_body(doc)).hexdigest():
        raise errors.SchemaError(
            f"{url} does not match its digest (changed after it was written)",
            hint="rerun the step that writes it; never edit it by hand",
        )
    for key, kind in required.items():
        if not isinstance(doc.get(key), kind):
            raise errors.SchemaError(
                f"{url} lacks field {key!r} of the right type",
                hint="the file is damaged; rerun the step that writes it",
            )
    return doc
