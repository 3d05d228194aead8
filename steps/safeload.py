"""Loading what another step published without running its code: safetensors weights and allow-listed resume state.

- Weights: safetensors (written with the ``safetensors`` library). They are read from the verified buffer as
  tensor views (:func:`weights_from_buffer`), so the bytes that were hashed are the bytes that are used and
  nothing is copied; the header is checked against the buffer first.
- Resume state: mmengine's checkpoint dict as a safetensors file (:func:`state_writer`): its tensors are read
  as views like the weights, and only the small rest is unpickled, with ``torch.load(weights_only=True)``
  (passed explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot turn it off) and only the globals in
  :data:`RESUME_ALLOWED`.
  mmengine pickles each ``HistoryBuffer`` with references to its statistics functions (``builtins.getattr``),
  which would let a planted file choose functions mmengine later calls; :func:`encode_message_hub` stores
  those buffers as plain arrays instead, so ``getattr`` stays off the list.
"""

from __future__ import annotations

import collections
import importlib
import io
import json
import math
import struct
from collections.abc import Callable
from typing import IO, Annotated, Any, Literal

import pydantic
import pydantic_core
from pydantic import Field, StringConstraints, model_validator

from steps import errors, schemas, volread

# The globals an mmengine 0.10 checkpoint of this model needs beyond torch's own (numpy arrays of logged values).
RESUME_ALLOWED = (
    "numpy.ndarray",
    "numpy.dtype",
    "numpy._core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar",
    "numpy.dtypes.Float64DType",
    "numpy.dtypes.Int64DType",
)
_HISTORY = "__sharedvol_history_buffer__"
_TENSOR = "__sharedvol_tensor__"
SKELETON = "__sharedvol_state__"  # the resume file's pickled rest (everything but its tensors)
RESUME_FORMAT = "sharedvol.resume"
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}  # fmt: skip


def allowed_globals() -> list[Any]:
    """The objects :data:`RESUME_ALLOWED` names."""
    found = []
    for dotted in RESUME_ALLOWED:
        module, name = dotted.rsplit(".", 1)
        found.append(getattr(importlib.import_module(module), name))
    return found


def serialize_weights(state_dict: dict[str, Any], metadata: dict[str, str]) -> bytes:
    """The safetensors bytes of ``state_dict`` (moved to the CPU, made contiguous) with string ``metadata``."""
    buf = io.BytesIO()
    weights_writer(state_dict, metadata)(buf)
    return buf.getvalue()


Writer = Callable[[IO[bytes]], None]


def weights_writer(state_dict: dict[str, Any], metadata: dict[str, str]) -> Writer:
    """A function writing ``state_dict`` as a safetensors file into the stream it is given (no copy, no own file).

    sharedvol writes the format itself (an 8-byte header length, the JSON header, then each tensor's bytes) into
    the temporary file the publish opened: the library's ``save_file`` would make a temporary file of its own,
    mode 0600, that a killed writer leaves behind under a name nothing cleans.
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    return lambda f: write_safetensors(f, tensors, metadata)


def write_safetensors(f: IO[bytes], tensors: dict[str, Any], metadata: dict[str, str]) -> None:
    """Write ``tensors`` (contiguous CPU tensors) and string ``metadata`` to ``f`` in the safetensors format."""
    import torch

    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    names = {v: k for k, v in _DTYPES.items()}
    offset = 0
    for name, t in tensors.items():
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in names:
            raise TypeError(f"tensor {name!r} has dtype {dtype}, which the safetensors format here does not store")
        header[name] = {"dtype": names[dtype], "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned, as the library writes it
    f.write(struct.pack("<Q", len(encoded)) + encoded)
    for t in tensors.values():
        if t.numel():
            f.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()).cast("B"))


def state_writer(state: dict[str, Any]) -> Writer:
    """A function writing mmengine's training state ``state`` into a stream as a safetensors resume file.

    Every tensor in it (SGD momentum, ...) is stored as a safetensors tensor, written straight from the tensor's
    memory; what is left (param groups, schedulers, message hub, with a ``{"__sharedvol_tensor__": name}`` marker
    in place of each tensor) goes through ``torch.save`` into one small uint8 tensor, :data:`SKELETON`. A reader
    takes the tensors as views of the verified buffer and unpickles only the small rest, with the allow-list
    (:func:`resume_from_buffer`).
    """
    tensors: dict[str, Any] = {}
    skeleton = _split_tensors(state, tensors, {})
    tensors[SKELETON] = _pickled(skeleton)
    return lambda f: write_safetensors(f, tensors, {"format": RESUME_FORMAT})


def _pickled(obj: Any) -> Any:
    """``torch.save(obj)`` as a uint8 tensor."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return torch.frombuffer(bytearray(buf.getbuffer()), dtype=torch.uint8)


def _split_tensors(obj: Any, tensors: dict[str, Any], seen: dict[int, str]) -> Any:
    """``obj`` with each tensor safetensors can store moved to ``tensors`` and replaced by a marker naming it."""
    import torch

    if type(obj) in (dict, collections.OrderedDict):
        return type(obj)((k, _split_tensors(v, tensors, seen)) for k, v in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_split_tensors(v, tensors, seen) for v in obj)
    storable = type(obj) is torch.Tensor and obj.layout == torch.strided and not obj.is_quantized
    if not storable or str(obj.dtype).removeprefix("torch.") not in _DTYPES.values():
        return obj  # anything else stays in the pickled rest (tensor subclasses, sparse, other dtypes)
    if id(obj) not in seen:
        t = obj.detach().to("cpu")
        whole = t.untyped_storage()
        if not t.is_contiguous() or t.data_ptr() != whole.data_ptr() or t.nbytes != whole.nbytes():
            t = t.clone(memory_format=torch.contiguous_format)  # a view: stored alone (safetensors refuses overlaps)
        seen[id(obj)] = name = str(len(tensors))
        tensors[name] = t
    return {_TENSOR: seen[id(obj)]}


def _join_tensors(obj: Any, tensors: dict[str, Any], source: str) -> Any:
    """The inverse of :func:`_split_tensors`."""
    if type(obj) in (dict, collections.OrderedDict):
        if len(obj) == 1 and _TENSOR in obj:
            name = obj[_TENSOR]
            if not isinstance(name, str) or name not in tensors or name == SKELETON:
                raise errors.IntegrityError(f"{source} names a tensor it does not hold", hint="rerun train-resnet")
            return tensors[name]
        return type(obj)((k, _join_tensors(v, tensors, source)) for k, v in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_join_tensors(v, tensors, source) for v in obj)
    return obj


MAX_ELEMENTS = volread.CHECKPOINT_CAP  # no tensor of a file within its cap has more elements (one byte or more each)


class TensorSpec(schemas.Strict):
    """One entry of a safetensors header: the dtype, the shape and where the bytes are (after the header).

    Each dimension, and the product of the dimensions other than 0, is at most :data:`MAX_ELEMENTS`: a tensor
    with no elements still needs a shape torch can make (its strides must fit 64 bits).
    """

    dtype: Literal["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"]
    shape: Annotated[list[Annotated[int, Field(ge=0, le=MAX_ELEMENTS)]], Field(max_length=8)]
    data_offsets: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]

    @model_validator(mode="after")
    def _makeable(self) -> TensorSpec:
        if math.prod(d or 1 for d in self.shape) > MAX_ELEMENTS:
            raise ValueError(f"shape {self.shape} spans more than {MAX_ELEMENTS} elements")
        return self


class _Header(schemas.Strict):
    metadata: Annotated[dict[str, Annotated[str, StringConstraints(max_length=4096)]], Field(max_length=64)] = Field(
        default={}, alias="__metadata__"
    )
    tensors: dict[Annotated[str, StringConstraints(min_length=1, max_length=512)], TensorSpec]


def weights_from_buffer(buf: memoryview | bytearray, source: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors and metadata of the safetensors file in ``buf``, as views into ``buf`` (no copy).

    The header is parsed under the JSON depth cap and checked against :class:`TensorSpec` before any tensor is made;
    each tensor must fit the bytes after the header exactly.

    Raises:
        IntegrityError: the buffer is not a well-formed safetensors file, or torch cannot make one of its tensors.
    """
    import torch

    source = volread.shown(source)

    def bad(why: str) -> errors.IntegrityError:
        return errors.IntegrityError(f"{source} is not a safetensors weights file ({why})", hint="rerun train-resnet")

    if len(buf) < 8:
        raise bad("too short")
    (length,) = struct.unpack("<Q", bytes(buf[:8]))
    if not 2 <= length <= min(len(buf) - 8, volread.JSON_CAP):
        raise bad("header length out of range")
    try:
        raw = pydantic_core.from_json(bytes(buf[8 : 8 + length]), allow_inf_nan=False)
    except ValueError as e:
        raise bad(f"header is not JSON: {str(e)[:100]}") from e
    if not isinstance(raw, dict):
        raise bad("header is not an object")
    metadata = raw.pop("__metadata__", {})
    try:
        header = _Header.model_validate({"__metadata__": metadata, "tensors": raw})
    except pydantic.ValidationError as e:
        raise errors.IntegrityError(schemas.error(source, e).message, hint="rerun train-resnet") from e
    base, end = 8 + length, len(buf)
    tensors: dict[str, Any] = {}
    for name, spec in header.tensors.items():
        dtype = getattr(torch, _DTYPES[spec.dtype])
        count = math.prod(spec.shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        start, stop = spec.data_offsets
        if not start <= stop <= end - base or stop - start != count * itemsize:
            raise bad(f"tensor {name!r} does not fit its data")
        try:
            if count == 0:
                tensors[name] = torch.empty(spec.shape, dtype=dtype)
            else:
                tensors[name] = torch.frombuffer(buf, dtype=dtype, count=count, offset=base + start).view(spec.shape)
        except (RuntimeError, TypeError, ValueError, OverflowError) as e:  # torch's refusals, whatever their type
            detail = schemas.printable(str(e).strip().split("\n", 1)[0], 160)
            raise bad(f"tensor {name!r} of shape {spec.shape} cannot be made: {detail}") from e
    return tensors, dict(header.metadata)


class _BufferReader(io.RawIOBase):
    """A seekable read-only stream over a buffer: torch.load reads the verified bytes without a copy."""

    def __init__(self, buf: memoryview | bytearray) -> None:
        self.view = memoryview(buf)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        n = max(0, min(len(target), len(self.view) - self.pos))
        target[:n] = self.view[self.pos : self.pos + n]
        self.pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else len(self.view) + offset
        return self.pos

    def tell(self) -> int:
        return self.pos


def resume_from_buffer(buf: memoryview | bytearray, source: str) -> dict[str, Any]:
    """Mmengine's checkpoint dict from the resume file in ``buf`` (:func:`state_writer`), running no code.

    Its tensors are views of ``buf`` (no copy); the pickled rest is loaded with ``weights_only=True`` and
    :data:`RESUME_ALLOWED` only. A ``torch.save`` file (what sharedvol wrote before) is loaded the same way.

    Raises:
        IntegrityError: the file needs anything else (a planted or foreign pickle), or is not a resume file.
    """
    import torch

    source = volread.shown(source)
    if bytes(buf[:4]) == b"PK\x03\x04":  # a torch.save zip file: what sharedvol wrote before the safetensors format
        checkpoint = _unpickle(buf, source)
    else:
        tensors, metadata = weights_from_buffer(buf, source)
        rest = tensors.pop(SKELETON, None)
        if metadata.get("format") != RESUME_FORMAT or rest is None or rest.dtype != torch.uint8 or rest.dim() != 1:
            raise errors.IntegrityError(f"{source} is not a sharedvol resume file", hint="rerun train-resnet")
        checkpoint = _join_tensors(_unpickle(memoryview(rest.numpy()), source), tensors, source)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise errors.IntegrityError(f"{source} is not an mmengine checkpoint", hint="rerun train-resnet")
    try:
        schemas.ResumeState.model_validate(checkpoint)
    except pydantic.ValidationError as e:
        raise schemas.error(source, e) from e
    return decode_message_hub(checkpoint, source)


def _unpickle(buf: memoryview | bytearray, source: str) -> Any:
    """``torch.load(weights_only=True)`` of ``buf`` with :data:`RESUME_ALLOWED` only.

    Raises:
        IntegrityError: it needs anything else.
    """
    import torch

    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(_BufferReader(buf), map_location="cpu", weights_only=True)
    except Exception as e:  # hostile bytes: the unpickler may fail in any way, and each way is a refusal
        first = str(e).strip().splitlines()
        detail = next(
            (ln for ln in first if "GLOBAL" in ln or "Unsupported" in ln or "but got" in ln), first[0] if first else ""
        )
        raise errors.IntegrityError(
            f"{source} holds more than mmengine's training state and was refused unread ({detail.strip()[:160]})",
            hint="only files train-resnet wrote load; rerun training on a new run directory",
        ) from e


def encode_message_hub(checkpoint: dict[str, Any]) -> None:
    """Replace each ``HistoryBuffer`` in ``checkpoint['message_hub']`` by its arrays.

    In place: mmengine builds the message hub part of a checkpoint from copies.
    """
    from mmengine.logging import HistoryBuffer

    scalars = checkpoint.get("message_hub", {}).get("log_scalars", {})
    for key, value in list(scalars.items()):
        if isinstance(value, HistoryBuffer):
            log, count = value.data
            scalars[key] = {_HISTORY: True, "log": log, "count": count, "max_length": value.max_length}


def decode_message_hub(checkpoint: dict[str, Any], source: str = "the resume file") -> dict[str, Any]:
    """The inverse of :func:`encode_message_hub`.

    Raises:
        IntegrityError: the message hub is not what :func:`encode_message_hub` wrote.
    """
    from mmengine.logging import HistoryBuffer

    scalars = checkpoint.get("message_hub", {}).get("log_scalars", {})
    try:
        for key, value in list(scalars.items()):
            if isinstance(value, dict) and value.get(_HISTORY):
                log, count = list(value["log"]), list(value["count"])
                length = value["max_length"]
                if type(length) is not int or not 0 < length <= 1_000_000 or len(log) != len(count):
                    raise ValueError(f"history {key!r} has max_length {length!r} for {len(log)} values")
                scalars[key] = HistoryBuffer(log, count, length)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        raise errors.IntegrityError(
            f"{source} holds a message hub sharedvol did not write ({str(e)[:120]})", hint="rerun train-resnet"
        ) from e
    return checkpoint
