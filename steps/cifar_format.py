"""CIFAR-10's batch files read without running their code: bounded, restricted to an allow-list, then checked.

A batch file (``data_batch_N``, ``test_batch``) is a Python-2 pickle of a dict of a string, bytes, a list of ints
and a uint8 array; ``batches.meta`` a dict of the label names and two counts. A pickle can name any function
to call, so a file on the shared volume is read with a restricted unpickler that knows only what that format
needs: numpy's array reconstruction exactly as numpy pickles a uint8 array (``_reconstruct(numpy.ndarray, (0,),
b'b')`` filled by its state, ``numpy.dtype('u1')``) and Latin-1 string encoding. Anything else (``os.system``,
``builtins.eval``, any class, ``numpy.ndarray`` called with a buffer and strides) is refused before it runs, so an
array is never larger than the bytes of the file (and must be one C-ordered N x 3072 block). The
file is read with the bounded reader first (:mod:`steps.volread`: a regular file, at most the size its dataset
manifest gives or :data:`steps.volread.BATCH_CAP`), its digest checked where the manifest gives one, and the
result validated against :class:`CifarBatch` or :class:`CifarMeta`.
"""

from __future__ import annotations

import codecs
import io
import pickle
import pickletools
from pathlib import Path
from typing import Annotated, Any

import blake3
import numpy as np
import pydantic
from numpy._core.multiarray import _reconstruct
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from steps import errors, schemas, volread

CLASSES = 10
PIXELS = 3 * 32 * 32
MAX_IMAGES = 60_000  # in one file: all of CIFAR-10's 60,000 images (`sharedvol data synth --test 60000`)
OPERATIONS_PER_IMAGE = 8  # a batch written by Python 2 or 3 takes at most 4
MAX_OPERATIONS = OPERATIONS_PER_IMAGE * MAX_IMAGES + 1_000


def _ndarray(*args: Any) -> None:
    """``numpy.ndarray`` as a pickle names it: only as the class :func:`_new_array` rebuilds, never called.

    Called (``ndarray(shape, dtype, buffer, offset, strides)``) it could make a view of a few bytes stand for
    any number of images (strides of 0), so it is refused.
    """
    raise _Refused(
        "it calls numpy.ndarray itself (numpy's own pickles rebuild an array through _reconstruct and its state)"
    )


def _new_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``_reconstruct(ndarray, (0,), b'b')`` as numpy's own pickles call it: an empty array that BUILD then fills.

    Its state (``ndarray.__setstate__``) gives the shape, the dtype and the pixels, which must be exactly as
    many bytes as the shape says: the array is never larger than the file.
    """
    if subtype is not _ndarray or shape != (0,) or dtype not in ("b", b"b"):
        raise _Refused("it calls numpy's _reconstruct with arguments numpy's own pickles never use")
    return _reconstruct(np.ndarray, (0,), b"b")


def _uint8_dtype(name: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype('u1', False, True)`` as numpy's pickles call it (Python 2's: 0, 1): a private uint8 dtype."""
    if not (isinstance(name, str) and name == "u1"):
        raise _Refused(f"it asks for numpy dtype {schemas.printable(repr(name), 40)}, not uint8 ('u1') like CIFAR-10")
    if type(align) not in (bool, int) or type(copy) not in (bool, int) or align or not copy:
        raise _Refused("it calls numpy.dtype with arguments numpy's own pickles never use")
    return np.dtype("u1", align=False, copy=True)  # a copy: the pickle's BUILD may set its state, never uint8's own


_ARRAY_GLOBALS = {
    ("numpy", "ndarray"): _ndarray,
    ("numpy", "dtype"): _uint8_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _new_array,
    ("numpy._core.multiarray", "_reconstruct"): _new_array,
}


def _latin1(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3's pickles of bytes call it, for the Latin-1 codec only."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise _Refused(f"it asks for _codecs.encode with codec {encoding[:40]!r}, which a CIFAR-10 batch never holds")
    return codecs.encode(text, "latin1")


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something outside the allow-list."""


class _Restricted(pickle.Unpickler):
    """An unpickler that resolves only the globals a CIFAR-10 batch file needs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        found = _ARRAY_GLOBALS.get((module, name))
        if found is None:
            raise _Refused(f"it asks for {module}.{name}, which a CIFAR-10 batch never holds")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("it holds a persistent reference, which a CIFAR-10 batch never holds")


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, arbitrary_types_allowed=True)


Label = Annotated[int, Field(ge=0, lt=CLASSES)]


class CifarBatch(_Model):
    """One batch file: ``data`` (N x 3072 uint8: the R plane, then G, then B), N ``labels``, optional names."""

    data: np.ndarray
    labels: list[Label]
    batch_label: str | bytes = ""
    filenames: list[str | bytes] = []

    @model_validator(mode="after")
    def _shape(self) -> CifarBatch:
        kind = self.data.dtype
        if kind != np.uint8 or kind.fields is not None or kind.subdtype is not None or kind.shape != ():
            raise ValueError(f"it holds {self.data.dtype} pixels, not uint8 (0-255) like CIFAR-10")
        if self.data.ndim != 2 or self.data.shape[1] != PIXELS:
            raise ValueError(f"its data is {self.data.shape}, not N x {PIXELS} (32 x 32 pixels, R then G then B)")
        if not self.data.flags.c_contiguous:
            raise ValueError(
                "its data is not one C-ordered block (image after image, like numpy's own pickle of CIFAR-10)"
            )
        if len(self.labels) != self.data.shape[0]:
            raise ValueError(f"labels has {len(self.labels)} entries for {self.data.shape[0]} images")
        if self.filenames and len(self.filenames) != len(self.labels):
            raise ValueError(f"filenames has {len(self.filenames)} entries for {len(self.labels)} images")
        return self


class CifarMeta(_Model):
    """``batches.meta``: the class names (index = label) and two counts.

    The names are the class names every later document holds (:class:`steps.schemas.DatasetManifest`,
    :class:`steps.schemas.EvalResult`), so they follow the same rule here: 1 to 256 characters, no name twice.
    """

    label_names: Annotated[list[schemas.Name], Field(min_length=CLASSES, max_length=CLASSES)]
    num_cases_per_batch: Annotated[int, Field(ge=0)] = 0
    num_vis: Annotated[int, Field(ge=0)] = PIXELS

    @field_validator("label_names")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"it names {name!r} twice")
        return names


def unpickle(raw: bytes, source: str) -> Any:
    """The object in the pickle ``raw``, resolving only the globals of CIFAR-10's format.

    Raises:
        DatasetError: the pickle asks for anything else, or is not a pickle.
    """
    try:
        _count_operations(raw)
        return _Restricted(io.BytesIO(raw), encoding="latin1").load()
    except _Refused as e:
        raise errors.DatasetError(f"{source} was refused unread: {e}", hint=_REMAKE) from e
    except Exception as e:  # hostile bytes: the unpickler may fail in any way, and each way is a refusal
        raise errors.DatasetError(f"{source} is not a CIFAR-10 batch file ({type(e).__name__})", hint=_REMAKE) from e


def _count_operations(raw: bytes) -> None:
    """Refuse a pickle of more operations than a CIFAR-10 file of :data:`MAX_IMAGES` images needs.

    The byte cap alone bounds memory badly: a one-byte operation can make a 64-byte object (an empty dict),
    so a 20 MB pickle of them takes 1.9 GB. A batch takes a few operations per image (a label, a file name, its
    memo entry) and one for all the pixels.
    """
    for count, _ in enumerate(pickletools.genops(raw), start=1):
        if count > MAX_OPERATIONS:
            raise _Refused(f"it holds more than {MAX_OPERATIONS} pickle operations ({OPERATIONS_PER_IMAGE} per image)")


_REMAKE = "re-create the dataset with `sharedvol data prepare` (or copy CIFAR-10's official files)"
_META_RULE = f"batches.meta must name {CLASSES} distinct classes of 1 to 256 characters; fix it or {_REMAKE}"


def read_file(path: Path, expect: schemas.DataFile | None, *, cap: int) -> tuple[bytes, schemas.DataFile]:
    """The bytes of one dataset file and its size and BLAKE3, within ``expect``'s size (else ``cap``), matching it.

    Raises:
        DatasetError: missing, not a regular file, too large, or not what the dataset's manifest says.
    """
    missing = f"run `sharedvol data prepare {path.parent.parent}` or point --data-root at CIFAR-10"
    try:
        raw = volread.read(str(path), cap=expect.size if expect else cap, hint=_REMAKE, missing_hint=missing)
    except errors.RunDirError as e:
        raise errors.DatasetError(e.message, hint=e.hint) from e
    if not raw:
        raise errors.DatasetError(f"{path} is empty", hint=_REMAKE)
    digest = blake3.blake3(raw).hexdigest()
    if expect is not None and (len(raw) != expect.size or digest != expect.blake3):
        raise errors.DatasetError(
            f"{path} is not the file the dataset's manifest names (size or digest differs)",
            hint="the dataset was changed after it was prepared; " + _REMAKE,
        )
    return raw, schemas.DataFile(size=len(raw), blake3=digest)


def read_batch(path: Path, expect: schemas.DataFile | None = None) -> tuple[CifarBatch, schemas.DataFile]:
    """A validated batch file, and its size and BLAKE3 digest.

    Raises:
        DatasetError: as :func:`read_file`, refused by the restricted unpickler, or not of CIFAR-10's shape.
    """
    raw, found = read_file(path, expect, cap=volread.BATCH_CAP)
    batch: CifarBatch = _validate(CifarBatch, unpickle(raw, str(path)), path)
    if batch.data.nbytes > len(raw):  # numpy's __setstate__ already ensures it; kept as the rule readers rely on
        raise errors.DatasetError(
            f"{path}: its data stands for {batch.data.nbytes} bytes of pixels in a file of {len(raw)}", hint=_REMAKE
        )
    return batch, found


def read_meta(path: Path, expect: schemas.DataFile | None = None) -> tuple[CifarMeta, schemas.DataFile]:
    """A validated ``batches.meta``, and its size and BLAKE3 digest.

    Raises:
        DatasetError: as :func:`read_batch`.
    """
    raw, found = read_file(path, expect, cap=volread.META_CAP)
    return _validate(CifarMeta, unpickle(raw, str(path)), path, hint=_META_RULE), found


def _validate(model: type[pydantic.BaseModel], obj: Any, path: Path, *, hint: str = _REMAKE) -> Any:
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise errors.DatasetError(f"{path} is not a CIFAR-10 batch file (no dict of names inside)", hint=_REMAKE)
    try:
        return model.model_validate(obj)
    except pydantic.ValidationError as e:
        first = e.errors(include_url=False)[0]
        rule = schemas.printable(first["msg"].removeprefix("Value error, "), 300)
        where = f"field {'.'.join(schemas.printable(str(p), 60) for p in first['loc'])}: " if first["loc"] else ""
        raise errors.DatasetError(f"{path}: {where}{rule}", hint=hint) from e
