"""Convert a Hugging Face GPT-BigCode (StarCoder) checkpoint to GGUF.

The output follows llama.cpp's ``starcoder`` architecture, so the files load in
llama.cpp as well as in this project's runtime::

    from starcoder_cpp.convert import convert_checkpoint
    convert_checkpoint("path/to/hf_model", "model-f16.gguf", out_type="f16")

Only numpy is needed for ``*.safetensors`` checkpoints. Older checkpoints that
only have ``pytorch_model*.bin`` files need torch.

Conversion streams: every source tensor is memory-mapped, converted in row
chunks and written before the next one is touched, so memory use stays near
the size of one tensor whatever the model size.

Tensor layout notes
-------------------
* GGUF dims are the numpy shape reversed; a HF ``nn.Linear`` weight of shape
  ``[out, in]`` becomes a GGUF tensor with ``ne = [in, out]``, which is what
  ggml's ``mul_mat`` expects, so no transpose is needed.
* ``c_attn``: llama.cpp's graph splits the fused QKV projection into
  ``[all Q rows; all K rows; all V rows]``. With ``multi_query=True`` HF already
  stores it that way (Q: n_embd rows, K: head_dim rows, V: head_dim rows). With
  ``multi_query=False`` HF interleaves per head (for head h the rows
  ``[3*h*hd, 3*h*hd+hd)`` are Q, then K, then V), so the rows (and bias) are
  permuted into ``[Q; K; V]`` order here.
* With a quantization preset (``out_type="q4_k_m"`` ...) the weights are
  quantized in the C++ core with llama.cpp's per-tensor type choices; the
  output is byte-identical to llama-quantize run on the F32 conversion.
* With ``out_type="f16"`` the 2-D weights (token embedding, QKV, attention
  output, FFN up/down, lm_head) are stored as F16; 1-D tensors (norms, biases)
  and the position embedding stay F32, as llama.cpp's converter does.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .lora import LoraAdapter, LoraError
from .gguf_writer import GGMLType, GGUFWriter, QUANTIZED_TYPES, encode_tensor
from .quant_presets import PRESETS, QuantPlanError, normalize_preset, plan_tensor_types
from .safetensors_reader import (
    SafetensorsCheckpoint,
    SafetensorsError,
    bf16_to_float32,
    find_safetensors_files,
    release_pages,
)

__all__ = [
    "ConversionError",
    "convert_checkpoint",
    "HParams",
    "read_hparams",
    "read_tokenizer",
    "map_tensor_name",
    "qkv_row_permutation",
    "ACTIVATIONS",
    "OUT_TYPES",
]

PathLike = Union[str, os.PathLike]

ARCH = "starcoder"
ACTIVATION_KEY = "starcoder_cpp.activation"


class ConversionError(ValueError):
    """The checkpoint cannot be converted (bad or unsupported input)."""


# HF activation_function -> value of the ``starcoder_cpp.activation`` key
ACTIVATIONS: Dict[str, str] = {
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_accurate": "gelu_tanh",
    "gelu": "gelu",
    "gelu_python": "gelu",
}

# out_type -> (ggml type of the 2-D weights, general.file_type)
OUT_TYPES: Dict[str, Tuple[GGMLType, int]] = {
    "f32": (GGMLType.F32, 0),  # LLAMA_FTYPE_ALL_F32
    "f16": (GGMLType.F16, 1),  # LLAMA_FTYPE_MOSTLY_F16
}

_OUT_TYPE_ALIASES = {"float32": "f32", "fp32": "f32", "float16": "f16", "fp16": "f16"}

# Every other output type is a llama.cpp quantization preset (q8_0, q4_k_m, ...;
# see quant_presets.PRESETS): the per-tensor types are the ones llama-quantize
# would pick for an F32 file of this model, and the data is bit-identical to it.
OUT_TYPE_NAMES: List[str] = list(OUT_TYPES) + [k for k in PRESETS if k not in OUT_TYPES]

# general.quantization_version that llama.cpp writes into quantized files (GGML_QNT_VERSION)
GGML_QNT_VERSION = 2

# token types (llama.cpp's llama_token_type / gguf TokenType)
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

# Elements converted per chunk: bounds the temporary float32/f16 buffers.
_CHUNK_ELEMS = 1 << 22

_F16_MAX = 65504.0


# =============================================================================
# hyper-parameters
# =============================================================================


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


def _load_json(path: Path, what: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConversionError(f"{what} not found: {path}") from None
    except OSError as e:
        raise ConversionError(f"cannot read {what} {path}: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a JSON object")
    return data


def _cfg_get(config: dict, key: str, alias: Optional[str], default):
    if key in config and config[key] is not None:
        return config[key]
    if alias is not None and alias in config and config[alias] is not None:
        return config[alias]
    return default


def _cfg_int(config: dict, key: str, alias: Optional[str], default: Optional[int]) -> int:
    v = _cfg_get(config, key, alias, default)
    if v is None:
        raise ConversionError(f"config.json has no {key!r}")
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ConversionError(f"config.json: {key!r} must be a positive integer, got {v!r}")
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
    if act not in ACTIVATIONS:
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


# =============================================================================
# tensor names and layout
# =============================================================================

_BLOCK_RE = re.compile(r"^(?:transformer\.)?h\.(\d+)\.(.+)$")

_BLOCK_NAMES = {
    "ln_1": "attn_norm",
    "attn.c_attn": "attn_qkv",
    "attn.c_proj": "attn_output",
    "ln_2": "ffn_norm",
    "mlp.c_fc": "ffn_up",
    "mlp.c_proj": "ffn_down",
}

_GLOBAL_NAMES = {
    "wte": "token_embd",
    "wpe": "position_embd",
    "ln_f": "output_norm",
}

# non-parameter buffers that some checkpoints carry (causal mask, -inf constant)
_SKIPPED_BLOCK_SUFFIXES = ("attn.bias", "attn.masked_bias")


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
        if module in _BLOCK_NAMES and kind in ("weight", "bias"):
            return f"blk.{int(layer)}.{_BLOCK_NAMES[module]}.{kind}"
        raise ConversionError(f"unexpected tensor {hf_name!r} in a GPT-BigCode checkpoint")
    name = hf_name[len("transformer."):] if hf_name.startswith("transformer.") else hf_name
    module, _, kind = name.rpartition(".")
    if module in _GLOBAL_NAMES and kind in ("weight", "bias"):
        return f"{_GLOBAL_NAMES[module]}.{kind}"
    if name == "lm_head.weight":
        return "output.weight"
    raise ConversionError(f"unexpected tensor {hf_name!r} in a GPT-BigCode checkpoint")


def qkv_row_permutation(n_head: int, head_dim: int) -> np.ndarray:
    """Row order that turns HF's per-head interleaved c_attn (multi_query=False)
    into ``[Q; K; V]``: ``new[i] = old[perm[i]]``."""
    # old row index of (head h, part p, element d) is (h*3 + p)*hd + d;
    # new position is (p*n_head + h)*hd + d
    return np.arange(3 * n_head * head_dim).reshape(n_head, 3, head_dim).transpose(1, 0, 2).reshape(-1)


def _expected_tensors(hp: HParams, with_output: bool) -> List[Tuple[str, Tuple[int, ...]]]:
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


def _tensor_type(gguf_name: str, shape: Sequence[int], weight_type: GGMLType) -> GGMLType:
    """Storage type: 2-D weights take ``weight_type``; 1-D tensors (norms,
    biases) and the position embedding stay F32, as in llama.cpp's converter."""
    if len(shape) < 2 or not gguf_name.endswith(".weight") or gguf_name.startswith("position_embd."):
        return GGMLType.F32
    return weight_type


# =============================================================================
# weight sources
# =============================================================================


class _Source:
    """Tensors of a checkpoint by HF name: metadata up front, data on demand."""

    description = ""

    def names(self) -> List[str]:
        raise NotImplementedError

    def shape(self, name: str) -> Tuple[int, ...]:
        raise NotImplementedError

    def dtype(self, name: str) -> str:
        """safetensors-style dtype name: F32, F16, BF16, ..."""
        raise NotImplementedError

    def raw(self, name: str) -> np.ndarray:
        """Stored data (BF16 as uint16 bits); may be memory-mapped."""
        raise NotImplementedError

    def release(self) -> None:
        pass


class _SafetensorsSource(_Source):
    def __init__(self, directory: Path):
        try:
            self.ckpt = SafetensorsCheckpoint(directory)
        except SafetensorsError as e:
            raise ConversionError(str(e)) from None
        n = len(self.ckpt.files)
        self.description = f"{n} safetensors file{'s' if n != 1 else ''}"

    def names(self) -> List[str]:
        return self.ckpt.keys()

    def shape(self, name: str) -> Tuple[int, ...]:
        return self.ckpt.info(name).shape

    def dtype(self, name: str) -> str:
        return self.ckpt.info(name).dtype

    def raw(self, name: str) -> np.ndarray:
        return self.ckpt.raw(name)


_TORCH_DTYPE_NAMES = {
    "torch.float32": "F32",
    "torch.float16": "F16",
    "torch.bfloat16": "BF16",
    "torch.float64": "F64",
}


class _TorchBinSource(_Source):
    """``pytorch_model*.bin`` shards via torch.load; one shard in memory at a time
    (zip-format files are memory-mapped, so that is cheap)."""

    def __init__(self, directory: Path, files: List[Path], weight_map: Optional[Dict[str, str]]):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ConversionError(
                f"{directory} holds only PyTorch pickle weights ({', '.join(p.name for p in files)}) "
                "and torch is not installed. Either install torch (pip install torch) and run the "
                "conversion again, or convert the weights to safetensors first, e.g. with "
                "transformers: AutoModelForCausalLM.from_pretrained(dir).save_pretrained(new_dir, "
                "safe_serialization=True)"
            ) from None
        self.files = files
        self.description = f"{len(files)} PyTorch .bin file{'s' if len(files) != 1 else ''}"
        self._cached_path: Optional[Path] = None
        self._cached: Optional[dict] = None
        self._meta: Dict[str, Tuple[Tuple[int, ...], str, Path]] = {}
        for path in files:
            sd = self._load(path)
            for name, t in sd.items():
                if name in self._meta:
                    raise ConversionError(
                        f"tensor {name!r} is stored twice: in {self._meta[name][2].name} and {path.name}"
                    )
                if not hasattr(t, "shape") or not hasattr(t, "dtype"):
                    raise ConversionError(f"{path.name}: entry {name!r} is not a tensor")
                dt = _TORCH_DTYPE_NAMES.get(str(t.dtype), str(t.dtype))
                self._meta[name] = (tuple(int(d) for d in t.shape), dt, path)
        if weight_map is not None:
            for name, fname in weight_map.items():
                if name not in self._meta:
                    raise ConversionError(f"index lists tensor {name!r} in {fname}, but no shard contains it")

    def _load(self, path: Path) -> dict:
        if self._cached_path == path:
            return self._cached  # type: ignore[return-value]
        import torch

        self._cached = None
        self._cached_path = None
        try:
            try:
                sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e).lower():
                    raise
                # legacy (non-zip) serialization cannot be memory-mapped
                sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many kinds of errors for bad pickles
            raise ConversionError(f"cannot load {path}: {e}") from None
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise ConversionError(f"{path}: expected a state dict, got {type(sd).__name__}")
        self._cached, self._cached_path = sd, path
        return sd

    def names(self) -> List[str]:
        return list(self._meta)

    def shape(self, name: str) -> Tuple[int, ...]:
        return self._meta[name][0]

    def dtype(self, name: str) -> str:
        return self._meta[name][1]

    def raw(self, name: str) -> np.ndarray:
        import torch

        t = self._load(self._meta[name][2])[name].detach().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16)
        return t.numpy()

    def release(self) -> None:
        self._cached = None
        self._cached_path = None


def _torch_bin_files(d: Path) -> Tuple[List[Path], Optional[Dict[str, str]]]:
    index = d / "pytorch_model.bin.index.json"
    if index.is_file():
        data = _load_json(index, "PyTorch weight index")
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ConversionError(f"{index}: missing or empty 'weight_map'")
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (d / n).is_file()]
        if missing:
            raise ConversionError(f"{index} lists shard(s) that are not in {d}: {', '.join(missing)}")
        return [d / n for n in names], weight_map
    return sorted(p for p in d.glob("pytorch_model*.bin") if p.is_file()), None


def _open_source(d: Path) -> _Source:
    try:
        st_files, _ = find_safetensors_files(d)
    except SafetensorsError as e:
        raise ConversionError(str(e)) from None
    if st_files:
        return _SafetensorsSource(d)
    bin_files, weight_map = _torch_bin_files(d)
    if bin_files:
        return _TorchBinSource(d, bin_files, weight_map)
    raise ConversionError(
        f"no model weights in {d}: expected model.safetensors, sharded *.safetensors "
        "(with model.safetensors.index.json), or pytorch_model*.bin"
    )


# =============================================================================
# tokenizer
# =============================================================================


@dataclass
class TokenizerData:
    tokens: List[str]
    token_types: List[int]
    merges: List[str]
    pre: str
    special_ids: Dict[str, int]  # gguf key suffix -> id
    add_bos: bool
    add_eos: bool


def _token_content(v) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def _detect_pre(tok: dict, path: Path) -> str:
    """llama.cpp pre-tokenizer name from the tokenizer.json pre_tokenizer."""
    pre = tok.get("pre_tokenizer")
    if not isinstance(pre, dict):
        raise ConversionError(f"{path}: no pre_tokenizer; expected a byte-level BPE tokenizer")
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    if not isinstance(steps, list):
        steps = []
    kinds = [s.get("type") if isinstance(s, dict) else None for s in steps]

    def byte_level_ok(s: dict) -> bool:
        return s.get("use_regex", True) is True and not s.get("add_prefix_space", False)

    if (
        kinds == ["Digits", "ByteLevel"]
        and steps[0].get("individual_digits") is True
        and byte_level_ok(steps[1])
    ):
        return "starcoder"
    if kinds == ["ByteLevel"] and byte_level_ok(steps[0]):
        return "gpt-2"
    raise ConversionError(
        f"{path}: unsupported pre-tokenizer {json.dumps(pre)[:200]}; expected StarCoder's "
        "Sequence[Digits(individual_digits=true), ByteLevel] or GPT-2's ByteLevel"
    )


def read_tokenizer(hf_dir: PathLike, n_vocab: int, config: Optional[dict] = None) -> TokenizerData:
    """Vocabulary, merges and special ids from ``tokenizer.json`` (+ ``tokenizer_config.json``).

    Token ids the tokenizer does not use (the embedding may be padded beyond
    the vocabulary) become ``[PAD{id}]`` tokens of type UNUSED, like llama.cpp.
    """
    d = Path(hf_dir)
    path = d / "tokenizer.json"
    if not path.is_file():
        raise ConversionError(
            f"tokenizer.json not found in {d}: the GGUF file needs the vocabulary; copy the "
            "tokenizer.json (and tokenizer_config.json) of the base model into the checkpoint directory"
        )
    tok = _load_json(path, "tokenizer")
    model = tok.get("model")
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ConversionError(f"{path}: expected a BPE model with a 'vocab' object")
    pre = _detect_pre(tok, path)

    by_id: Dict[int, str] = {}
    types: Dict[int, int] = {}

    def put(tid, text: str, ttype: int) -> None:
        if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
            raise ConversionError(f"{path}: bad token id {tid!r} for {text!r}")
        if tid >= n_vocab:
            raise ConversionError(
                f"{path}: token {text!r} has id {tid}, but the model's vocab_size is {n_vocab}"
            )
        old = by_id.get(tid)
        if old is not None and old != text:
            raise ConversionError(f"{path}: id {tid} is used by both {old!r} and {text!r}")
        by_id[tid] = text
        types[tid] = ttype

    for text, tid in model["vocab"].items():
        put(tid, text, TOKEN_NORMAL)
    added = tok.get("added_tokens") or []
    if not isinstance(added, list):
        raise ConversionError(f"{path}: 'added_tokens' must be a list")
    for a in added:
        if not isinstance(a, dict) or not isinstance(a.get("content"), str):
            raise ConversionError(f"{path}: malformed added token {a!r}")
        text = a["content"]
        special = bool(a.get("special")) or (text.startswith("<|") and text.endswith("|>"))
        put(a.get("id"), text, TOKEN_CONTROL if special else TOKEN_USER_DEFINED)

    tokens: List[str] = []
    token_types: List[int] = []
    for i in range(n_vocab):
        if i in by_id:
            tokens.append(by_id[i])
            token_types.append(types[i])
        else:
            tokens.append(f"[PAD{i}]")
            token_types.append(TOKEN_UNUSED)

    merges: List[str] = []
    for m in model.get("merges") or []:
        if isinstance(m, str):
            if m.count(" ") != 1:
                raise ConversionError(f"{path}: malformed merge {m!r}")
            merges.append(m)
        elif isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m):
            if " " in m[0] or " " in m[1]:
                raise ConversionError(f"{path}: merge {m!r} has a space inside a token")
            merges.append(f"{m[0]} {m[1]}")
        else:
            raise ConversionError(f"{path}: malformed merge {m!r}")
    if not merges:
        raise ConversionError(f"{path}: the BPE model has no merges")

    tc_path = d / "tokenizer_config.json"
    tc = _load_json(tc_path, "tokenizer config") if tc_path.is_file() else {}
    config = config or {}
    ids_by_text = {t: i for i, t in by_id.items()}
    special: Dict[str, int] = {}

    def from_text(key: str, text: Optional[str]) -> None:
        if text is not None and text in ids_by_text:
            special[key] = ids_by_text[text]

    from_text("bos_token_id", _token_content(tc.get("bos_token")))
    from_text("eos_token_id", _token_content(tc.get("eos_token")))
    from_text("unknown_token_id", _token_content(tc.get("unk_token")))
    from_text("padding_token_id", _token_content(tc.get("pad_token")))
    for key, cfg_key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"), ("padding_token_id", "pad_token_id")):
        v = config.get(cfg_key)
        if isinstance(v, list) and v:
            v = v[0]
        if key not in special and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n_vocab:
            special[key] = v
    # FIM tokens: StarCoder uses underscores, SantaCoder hyphens
    for key, names in (
        ("fim_pre_token_id", ("<fim_prefix>", "<fim-prefix>")),
        ("fim_suf_token_id", ("<fim_suffix>", "<fim-suffix>")),
        ("fim_mid_token_id", ("<fim_middle>", "<fim-middle>")),
        ("fim_pad_token_id", ("<fim_pad>", "<fim-pad>")),
    ):
        for n in names:
            if n in ids_by_text:
                special[key] = ids_by_text[n]
                break

    add_bos = tc.get("add_bos_token", False)
    add_eos = tc.get("add_eos_token", False)
    return TokenizerData(
        tokens=tokens,
        token_types=token_types,
        merges=merges,
        pre=pre,
        special_ids=special,
        add_bos=bool(add_bos),
        add_eos=bool(add_eos),
    )


# =============================================================================
# progress
# =============================================================================


class _Progress:
    """A one-line progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, total: int, enabled: bool):
        self.total = max(total, 1)
        self.done = 0
        self.enabled = enabled and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, n: int, label: str) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        frac = min(self.done / self.total, 1.0)
        width = 30
        fill = int(frac * width)
        bar = "#" * fill + "." * (width - fill)
        mb = self.done / 1e6
        rate = mb / max(now - self.t0, 1e-6)
        line = f"\r[{bar}] {frac * 100:5.1f}% {mb:9.1f} MB {rate:7.1f} MB/s  {label[:40]:<40}"
        sys.stderr.write(line)
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            self.update(0, "done")
            sys.stderr.write("\n")
            sys.stderr.flush()


# =============================================================================
# conversion
# =============================================================================


@dataclass
class _Plan:
    gguf_name: str
    hf_name: str
    shape: Tuple[int, ...]  # numpy order, as stored in the output
    ggml_type: GGMLType
    permute_rows: Optional[np.ndarray]


def _plan_tensors(src: _Source, hp: HParams, weight_type: GGMLType) -> Tuple[List[_Plan], bool]:
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

    expected = _expected_tensors(hp, with_output)
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
    plans: List[_Plan] = []
    for g, shape in expected:
        hf_name = by_gguf[g]
        got = tuple(src.shape(hf_name))
        if got != shape:
            raise ConversionError(f"{hf_name}: shape {list(got)} does not match the config, expected {list(shape)}")
        dt = src.dtype(hf_name)
        if dt not in ("F32", "F16", "BF16", "F64"):
            raise ConversionError(f"{hf_name}: unsupported dtype {dt} (expected F32, F16 or BF16)")
        p = perm if g.startswith("blk.") and ".attn_qkv." in g else None
        plans.append(_Plan(g, hf_name, shape, _tensor_type(g, shape, weight_type), p))
    return plans, with_output


def _chunks(
    raw: np.ndarray, src_dtype: str, plan: _Plan, warn: Callable[[str], None], n_threads: int = 0,
    lora: Optional[LoraAdapter] = None,
) -> Iterator[np.ndarray]:
    """Encoded data of one tensor, in row chunks (with a LoRA adapter's update
    added to the rows it changes)."""
    shape = plan.shape
    row_elems = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    n_rows = shape[0]
    rows_per = max(1, _CHUNK_ELEMS // max(row_elems, 1))
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
                overflow = float(f.max()) > _F16_MAX or float(f.min()) < -_F16_MAX
            yield encode_tensor(target, f, n_threads)
        if not permuted:
            # the rows up to here are written: unmap their pages so that resident
            # memory stays at about one chunk, not one tensor
            release_pages(block)
    if overflow:
        warn(f"{plan.hf_name}: values beyond the F16 range ({_F16_MAX}) became infinities")


def _not_a_download_hint(name: str) -> str:
    """For a missing path that reads like a Hugging Face model id: the
    converter works offline, so say what to fetch and copy instead."""
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name) is None:
        return ""
    return (f". This converter never downloads: on a machine with network, fetch the checkpoint "
            f"(huggingface-cli download {name} --local-dir DIR, or git lfs clone), copy DIR "
            f"(config.json, tokenizer.json, the *.safetensors files) here and pass its path")


def convert_checkpoint(
    hf_dir: PathLike,
    out_path: PathLike,
    out_type: str = "f16",
    progress: bool = True,
    lora_dir: Optional[PathLike] = None,
    n_threads: int = 0,
) -> dict:
    """Convert the GPT-BigCode checkpoint in ``hf_dir`` to a GGUF file at ``out_path``.

    ``out_type`` is ``"f16"`` (2-D weights in F16, the rest F32), ``"f32"``, or
    a llama.cpp quantization preset (``"q8_0"``, ``"q4_k_m"``, ``"q5_k_m"``, ...
    see ``quant_presets``): then each weight gets the type llama-quantize would
    give it and is quantized (row chunks, ``n_threads`` threads; 0 = all cores)
    to exactly the bytes llama-quantize would write.
    Returns a summary dict (path, sizes, tensor count, hyper-parameters).
    Raises ConversionError for inputs it cannot convert; the output file is
    written to a temporary name and only renamed into place on success.
    """
    lora = None
    if lora_dir is not None:
        try:
            lora = LoraAdapter(lora_dir)
        except LoraError as e:
            raise ConversionError(f"LoRA adapter: {e}") from None
    t0 = time.monotonic()
    d = Path(hf_dir)
    if not d.exists():
        raise ConversionError(f"checkpoint directory not found: {d}" + _not_a_download_hint(str(hf_dir)))
    if not d.is_dir():
        raise ConversionError(f"not a directory: {d} (pass the Hugging Face model directory)")
    key = str(out_type).lower()
    key = _OUT_TYPE_ALIASES.get(key, key)
    if key in OUT_TYPES:
        weight_type, file_type = OUT_TYPES[key]
    else:
        try:
            key = normalize_preset(key)
        except QuantPlanError:
            raise ConversionError(
                f"unsupported output type {out_type!r}; choose one of {', '.join(OUT_TYPE_NAMES)}"
            ) from None
        weight_type, file_type = PRESETS[key]
    quantized = weight_type in QUANTIZED_TYPES
    out = Path(out_path)
    if out.is_dir():
        raise ConversionError(f"output path is a directory: {out}")
    if not out.parent.is_dir():
        raise ConversionError(f"output directory does not exist: {out.parent}")

    config = _load_json(d / "config.json", "config.json")
    hp = read_hparams(config)
    src = _open_source(d)
    plans, with_output = _plan_tensors(src, hp, GGMLType.F32 if quantized else weight_type)
    if quantized:
        # the types llama-quantize would choose for the F32 file of this model
        try:
            chosen = plan_tensor_types(
                [(p.gguf_name, tuple(reversed(p.shape)), p.ggml_type) for p in plans],
                key, hp.n_layer, hp.n_head, hp.n_head_kv,
            )
        except QuantPlanError as e:
            raise ConversionError(str(e)) from None
        for p in plans:
            p.ggml_type = chosen[p.gguf_name]
    tokd = read_tokenizer(d, hp.n_vocab, config)

    name = config.get("_name_or_path")
    if not isinstance(name, str) or not name.strip():
        name = d.resolve().name
    name = name.rstrip("/").split("/")[-1] or "starcoder"

    tmp = out.with_name(out.name + ".part")
    writer = GGUFWriter(tmp)
    try:
        writer.add_string("general.architecture", ARCH)
        writer.add_string("general.name", name)
        writer.add_uint32("general.file_type", file_type)
        if quantized:
            writer.add_uint32("general.quantization_version", GGML_QNT_VERSION)
        writer.add_uint32(f"{ARCH}.context_length", hp.n_ctx)
        writer.add_uint32(f"{ARCH}.embedding_length", hp.n_embd)
        writer.add_uint32(f"{ARCH}.feed_forward_length", hp.n_ff)
        writer.add_uint32(f"{ARCH}.block_count", hp.n_layer)
        writer.add_uint32(f"{ARCH}.attention.head_count", hp.n_head)
        writer.add_uint32(f"{ARCH}.attention.head_count_kv", hp.n_head_kv)
        writer.add_float32(f"{ARCH}.attention.layer_norm_epsilon", hp.layer_norm_eps)
        writer.add_string(ACTIVATION_KEY, hp.activation)

        writer.add_string("tokenizer.ggml.model", "gpt2")
        writer.add_string("tokenizer.ggml.pre", tokd.pre)
        writer.add_string_array("tokenizer.ggml.tokens", tokd.tokens)
        writer.add_int32_array("tokenizer.ggml.token_type", tokd.token_types)
        writer.add_string_array("tokenizer.ggml.merges", tokd.merges)
        for k, v in tokd.special_ids.items():
            writer.add_uint32(f"tokenizer.ggml.{k}", v)
        writer.add_bool("tokenizer.ggml.add_bos_token", tokd.add_bos)
        writer.add_bool("tokenizer.ggml.add_eos_token", tokd.add_eos)

        total = 0
        for p in plans:
            total += writer.add_tensor_info(p.gguf_name, p.shape, p.ggml_type)
        writer.write_header()

        bar = _Progress(total, progress)
        warnings: List[str] = []
        for p in plans:
            raw = src.raw(p.hf_name)
            dt = src.dtype(p.hf_name)
            writer.begin_tensor(p.gguf_name)
            for chunk in _chunks(raw, dt, p, warnings.append, n_threads, lora):
                writer.write_chunk(chunk)
                bar.update(chunk.nbytes, p.gguf_name)
            writer.end_tensor()
            del raw  # drops the memory map of this tensor
        src.release()
        if lora is not None:
            lora.check_all_merged()
        writer.close()
        bar.finish()
        os.replace(tmp, out)
    except BaseException as e:
        writer.abort()
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, LoraError):
            raise ConversionError(f"LoRA adapter: {e}") from None
        raise
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)

    n_params = sum(int(np.prod(p.shape)) for p in plans)
    return {
        "path": str(out),
        "out_type": key,
        "tensor_types": {t.name.lower(): sum(1 for p in plans if p.ggml_type == t) for t in sorted({p.ggml_type for p in plans})},
        "file_type": file_type,
        "file_size": out.stat().st_size,
        "n_tensors": len(plans),
        "n_params": n_params,
        "source": src.description,
        "arch": ARCH,
        "n_vocab": hp.n_vocab,
        "n_ctx": hp.n_ctx,
        "n_embd": hp.n_embd,
        "n_ff": hp.n_ff,
        "n_layer": hp.n_layer,
        "n_head": hp.n_head,
        "n_head_kv": hp.n_head_kv,
        "multi_query": hp.multi_query,
        "tied_output": not with_output,
        "activation": hp.activation,
        "tokenizer_pre": tokd.pre,
        "n_tokens": len(tokd.tokens),
        "n_merges": len(tokd.merges),
        "lora": str(lora_dir) if lora_dir is not None else None,
        "seconds": time.monotonic() - t0,
        "warnings": warnings,
    }
