#!/usr/bin/env python3
"""Build random-weight GPT-BigCode (StarCoder) checkpoints in Hugging Face format.

Only numpy is needed (torch only for ``fmt="pytorch"``). The safetensors file is
written by this script itself, one tensor at a time, so even the 1B shape never
holds more than one tensor (generated in row chunks) in memory.

Output directory::

    config.json              GPTBigCodeConfig fields, model_type gpt_bigcode
    model.safetensors        or model-0000k-of-0000n.safetensors + model.safetensors.index.json
    tokenizer.json           the real 49152-token StarCoder v1 tokenizer (tests/data/vocab)
    tokenizer_config.json
    generation_config.json

Weights ~ N(0, 0.02); LayerNorm weights ~ 1 + N(0, 0.02); biases ~ N(0, 0.01).
The values depend only on (seed, tensor name), not on dtype or sharding.

Command line::

    python tools/make_checkpoint.py OUT_DIR --shape tiny|small|tiny_starcoder_py|1b [--dtype bfloat16] [--shards 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "tests" / "data"
DEFAULT_TOKENIZER = DATA_DIR / "vocab" / "starcoder-v1-tokenizer.json"

# name -> (n_embd, n_layer, n_head, n_inner, vocab_size, n_positions)
SHAPES: Dict[str, Tuple[int, int, int, int, int, int]] = {
    # fast test shape with the real vocabulary (the embedding is 49152 x 64)
    "tiny": (64, 2, 4, 256, 49152, 512),
    "small": (256, 4, 8, 1024, 49152, 2048),
    # bigcode/tiny_starcoder_py
    "tiny_starcoder_py": (768, 20, 12, 3072, 49152, 8192),
    # bigcode/starcoderbase-1b
    "1b": (2048, 24, 16, 8192, 49152, 8192),
}

# Shapes too large for a float checkpoint here: tools/make_random_gguf.py
# writes their GGUF files from random quantized blocks instead.
DIRECT_SHAPES: Dict[str, Tuple[int, int, int, int, int, int]] = {
    # bigcode/starcoder, starcoderbase (15.5B): one K/V head
    "15b": (6144, 40, 48, 24576, 49152, 8192),
    # the same layout at a size for tests
    "small_direct": (256, 2, 8, 1024, 49152, 512),
}

_DTYPES = {
    "float32": ("F32", 4),
    "float16": ("F16", 2),
    "bfloat16": ("BF16", 2),
}

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<empty_output>",
    "<commit_before>",
    "<commit_msg>",
    "<commit_after>",
    "<reponame>",
]

# rows generated at a time for big tensors
_CHUNK_ELEMS = 1 << 22


def tensor_specs(
    n_embd: int,
    n_layer: int,
    n_head: int,
    n_inner: int,
    vocab_size: int,
    n_positions: int,
    multi_query: bool = True,
    lm_head: bool = False,
) -> List[Tuple[str, Tuple[int, ...]]]:
    """(HF name, shape) of every parameter, in the order transformers saves them."""
    head_dim = n_embd // n_head
    kv_dim = head_dim if multi_query else n_embd
    qkv = n_embd + 2 * kv_dim
    specs: List[Tuple[str, Tuple[int, ...]]] = [
        ("transformer.wte.weight", (vocab_size, n_embd)),
        ("transformer.wpe.weight", (n_positions, n_embd)),
    ]
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        specs += [
            (p + "ln_1.weight", (n_embd,)),
            (p + "ln_1.bias", (n_embd,)),
            (p + "attn.c_attn.weight", (qkv, n_embd)),
            (p + "attn.c_attn.bias", (qkv,)),
            (p + "attn.c_proj.weight", (n_embd, n_embd)),
            (p + "attn.c_proj.bias", (n_embd,)),
            (p + "ln_2.weight", (n_embd,)),
            (p + "ln_2.bias", (n_embd,)),
            (p + "mlp.c_fc.weight", (n_inner, n_embd)),
            (p + "mlp.c_fc.bias", (n_inner,)),
            (p + "mlp.c_proj.weight", (n_embd, n_inner)),
            (p + "mlp.c_proj.bias", (n_embd,)),
        ]
    specs += [("transformer.ln_f.weight", (n_embd,)), ("transformer.ln_f.bias", (n_embd,))]
    if lm_head:
        specs.append(("lm_head.weight", (vocab_size, n_embd)))
    return specs


def _seed_for(seed: int, name: str) -> List[int]:
    h = hashlib.sha256(name.encode("utf-8")).digest()
    return [seed, int.from_bytes(h[:8], "little")]


def generate_chunks(name: str, shape: Sequence[int], seed: int) -> Iterator[np.ndarray]:
    """float32 values of one tensor, in row chunks (deterministic per name and seed)."""
    rng = np.random.default_rng(_seed_for(seed, name))
    is_ln_weight = (".ln_" in name or name.startswith("ln_")) and name.endswith(".weight")
    is_bias = name.endswith(".bias")
    std, mean = (0.01, 0.0) if is_bias else (0.02, 1.0 if is_ln_weight else 0.0)
    n_rows = shape[0]
    row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    per = max(1, _CHUNK_ELEMS // row)
    for a in range(0, n_rows, per):
        b = min(n_rows, a + per)
        x = rng.standard_normal((b - a,) + tuple(shape[1:]), dtype=np.float32)
        x *= np.float32(std)
        if mean:
            x += np.float32(mean)
        yield x


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (nearest, ties to even); returns the uint16 bits."""
    u = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def _encode(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float32":
        return np.ascontiguousarray(x, dtype="<f4")
    if dtype == "float16":
        return np.ascontiguousarray(x, dtype="<f2")
    return float32_to_bf16_bits(x)


def tensor_values(name: str, shape: Sequence[int], seed: int = 0, dtype: str = "float32") -> np.ndarray:
    """The full values a checkpoint made with ``seed`` holds for ``name``, as float32
    (after rounding to ``dtype``). Handy for tests."""
    parts = [_encode(c, dtype) for c in generate_chunks(name, shape, seed)]
    raw = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if dtype == "bfloat16":
        return (raw.astype("<u4") << 16).view("<f4").reshape(shape)
    return raw.astype(np.float32).reshape(shape)


def _split_shards(specs: List[Tuple[str, Tuple[int, ...]]], itemsize: int, shards: int) -> List[List[int]]:
    sizes = [int(np.prod(s)) * itemsize for _, s in specs]
    total = sum(sizes)
    groups: List[List[int]] = [[] for _ in range(shards)]
    acc = 0
    for i, sz in enumerate(sizes):
        # place each tensor by the position of its middle byte, so shards are balanced
        g = min(shards - 1, int((acc + sz / 2) * shards // max(total, 1)))
        groups[g].append(i)
        acc += sz
    # every shard must hold something: move tensors from the fullest neighbour
    for g in range(shards):
        if not groups[g]:
            donor = max(range(shards), key=lambda k: len(groups[k]))
            if len(groups[donor]) < 2:
                raise ValueError(f"cannot split {len(specs)} tensors into {shards} shards")
            groups[g].append(groups[donor].pop(0 if donor > g else -1))
    for grp in groups:
        grp.sort()
    return groups


def _write_safetensors(path: Path, items: List[Tuple[str, Tuple[int, ...]]], dtype: str, seed: int) -> int:
    st_dtype, itemsize = _DTYPES[dtype]
    header: Dict[str, object] = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape in items:
        n = int(np.prod(shape)) * itemsize
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # align the data section to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name, shape in items:
            for chunk in generate_chunks(name, shape, seed):
                f.write(_encode(chunk, dtype).tobytes())
    return off


def _write_pytorch(path: Path, items: List[Tuple[str, Tuple[int, ...]]], dtype: str, seed: int) -> int:
    import torch

    tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    sd = {}
    total = 0
    for name, shape in items:
        vals = tensor_values(name, shape, seed, dtype)
        sd[name] = torch.from_numpy(vals).to(tdt)
        total += sd[name].numel() * sd[name].element_size()
    torch.save(sd, str(path))
    return total


def write_metadata(out: Path, *, n_embd: int, n_layer: int, n_head: int, n_inner: Optional[int], vocab_size: int,
                   n_positions: int, multi_query: bool = True, dtype: str = "float16",
                   tie_word_embeddings: bool = True, activation: str = "gelu_pytorch_tanh",
                   layer_norm_epsilon: float = 1e-5, tokenizer_json=None,
                   config_overrides: Optional[dict] = None) -> dict:
    """Writes a checkpoint's config.json, generation_config.json and
    tokenizer files (no weights) into ``out``; returns the config."""
    config = {
        "_name_or_path": out.name,
        "activation_function": activation,
        "architectures": ["GPTBigCodeForCausalLM"],
        "attention_softmax_in_fp32": True,
        "attn_pdrop": 0.0,
        "bos_token_id": 0,
        "embd_pdrop": 0.0,
        "eos_token_id": 0,
        "initializer_range": 0.02,
        "layer_norm_epsilon": layer_norm_epsilon,
        "model_type": "gpt_bigcode",
        "multi_query": multi_query,
        "n_embd": n_embd,
        "n_head": n_head,
        "n_inner": n_inner,
        "n_layer": n_layer,
        "n_positions": n_positions,
        "pad_token_id": None,
        "resid_pdrop": 0.0,
        "scale_attention_softmax_in_fp32": True,
        "scale_attn_weights": True,
        "tie_word_embeddings": tie_word_embeddings,
        "torch_dtype": dtype,
        "use_cache": True,
        "vocab_size": vocab_size,
    }
    config.update(config_overrides or {})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 0, "eos_token_id": 0}, indent=2) + "\n"
    )

    tok_src = Path(tokenizer_json) if tokenizer_json is not None else DEFAULT_TOKENIZER
    if not tok_src.is_file():
        raise FileNotFoundError(f"tokenizer.json source not found: {tok_src}")
    shutil.copyfile(tok_src, out / "tokenizer.json")
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": None,
        "additional_special_tokens": SPECIAL_TOKENS[1:],
        "add_prefix_space": False,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": n_positions,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")
    return config


def make_checkpoint(
    out_dir,
    n_embd: int,
    n_layer: int,
    n_head: int,
    n_inner: Optional[int],
    vocab_size: int = 49152,
    n_positions: int = 8192,
    multi_query: bool = True,
    dtype: str = "float32",
    tie_word_embeddings: bool = True,
    activation: str = "gelu_pytorch_tanh",
    shards: int = 1,
    seed: int = 0,
    tokenizer_json=None,
    layer_norm_epsilon: float = 1e-5,
    write_lm_head: Optional[bool] = None,
    fmt: str = "safetensors",
    config_overrides: Optional[dict] = None,
) -> Path:
    """Write a random GPT-BigCode checkpoint to ``out_dir`` and return its path.

    ``n_inner=None`` means 4 * n_embd (written as null, like HF). ``lm_head.weight``
    is stored iff ``write_lm_head`` (default: iff the embeddings are untied).
    ``fmt="pytorch"`` writes ``pytorch_model.bin`` (needs torch, single shard).
    ``config_overrides`` are merged into config.json last (to build bad configs).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if n_embd % n_head:
        raise ValueError("n_embd must be a multiple of n_head")
    if shards < 1:
        raise ValueError("shards must be >= 1")
    if fmt not in ("safetensors", "pytorch"):
        raise ValueError("fmt must be 'safetensors' or 'pytorch'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if write_lm_head is None:
        write_lm_head = not tie_word_embeddings
    ff = n_inner if n_inner is not None else 4 * n_embd
    specs = tensor_specs(n_embd, n_layer, n_head, ff, vocab_size, n_positions, multi_query, write_lm_head)

    write_metadata(out, n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_inner=n_inner, vocab_size=vocab_size,
                   n_positions=n_positions, multi_query=multi_query, dtype=dtype,
                   tie_word_embeddings=tie_word_embeddings, activation=activation,
                   layer_norm_epsilon=layer_norm_epsilon, tokenizer_json=tokenizer_json,
                   config_overrides=config_overrides)

    if fmt == "pytorch":
        if shards != 1:
            raise ValueError("fmt='pytorch' writes a single shard")
        _write_pytorch(out / "pytorch_model.bin", specs, dtype, seed)
        return out

    itemsize = _DTYPES[dtype][1]
    if shards == 1:
        _write_safetensors(out / "model.safetensors", specs, dtype, seed)
        return out
    groups = _split_shards(specs, itemsize, shards)
    weight_map: Dict[str, str] = {}
    total = 0
    for k, grp in enumerate(groups):
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        items = [specs[i] for i in grp]
        total += _write_safetensors(out / fname, items, dtype, seed)
        for name, _ in items:
            weight_map[name] = fname
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("--dtype", default="float32", choices=sorted(_DTYPES))
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--multi-head", action="store_true", help="multi_query=false (one K/V head per query head)")
    ap.add_argument("--untied", action="store_true", help="tie_word_embeddings=false, with its own lm_head")
    ap.add_argument("--activation", default="gelu_pytorch_tanh")
    ap.add_argument("--tokenizer-json", default=None, help=f"default: {DEFAULT_TOKENIZER}")
    args = ap.parse_args(argv)
    n_embd, n_layer, n_head, n_inner, vocab, n_pos = SHAPES[args.shape]
    out = make_checkpoint(
        args.out_dir,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_inner=n_inner,
        vocab_size=vocab,
        n_positions=n_pos,
        multi_query=not args.multi_head,
        dtype=args.dtype,
        tie_word_embeddings=not args.untied,
        activation=args.activation,
        shards=args.shards,
        seed=args.seed,
        tokenizer_json=args.tokenizer_json,
    )
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
