"""Re-quantize a GGUF model file (``starcoder-cpp quantize IN.gguf OUT.gguf --type q4_k_m``).

The input is an F32/F16/BF16 GPT-BigCode GGUF (from this project's converter
or llama.cpp's). The output has the same metadata (with ``general.file_type``
set to the preset's llama.cpp number and ``general.quantization_version`` 2,
as llama-quantize writes them),
the same tensors in the same order, and per-tensor types and bytes identical to
what llama.cpp's ``llama-quantize`` writes for the same preset (no importance
matrix).

It streams: one tensor at a time, converted in row chunks from a memory map of
the input, so memory stays near one chunk whatever the model size::

    from starcoder_cpp.quantize import quantize_gguf
    quantize_gguf("model-f16.gguf", "model-q4_k_m.gguf", "q4_k_m")
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .gguf_writer import GGMLType, GGUFWriter, QUANTIZED_TYPES, TYPE_TRAITS, encode_tensor
from .quant_presets import PRESETS, QuantPlanError, normalize_preset, plan_tensor_types

__all__ = ["QuantizeError", "quantize_gguf", "read_gguf_header", "GGML_QNT_VERSION"]

PathLike = Union[str, os.PathLike]

GGML_QNT_VERSION = 2

# Elements converted per chunk (bounds the float32 buffer).
_CHUNK_ELEMS = 1 << 22


class QuantizeError(ValueError):
    """The input cannot be quantized (not a GGUF model we know, bad type...)."""


# ----------------------------------------------------------------------------
# a minimal GGUF header reader that keeps every metadata value's raw bytes
# ----------------------------------------------------------------------------

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_SCALAR_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass
class GGUFTensorInfo:
    name: str
    ne: Tuple[int, ...]  # GGUF order: ne[0] is the row length
    ggml_type: int
    offset: int          # relative to the data section

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


@dataclass
class GGUFHeader:
    version: int
    kv: List[Tuple[str, bytes, object]]  # key, packed (u32 type + value), decoded value (None for arrays)
    tensors: List[GGUFTensorInfo]
    alignment: int
    data_start: int

    def get(self, key: str, default=None):
        for k, _, v in self.kv:
            if k == key:
                return v
        return default


class _Cursor:
    def __init__(self, buf, pos: int = 0):
        self.buf = buf
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise QuantizeError("truncated GGUF header")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return bytes(b)

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u64()).decode("utf-8", errors="replace")


def _skip_value(c: _Cursor, vtype: int) -> object:
    if vtype in _SCALAR_SIZES:
        return struct.unpack(_SCALAR_FMT[vtype], c.take(_SCALAR_SIZES[vtype]))[0]
    if vtype == _STRING:
        return c.string()
    if vtype == _ARRAY:
        etype, count = c.u32(), c.u64()
        if etype in _SCALAR_SIZES:
            c.take(_SCALAR_SIZES[etype] * count)
        elif etype == _STRING:
            for _ in range(count):
                c.take(c.u64())
        else:
            raise QuantizeError(f"unsupported GGUF array element type {etype}")
        return None
    raise QuantizeError(f"unknown GGUF value type {vtype}")


def read_gguf_header(path: PathLike) -> GGUFHeader:
    """Metadata (with each value's raw bytes, for copying) and tensor table of a GGUF file.
    The file is first validated by the C++ reader (``inspect_gguf``), which
    raises GGUFError for anything malformed."""
    from . import _core

    _core.inspect_gguf(str(path))
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        c = _Cursor(mm)
        if c.take(4) != b"GGUF":
            raise QuantizeError(f"{path}: not a GGUF file")
        version = c.u32()
        n_tensors, n_kv = c.u64(), c.u64()
        kv: List[Tuple[str, bytes, object]] = []
        for _ in range(n_kv):
            key = c.string()
            start = c.pos
            vtype = c.u32()
            value = _skip_value(c, vtype)
            kv.append((key, bytes(mm[start:c.pos]), value))
        tensors: List[GGUFTensorInfo] = []
        for _ in range(n_tensors):
            name = c.string()
            n_dims = c.u32()
            ne = tuple(c.u64() for _ in range(n_dims))
            ttype = c.u32()
            offset = c.u64()
            tensors.append(GGUFTensorInfo(name, ne, ttype, offset))
        alignment = 32
        for k, _, v in kv:
            if k == "general.alignment" and isinstance(v, int):
                alignment = v
        data_start = (c.pos + alignment - 1) // alignment * alignment
    finally:
        mm.close()
    return GGUFHeader(version, kv, tensors, alignment, data_start)


# ----------------------------------------------------------------------------
# quantization
# ----------------------------------------------------------------------------


def _nbytes(t: GGUFTensorInfo) -> int:
    block, size = TYPE_TRAITS[GGMLType(t.ggml_type)]
    return t.n_elements // block * size


def _to_float32(raw: np.ndarray, ggml_type: GGMLType, shape: Tuple[int, int]) -> np.ndarray:
    """Rows of stored data (uint8 bytes) as float32 [rows, n]."""
    if ggml_type == GGMLType.F32:
        return raw.view("<f4").reshape(shape)
    if ggml_type == GGMLType.F16:
        return raw.view("<f2").reshape(shape).astype(np.float32)
    if ggml_type == GGMLType.BF16:
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    from . import _core

    return _core.dequantize(raw, ggml_type.name.lower(), list(shape))


def _release(mm: mmap.mmap, end: int) -> None:
    """Drop the input's resident pages below `end` (already consumed)."""
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        end = end // mmap.PAGESIZE * mmap.PAGESIZE
        if end > 0:
            try:
                mm.madvise(mmap.MADV_DONTNEED, 0, end)
            except (OSError, ValueError):
                pass


def quantize_gguf(
    in_path: PathLike,
    out_path: PathLike,
    preset: str,
    n_threads: int = 0,
    allow_requantize: bool = False,
    progress: bool = False,
) -> dict:
    """Quantize the GGUF model at ``in_path`` with a llama.cpp preset
    (``"q4_k_m"``, ``"q8_0"``, ...) and write ``out_path``. Returns a summary.

    Tensors that are already block-quantized are copied when their target type
    is the same; otherwise they are only re-quantized (dequantize, quantize)
    with ``allow_requantize=True``, as llama-quantize's ``--allow-requantize``.
    """
    t0 = time.monotonic()
    try:
        preset = normalize_preset(preset)
    except QuantPlanError as e:
        raise QuantizeError(str(e)) from None
    src = Path(in_path)
    out = Path(out_path)
    if not src.is_file():
        raise QuantizeError(f"input file not found: {src}")
    if out.exists() and out.resolve() == src.resolve():
        raise QuantizeError("the output file must not be the input file")
    head = read_gguf_header(src)
    arch = head.get("general.architecture")
    if arch != "starcoder":
        raise QuantizeError(f"{src}: general.architecture is {arch!r}; this quantizer handles 'starcoder' models")
    n_layer = head.get("starcoder.block_count")
    n_head = head.get("starcoder.attention.head_count")
    n_head_kv = head.get("starcoder.attention.head_count_kv", n_head)
    if not all(isinstance(v, int) and v > 0 for v in (n_layer, n_head, n_head_kv)):
        raise QuantizeError(f"{src}: missing or bad starcoder.block_count / attention.head_count(_kv)")
    for t in head.tensors:
        try:
            GGMLType(t.ggml_type)
        except ValueError:
            raise QuantizeError(f"{src}: tensor {t.name!r} has a type ({t.ggml_type}) this quantizer cannot read") from None

    try:
        types = plan_tensor_types(
            [(t.name, t.ne, GGMLType(t.ggml_type)) for t in head.tensors], preset, n_layer, n_head, n_head_kv
        )
    except QuantPlanError as e:
        raise QuantizeError(f"{src}: {e}") from None
    for t in head.tensors:
        cur, new = GGMLType(t.ggml_type), types[t.name]
        if cur in QUANTIZED_TYPES and new != cur and not allow_requantize:
            raise QuantizeError(
                f"{src}: tensor {t.name!r} is already quantized ({cur.name.lower()}); re-quantizing it to "
                f"{new.name.lower()} loses quality -- pass allow_requantize=True (--allow-requantize) to do it anyway"
            )

    file_type = PRESETS[preset][1]
    tmp = out.with_name(out.name + ".part")
    writer = GGUFWriter(tmp, alignment=head.alignment)
    f = open(src, "rb")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    size_in = src.stat().st_size
    try:
        seen_qv = False
        for key, packed, _ in head.kv:
            if key == "general.alignment":
                continue  # the writer adds it (same value)
            if key == "general.file_type":
                writer.add_uint32(key, file_type)
            elif key == "general.quantization_version":
                writer.add_uint32(key, GGML_QNT_VERSION)
                seen_qv = True
            else:
                writer.add_raw(key, packed)
        if "general.file_type" not in [k for k, _, _ in head.kv]:
            writer.add_uint32("general.file_type", file_type)
        if not seen_qv:  # llama-quantize always writes it, whatever the type
            writer.add_uint32("general.quantization_version", GGML_QNT_VERSION)
        for t in head.tensors:
            writer.add_tensor_info(t.name, t.shape, types[t.name])
        writer.write_header()

        done = 0
        for t in head.tensors:
            cur, new = GGMLType(t.ggml_type), types[t.name]
            start = head.data_start + t.offset
            nbytes = _nbytes(t)
            if start + nbytes > size_in:
                raise QuantizeError(f"{src}: tensor {t.name!r} runs past the end of the file")
            writer.begin_tensor(t.name)
            if new == cur:
                for a in range(0, nbytes, 1 << 24):
                    writer.write_chunk(memoryview(mm)[start + a:start + min(nbytes, a + (1 << 24))])
            else:
                n = t.ne[0]
                rows = t.n_elements // n
                row_bytes = nbytes // rows
                per = max(1, _CHUNK_ELEMS // n)
                for r in range(0, rows, per):
                    k = min(per, rows - r)
                    raw = np.frombuffer(mm, dtype=np.uint8, count=k * row_bytes, offset=start + r * row_bytes)
                    x = _to_float32(raw, cur, (k, n))
                    writer.write_chunk(encode_tensor(new, x, n_threads))
                    del raw, x
            writer.end_tensor()
            _release(mm, start + nbytes)
            done += 1
            if progress:
                sys.stderr.write(f"\r[{done}/{len(head.tensors)}] {t.name:<40} {cur.name:>5} -> {new.name:<5}")
                sys.stderr.flush()
        writer.close()
        if progress:
            sys.stderr.write("\n")
        os.replace(tmp, out)
    except BaseException:
        writer.abort()
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    finally:
        try:
            mm.close()
        except BufferError:  # a chunk view still alive in an exception's traceback
            pass
        f.close()

    counts: Dict[str, int] = {}
    for t in head.tensors:
        counts[types[t.name].name.lower()] = counts.get(types[t.name].name.lower(), 0) + 1
    return {
        "path": str(out),
        "preset": preset,
        "file_type": file_type,
        "input_size": size_in,
        "file_size": out.stat().st_size,
        "n_tensors": len(head.tensors),
        "tensor_types": counts,
        "seconds": time.monotonic() - t0,
    }
