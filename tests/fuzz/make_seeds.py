#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses, built from scratch and from tests/data (no network).

    python tests/fuzz/make_seeds.py OUT_DIR

OUT_DIR/gguf/: a tiny but complete StarCoder GGUF (byte-level vocabulary with a
few merges and the special tokens, every tensor of a 1-layer model), a
vocab-only file, and truncated and bit-flipped copies of both.
OUT_DIR/tokenizer/: code, unicode and special-token texts.
OUT_DIR/safetensors/: small safetensors files of every dtype the reader takes,
with metadata, an empty tensor, and truncated copies.
OUT_DIR/config/: the tiny test model's config.json and variants of it.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

REPO = Path(__file__).resolve().parents[2]

SPECIALS = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<filename>"]


def byte_tokens() -> list[str]:
    # GPT-2's byte-to-unicode map: printable bytes stand for themselves.
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return [out[b] for b in range(256)]


def vocab() -> tuple[list[str], list[str], list[int]]:
    toks = byte_tokens()
    merges = [("d", "e"), ("de", "f"), ("Ġ", "x"), ("r", "e"), ("re", "t"), ("Ġ", "ret")]
    for a, b in merges:
        toks.append(a + b)
    types = [1] * len(toks) + [3] * len(SPECIALS)
    return toks + SPECIALS, [f"{a} {b}" for a, b in merges], types


def write(path: Path, with_tensors: bool) -> None:
    w = GGUFWriter(str(path), "starcoder")
    toks, merges, types = vocab()
    n_vocab, n_embd, n_ff, n_ctx, n_head = len(toks), 8, 16, 16, 2
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(1)
    w.add_head_count(n_head)
    w.add_head_count_kv(1)
    w.add_layer_norm_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(toks)
    w.add_token_merges(merges)
    w.add_token_types(types)
    w.add_bos_token_id(n_vocab - len(SPECIALS))
    w.add_eos_token_id(n_vocab - len(SPECIALS))
    if with_tensors:
        rng = np.random.default_rng(0)
        kv = n_embd // n_head
        shapes = {
            "token_embd.weight": (n_vocab, n_embd), "position_embd.weight": (n_ctx, n_embd),
            "output_norm.weight": (n_embd,), "output_norm.bias": (n_embd,),
            "blk.0.attn_norm.weight": (n_embd,), "blk.0.attn_norm.bias": (n_embd,),
            "blk.0.attn_qkv.weight": (n_embd + 2 * kv, n_embd), "blk.0.attn_qkv.bias": (n_embd + 2 * kv,),
            "blk.0.attn_output.weight": (n_embd, n_embd), "blk.0.attn_output.bias": (n_embd,),
            "blk.0.ffn_norm.weight": (n_embd,), "blk.0.ffn_norm.bias": (n_embd,),
            "blk.0.ffn_up.weight": (n_ff, n_embd), "blk.0.ffn_up.bias": (n_ff,),
            "blk.0.ffn_down.weight": (n_embd, n_ff), "blk.0.ffn_down.bias": (n_embd,),
        }
        for name, shape in shapes.items():
            dtype = np.float16 if len(shape) == 2 and name != "position_embd.weight" else np.float32
            w.add_tensor(name, rng.standard_normal(shape).astype(dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def mutants(src: Path, out: Path, rng: random.Random) -> None:
    data = src.read_bytes()
    for cut in (8, 24, len(data) // 3, len(data) // 2, len(data) - 7):
        (out / f"{src.stem}-cut{cut}.gguf").write_bytes(data[:cut])
    for i in range(6):
        b = bytearray(data)
        for _ in range(4):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        (out / f"{src.stem}-flip{i}.gguf").write_bytes(bytes(b))


def main(out_dir: str) -> None:
    out = Path(out_dir)
    (out / "gguf").mkdir(parents=True, exist_ok=True)
    (out / "tokenizer").mkdir(parents=True, exist_ok=True)
    model, vocab_only = out / "gguf" / "tiny-model.gguf", out / "gguf" / "vocab-only.gguf"
    write(model, True)
    write(vocab_only, False)
    rng = random.Random(0)
    mutants(model, out / "gguf", rng)
    mutants(vocab_only, out / "gguf", rng)
    texts = ["def f(x):\n    return x\n", "<fim_prefix>a<fim_suffix>b<fim_middle>", "héllo wörld ✓ 😀\t\r\n",
             "<|endoftext|><|endoftext", "   \n\n  12345 6789", bytes(range(256)).decode("latin-1")]
    for i, t in enumerate(texts):
        (out / "tokenizer" / f"text{i}").write_bytes(t.encode("utf-8", "surrogatepass"))
    (out / "tokenizer" / "invalid-utf8").write_bytes(b"\xff\xfe\xc3(\xe2\x82")
    converter_seeds(out)


def safetensors_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    import json
    import struct

    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        raw = a.tobytes()
        dtype = {"float32": "F32", "float16": "F16", "uint16": "BF16"}[a.dtype.name]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def converter_seeds(out: Path) -> None:
    st, cfg = out / "safetensors", out / "config"
    st.mkdir(parents=True, exist_ok=True)
    cfg.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    full = safetensors_bytes({"wte": rng.standard_normal((4, 8)).astype(np.float32),
                              "h.0.ln": rng.standard_normal(8).astype(np.float16),
                              "bf": (rng.integers(0, 2**16, 6)).astype(np.uint16),
                              "empty": np.zeros((0, 3), np.float32)}, {"format": "pt"})
    (st / "small.safetensors").write_bytes(full)
    (st / "truncated.safetensors").write_bytes(full[: len(full) - 7])
    (st / "header-only.safetensors").write_bytes(full[:40])
    base = (REPO / "tests" / "data" / "tiny-bigcode-py" / "config.json").read_text()
    (cfg / "tiny.json").write_text(base)
    (cfg / "multi-head.json").write_text(base.replace('"multi_query": true', '"multi_query": false'))
    (cfg / "minimal.json").write_text('{"model_type": "gpt_bigcode", "n_embd": 64, "n_head": 4, "n_layer": 1}')


if __name__ == "__main__":
    main(sys.argv[1])
