"""``convert_checkpoint``: reads config, weights and tokenizer, plans the
tensors, and streams them into a GGUF file through gguf-py's writer."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from gguf import GGML_QUANT_VERSION, LlamaFileType

from ..ggml_types import GGMLType, QUANTIZED_TYPES
from ..gguf_output import GGUFOutput, checked_threads as _checked_threads, output_path_problem
from ..lora import LoraAdapter, LoraError
from ..progress import progress_bar
from ..quant_presets import PRESETS, QuantPlanError, normalize_preset, plan_tensor_types
from .errors import ConversionError, load_json
from .hparams import HParams, read_hparams
from .sources import open_source
from .tensors import TensorPlan, encoded_chunks, plan_tensors
from .tokenizer import TokenizerData, read_tokenizer

PathLike = Union[str, os.PathLike]

ARCH = "starcoder"
ACTIVATION_KEY = "starcoder_cpp.activation"

# out_type -> (ggml type of the 2-D weights, general.file_type)
OUT_TYPES: Dict[str, Tuple[GGMLType, int]] = {
    "f32": (GGMLType.F32, LlamaFileType.ALL_F32),
    "f16": (GGMLType.F16, LlamaFileType.MOSTLY_F16),
}

_OUT_TYPE_ALIASES = {"float32": "f32", "fp32": "f32", "float16": "f16", "fp16": "f16"}

# Every other output type is a llama.cpp quantization preset (q8_0, q4_k_m, ...;
# see quant_presets.PRESETS): the per-tensor types are the ones llama-quantize
# would pick for an F32 file of this model, and the data is bit-identical to it.
OUT_TYPE_NAMES: List[str] = list(OUT_TYPES) + [k for k in PRESETS if k not in OUT_TYPES]


def _resolve_out_type(out_type: str) -> Tuple[str, GGMLType, int]:
    key = str(out_type).lower()
    key = _OUT_TYPE_ALIASES.get(key, key)
    if key in OUT_TYPES:
        return (key,) + OUT_TYPES[key]
    try:
        key = normalize_preset(key)
    except QuantPlanError:
        raise ConversionError(
            f"unsupported output type {out_type!r}; choose one of {', '.join(OUT_TYPE_NAMES)}"
        ) from None
    return (key,) + PRESETS[key]


def _model_name(config: dict, d: Path) -> str:
    name = config.get("_name_or_path")
    if not isinstance(name, str) or not name.strip():
        name = d.resolve().name
    return name.rstrip("/").split("/")[-1] or "starcoder"


def _add_metadata(w, name: str, file_type: int, quantized: bool, hp: HParams, tokd: TokenizerData) -> None:
    # The order of the keys is the file's; keep it when adding keys (files
    # are compared byte for byte with earlier conversions and llama.cpp's).
    w.add_name(name)
    w.add_file_type(int(file_type))
    if quantized:
        w.add_quantization_version(GGML_QUANT_VERSION)
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_feed_forward_length(hp.n_ff)
    w.add_block_count(hp.n_layer)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_layer_norm_eps(hp.layer_norm_eps)
    w.add_string(ACTIVATION_KEY, hp.activation)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(tokd.pre)
    w.add_token_list(tokd.tokens)
    w.add_token_types(tokd.token_types)
    w.add_token_merges(tokd.merges)
    for key, token_id in tokd.special_ids.items():
        w.add_uint32(key, token_id)
    w.add_add_bos_token(tokd.add_bos)
    w.add_add_eos_token(tokd.add_eos)


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
    to exactly the bytes llama-quantize would write. ``lora_dir``: a PEFT LoRA
    adapter merged into the weights first. ``progress``: a progress bar on
    stderr when it is a terminal.

    Returns a summary dict (path, sizes, tensor count, hyper-parameters).
    Raises ConversionError for inputs it cannot convert; the output file is
    written to a temporary name and only renamed into place on success.
    """
    t0 = time.monotonic()
    d = Path(hf_dir)
    if not d.exists():
        raise ConversionError(f"checkpoint directory not found: {d}" + _not_a_download_hint(str(hf_dir)))
    if not d.is_dir():
        raise ConversionError(f"not a directory: {d} (pass the Hugging Face model directory)")
    key, weight_type, file_type = _resolve_out_type(out_type)
    quantized = weight_type in QUANTIZED_TYPES
    out = Path(out_path)
    if out.is_dir():
        raise ConversionError(f"output path is a directory: {out}")
    if not out.parent.is_dir():
        raise ConversionError(f"output directory does not exist: {out.parent}")
    # Every file of the checkpoint (and adapter) folder counts as an input,
    # except GGUF files: the converter never reads one, and an earlier
    # conversion written beside the checkpoint may be replaced.
    def files(folder: Path) -> list[Path]:
        return [p for p in folder.iterdir() if p.is_file() and not p.name.endswith((".gguf", ".gguf.part"))]

    inputs = files(d)
    if lora_dir is not None and Path(lora_dir).is_dir():
        inputs += files(Path(lora_dir))
    problem = output_path_problem(out, inputs)
    if problem:
        raise ConversionError(problem)
    n_threads = _checked_threads(n_threads, ConversionError)
    lora = None
    if lora_dir is not None:
        try:
            lora = LoraAdapter(lora_dir)
        except LoraError as e:
            raise ConversionError(f"LoRA adapter: {e}") from None

    config = load_json(d / "config.json", "config.json")
    hp = read_hparams(config)
    src = open_source(d)
    plans, with_output = plan_tensors(src, hp, GGMLType.F32 if quantized else weight_type)
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

    warnings: List[str] = []
    try:
        with GGUFOutput(out, ARCH) as gguf_out:
            _add_metadata(gguf_out.writer, _model_name(config, d), file_type, quantized, hp, tokd)
            total = sum(gguf_out.declare(p.gguf_name, p.shape, p.ggml_type) for p in plans)
            gguf_out.write_header()
            with progress_bar(total, "convert", enabled=progress) as bar:
                for p in plans:
                    raw = src.raw(p.hf_name)
                    chunks = encoded_chunks(raw, src.dtype(p.hf_name), p, warnings.append, n_threads, lora)
                    gguf_out.write_tensor(p.gguf_name, chunks, bar.update)
                    del raw, chunks  # drops the memory map of this tensor
            src.release()
            if lora is not None:
                lora.check_all_merged()
    except LoraError as e:
        raise ConversionError(f"LoRA adapter: {e}") from None
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return _summary(out, key, file_type, plans, with_output, src.description, hp, tokd, lora_dir, t0, warnings)


def _summary(out: Path, key: str, file_type: int, plans: List[TensorPlan], with_output: bool, source: str,
             hp: HParams, tokd: TokenizerData, lora_dir, t0: float, warnings: List[str]) -> dict:
    types = sorted({p.ggml_type for p in plans})
    return {
        "path": str(out),
        "out_type": key,
        "tensor_types": {t.name.lower(): sum(1 for p in plans if p.ggml_type == t) for t in types},
        "file_type": int(file_type),
        "file_size": out.stat().st_size,
        "n_tensors": len(plans),
        "n_params": sum(int(np.prod(p.shape)) for p in plans),
        "source": source,
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
