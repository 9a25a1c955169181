"""GPT-BigCode hyper-parameters from a Hugging Face ``config.json``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

from .errors import ConversionError

# HF activation_function -> value of the ``starcoder_cpp.activation`` key
ACTIVATIONS: Dict[str, str] = {
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_accurate": "gelu_tanh",
    "gelu": "gelu",
    "gelu_python": "gelu",
}


@dataclass
class HParams:
    n_vocab: int
    n_ctx: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    layer_norm_eps: float
    multi_query: bool
    tie_word_embeddings: bool
    activation: str  # "gelu_tanh" | "gelu"
    hf_activation: str

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def qkv_rows(self) -> int:
        return self.n_embd + 2 * self.n_head_kv * self.head_dim


def _cfg_get(config: dict, key: str, alias: Optional[str], default):
    if key in config and config[key] is not None:
        return config[key]
    if alias is not None and alias in config and config[alias] is not None:
        return config[alias]
    return default


# Far above any GPT-BigCode checkpoint (StarCoder 15B: 40 layers, width 6144,
# 48 heads, 49152 tokens, 8192 positions, inner 24576), and low enough that a
# forged config.json cannot make the converter plan millions of tensors or
# allocate a table it could never fill (seen while fuzzing config.json, the
# harness grew to 590 MB; then measured: n_layer = 2e6 was still planning
# after 60 s, before any tensor was read).
LIMITS: Dict[str, int] = {
    "n_embd": 1 << 16,
    "n_head": 1 << 10,
    "n_layer": 1 << 10,
    "n_positions": 1 << 20,
    "vocab_size": 1 << 22,
    "n_inner": 1 << 20,
}


def _cfg_int(config: dict, key: str, alias: Optional[str], default: Optional[int]) -> int:
    v = _cfg_get(config, key, alias, default)
    if v is None:
        raise ConversionError(f"config.json has no {key!r}")
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ConversionError(f"config.json: {key!r} must be a positive integer, got {v!r}")
    if v > LIMITS.get(key, v):
        raise ConversionError(f"config.json: {key!r} = {v} is beyond any GPT-BigCode model (at most {LIMITS[key]})")
    return v


def read_hparams(config: dict) -> HParams:
    """Check that ``config`` (a parsed config.json) is a supported GPT-BigCode
    config and return its hyper-parameters. Missing fields take the
    ``GPTBigCodeConfig`` defaults, as transformers does."""
    model_type = config.get("model_type")
    archs = config.get("architectures") or []
    if model_type != "gpt_bigcode":
        raise ConversionError(
            f"not a GPT-BigCode checkpoint: config.json has model_type={model_type!r}"
            + (f" (architectures {archs})" if archs else "")
            + "; only model_type 'gpt_bigcode' (StarCoder, StarCoderBase, SantaCoder-style "
            "GPTBigCodeForCausalLM) is supported"
        )
    if config.get("add_cross_attention"):
        raise ConversionError("config.json: add_cross_attention=true (encoder-decoder) is not supported")

    n_embd = _cfg_int(config, "n_embd", "hidden_size", 768)
    n_head = _cfg_int(config, "n_head", "num_attention_heads", 12)
    n_layer = _cfg_int(config, "n_layer", "num_hidden_layers", 12)
    n_ctx = _cfg_int(config, "n_positions", "max_position_embeddings", 1024)
    n_vocab = _cfg_int(config, "vocab_size", None, 50257)
    n_inner = config.get("n_inner")
    n_ff = 4 * n_embd if n_inner is None else _cfg_int(config, "n_inner", None, None)
    if n_embd % n_head != 0:
        raise ConversionError(f"config.json: n_embd={n_embd} is not a multiple of n_head={n_head}")

    multi_query = config.get("multi_query", True)
    if not isinstance(multi_query, bool):
        raise ConversionError(f"config.json: multi_query must be true or false, got {multi_query!r}")
    n_head_kv = 1 if multi_query else n_head

    scale = config.get("scale_attn_weights", True)
    if scale is not True:
        raise ConversionError(
            f"config.json: scale_attn_weights={scale!r} is not supported: the GGUF 'starcoder' "
            "architecture always scales attention scores by 1/sqrt(head_dim)"
        )

    act = config.get("activation_function", "gelu_pytorch_tanh")
    if not isinstance(act, str) or act not in ACTIVATIONS:  # a list or an object is not hashable
        raise ConversionError(
            f"config.json: activation_function={act!r} is not supported "
            f"(supported: {', '.join(sorted(ACTIVATIONS))})"
        )

    eps = config.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (eps > 0 and math.isfinite(eps)):
        raise ConversionError(f"config.json: layer_norm_epsilon must be a positive number, got {eps!r}")

    tie = config.get("tie_word_embeddings", True)
    if not isinstance(tie, bool):
        raise ConversionError(f"config.json: tie_word_embeddings must be true or false, got {tie!r}")

    return HParams(
        n_vocab=n_vocab,
        n_ctx=n_ctx,
        n_embd=n_embd,
        n_ff=n_ff,
        n_layer=n_layer,
        n_head=n_head,
        n_head_kv=n_head_kv,
        layer_norm_eps=float(eps),
        multi_query=multi_query,
        tie_word_embeddings=tie,
        activation=ACTIVATIONS[act],
        hf_activation=act,
    )
