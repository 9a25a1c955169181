"""`convert --lora` merges a PEFT LoRA adapter exactly as peft's own
merge_and_unload() does."""

from __future__ import annotations

import json

import numpy as np
import pytest

import starcoder_cpp
from conftest import require
from hf_models import build_hf_model, hf_logits


def make_adapter(model, out_dir, seed=0, **lora_kwargs):
    torch = require("torch")
    peft = require("peft")
    torch.manual_seed(seed)
    cfg = dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"], lora_dropout=0.0,
               init_lora_weights=False)  # random A and B: a non-zero update
    cfg.update(lora_kwargs)
    pm = peft.get_peft_model(model, peft.LoraConfig(**cfg))
    pm.save_pretrained(out_dir, safe_serialization=True)
    return pm.merge_and_unload()


def convert(hf_dir, out, lora=None, out_type="f32"):
    from starcoder_cpp.convert import convert_checkpoint

    convert_checkpoint(str(hf_dir), str(out), out_type=out_type, progress=False, lora_dir=lora)
    return starcoder_cpp.Model(out, kv_type="f32")


IDS = list(range(300, 332))


@pytest.mark.parametrize("multi_query", [True, False])
def test_merged_model_gives_peft_merged_logits(tmp_path, multi_query):
    import copy

    base = build_hf_model(tmp_path / "base", multi_query=multi_query, seed=3)
    merged = make_adapter(copy.deepcopy(base), tmp_path / "adapter")
    m = convert(tmp_path / "base", tmp_path / "m.gguf", lora=tmp_path / "adapter")
    ref = hf_logits(merged, IDS)
    ours = m.eval(IDS, all_logits=True)
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
    # and the adapter really changed the model
    assert np.abs(ref - hf_logits(base, IDS)).max() > 1e-2 * np.abs(ref).max()


def test_rank_and_alpha_patterns_and_rslora(tmp_path):
    import copy

    base = build_hf_model(tmp_path / "base", seed=4)
    merged = make_adapter(copy.deepcopy(base), tmp_path / "adapter", use_rslora=True,
                          rank_pattern={"c_fc": 2}, alpha_pattern={"attn.c_proj": 3})
    m = convert(tmp_path / "base", tmp_path / "m.gguf", lora=tmp_path / "adapter")
    ref = hf_logits(merged, IDS)
    assert np.abs(m.eval(IDS, all_logits=True) - ref).max() <= 1e-4 * np.abs(ref).max()


def test_adapter_for_another_model_is_refused(tmp_path):
    from starcoder_cpp.convert import ConversionError

    build_hf_model(tmp_path / "base", seed=5)
    other = build_hf_model(tmp_path / "other", n_embd=32, n_inner=64, seed=6)
    make_adapter(other, tmp_path / "adapter")
    with pytest.raises(ConversionError, match="different base model"):
        convert(tmp_path / "base", tmp_path / "m.gguf", lora=tmp_path / "adapter")


def test_missing_adapter_files_are_refused(tmp_path):
    from starcoder_cpp.convert import ConversionError

    build_hf_model(tmp_path / "base", seed=7)
    (tmp_path / "adapter").mkdir()
    with pytest.raises(ConversionError, match="adapter_config.json"):
        convert(tmp_path / "base", tmp_path / "m.gguf", lora=tmp_path / "adapter")


def test_dora_adapters_are_refused(tmp_path):
    from starcoder_cpp.convert import ConversionError

    base = build_hf_model(tmp_path / "base", seed=8)
    make_adapter(base, tmp_path / "adapter")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["use_dora"] = True
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ConversionError, match="DoRA"):
        convert(tmp_path / "base", tmp_path / "m.gguf", lora=tmp_path / "adapter")


def test_cli_convert_with_lora_flag(tmp_path):
    import copy
    import subprocess
    import sys

    base = build_hf_model(tmp_path / "base", seed=9)
    merged = make_adapter(copy.deepcopy(base), tmp_path / "adapter")
    out = tmp_path / "m.gguf"
    r = subprocess.run([sys.executable, "-m", "starcoder_cpp", "convert", str(tmp_path / "base"), "-o", str(out),
                        "--type", "f32", "--lora", str(tmp_path / "adapter"), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = hf_logits(merged, IDS)
    assert np.abs(starcoder_cpp.Model(out, kv_type="f32").eval(IDS, all_logits=True) - ref).max() <= 1e-4 * np.abs(ref).max()
