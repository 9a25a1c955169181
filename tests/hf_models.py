"""Small random GPT-BigCode checkpoints built with transformers, the reference
implementation the forward pass is checked against."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from conftest import VOCAB_DIR, require


def build_hf_model(
    out_dir: Path,
    *,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_inner: int | None = 256,
    n_positions: int = 128,
    multi_query: bool = True,
    activation: str = "gelu_pytorch_tanh",
    tie: bool = True,
    init_std: float = 0.1,
    seed: int = 0,
):
    """Saves a random GPTBigCodeForCausalLM (float32, safetensors) with the
    real StarCoder 1 tokenizer to out_dir; returns the torch model."""
    torch = require("torch")
    transformers = require("transformers")
    torch.manual_seed(seed)
    config = transformers.GPTBigCodeConfig(
        vocab_size=49152,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_inner=n_inner,
        multi_query=multi_query,
        activation_function=activation,
        initializer_range=init_std,
        tie_word_embeddings=tie,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPTBigCodeForCausalLM(config).eval()
    # LayerNorms and biases start at 1/0: perturb them so every parameter is tested.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    shutil.copy(VOCAB_DIR / "starcoder-v1-tokenizer.json", out_dir / "tokenizer.json")
    return model


def hf_logits(model, ids) -> np.ndarray:
    """All-position logits from transformers, float32, shape (len(ids), vocab)."""
    import torch

    with torch.no_grad():
        out = model(torch.tensor([list(ids)], dtype=torch.long))
    return out.logits[0].float().numpy()


def hf_greedy(model, ids, n: int) -> list[int]:
    import torch

    with torch.no_grad():
        out = model.generate(
            torch.tensor([list(ids)], dtype=torch.long),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
        )
    return out[0, len(ids):].tolist()


def round_like_gguf(model, gguf_path):
    """A copy of `model` whose weights are rounded to float16 wherever the
    GGUF file stores them as f16 (the converter keeps 1-D tensors and the
    position embeddings in float32)."""
    import copy

    import torch

    from starcoder_cpp import inspect_gguf

    types = {t["name"]: t["type"] for t in inspect_gguf(str(gguf_path))["tensors"]}
    hf_to_gguf = {"transformer.wte.weight": "token_embd.weight", "transformer.wpe.weight": "position_embd.weight",
                  "lm_head.weight": "output.weight"}
    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() != 2:
                continue
            gguf_name = hf_to_gguf.get(name)
            if gguf_name is None:  # a block matrix: every one is f16 in an f16 file
                assert types["blk.0.attn_qkv.weight"] == "f16"
            elif types.get(gguf_name, types["token_embd.weight"]) != "f16":
                continue
            p.copy_(p.half().float())
    return m
