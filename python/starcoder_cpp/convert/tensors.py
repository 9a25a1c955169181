"""Which tensors a GPT-BigCode GGUF file holds, in what order, stored as what,
and their data encoded in row chunks.

* GGUF dims are the numpy shape reversed; a HF ``nn.Linear`` weight of shape
  ``[out, in]`` becomes a GGUF tensor with ``ne = [in, out]``, which is what
  ggml's ``mul_mat`` expects, so no transpose is needed.
* ``c_attn``: llama.cpp's graph splits the fused QKV projection into
  ``[all Q rows; all K rows; all V rows]``. With ``multi_query=True`` HF already
  stores it that way (Q: n_embd rows, K: head_dim rows, V: head_dim rows). With
  ``multi_query=False`` HF interleaves per head (for head h the rows
  ``[3*h*hd, 3*h*hd+hd)`` are Q, then K, then V), so the rows (and bias) are
  permuted into ``[Q; K; V]`` order here.
* 2-D weights take the output's weight type; 1-D tensors (norms, biases) and
  the position embedding stay F32, as llama.cpp's converter does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from gguf import MODEL_TENSOR, TENSOR_NAMES

from ..ggml_types import GGMLType, encode
from ..lora import LoraAdapter
from ..safetensors_reader import bf16_to_float32, release_pages
from .errors import ConversionError
from .hparams import HParams
from .sources import TensorSource

# Elements converted per chunk: bounds the temporary float32/f16 buffers.
CHUNK_ELEMS = 1 << 22

F16_MAX = 65504.0

_BLOCK_RE = re.compile(r"^(?:transformer\.)?h\.(\d+)\.(.+)$")

# HF module -> llama.cpp tensor (names from gguf-py, as llama.cpp spells them)
_BLOCK_TENSORS = {
    "ln_1": MODEL_TENSOR.ATTN_NORM,
    "attn.c_attn": MODEL_TENSOR.ATTN_QKV,
    "attn.c_proj": MODEL_TENSOR.ATTN_OUT,
    "ln_2": MODEL_TENSOR.FFN_NORM,
    "mlp.c_fc": MODEL_TENSOR.FFN_UP,
    "mlp.c_proj": MODEL_TENSOR.FFN_DOWN,
}

_GLOBAL_TENSORS = {
    "wte": MODEL_TENSOR.TOKEN_EMBD,
    "wpe": MODEL_TENSOR.POS_EMBD,
    "ln_f": MODEL_TENSOR.OUTPUT_NORM,
}

# non-parameter buffers that some checkpoints carry (causal mask, -inf constant)
_SKIPPED_BLOCK_SUFFIXES = ("attn.bias", "attn.masked_bias")


def _name(t: MODEL_TENSOR, kind: str, layer: Optional[int] = None) -> str:
    base = TENSOR_NAMES[t]
    return (base.format(bid=layer) if layer is not None else base) + "." + kind


def map_tensor_name(hf_name: str) -> Optional[str]:
    """GGUF name of a HF GPT-BigCode tensor; None for buffers that are not
    weights (``attn.bias`` masks, ``attn.masked_bias``). Raises
    ConversionError for names that do not belong to a GPT-BigCode model."""
    m = _BLOCK_RE.match(hf_name)
    if m:
        layer, rest = m.group(1), m.group(2)
        if rest in _SKIPPED_BLOCK_SUFFIXES:
            return None
        module, _, kind = rest.rpartition(".")
        if module in _BLOCK_TENSORS and kind in ("weight", "bias"):
            return _name(_BLOCK_TENSORS[module], kind, int(layer))
        raise ConversionError(f"unexpected tensor {hf_name!r} in a GPT-BigCode checkpoint")
    name = hf_name[len("transformer."):] if hf_name.startswith("transformer.") else hf_name
    module, _, kind = name.rpartition(".")
    if module in _GLOBAL_TENSORS and kind in ("weight", "bias"):
        return _name(_GLOBAL_TENSORS[module], kind)
    if name == "lm_head.weight":
        return _name(MODEL_TENSOR.OUTPUT, "weight")
    raise ConversionError(f"unexpected tensor {hf_name!r} in a GPT-BigCode checkpoint")


def qkv_row_permutation(n_head: int, head_dim: int) -> np.ndarray:
    """Row order that turns HF's per-head interleaved c_attn (multi_query=False)
    into ``[Q; K; V]``: ``new[i] = old[perm[i]]``."""
    # old row index of (head h, part p, element d) is (h*3 + p)*hd + d;
    # new position is (p*n_head + h)*hd + d
    return np.arange(3 * n_head * head_dim).reshape(n_head, 3, head_dim).transpose(1, 0, 2).reshape(-1)


def expected_tensors(hp: HParams, with_output: bool) -> List[Tuple[str, Tuple[int, ...]]]:
    """(gguf name, numpy shape) of every tensor of the output file, in file order."""
    e, f, q = hp.n_embd, hp.n_ff, hp.qkv_rows
    out: List[Tuple[str, Tuple[int, ...]]] = [
        ("token_embd.weight", (hp.n_vocab, e)),
        ("position_embd.weight", (hp.n_ctx, e)),
    ]
    for i in range(hp.n_layer):
        b = f"blk.{i}."
        out += [
            (b + "attn_norm.weight", (e,)),
            (b + "attn_norm.bias", (e,)),
            (b + "attn_qkv.weight", (q, e)),
            (b + "attn_qkv.bias", (q,)),
            (b + "attn_output.weight", (e, e)),
            (b + "attn_output.bias", (e,)),
            (b + "ffn_norm.weight", (e,)),
            (b + "ffn_norm.bias", (e,)),
            (b + "ffn_up.weight", (f, e)),
            (b + "ffn_up.bias", (f,)),
            (b + "ffn_down.weight", (e, f)),
            (b + "ffn_down.bias", (e,)),
        ]
    out += [("output_norm.weight", (e,)), ("output_norm.bias", (e,))]
    if with_output:
        out.append(("output.weight", (hp.n_vocab, e)))
    return out


def storage_type(gguf_name: str, shape: Sequence[int], weight_type: GGMLType) -> GGMLType:
    """2-D weights take ``weight_type``; 1-D tensors (norms, biases) and the
    position embedding stay F32, as in llama.cpp's converter."""
    if len(shape) < 2 or not gguf_name.endswith(".weight") or gguf_name.startswith("position_embd."):
        return GGMLType.F32
    return weight_type


@dataclass
class TensorPlan:
    gguf_name: str
    hf_name: str
    shape: Tuple[int, ...]  # numpy order, as stored in the output
    ggml_type: GGMLType
    permute_rows: Optional[np.ndarray]


def plan_tensors(src: TensorSource, hp: HParams, weight_type: GGMLType) -> Tuple[List[TensorPlan], bool]:
    """The output's tensors in file order, checked against the config; and
    whether the file has its own ``output.weight`` (an untied LM head)."""
    by_gguf: Dict[str, str] = {}
    for hf_name in src.names():
        g = map_tensor_name(hf_name)
        if g is None:
            continue
        if g in by_gguf:
            raise ConversionError(f"tensors {by_gguf[g]!r} and {hf_name!r} are both {g!r}")
        by_gguf[g] = hf_name

    if "token_embd.weight" in by_gguf:
        rows = src.shape(by_gguf["token_embd.weight"])[0]
        if rows != hp.n_vocab:
            raise ConversionError(
                f"transformer.wte.weight has {rows} rows but config.json vocab_size is {hp.n_vocab}"
            )
    has_lm_head = "output.weight" in by_gguf
    if not hp.tie_word_embeddings and not has_lm_head:
        raise ConversionError(
            "config.json has tie_word_embeddings=false but the checkpoint has no lm_head.weight"
        )
    with_output = has_lm_head and not hp.tie_word_embeddings

    expected = expected_tensors(hp, with_output)
    expected_names = {n for n, _ in expected}
    extra = sorted(g for g in by_gguf if g not in expected_names and g != "output.weight")
    if extra:
        raise ConversionError(
            "the checkpoint has tensors that do not fit the config (n_layer="
            f"{hp.n_layer}): {', '.join(by_gguf[g] for g in extra[:5])}"
            + (" ..." if len(extra) > 5 else "")
        )
    missing = [n for n, _ in expected if n not in by_gguf]
    if missing:
        raise ConversionError(
            f"the checkpoint is missing {len(missing)} tensor(s) (GGUF names): "
            + ", ".join(missing[:8])
            + (" ..." if len(missing) > 8 else "")
        )

    perm = None if hp.multi_query else qkv_row_permutation(hp.n_head, hp.head_dim)
    plans: List[TensorPlan] = []
    for g, shape in expected:
        hf_name = by_gguf[g]
        got = tuple(src.shape(hf_name))
        if got != shape:
            raise ConversionError(f"{hf_name}: shape {list(got)} does not match the config, expected {list(shape)}")
        dt = src.dtype(hf_name)
        if dt not in ("F32", "F16", "BF16", "F64"):
            raise ConversionError(f"{hf_name}: unsupported dtype {dt} (expected F32, F16 or BF16)")
        p = perm if g.startswith("blk.") and ".attn_qkv." in g else None
        plans.append(TensorPlan(g, hf_name, shape, storage_type(g, shape, weight_type), p))
    return plans, with_output


def encoded_chunks(
    raw: np.ndarray, src_dtype: str, plan: TensorPlan, warn: Callable[[str], None], n_threads: int = 0,
    lora: Optional[LoraAdapter] = None,
) -> Iterator[np.ndarray]:
    """Encoded data of one tensor, in row chunks (with a LoRA adapter's update
    added to the rows it changes)."""
    shape = plan.shape
    row_elems = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    n_rows = shape[0]
    rows_per = max(1, CHUNK_ELEMS // max(row_elems, 1))
    target = plan.ggml_type
    adapted = lora is not None and lora.touches(plan.hf_name)
    passthrough = not adapted and (
        (src_dtype == "F32" and target == GGMLType.F32) or (src_dtype == "F16" and target == GGMLType.F16)
    )
    overflow = False
    for a in range(0, n_rows, rows_per):
        b = min(a + rows_per, n_rows)
        permuted = plan.permute_rows is not None
        block = raw[plan.permute_rows[a:b]] if permuted else raw[a:b]
        if passthrough:
            yield np.ascontiguousarray(block)
        else:
            f = bf16_to_float32(block) if src_dtype == "BF16" else np.asarray(block, dtype=np.float32)
            if adapted:
                rows = plan.permute_rows[a:b] if permuted else slice(a, b)
                f = f + lora.delta_rows(plan.hf_name, rows, raw.shape)
            if target == GGMLType.F16 and not overflow and f.size:
                # max/min instead of abs(): no temporary array
                overflow = float(f.max()) > F16_MAX or float(f.min()) < -F16_MAX
            yield encode(target, f, n_threads)
        if not permuted:
            # the rows up to here are written: unmap their pages so that resident
            # memory stays at about one chunk, not one tensor
            release_pages(block)
    if overflow:
        warn(f"{plan.hf_name}: values beyond the F16 range ({F16_MAX}) became infinities")
