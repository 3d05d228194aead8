"""Generated hostile documents against every reader of the volume: one clear error, never a traceback or a hang.

Hypothesis builds documents that parse (the attacker's easy case: a matching digest, the right schema name) with
fields of every JSON type, deep nesting, huge and non-finite numbers, and raw bytes for the binary readers.
Every outcome is either a valid document or the reader's own one-line error.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steps import cifar_format, documents, errors, safeload, schemas

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)

MODELS = [schemas.CheckpointManifest, schemas.EvalResult, schemas.TrainSummary, schemas.DatasetManifest]


def mutated(model: type[schemas.Document]) -> st.SearchStrategy[dict[str, Any]]:
    """A document of ``model``'s schema whose fields (its own names and others) hold any JSON value."""
    names = list(model.model_fields)
    return st.dictionaries(st.sampled_from([*names, "extra"]), json_values, max_size=len(names) + 1)


def one_line(e: errors.StepError) -> None:
    assert "\n" not in str(e) and str(e)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_generated_documents_of_every_schema_are_valid_or_one_schema_error(tmp_path: Path, model: Any) -> None:
    url = str(tmp_path / "doc.json")

    @SETTINGS
    @given(fields=mutated(model))
    def check(fields: dict[str, Any]) -> None:
        documents.write_json(url, {"schema": model.SCHEMA, "schema_version": model.VERSION, **fields})
        try:
            documents.read(url, model)
        except errors.SchemaError as e:
            one_line(e)

    check()


@SETTINGS
@given(raw=st.binary(max_size=2000))
def test_generated_bytes_as_a_json_document_are_one_schema_error(tmp_path: Path, raw: bytes) -> None:
    url = tmp_path / "doc.json"
    url.write_bytes(raw)
    with pytest.raises(errors.SchemaError) as caught:
        documents.read(str(url), schemas.EvalResult)
    one_line(caught.value)


@SETTINGS
@given(raw=st.binary(max_size=2000) | st.builds(lambda v: pickle.dumps(v, protocol=2), json_values))
def test_generated_bytes_and_pickles_as_a_cifar_batch_are_one_dataset_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    with pytest.raises(errors.DatasetError) as caught:
        cifar_format.read_batch(path)
    one_line(caught.value)


GLOBALS = st.sampled_from(
    [("os", "system"), ("builtins", "eval"), ("builtins", "getattr"), ("subprocess", "Popen"), ("numpy", "load")]
)


@SETTINGS
@given(target=GLOBALS, argument=st.text(max_size=20))
def test_a_pickle_naming_any_global_outside_the_allow_list_is_refused_unread(
    target: tuple[str, str], argument: str
) -> None:
    module, name = target
    raw = b"\x80\x02c" + f"{module}\n{name}\n".encode() + pickle.dumps((argument,), protocol=2)[2:-1] + b"R."
    with pytest.raises(errors.DatasetError, match=f"refused unread: it asks for {module}.{name}"):
        cifar_format.unpickle(raw, "data_batch_1")


@SETTINGS
@given(header=json_values, tail=st.binary(max_size=200))
def test_generated_safetensors_headers_are_views_or_one_integrity_error(header: Any, tail: bytes) -> None:
    encoded = pickle_free_json(header)
    blob = struct.pack("<Q", len(encoded)) + encoded + tail
    try:
        safeload.weights_from_buffer(bytearray(blob), "w.safetensors")
    except errors.IntegrityError as e:
        one_line(e)


def pickle_free_json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


@SETTINGS
@given(rest=st.binary(max_size=500))
def test_generated_bytes_as_a_resume_files_pickled_rest_are_one_integrity_error(rest: bytes) -> None:
    import safetensors.torch
    import torch

    blob = safetensors.torch.save(
        {safeload.SKELETON: torch.frombuffer(bytearray(rest + b"\0"), dtype=torch.uint8)},
        metadata={"format": safeload.RESUME_FORMAT},
    )
    with pytest.raises(errors.IntegrityError) as caught:
        safeload.resume_from_buffer(bytearray(blob), "r.resume.safetensors")
    one_line(caught.value)
