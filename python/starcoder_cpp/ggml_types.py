"""The ggml tensor types this project writes, their sizes, and the encoding
of float arrays into them.

The type ids and block sizes are gguf-py's (``gguf.GGMLQuantizationType``,
``gguf.GGML_QUANT_SIZES``), which llama.cpp keeps in step with ggml; this
module only adds what gguf-py does not do: F16/BF16 rounding that matches
ggml's, and the block-quantized types through the compiled core
(``_core.quantize``, bit-identical to llama.cpp without an importance matrix).
The compiled extension is imported only when a block type is encoded, so the
converter's F32/F16 paths stay pure Python.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

__all__ = [
    "GGMLType",
    "QUANTIZED_TYPES",
    "block_size",
    "tensor_nbytes",
    "byte_shape",
    "encode",
    "to_float32",
]

GGMLType = GGMLQuantizationType

# The block types the compiled core quantizes (and dequantizes).
QUANTIZED_TYPES = (GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
                   GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K)


def _sizes(t: Union[int, GGMLType]) -> Tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type."""
    try:
        return GGML_QUANT_SIZES[GGMLType(int(t))]
    except (ValueError, KeyError):
        raise ValueError(f"unknown ggml tensor type {t!r}") from None


def block_size(t: Union[int, GGMLType]) -> int:
    return _sizes(t)[0]


def tensor_nbytes(t: Union[int, GGMLType], shape: Sequence[int]) -> int:
    """Bytes a tensor of ``shape`` (numpy order: the row is the last axis)
    takes as type ``t``. The row length must be a multiple of the block size."""
    block, type_size = _sizes(t)
    dims = [int(d) for d in shape] or [1]
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dimension in shape {tuple(dims)}")
    if dims[-1] % block != 0:
        raise ValueError(
            f"type {GGMLType(int(t)).name} needs the row length to be a multiple of {block}, "
            f"got shape {tuple(dims)}"
        )
    n_rows = 1
    for d in dims[:-1]:
        n_rows *= d
    return n_rows * (dims[-1] // block) * type_size


def byte_shape(t: Union[int, GGMLType], shape: Sequence[int]) -> Tuple[int, ...]:
    """``shape`` with its row length given in bytes of type ``t``: the form in
    which gguf-py's writer describes data handed to it as raw uint8 bytes."""
    block, type_size = _sizes(t)
    dims = tuple(int(d) for d in shape)
    tensor_nbytes(t, dims)  # checks the row length
    return dims[:-1] + (dims[-1] // block * type_size,)


def _encode_f16(a: np.ndarray) -> np.ndarray:
    # numpy rounds to nearest, ties to even, as ggml's F32 -> F16 does; values
    # beyond +-65504 become infinities (the converter warns about them)
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


def _core():
    try:
        from . import _core as core
    except ImportError:  # loaded outside the package (tools that import the pure modules)
        from starcoder_cpp import _core as core
    return core


def encode(t: Union[int, GGMLType], array: np.ndarray, n_threads: int = 0) -> np.ndarray:
    """``array`` (float, rows on the last axis) stored as type ``t``: a
    contiguous array whose bytes are the tensor data. ``n_threads`` is used by
    the block types (0: one per core)."""
    t = GGMLType(int(t))
    if t == GGMLType.F32:
        return np.ascontiguousarray(array, dtype="<f4")
    if t == GGMLType.F16:
        return _encode_f16(array)
    if t == GGMLType.BF16:
        return _encode_bf16(array)
    if t in QUANTIZED_TYPES:
        return _core().quantize(np.asarray(array, dtype=np.float32), t.name.lower(), int(n_threads))
    raise ValueError(f"cannot encode tensors as {t.name}")


def to_float32(raw: np.ndarray, t: Union[int, GGMLType], shape: Tuple[int, int]) -> np.ndarray:
    """Stored data (uint8 bytes of ``shape[0]`` whole rows) as float32 ``shape``."""
    t = GGMLType(int(t))
    if t == GGMLType.F32:
        return raw.view("<f4").reshape(shape)
    if t == GGMLType.F16:
        return raw.view("<f2").reshape(shape).astype(np.float32)
    if t == GGMLType.BF16:
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if t in QUANTIZED_TYPES:
        return _core().dequantize(raw, t.name.lower(), list(shape))
    raise ValueError(f"cannot read tensors of type {t.name}")
