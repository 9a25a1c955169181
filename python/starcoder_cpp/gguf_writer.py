"""A small streaming writer for GGUF version 3 files.

Only the standard library and numpy are used; the ``gguf`` package is not
needed to write files (the tests use it to read them back). The block-quantized
types (Q4_0 ... Q6_K) are encoded by the compiled core (``_core.quantize``),
imported only when such a type is written.

The writer works in two phases, because GGUF puts every tensor's description
(name, dims, type, offset) in the header, before any tensor data:

1. Describe the file: add metadata key/values (``add_uint32``, ``add_string``,
   ``add_array`` ...) and tensor infos (``add_tensor_info(name, shape, type)``,
   with ``shape`` in numpy order). Offsets are computed from the byte size that
   ``tensor_nbytes(type, shape)`` gives.
2. ``write_header()``, then the data of every tensor, in the order the infos were
   added: ``write_tensor(name, array)`` for a whole tensor, or
   ``begin_tensor(name)`` / ``write_chunk(array)`` ... / ``end_tensor()`` to
   stream one tensor in pieces. Each tensor's data is padded to the alignment.

Layout of a GGUF v3 file (all integers little-endian)::

    u32 magic "GGUF" | u32 version 3 | u64 tensor_count | u64 kv_count
    kv_count x  (string key, u32 value_type, value)
    tensor_count x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
    padding to the alignment
    tensor data, each tensor at ``offset`` from the start of this section

A string is a u64 byte length followed by UTF-8 bytes (no terminator). An array
is a u32 element type, a u64 count and the elements. GGUF dims are the numpy
shape reversed: ``ne[0]`` is the innermost (contiguous) dimension.

Tensor types: ``GGMLType`` holds ggml's type ids. ``TYPE_TRAITS`` gives each
type's (block size in elements, bytes per block) and ``ENCODERS`` maps a type to
a function that turns a float array into that type's bytes; a quantized type
slots in by adding one entry to each.
"""

from __future__ import annotations

import enum
import os
import struct
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "GGUF_MAGIC",
    "GGUF_VERSION",
    "GGUF_DEFAULT_ALIGNMENT",
    "GGMLType",
    "GGUFValueType",
    "GGUFWriter",
    "GGUFWriteError",
    "TYPE_TRAITS",
    "ENCODERS",
    "tensor_nbytes",
    "encode_tensor",
    "quantize_rows",
    "QUANTIZED_TYPES",
]

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
GGUF_DEFAULT_ALIGNMENT = 32


class GGUFWriteError(ValueError):
    """Misuse of the writer or a value that cannot be stored in GGUF."""


class GGMLType(enum.IntEnum):
    """ggml tensor type ids (the values are fixed by the file format)."""

    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    BF16 = 30


class GGUFValueType(enum.IntEnum):
    """Metadata value type ids."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# (elements per block, bytes per block) for each tensor type.
TYPE_TRAITS: Dict[GGMLType, Tuple[int, int]] = {
    GGMLType.F32: (1, 4),
    GGMLType.F16: (1, 2),
    GGMLType.BF16: (1, 2),
    GGMLType.Q4_0: (32, 2 + 16),
    GGMLType.Q4_1: (32, 2 + 2 + 16),
    GGMLType.Q5_0: (32, 2 + 4 + 16),
    GGMLType.Q5_1: (32, 2 + 2 + 4 + 16),
    GGMLType.Q8_0: (32, 2 + 32),
    GGMLType.Q8_1: (32, 2 + 2 + 32),
    GGMLType.Q2_K: (256, 16 + 64 + 2 + 2),
    GGMLType.Q3_K: (256, 32 + 64 + 12 + 2),
    GGMLType.Q4_K: (256, 2 + 2 + 12 + 128),
    GGMLType.Q5_K: (256, 2 + 2 + 12 + 32 + 128),
    GGMLType.Q6_K: (256, 128 + 64 + 16 + 2),
    GGMLType.Q8_K: (256, 4 + 256 + 2 * 16),
}

# struct format for each scalar value type
_SCALAR_FORMATS: Dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}

# numpy dtype of each numeric value type, used to pack numeric arrays in one go
_NUMPY_VALUE_DTYPES: Dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<u1",
    GGUFValueType.INT8: "<i1",
    GGUFValueType.UINT16: "<u2",
    GGUFValueType.INT16: "<i2",
    GGUFValueType.UINT32: "<u4",
    GGUFValueType.INT32: "<i4",
    GGUFValueType.FLOAT32: "<f4",
    GGUFValueType.BOOL: "u1",
    GGUFValueType.UINT64: "<u8",
    GGUFValueType.INT64: "<i8",
    GGUFValueType.FLOAT64: "<f8",
}

_INT_RANGES: Dict[GGUFValueType, Tuple[int, int]] = {
    GGUFValueType.UINT8: (0, 2**8 - 1),
    GGUFValueType.INT8: (-(2**7), 2**7 - 1),
    GGUFValueType.UINT16: (0, 2**16 - 1),
    GGUFValueType.INT16: (-(2**15), 2**15 - 1),
    GGUFValueType.UINT32: (0, 2**32 - 1),
    GGUFValueType.INT32: (-(2**31), 2**31 - 1),
    GGUFValueType.UINT64: (0, 2**64 - 1),
    GGUFValueType.INT64: (-(2**63), 2**63 - 1),
}


def _as_ggml_type(t: Union[int, GGMLType]) -> GGMLType:
    try:
        return GGMLType(int(t))
    except ValueError:
        raise GGUFWriteError(f"unknown ggml tensor type id {t!r}") from None


def tensor_nbytes(ggml_type: Union[int, GGMLType], shape: Sequence[int]) -> int:
    """Bytes that a tensor of ``shape`` (numpy order) takes when stored as ``ggml_type``.

    For block types the innermost dimension (``shape[-1]``, GGUF's ``ne[0]``)
    must be a multiple of the block size.
    """
    t = _as_ggml_type(ggml_type)
    if t not in TYPE_TRAITS:
        raise GGUFWriteError(f"no size information for tensor type {t.name}")
    block, type_size = TYPE_TRAITS[t]
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise GGUFWriteError(f"negative dimension in shape {tuple(dims)}")
    if not dims:  # a scalar is stored as a 1-element tensor
        dims = [1]
    if dims[-1] % block != 0:
        raise GGUFWriteError(
            f"type {t.name} needs the innermost dimension to be a multiple of {block}, "
            f"got shape {tuple(dims)}"
        )
    n_rows = 1
    for d in dims[:-1]:
        n_rows *= d
    return n_rows * (dims[-1] // block) * type_size


def _encode_f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype="<f4")


def _encode_f16(a: np.ndarray) -> np.ndarray:
    # numpy rounds to nearest, ties to even (same as ggml's F32 -> F16 conversion);
    # values beyond +-65504 become infinities (callers check and report that)
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(a, dtype="<f2")


def _encode_bf16(a: np.ndarray) -> np.ndarray:
    f = np.ascontiguousarray(a, dtype="<f4")
    u = f.view("<u4").astype(np.uint64)
    # round to nearest even on the 16 dropped bits; NaNs keep a quiet NaN payload
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    nan = np.isnan(f)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16) | 0x40).astype("<u2")
    return rounded


QUANTIZED_TYPES = (GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
                   GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K)


def quantize_rows(ggml_type: Union[int, GGMLType], array: np.ndarray, n_threads: int = 0) -> np.ndarray:
    """Quantize the rows (last axis) of a float array to a block type with the
    C++ core: bit-identical to llama.cpp without an importance matrix. The
    compiled extension is imported only here, so the writer itself stays pure
    Python."""
    t = _as_ggml_type(ggml_type)
    if t not in QUANTIZED_TYPES:
        raise GGUFWriteError(f"{t.name} is not a quantized weight type")
    try:
        from . import _core
    except ImportError:  # loaded outside the package (pure-Python tools)
        from starcoder_cpp import _core
    return _core.quantize(np.asarray(array, dtype=np.float32), t.name.lower(), int(n_threads))


# type -> function(float ndarray) -> contiguous ndarray whose bytes are the encoded data
ENCODERS: Dict[GGMLType, Callable[[np.ndarray], np.ndarray]] = {
    GGMLType.F32: _encode_f32,
    GGMLType.F16: _encode_f16,
    GGMLType.BF16: _encode_bf16,
}
for _t in QUANTIZED_TYPES:
    ENCODERS[_t] = (lambda t: lambda a: quantize_rows(t, a))(_t)
del _t


def encode_tensor(ggml_type: Union[int, GGMLType], array: np.ndarray, n_threads: int = 0) -> np.ndarray:
    """Encode ``array`` as ``ggml_type``; the result's raw bytes are the tensor data.
    ``n_threads`` is used by the quantized types (0: one per core)."""
    t = _as_ggml_type(ggml_type)
    if t in QUANTIZED_TYPES:
        return quantize_rows(t, array, n_threads)
    enc = ENCODERS.get(t)
    if enc is None:
        raise GGUFWriteError(f"no encoder for tensor type {t.name}")
    return enc(np.asarray(array))


def _pack_string(s: Union[str, bytes]) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _check_int(vtype: GGUFValueType, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise GGUFWriteError(f"{vtype.name} value must be an int, got {v!r}")
    lo, hi = _INT_RANGES[vtype]
    if not lo <= int(v) <= hi:
        raise GGUFWriteError(f"value {v} out of range for {vtype.name}")
    return int(v)


def _pack_scalar(vtype: GGUFValueType, v) -> bytes:
    if vtype == GGUFValueType.STRING:
        if not isinstance(v, (str, bytes)):
            raise GGUFWriteError(f"STRING value must be str, got {type(v).__name__}")
        return _pack_string(v)
    if vtype == GGUFValueType.BOOL:
        if not isinstance(v, (bool, np.bool_)):
            raise GGUFWriteError(f"BOOL value must be a bool, got {v!r}")
        return struct.pack("<?", bool(v))
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise GGUFWriteError(f"{vtype.name} value must be a number, got {v!r}")
        return struct.pack(_SCALAR_FORMATS[vtype], float(v))
    if vtype in _INT_RANGES:
        return struct.pack(_SCALAR_FORMATS[vtype], _check_int(vtype, v))
    raise GGUFWriteError(f"cannot pack a scalar of type {vtype.name}")


def _pack_array(elem_type: GGUFValueType, values) -> bytes:
    if elem_type == GGUFValueType.ARRAY:
        raise GGUFWriteError("nested arrays are not supported")
    head = struct.pack("<IQ", int(elem_type), len(values))
    if elem_type == GGUFValueType.STRING:
        parts = [head]
        for s in values:
            if not isinstance(s, (str, bytes)):
                raise GGUFWriteError(f"string array holds a non-string {s!r}")
            parts.append(_pack_string(s))
        return b"".join(parts)
    arr = np.asarray(values)
    if arr.ndim != 1 and len(values) > 0:
        raise GGUFWriteError("array values must be one-dimensional")
    if elem_type in _INT_RANGES and arr.size:
        if not np.issubdtype(arr.dtype, np.integer):
            raise GGUFWriteError(f"{elem_type.name} array must hold integers")
        lo, hi = _INT_RANGES[elem_type]
        if int(arr.min()) < lo or int(arr.max()) > hi:
            raise GGUFWriteError(f"array value out of range for {elem_type.name}")
    if elem_type == GGUFValueType.BOOL and arr.size and arr.dtype != np.bool_:
        raise GGUFWriteError("BOOL array must hold bools")
    return head + np.ascontiguousarray(arr, dtype=_NUMPY_VALUE_DTYPES[elem_type]).tobytes()


class _TensorInfo:
    __slots__ = ("name", "shape", "ggml_type", "nbytes", "offset")

    def __init__(self, name: str, shape: Tuple[int, ...], ggml_type: GGMLType, nbytes: int, offset: int):
        self.name = name
        self.shape = shape
        self.ggml_type = ggml_type
        self.nbytes = nbytes
        self.offset = offset


class GGUFWriter:
    """Streaming GGUF v3 writer. See the module docstring for the protocol.

    ``path`` may be a path or a binary file object opened for writing. With a
    path the file is created by ``write_header`` and closed by ``close``.
    """

    # states
    _DESCRIBING, _DATA, _CLOSED = range(3)

    def __init__(self, path_or_file, alignment: int = GGUF_DEFAULT_ALIGNMENT):
        if alignment <= 0 or alignment % 8 != 0:
            raise GGUFWriteError(f"alignment must be a positive multiple of 8, got {alignment}")
        self._target = path_or_file
        self._file = None
        self._own_file = False
        self.alignment = int(alignment)
        self._kv: Dict[str, bytes] = {}  # key -> packed (type + value)
        self._tensors: List[_TensorInfo] = []
        self._tensor_index: Dict[str, int] = {}
        self._data_size = 0
        self._state = self._DESCRIBING
        self._next_tensor = 0
        self._cur: Optional[_TensorInfo] = None
        self._cur_written = 0
        if self.alignment != GGUF_DEFAULT_ALIGNMENT:
            self.add_uint32("general.alignment", self.alignment)

    # ------------------------------------------------------------------ metadata
    def _add(self, key: str, packed_value_with_type: bytes) -> None:
        if self._state != self._DESCRIBING:
            raise GGUFWriteError("metadata must be added before write_header()")
        if not isinstance(key, str) or not key:
            raise GGUFWriteError(f"metadata key must be a non-empty string, got {key!r}")
        if key in self._kv:
            raise GGUFWriteError(f"duplicate metadata key {key!r}")
        self._kv[key] = packed_value_with_type

    def add_raw(self, key: str, packed_type_and_value: bytes) -> None:
        """Add a key whose value is already packed (u32 value type + value), e.g.
        copied verbatim from another GGUF file."""
        if not isinstance(packed_type_and_value, (bytes, bytearray)) or len(packed_type_and_value) < 4:
            raise GGUFWriteError(f"{key!r}: a packed value must be bytes starting with its u32 type")
        self._add(key, bytes(packed_type_and_value))

    def add_scalar(self, key: str, vtype: GGUFValueType, value) -> None:
        vtype = GGUFValueType(vtype)
        self._add(key, struct.pack("<I", int(vtype)) + _pack_scalar(vtype, value))

    def add_uint8(self, key: str, v: int) -> None:
        self.add_scalar(key, GGUFValueType.UINT8, v)

    def add_uint32(self, key: str, v: int) -> None:
        self.add_scalar(key, GGUFValueType.UINT32, v)

    def add_int32(self, key: str, v: int) -> None:
        self.add_scalar(key, GGUFValueType.INT32, v)

    def add_uint64(self, key: str, v: int) -> None:
        self.add_scalar(key, GGUFValueType.UINT64, v)

    def add_int64(self, key: str, v: int) -> None:
        self.add_scalar(key, GGUFValueType.INT64, v)

    def add_float32(self, key: str, v: float) -> None:
        self.add_scalar(key, GGUFValueType.FLOAT32, v)

    def add_float64(self, key: str, v: float) -> None:
        self.add_scalar(key, GGUFValueType.FLOAT64, v)

    def add_bool(self, key: str, v: bool) -> None:
        self.add_scalar(key, GGUFValueType.BOOL, v)

    def add_string(self, key: str, v: str) -> None:
        self.add_scalar(key, GGUFValueType.STRING, v)

    def add_array(self, key: str, elem_type: GGUFValueType, values) -> None:
        elem_type = GGUFValueType(elem_type)
        self._add(key, struct.pack("<I", int(GGUFValueType.ARRAY)) + _pack_array(elem_type, values))

    def add_string_array(self, key: str, values: Sequence[str]) -> None:
        self.add_array(key, GGUFValueType.STRING, values)

    def add_int32_array(self, key: str, values) -> None:
        self.add_array(key, GGUFValueType.INT32, values)

    def add_uint32_array(self, key: str, values) -> None:
        self.add_array(key, GGUFValueType.UINT32, values)

    def add_float32_array(self, key: str, values) -> None:
        self.add_array(key, GGUFValueType.FLOAT32, values)

    @property
    def keys(self) -> List[str]:
        return list(self._kv)

    # ------------------------------------------------------------------ tensors
    def add_tensor_info(self, name: str, shape: Sequence[int], ggml_type: Union[int, GGMLType]) -> int:
        """Declare a tensor (``shape`` in numpy order). Returns its byte size."""
        if self._state != self._DESCRIBING:
            raise GGUFWriteError("tensor infos must be added before write_header()")
        if not isinstance(name, str) or not name:
            raise GGUFWriteError(f"tensor name must be a non-empty string, got {name!r}")
        if len(name.encode("utf-8")) >= 64:
            # ggml's GGML_MAX_NAME is 64 including the terminator
            raise GGUFWriteError(f"tensor name {name!r} is longer than 63 bytes")
        if name in self._tensor_index:
            raise GGUFWriteError(f"duplicate tensor name {name!r}")
        t = _as_ggml_type(ggml_type)
        dims = tuple(int(d) for d in shape)
        if len(dims) == 0 or len(dims) > 4:
            raise GGUFWriteError(f"tensor {name!r}: need 1 to 4 dimensions, got shape {dims}")
        if any(d <= 0 for d in dims):
            raise GGUFWriteError(f"tensor {name!r}: dimensions must be positive, got shape {dims}")
        nbytes = tensor_nbytes(t, dims)
        info = _TensorInfo(name, dims, t, nbytes, self._data_size)
        self._data_size += self._pad(nbytes)
        self._tensor_index[name] = len(self._tensors)
        self._tensors.append(info)
        return nbytes

    def _pad(self, n: int) -> int:
        return (n + self.alignment - 1) // self.alignment * self.alignment

    @property
    def tensor_names(self) -> List[str]:
        return [t.name for t in self._tensors]

    @property
    def data_size(self) -> int:
        """Total size of the tensor data section, padding included."""
        return self._data_size

    # ------------------------------------------------------------------ writing
    def _header_bytes(self) -> bytes:
        parts = [
            GGUF_MAGIC,
            struct.pack("<IQQ", GGUF_VERSION, len(self._tensors), len(self._kv)),
        ]
        for key, packed in self._kv.items():
            parts.append(_pack_string(key))
            parts.append(packed)
        for t in self._tensors:
            ne = tuple(reversed(t.shape))
            parts.append(_pack_string(t.name))
            parts.append(struct.pack("<I", len(ne)))
            parts.append(struct.pack(f"<{len(ne)}Q", *ne))
            parts.append(struct.pack("<IQ", int(t.ggml_type), t.offset))
        head = b"".join(parts)
        return head + b"\x00" * (self._pad(len(head)) - len(head))

    def write_header(self) -> None:
        """Write magic, metadata and tensor infos; after this only tensor data may follow."""
        if self._state != self._DESCRIBING:
            raise GGUFWriteError("write_header() called twice")
        if isinstance(self._target, (str, bytes, os.PathLike)):
            self._file = open(self._target, "wb")
            self._own_file = True
        else:
            self._file = self._target
        self._file.write(self._header_bytes())
        self._state = self._DATA

    def begin_tensor(self, name: str) -> None:
        if self._state != self._DATA:
            raise GGUFWriteError("write_header() must be called before tensor data")
        if self._cur is not None:
            raise GGUFWriteError(f"tensor {self._cur.name!r} is still open")
        if self._next_tensor >= len(self._tensors):
            raise GGUFWriteError(f"tensor {name!r}: all declared tensors were already written")
        expected = self._tensors[self._next_tensor]
        if name != expected.name:
            raise GGUFWriteError(
                f"tensor data out of order: expected {expected.name!r}, got {name!r}"
            )
        self._cur = expected
        self._cur_written = 0

    def write_chunk(self, data) -> None:
        """Append raw bytes (an encoded ndarray or a bytes-like object) to the open tensor."""
        if self._cur is None:
            raise GGUFWriteError("write_chunk() without begin_tensor()")
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data)
            n = data.nbytes
            buf = memoryview(data.reshape(-1).view(np.uint8)) if n else b""
        else:
            buf = memoryview(data).cast("B")
            n = buf.nbytes
        if self._cur_written + n > self._cur.nbytes:
            raise GGUFWriteError(
                f"tensor {self._cur.name!r}: {self._cur_written + n} bytes written, "
                f"declared {self._cur.nbytes}"
            )
        if n:
            self._file.write(buf)
        self._cur_written += n

    def end_tensor(self) -> None:
        cur = self._cur
        if cur is None:
            raise GGUFWriteError("end_tensor() without begin_tensor()")
        if self._cur_written != cur.nbytes:
            raise GGUFWriteError(
                f"tensor {cur.name!r}: {self._cur_written} bytes written, declared {cur.nbytes}"
            )
        pad = self._pad(cur.nbytes) - cur.nbytes
        if pad:
            self._file.write(b"\x00" * pad)
        self._cur = None
        self._next_tensor += 1

    def write_tensor(self, name: str, data) -> None:
        """Write a whole tensor's already-encoded data (see ``encode_tensor``)."""
        self.begin_tensor(name)
        self.write_chunk(data)
        self.end_tensor()

    def write_tensor_chunks(self, name: str, chunks: Iterable) -> None:
        self.begin_tensor(name)
        for c in chunks:
            self.write_chunk(c)
        self.end_tensor()

    def close(self) -> None:
        """Finish the file. Fails if some declared tensor was not written."""
        if self._state == self._CLOSED:
            return
        if self._state == self._DESCRIBING:
            self.write_header()
        try:
            if self._cur is not None:
                raise GGUFWriteError(f"tensor {self._cur.name!r} was not finished")
            if self._next_tensor != len(self._tensors):
                missing = [t.name for t in self._tensors[self._next_tensor:]]
                raise GGUFWriteError(
                    f"{len(missing)} declared tensor(s) were not written, first {missing[0]!r}"
                )
            self._file.flush()
        finally:
            self._state = self._CLOSED
            if self._own_file and self._file is not None:
                self._file.close()

    def abort(self) -> None:
        """Close the file without the completeness checks (used on errors)."""
        self._state = self._CLOSED
        if self._own_file and self._file is not None:
            self._file.close()

    def __enter__(self) -> "GGUFWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
