"""Re-quantize a GGUF model file (``starcoder-cpp quantize IN.gguf OUT.gguf --type q4_k_m``).

The input is an F32/F16/BF16 GPT-BigCode GGUF (from this project's converter
or llama.cpp's). The output has the same metadata (with ``general.file_type``
set to the preset's llama.cpp number and ``general.quantization_version`` 2,
as llama-quantize writes them),
the same tensors in the same order, and per-tensor types and bytes identical to
what llama.cpp's ``llama-quantize`` writes for the same preset (no importance
matrix).

It streams: one tensor at a time, converted in row chunks from a memory map of
the input and written through gguf-py's writer (``gguf_output``), so memory
stays near one chunk whatever the model size::

    from starcoder_cpp.quantize import quantize_gguf
    quantize_gguf("model-f16.gguf", "model-q4_k_m.gguf", "q4_k_m")
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path
from typing import Dict, Iterator, Union

import numpy as np
from gguf import GGML_QUANT_VERSION, Keys

from .ggml_types import GGMLType, QUANTIZED_TYPES, encode, to_float32
from .gguf_header import GGUFHeader, GGUFTensorInfo, read_gguf_header
from .gguf_output import GGUFOutput, checked_threads as _checked_threads, output_path_problem
from .progress import progress_bar
from .quant_presets import PRESETS, QuantPlanError, normalize_preset, plan_tensor_types

__all__ = ["QuantizeError", "quantize_gguf"]

PathLike = Union[str, os.PathLike]

# Elements converted per chunk (bounds the float32 buffer).
_CHUNK_ELEMS = 1 << 22

# Bytes per chunk when a tensor is copied unchanged.
_COPY_CHUNK = 1 << 24

# The types a tensor can be converted from (others are only copied).
_READABLE = (GGMLType.F32, GGMLType.F16, GGMLType.BF16) + QUANTIZED_TYPES


class QuantizeError(ValueError):
    """The input cannot be quantized (not a GGUF model we know, bad type...)."""


def _release(mm: mmap.mmap, end: int) -> None:
    """Drop the input's resident pages below `end` (already consumed)."""
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        end = end // mmap.PAGESIZE * mmap.PAGESIZE
        if end > 0:
            try:
                mm.madvise(mmap.MADV_DONTNEED, 0, end)
            except (OSError, ValueError):
                pass


def _copy_metadata(head: GGUFHeader, writer, file_type: int, src: Path) -> None:
    """Every key of the input in its order, with general.file_type and
    general.quantization_version set as llama-quantize sets them."""
    for key, f in head.fields.items():
        if key in (Keys.General.ARCHITECTURE, Keys.General.ALIGNMENT):
            continue  # the writer holds both (same values)
        if key == Keys.General.FILE_TYPE:
            writer.add_file_type(file_type)
        elif key == Keys.General.QUANTIZATION_VERSION:
            writer.add_quantization_version(GGML_QUANT_VERSION)
        elif f.sub_type is not None and not f.value:
            raise QuantizeError(f"{src}: metadata key {key!r} is an empty array, which gguf-py cannot write")
        else:
            writer.add_key_value(key, f.value, f.type, sub_type=f.sub_type)
    if Keys.General.FILE_TYPE not in head.fields:
        writer.add_file_type(file_type)
    if Keys.General.QUANTIZATION_VERSION not in head.fields:  # llama-quantize always writes it
        writer.add_quantization_version(GGML_QUANT_VERSION)


def _tensor_chunks(mm: mmap.mmap, start: int, t: GGUFTensorInfo, new: GGMLType, n_threads: int) -> Iterator:
    cur = t.ggml_type
    nbytes = t.nbytes
    if new == cur:
        for a in range(0, nbytes, _COPY_CHUNK):
            yield memoryview(mm)[start + a:start + min(nbytes, a + _COPY_CHUNK)]
        return
    n = t.ne[0]
    rows = t.n_elements // n
    row_bytes = nbytes // rows
    per = max(1, _CHUNK_ELEMS // n)
    for r in range(0, rows, per):
        k = min(per, rows - r)
        raw = np.frombuffer(mm, dtype=np.uint8, count=k * row_bytes, offset=start + r * row_bytes)
        yield encode(new, to_float32(raw, cur, (k, n)), n_threads)


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
    problem = output_path_problem(out, [src])
    if problem:
        raise QuantizeError(problem)
    n_threads = _checked_threads(n_threads, QuantizeError)
    from . import _core

    _core.inspect_gguf(str(src))  # validates the whole file; raises GGUFError
    head = read_gguf_header(src)
    arch = head.get(Keys.General.ARCHITECTURE)
    if arch != "starcoder":
        raise QuantizeError(f"{src}: general.architecture is {arch!r}; this quantizer handles 'starcoder' models")
    n_layer = head.get(Keys.LLM.BLOCK_COUNT.format(arch=arch))
    n_head = head.get(Keys.Attention.HEAD_COUNT.format(arch=arch))
    n_head_kv = head.get(Keys.Attention.HEAD_COUNT_KV.format(arch=arch), n_head)
    if not all(isinstance(v, int) and v > 0 for v in (n_layer, n_head, n_head_kv)):
        raise QuantizeError(f"{src}: missing or bad starcoder.block_count / attention.head_count(_kv)")

    try:
        types = plan_tensor_types([(t.name, t.ne, t.ggml_type) for t in head.tensors], preset, n_layer, n_head, n_head_kv)
    except QuantPlanError as e:
        raise QuantizeError(f"{src}: {e}") from None
    for t in head.tensors:
        cur, new = t.ggml_type, types[t.name]
        if new != cur and cur not in _READABLE:
            raise QuantizeError(f"{src}: tensor {t.name!r} has a type ({cur.name}) this quantizer cannot read")
        if cur in QUANTIZED_TYPES and new != cur and not allow_requantize:
            raise QuantizeError(
                f"{src}: tensor {t.name!r} is already quantized ({cur.name.lower()}); re-quantizing it to "
                f"{new.name.lower()} loses quality -- pass allow_requantize=True (--allow-requantize) to do it anyway"
            )

    file_type = int(PRESETS[preset][1])
    size_in = src.stat().st_size
    with open(src, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        with GGUFOutput(out, arch, alignment=head.alignment) as gguf_out:
            _copy_metadata(head, gguf_out.writer, file_type, src)
            total = sum(gguf_out.declare(t.name, t.shape, types[t.name]) for t in head.tensors)
            gguf_out.write_header()
            with progress_bar(total, "quantize", enabled=progress) as bar:
                for t in head.tensors:
                    start = head.data_start + t.offset
                    if start + t.nbytes > size_in:
                        raise QuantizeError(f"{src}: tensor {t.name!r} runs past the end of the file")
                    gguf_out.write_tensor(t.name, _tensor_chunks(mm, start, t, types[t.name], n_threads), bar.update)
                    _release(mm, start + t.nbytes)
    finally:
        try:
            mm.close()
        except BufferError:  # a chunk view still alive in an exception's traceback
            pass

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
