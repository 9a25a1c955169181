"""Writes a GGUF file of random quantized weights straight from ggml blocks,
for model shapes too large to build as a float checkpoint first (StarCoder's
15B shape: its F16 checkpoint is 31 GB, its Q4_K_M file 9 GB).

Every block gets random codes and small valid f16 scales, so the file loads
and runs like any other (the kernels' speed does not depend on the values);
the tensor types are the ones a quantization preset chooses for the shape
(quant_presets.plan_tensor_types, as llama-quantize would), the metadata and
the tokenizer those of a converted checkpoint (make_checkpoint.write_metadata,
the real StarCoder vocabulary). The output is written to a temporary name and
renamed into place when complete.

    python tools/make_random_gguf.py --shape 15b --type q4_k_m OUT.gguf
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(TOOLS.parent / "python"))

from make_checkpoint import DIRECT_SHAPES as SHAPES, write_metadata  # noqa: E402

from starcoder_cpp.convert.hparams import read_hparams  # noqa: E402
from starcoder_cpp.convert.tensors import expected_tensors, storage_type  # noqa: E402
from starcoder_cpp.convert.tokenizer import read_tokenizer  # noqa: E402
from starcoder_cpp.convert.writer import ARCH, _add_metadata, _resolve_out_type  # noqa: E402
from starcoder_cpp.ggml_types import GGMLType, QUANTIZED_TYPES, block_size, tensor_nbytes  # noqa: E402
from starcoder_cpp.gguf_output import GGUFOutput  # noqa: E402
from starcoder_cpp.quant_presets import plan_tensor_types  # noqa: E402

# Byte offsets of the f16 scale fields in one block of each type (ggml's
# block structs): the only bytes that must hold a sane value.
F16_FIELDS = {
    GGMLType.Q4_0: (0,), GGMLType.Q4_1: (0, 2), GGMLType.Q5_0: (0,), GGMLType.Q5_1: (0, 2),
    GGMLType.Q8_0: (0,), GGMLType.Q2_K: (80, 82), GGMLType.Q3_K: (108,), GGMLType.Q4_K: (0, 2),
    GGMLType.Q5_K: (0, 2), GGMLType.Q6_K: (208,),
}
ROWS_PER_CHUNK = 2048


def random_rows(rng: np.random.Generator, t: GGMLType, n_rows: int, row_len: int) -> np.ndarray:
    """n_rows rows of random blocks of type t, f16 scales between 5e-5 and 1.5e-4
    (weights of the order of 0.02, as in a freshly initialised model)."""
    row_bytes = tensor_nbytes(t, (row_len,))
    blocks = row_len // block_size(t)
    out = rng.integers(0, 256, (n_rows, blocks, row_bytes // blocks), dtype=np.uint8)
    for off in F16_FIELDS[t]:
        scale = rng.uniform(5e-5, 1.5e-4, (n_rows, blocks)).astype(np.float16)
        out[:, :, off:off + 2] = scale.view(np.uint8).reshape(n_rows, blocks, 2)
    return out.reshape(n_rows, row_bytes)


def float_chunks(rng: np.random.Generator, name: str, shape) -> Iterator[np.ndarray]:
    if name.endswith("norm.weight"):
        yield np.ones(shape, np.float32)
    else:
        yield (rng.standard_normal(shape) * 0.02).astype(np.float32)


def tensor_chunks(rng: np.random.Generator, name: str, shape, t: GGMLType) -> Iterator[np.ndarray]:
    if t not in QUANTIZED_TYPES:
        if t != GGMLType.F32:
            raise ValueError(f"{name}: {t.name} is not written by this tool (quantized types and F32 only)")
        yield from float_chunks(rng, name, shape)
        return
    n_rows, row_len = shape
    for r0 in range(0, n_rows, ROWS_PER_CHUNK):
        yield random_rows(rng, t, min(ROWS_PER_CHUNK, n_rows - r0), row_len)


def make_random_gguf(out_path, shape: str, out_type: str = "q4_k_m", seed: int = 0) -> Path:
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    key, weight_type, file_type = _resolve_out_type(out_type)
    if weight_type not in QUANTIZED_TYPES:
        raise ValueError(f"{out_type}: only quantization presets are written directly "
                         f"(an F16 file of the {shape} shape would need its float weights)")
    n_embd, n_layer, n_head, n_inner, vocab, n_pos = SHAPES[shape]
    with tempfile.TemporaryDirectory() as meta_dir:
        config = write_metadata(Path(meta_dir), n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_inner=n_inner,
                                vocab_size=vocab, n_positions=n_pos)
        config["_name_or_path"] = f"random-{shape}"
        hp = read_hparams(config)
        tokd = read_tokenizer(meta_dir, hp.n_vocab, config)
    tensors = expected_tensors(hp, with_output=False)
    types = plan_tensor_types([(n, tuple(reversed(s)), storage_type(n, s, GGMLType.F32)) for n, s in tensors],
                              key, hp.n_layer, hp.n_head, hp.n_head_kv)
    out = Path(out_path)
    rng = np.random.default_rng(seed)
    with GGUFOutput(out, ARCH) as gguf_out:
        _add_metadata(gguf_out.writer, config["_name_or_path"], file_type, True, hp, tokd)
        for name, s in tensors:
            gguf_out.declare(name, s, types[name])
        gguf_out.write_header()
        for name, s in tensors:
            gguf_out.write_tensor(name, tensor_chunks(rng, name, s, types[name]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the GGUF file to write")
    ap.add_argument("--shape", default="15b", choices=sorted(SHAPES), help="make_checkpoint.DIRECT_SHAPES")
    ap.add_argument("--type", default="q4_k_m", help="a quantization preset (q4_k_m, q4_0, q8_0, ...)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = make_random_gguf(args.out, args.shape, args.type, args.seed)
    print(f"{path}: {path.stat().st_size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
