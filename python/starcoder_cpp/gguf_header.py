"""A GGUF file's header: its metadata (typed values, in file order) and its
tensor table, without touching the tensor data.

Why not gguf-py's ``GGUFReader``: it builds numpy views for every element
of every metadata array, and a StarCoder vocabulary is two arrays of ~49k
strings. Measured on the demo model (2 shared cores, 2026-12-01): GGUFReader
took 5-7 s and added 158 MB of resident memory; this reader 0.3 s and 12 MB.
The vocabulary is the same for every StarCoder size, so that cost would
come with every ``quantize`` and ``bench`` call. The type ids and sizes used
here are gguf-py's.

This reader trusts the structure only as far as it needs to decode it: a
truncated or malformed header raises ``GGUFHeaderError``. Full validation is
the C++ reader's (``starcoder_cpp.inspect_gguf``).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
from gguf import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUFValueType, Keys

from .ggml_types import GGMLType, tensor_nbytes

__all__ = ["GGUFHeaderError", "GGUFField", "GGUFTensorInfo", "GGUFHeader", "read_gguf_header"]

PathLike = Union[str, os.PathLike]


class GGUFHeaderError(ValueError):
    """The file is not a GGUF file, or its header is cut short or malformed."""


# value type -> (struct format, numpy dtype for arrays)
_SCALARS: Dict[GGUFValueType, Tuple[str, str]] = {
    GGUFValueType.UINT8: ("<B", "<u1"),
    GGUFValueType.INT8: ("<b", "<i1"),
    GGUFValueType.UINT16: ("<H", "<u2"),
    GGUFValueType.INT16: ("<h", "<i2"),
    GGUFValueType.UINT32: ("<I", "<u4"),
    GGUFValueType.INT32: ("<i", "<i4"),
    GGUFValueType.FLOAT32: ("<f", "<f4"),
    GGUFValueType.BOOL: ("<?", "?"),
    GGUFValueType.UINT64: ("<Q", "<u8"),
    GGUFValueType.INT64: ("<q", "<i8"),
    GGUFValueType.FLOAT64: ("<d", "<f8"),
}


@dataclass
class GGUFField:
    """One metadata key/value. Strings that are not valid UTF-8 stay bytes."""

    key: str
    type: GGUFValueType
    value: Any  # a scalar, a str, or a list for arrays
    sub_type: Optional[GGUFValueType]  # element type of an array
    raw: bytes  # the value as stored: u32 type + data


@dataclass
class GGUFTensorInfo:
    name: str
    ne: Tuple[int, ...]  # GGUF order: ne[0] is the row length
    ggml_type: GGMLType
    offset: int  # from the start of the data section

    @property
    def shape(self) -> Tuple[int, ...]:
        """numpy order"""
        return tuple(reversed(self.ne))

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.ne:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.ggml_type, self.shape)


@dataclass
class GGUFHeader:
    version: int
    fields: Dict[str, GGUFField]  # in file order
    tensors: List[GGUFTensorInfo]
    alignment: int
    data_start: int  # file offset of the data section

    def get(self, key: str, default=None):
        f = self.fields.get(key)
        return default if f is None else f.value


class _Cursor:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFHeaderError("truncated GGUF header")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return bytes(b)

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> Union[str, bytes]:
        b = self.take(self.unpack("<Q"))
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return b


def _value_type(v: int) -> GGUFValueType:
    try:
        return GGUFValueType(v)
    except ValueError:
        raise GGUFHeaderError(f"unknown GGUF value type {v}") from None


def _read_value(c: _Cursor, vtype: GGUFValueType) -> Tuple[Any, Optional[GGUFValueType]]:
    if vtype in _SCALARS:
        return c.unpack(_SCALARS[vtype][0]), None
    if vtype == GGUFValueType.STRING:
        return c.string(), None
    if vtype == GGUFValueType.ARRAY:
        etype = _value_type(c.unpack("<I"))
        count = c.unpack("<Q")
        if etype in _SCALARS:
            dtype = np.dtype(_SCALARS[etype][1])
            return np.frombuffer(c.take(dtype.itemsize * count), dtype=dtype).tolist(), etype
        if etype == GGUFValueType.STRING:
            return [c.string() for _ in range(count)], etype
        raise GGUFHeaderError("nested GGUF arrays are not supported")
    raise GGUFHeaderError(f"unknown GGUF value type {vtype}")


def read_gguf_header(path: PathLike) -> GGUFHeader:
    """Metadata and tensor table of the GGUF file at ``path``."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        c = _Cursor(mm)
        try:
            if struct.unpack("<I", c.take(4))[0] != GGUF_MAGIC:
                raise GGUFHeaderError("not a GGUF file")
            version = c.unpack("<I")
            n_tensors, n_kv = c.unpack("<Q"), c.unpack("<Q")
            fields: Dict[str, GGUFField] = {}
            for _ in range(n_kv):
                key = c.string()
                start = c.pos
                vtype = _value_type(c.unpack("<I"))
                value, sub_type = _read_value(c, vtype)
                fields[str(key)] = GGUFField(str(key), vtype, value, sub_type, bytes(mm[start:c.pos]))
            tensors: List[GGUFTensorInfo] = []
            for _ in range(n_tensors):
                name = str(c.string())
                n_dims = c.unpack("<I")
                ne = tuple(c.unpack("<Q") for _ in range(n_dims))
                ttype = c.unpack("<I")
                offset = c.unpack("<Q")
                try:
                    tensors.append(GGUFTensorInfo(name, ne, GGMLType(ttype), offset))
                except ValueError:
                    raise GGUFHeaderError(f"tensor {name!r} has an unknown ggml type {ttype}") from None
        except GGUFHeaderError as e:
            raise GGUFHeaderError(f"{path}: {e}") from None
    alignment = fields[Keys.General.ALIGNMENT].value if Keys.General.ALIGNMENT in fields else GGUF_DEFAULT_ALIGNMENT
    if not isinstance(alignment, int) or alignment <= 0:
        raise GGUFHeaderError(f"{path}: bad general.alignment {alignment!r}")
    data_start = (c.pos + alignment - 1) // alignment * alignment
    return GGUFHeader(version, fields, tensors, alignment, data_start)
