"""Quantization presets ("file types") and the per-tensor type each one picks.

The presets are llama.cpp's (``llama-quantize`` names, ``LLAMA_FTYPE_*``
numbers), and ``plan_tensor_types`` makes the same per-tensor choices that
llama.cpp's ``llama_tensor_get_type`` makes for the ``starcoder`` (GPT-BigCode)
architecture when no importance matrix is given. For this architecture that
means:

* Only tensors of 2+ dimensions whose name ends in ``weight`` are quantized;
  norms, biases and ``position_embd.weight`` keep their stored type.
* ``output.weight`` -- or ``token_embd.weight`` when the embeddings are tied
  (no ``output.weight``), since it is then also the LM head -- gets Q6_K,
  except under Q8_0 (stays Q8_0) and when its rows are not a multiple of the
  preset's block size (Q8_0). An untied ``token_embd.weight`` takes the
  preset's default type.
* ``blk.N.attn_qkv.weight`` is treated like llama.cpp's ``attn_v`` (the fused
  QKV belongs to that category in current llama.cpp): Q6_K on the layers that
  ``use_more_bits`` picks under Q4_K_M / Q5_K_M, Q5_K on the first 4 under
  Q4_K_S, Q5_K on the first 2 (else Q4_K) under Q3_K_M, Q5_K under Q3_K_L, and
  under Q2_K Q4_K when n_head / n_head_kv >= 4 (multi-query) else Q3_K.
* ``blk.N.ffn_down.weight``: Q6_K on the ``use_more_bits`` layers under
  Q4_K_M / Q5_K_M, Q5_K on the first n_layer/8 under Q4_K_S, Q5_K for
  n_layer/16 first layers then Q4_K under Q3_K_M, Q5_K under Q3_K_L, Q3_K
  under Q2_K.
* ``blk.N.attn_output.weight``: Q3_K under Q2_K, Q4_K under Q3_K_M, Q5_K under
  Q3_K_L.
* A row length that is not a multiple of the chosen type's block size falls
  back: Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and to F16
  if even that does not divide it.

``use_more_bits(i, n) = i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2``.

(Older llama.cpp releases gave ``attn_qkv`` a fixed one-step bump instead --
Q5_K under Q4_K_M, Q6_K under Q5_K_M; the rules here are those of the
llama.cpp that the tests compare against, and the test-suite checks every
preset's choices against it.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, Sequence, Tuple

from gguf import LlamaFileType

from .ggml_types import QUANTIZED_TYPES, GGMLType, block_size

__all__ = [
    "PRESETS",
    "PRESET_ALIASES",
    "FILE_TYPES",
    "QuantPlanError",
    "normalize_preset",
    "preset_default_type",
    "plan_tensor_types",
    "allows_quantization",
    "use_more_bits",
    "fallback_type",
]


class QuantPlanError(ValueError):
    """A preset that does not exist, or a tensor that cannot take its type."""


# preset -> (default ggml type, general.file_type = llama.cpp's LLAMA_FTYPE_*)
PRESETS: Dict[str, Tuple[GGMLType, int]] = {
    "f32": (GGMLType.F32, LlamaFileType.ALL_F32),
    "f16": (GGMLType.F16, LlamaFileType.MOSTLY_F16),
    "q4_0": (GGMLType.Q4_0, LlamaFileType.MOSTLY_Q4_0),
    "q4_1": (GGMLType.Q4_1, LlamaFileType.MOSTLY_Q4_1),
    "q8_0": (GGMLType.Q8_0, LlamaFileType.MOSTLY_Q8_0),
    "q5_0": (GGMLType.Q5_0, LlamaFileType.MOSTLY_Q5_0),
    "q5_1": (GGMLType.Q5_1, LlamaFileType.MOSTLY_Q5_1),
    "q2_k": (GGMLType.Q2_K, LlamaFileType.MOSTLY_Q2_K),
    "q3_k_s": (GGMLType.Q3_K, LlamaFileType.MOSTLY_Q3_K_S),
    "q3_k_m": (GGMLType.Q3_K, LlamaFileType.MOSTLY_Q3_K_M),
    "q3_k_l": (GGMLType.Q3_K, LlamaFileType.MOSTLY_Q3_K_L),
    "q4_k_s": (GGMLType.Q4_K, LlamaFileType.MOSTLY_Q4_K_S),
    "q4_k_m": (GGMLType.Q4_K, LlamaFileType.MOSTLY_Q4_K_M),
    "q5_k_s": (GGMLType.Q5_K, LlamaFileType.MOSTLY_Q5_K_S),
    "q5_k_m": (GGMLType.Q5_K, LlamaFileType.MOSTLY_Q5_K_M),
    "q6_k": (GGMLType.Q6_K, LlamaFileType.MOSTLY_Q6_K),
    "bf16": (GGMLType.BF16, LlamaFileType.MOSTLY_BF16),
}

# llama-quantize accepts these short names too
PRESET_ALIASES = {
    "q3_k": "q3_k_m",
    "q4_k": "q4_k_m",
    "q5_k": "q5_k_m",
    "float32": "f32",
    "fp32": "f32",
    "float16": "f16",
    "fp16": "f16",
    "bfloat16": "bf16",
}

FILE_TYPES: Dict[int, str] = {int(ft): name for name, (_, ft) in PRESETS.items()}

_FALLBACK = {
    GGMLType.Q2_K: GGMLType.Q4_0,
    GGMLType.Q3_K: GGMLType.Q4_0,
    GGMLType.Q4_K: GGMLType.Q5_0,
    GGMLType.Q5_K: GGMLType.Q5_1,
    GGMLType.Q6_K: GGMLType.Q8_0,
}


def normalize_preset(name: str) -> str:
    """Canonical preset name (``"Q4_K_M"`` -> ``"q4_k_m"``); QuantPlanError if unknown."""
    key = str(name).strip().lower().replace("-", "_")
    key = PRESET_ALIASES.get(key, key)
    if key not in PRESETS:
        raise QuantPlanError(f"unknown quantization type {name!r}; choose one of {', '.join(PRESETS)}")
    return key


def preset_default_type(preset: str) -> GGMLType:
    return PRESETS[normalize_preset(preset)][0]


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's pick of the layers that get more bits: the first and last
    eighth, and every third layer in between."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def allows_quantization(name: str, n_dims: int) -> bool:
    """Whether llama.cpp would quantize this tensor at all (for this architecture)."""
    if n_dims < 2 or not name.endswith("weight"):
        return False
    if "_norm.weight" in name:
        return False
    if name == "position_embd.weight" or name == "token_types.weight":
        return False
    return True


def fallback_type(t: GGMLType, row_len: int, name: str = "tensor") -> GGMLType:
    """The type to use when rows of ``row_len`` do not fit ``t``'s blocks."""
    if row_len % block_size(t) == 0:
        return t
    if t not in _FALLBACK:
        raise QuantPlanError(
            f"{name}: row length {row_len} is not a multiple of the {t.name} block size {block_size(t)} "
            "and there is no fallback type for it"
        )
    new = _FALLBACK[t]
    if row_len % block_size(new) != 0:
        new = GGMLType.F16
    return new


def _category(name: str) -> str:
    if name == "output.weight":
        return "output"
    if name == "token_embd.weight":
        return "token_embd"
    for key, cat in (
        ("attn_qkv.weight", "attn_v"),   # llama.cpp groups the fused QKV with attn_v
        ("attn_kv_b.weight", "attn_v"),
        ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"),
        ("attn_q.weight", "attn_q"),
        ("attn_output.weight", "attn_output"),
        ("ffn_up", "ffn_up"),
        ("ffn_gate", "ffn_gate"),
        ("ffn_down", "ffn_down"),
    ):
        if key in name:
            return cat
    return "other"


_LAYER_RE = re.compile(r"^blk\.(\d+)\.")


def _load_order_key(name: str) -> Tuple[int, str]:
    # llama.cpp visits tensors sorted by layer number, then by name
    m = _LAYER_RE.match(name)
    return (int(m.group(1)) if m else -1, name)


@dataclass
class _State:
    n_attention_wv: int = 0
    i_attention_wv: int = 0
    n_ffn_down: int = 0
    i_ffn_down: int = 0
    tied: bool = True


def _choose(st: _State, preset: str, t: GGMLType, name: str, row_len: int, cat: str, n_gqa: int) -> GGMLType:
    """llama.cpp's llama_tensor_get_type_impl for a dense, non-Falcon model."""
    if cat == "output" or (st.tied and cat == "token_embd"):
        if row_len % block_size(t) != 0:
            return GGMLType.Q8_0
        return t if t == GGMLType.Q8_0 else GGMLType.Q6_K
    if cat == "token_embd":
        return t
    if cat == "attn_v":
        i, n = st.i_attention_wv, st.n_attention_wv
        if preset == "q2_k":
            t = GGMLType.Q4_K if n_gqa >= 4 else GGMLType.Q3_K
        elif preset == "q3_k_m":
            t = GGMLType.Q5_K if i < 2 else GGMLType.Q4_K
        elif preset == "q3_k_l":
            t = GGMLType.Q5_K
        elif preset in ("q4_k_m", "q5_k_m") and use_more_bits(i, n):
            t = GGMLType.Q6_K
        elif preset == "q4_k_s" and i < 4:
            t = GGMLType.Q5_K
        st.i_attention_wv += 1
        return t
    if cat == "ffn_down":
        i, n = st.i_ffn_down, st.n_ffn_down
        if preset == "q2_k":
            t = GGMLType.Q3_K
        elif preset == "q3_k_m":
            t = GGMLType.Q5_K if i < n // 16 else GGMLType.Q4_K
        elif preset == "q3_k_l":
            t = GGMLType.Q5_K
        elif preset in ("q4_k_m", "q5_k_m"):
            if use_more_bits(i, n):
                t = GGMLType.Q6_K
        elif preset == "q4_k_s" and i < n // 8:
            t = GGMLType.Q5_K
        st.i_ffn_down += 1
        return t
    if cat == "attn_output":
        if preset == "q2_k":
            t = GGMLType.Q3_K
        elif preset == "q3_k_m":
            t = GGMLType.Q4_K
        elif preset == "q3_k_l":
            t = GGMLType.Q5_K
        return t
    return t


def plan_tensor_types(
    tensors: Iterable[Tuple[str, Sequence[int], GGMLType]],
    preset: str,
    n_layer: int,
    n_head: int,
    n_head_kv: int,
) -> Dict[str, GGMLType]:
    """Storage type of every tensor under ``preset``.

    ``tensors``: (GGUF name, GGUF dims ``ne`` -- row length first --, current
    type) for every tensor of the model. Tensors that are not quantized keep
    their current type. Raises QuantPlanError for an unknown preset or a
    tensor whose rows fit no type.
    """
    preset = normalize_preset(preset)
    default = PRESETS[preset][0]
    items = [(str(n), [int(d) for d in ne], GGMLType(int(t))) for n, ne, t in tensors]
    st = _State()
    st.tied = not any(n == "output.weight" for n, _, _ in items)
    st.n_attention_wv = sum(1 for n, _, _ in items if _category(n) == "attn_v")
    st.n_ffn_down = n_layer
    n_gqa = n_head // max(n_head_kv, 1)

    out: Dict[str, GGMLType] = {}
    for name, ne, cur in sorted(items, key=lambda it: _load_order_key(it[0])):
        if not allows_quantization(name, len(ne)):
            out[name] = cur
            continue
        t = default
        if default in QUANTIZED_TYPES:
            t = _choose(st, preset, default, name, ne[0], _category(name), n_gqa)
            t = fallback_type(t, ne[0], name)
        out[name] = t
    return {n: out[n] for n, _, _ in items}
