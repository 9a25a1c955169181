"""Read ``*.safetensors`` checkpoints with memory maps, one tensor at a time.

A safetensors file is::

    u64 N (little-endian) | N bytes of JSON header | raw tensor data

The header maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets relative to the start of the data section) and may hold a
``"__metadata__"`` object of string -> string. Data is little-endian, row-major.

Every tensor is mapped on its own when it is read, and the map is released when
the returned array is dropped, so reading a checkpoint tensor by tensor keeps
resident memory near the size of one tensor.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

__all__ = [
    "SafetensorsError",
    "TensorInfo",
    "SafetensorsFile",
    "SafetensorsCheckpoint",
    "bf16_to_float32",
    "find_safetensors_files",
    "release_pages",
]

PathLike = Union[str, os.PathLike]

# safetensors dtype -> (numpy dtype used to view the raw bytes, bytes per element)
# BF16 is viewed as uint16; ``bf16_to_float32`` widens it.
_DTYPES: Dict[str, Tuple[str, int]] = {
    "F64": ("<f8", 8),
    "F32": ("<f4", 4),
    "F16": ("<f2", 2),
    "BF16": ("<u2", 2),
    "I64": ("<i8", 8),
    "I32": ("<i4", 4),
    "I16": ("<i2", 2),
    "I8": ("i1", 1),
    "U64": ("<u8", 8),
    "U32": ("<u4", 4),
    "U16": ("<u2", 2),
    "U8": ("u1", 1),
    "BOOL": ("?", 1),
}

FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")

# A header bigger than this is certainly not a real safetensors header
# (the reference implementation refuses > 100 MB as well).
_MAX_HEADER = 100 * 1024 * 1024
_MAX_DIMS = 16
_MAX_EXTENT = 1 << 48  # elements, zero dimensions counted as 1


class SafetensorsError(ValueError):
    """A malformed or unreadable safetensors file or index."""


def bf16_to_float32(u16: np.ndarray) -> np.ndarray:
    """Widen raw bfloat16 bits (a uint16 array) to float32, exactly."""
    u16 = np.asarray(u16)
    if u16.dtype.itemsize != 2:
        raise TypeError(f"expected 16-bit raw bfloat16 data, got {u16.dtype}")
    wide = u16.view("<u2").astype("<u4")
    wide <<= 16  # in place: no second temporary
    return wide.view("<f4")


def _mapping_of(arr: np.ndarray) -> Optional[mmap.mmap]:
    base = arr
    while base is not None:
        if isinstance(base, mmap.mmap):
            return base
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return None


def release_pages(consumed: np.ndarray) -> None:
    """Let the kernel drop the resident pages of a memory-mapped tensor (from
    ``SafetensorsFile.raw``) up to the end of ``consumed``, a slice of it that
    has been read. Reading the data again just faults it back in from the page
    cache. Does nothing for arrays that are not memory-mapped."""
    mm = _mapping_of(consumed)
    if (
        mm is None
        or consumed.size == 0
        or not consumed.flags.c_contiguous
        or not hasattr(mm, "madvise")
        or not hasattr(mmap, "MADV_DONTNEED")
    ):
        return
    start = np.frombuffer(mm, dtype=np.uint8, count=1).__array_interface__["data"][0]
    hi = consumed.__array_interface__["data"][0] + consumed.nbytes
    end = (hi - start) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > 0:
        try:
            mm.madvise(mmap.MADV_DONTNEED, 0, end)
        except (OSError, ValueError):
            pass


class TensorInfo:
    """Where one tensor lives: file, dtype, numpy-order shape and byte range."""

    __slots__ = ("name", "dtype", "shape", "begin", "end", "file")

    def __init__(self, name: str, dtype: str, shape: Tuple[int, ...], begin: int, end: int, file: "SafetensorsFile"):
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.begin = begin
        self.end = end
        self.file = file

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __repr__(self) -> str:
        return f"TensorInfo({self.name!r}, {self.dtype}, {self.shape}, file={self.file.path.name!r})"


class SafetensorsFile:
    """One ``.safetensors`` file. The header is read and checked on open."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            raise SafetensorsError(f"{self.path}: no such file") from None
        if size < 8:
            raise SafetensorsError(f"{self.path}: file is {size} bytes, too short for a safetensors header")
        with open(self.path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n == 0 or n > size - 8 or n > _MAX_HEADER:
                raise SafetensorsError(
                    f"{self.path}: header length {n} is invalid for a {size}-byte file "
                    "(not a safetensors file, or truncated)"
                )
            raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{self.path}: header is not valid UTF-8 JSON ({e})") from None
        if not isinstance(header, dict):
            raise SafetensorsError(f"{self.path}: header must be a JSON object")
        self.data_start = 8 + n
        self.data_size = size - self.data_start
        meta = header.pop("__metadata__", None)
        if meta is not None and not (
            isinstance(meta, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
        ):
            raise SafetensorsError(f"{self.path}: __metadata__ must map strings to strings")
        self.metadata: Dict[str, str] = dict(meta or {})
        self._infos: Dict[str, TensorInfo] = {}
        spans = []
        for name, entry in header.items():
            info = self._check_entry(name, entry)
            self._infos[name] = info
            if info.nbytes:
                spans.append((info.begin, info.end, name))
        spans.sort()
        for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
            if b1 < e0:
                raise SafetensorsError(f"{self.path}: tensors {n0!r} and {n1!r} overlap")

    def _check_entry(self, name: str, entry) -> TensorInfo:
        where = f"{self.path}: tensor {name!r}"
        if not isinstance(entry, dict):
            raise SafetensorsError(f"{where}: entry must be an object")
        dtype = entry.get("dtype")
        shape = entry.get("shape")
        offsets = entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in _DTYPES:  # a list or dict is not even hashable
            raise SafetensorsError(f"{where}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise SafetensorsError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
        # An empty tensor passes the byte count whatever its other dimensions,
        # and numpy refuses more than 64 dimensions or an extent above 2^63
        # bytes even for an array with no elements (found by fuzz_safetensors.py).
        extent = 1
        for d in shape:
            extent *= max(d, 1)
        if len(shape) > _MAX_DIMS or extent > _MAX_EXTENT:
            raise SafetensorsError(f"{where}: shape {shape!r} has more than {_MAX_DIMS} dimensions or spans "
                                   f"more than {_MAX_EXTENT} elements")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise SafetensorsError(f"{where}: data_offsets must be [begin, end], got {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= self.data_size:
            raise SafetensorsError(
                f"{where}: data_offsets [{begin}, {end}] out of bounds of the "
                f"{self.data_size}-byte data section (file truncated?)"
            )
        numel = 1
        for d in shape:
            numel *= d
        itemsize = _DTYPES[dtype][1]
        if numel * itemsize != end - begin:
            raise SafetensorsError(
                f"{where}: shape {shape} x {itemsize} bytes ({dtype}) = {numel * itemsize} bytes, "
                f"but data_offsets span {end - begin} bytes"
            )
        return TensorInfo(name, dtype, tuple(shape), begin, end, self)

    # ----------------------------------------------------------------- queries
    def keys(self) -> List[str]:
        return list(self._infos)

    def __contains__(self, name: str) -> bool:
        return name in self._infos

    def __len__(self) -> int:
        return len(self._infos)

    def info(self, name: str) -> TensorInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor {name!r}") from None

    # ----------------------------------------------------------------- data
    def raw(self, name: str) -> np.ndarray:
        """The tensor as stored, read-only and memory-mapped (BF16 as uint16 bits).

        The mapping covers only this tensor and is released when the array
        (and every view of it) is dropped.
        """
        info = self.info(name)
        np_dtype = np.dtype(_DTYPES[info.dtype][0])
        if info.nbytes == 0:
            return np.zeros(info.shape, dtype=np_dtype)
        start = self.data_start + info.begin
        base = start - start % mmap.ALLOCATIONGRANULARITY
        length = self.data_start + info.end - base
        with open(self.path, "rb") as f:
            mm = mmap.mmap(f.fileno(), length, access=mmap.ACCESS_READ, offset=base)
        arr = np.frombuffer(mm, dtype=np_dtype, count=info.numel, offset=start - base)
        return arr.reshape(info.shape)

    def float32(self, name: str) -> np.ndarray:
        """The tensor as float32 (a new array; F32 is copied out of the map)."""
        return to_float32(self.raw(name), self.info(name).dtype)


def to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Convert raw stored data of safetensors ``dtype`` to float32."""
    if dtype == "BF16":
        return bf16_to_float32(raw)
    if dtype in ("F32", "F16", "F64"):
        return np.asarray(raw, dtype=np.float32)
    raise SafetensorsError(f"dtype {dtype} is not a floating-point type")


def find_safetensors_files(directory: PathLike) -> Tuple[List[Path], Optional[Dict[str, str]]]:
    """The safetensors files of a checkpoint directory and, if sharded with an
    index, its weight map (tensor name -> file name).

    ``model.safetensors.index.json`` is used when present; otherwise every
    ``*.safetensors`` file in the directory (sorted by name) is taken.
    """
    d = Path(directory)
    index = d / "model.safetensors.index.json"
    if index.is_file():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{index}: not valid JSON ({e})") from None
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise SafetensorsError(f"{index}: missing or empty 'weight_map'")
        files = []
        for name, fname in weight_map.items():
            if not isinstance(fname, str) or "/" in fname or "\\" in fname or fname in ("", ".", ".."):
                raise SafetensorsError(f"{index}: bad file name {fname!r} for tensor {name!r}")
            if fname not in files:
                files.append(fname)
        missing = [f for f in files if not (d / f).is_file()]
        if missing:
            raise SafetensorsError(
                f"{index} lists shard(s) that are not in {d}: {', '.join(missing)}"
            )
        return [d / f for f in sorted(files)], dict(weight_map)
    files = sorted(p for p in d.glob("*.safetensors") if p.is_file())
    return files, None


class SafetensorsCheckpoint:
    """All tensors of a (possibly sharded) safetensors checkpoint directory, by name."""

    def __init__(self, directory: PathLike):
        self.directory = Path(directory)
        paths, weight_map = find_safetensors_files(self.directory)
        if not paths:
            raise SafetensorsError(f"{self.directory}: no *.safetensors files")
        self.files = [SafetensorsFile(p) for p in paths]
        self._where: Dict[str, SafetensorsFile] = {}
        for f in self.files:
            for name in f.keys():
                if name in self._where:
                    raise SafetensorsError(
                        f"tensor {name!r} is stored twice: in {self._where[name].path.name} and {f.path.name}"
                    )
                self._where[name] = f
        if weight_map is not None:
            for name, fname in weight_map.items():
                f = self._where.get(name)
                if f is None:
                    raise SafetensorsError(
                        f"index lists tensor {name!r} in {fname}, but no shard contains it"
                    )
                if f.path.name != fname:
                    raise SafetensorsError(
                        f"index lists tensor {name!r} in {fname}, but it is in {f.path.name}"
                    )

    def keys(self) -> List[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def info(self, name: str) -> TensorInfo:
        f = self._where.get(name)
        if f is None:
            raise KeyError(f"{self.directory}: no tensor {name!r}")
        return f.info(name)

    def raw(self, name: str) -> np.ndarray:
        return self.info(name).file.raw(name)

    def float32(self, name: str) -> np.ndarray:
        return self.info(name).file.float32(name)
