"""Specs for quantization: ggml block formats, the reference quantizers, the
fused quantized forward pass, llama.cpp's per-tensor type rules, the
converter's quantized output types and the ``quantize`` re-quantizer.

Byte-for-byte comparisons with llama.cpp itself are in test_quant_llama_cpp.py;
here the independent reference is the ``gguf`` package's numpy
(de)quantizers (written from ggml's C, not from this project).
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest

import make_checkpoint as mc  # tools/ (conftest puts it on sys.path)
from conftest import TINY_MODEL_DIR, VOCAB_DIR, require, require_path, truncated_tokenizer

import starcoder_cpp
from starcoder_cpp import _core, _testing
from starcoder_cpp.convert import ConversionError, convert_checkpoint
from starcoder_cpp.ggml_types import GGMLType
from starcoder_cpp.gguf_header import read_gguf_header
from starcoder_cpp.quant_presets import PRESETS, QuantPlanError, normalize_preset, plan_tensor_types, use_more_bits
from starcoder_cpp.quantize import QuantizeError, quantize_gguf

WEIGHT_TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]
LEGACY = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"]

# ggml-common.h: (elements per block, bytes per block)
GGML_BLOCKS = {
    "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24), "q8_0": (32, 34), "q8_1": (32, 36),
    "q2_k": (256, 84), "q3_k": (256, 110), "q4_k": (256, 144), "q5_k": (256, 176), "q6_k": (256, 210),
    "q8_k": (256, 292),
}

# relative RMS error of quantize -> dequantize on N(0, 1) data (measured values
# are about 15% below these bounds)
REL_RMSE_BOUND = {
    "q8_0": 0.0065, "q6_k": 0.021, "q5_k": 0.042, "q5_1": 0.044, "q5_0": 0.050,
    "q4_k": 0.083, "q4_1": 0.092, "q4_0": 0.100, "q3_k": 0.175, "q2_k": 0.34,
}


def _gguf_quants():
    gguf = require("gguf")
    import gguf.quants as q

    return gguf, q


def _rel_rmse(a, b) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b ** 2)))


@pytest.fixture(scope="module")
def normal_rows() -> np.ndarray:
    return np.random.default_rng(1234).standard_normal((64, 1024)).astype(np.float32)


# --------------------------------------------------------------------------- formats


def test_block_layouts_are_ggmls():
    types = _core.quant_types()
    for name, (block, size) in GGML_BLOCKS.items():
        assert (types[name]["block_size"], types[name]["type_size"]) == (block, size), name
        assert types[name]["quantized"]
    assert types["q4_1"]["dot_type"] == "q8_1" and types["q5_1"]["dot_type"] == "q8_1"
    assert {types[t]["dot_type"] for t in ("q4_0", "q5_0", "q8_0")} == {"q8_0"}
    assert {types[t]["dot_type"] for t in ("q2_k", "q3_k", "q4_k", "q5_k", "q6_k")} == {"q8_k"}
    gguf, _ = _gguf_quants()
    for name, (block, size) in GGML_BLOCKS.items():
        if name == "q8_1":
            continue  # activation-only; gguf-py still lists an old float-scale size (40) for it
        assert tuple(gguf.GGML_QUANT_SIZES[getattr(gguf.GGMLQuantizationType, name.upper())]) == (block, size)


@pytest.mark.parametrize("t", WEIGHT_TYPES)
def test_round_trip_error_is_bounded(t, normal_rows):
    q = _core.quantize(normal_rows, t)
    block, size = GGML_BLOCKS[t]
    assert q.dtype == np.uint8 and q.shape == (64, 1024 // block * size)
    back = _core.dequantize(q, t, normal_rows.shape)
    assert back.shape == normal_rows.shape and back.dtype == np.float32
    err = _rel_rmse(back, normal_rows)
    assert err < REL_RMSE_BOUND[t], f"{t}: relative RMS error {err:.4f}"


def test_more_bits_means_less_error(normal_rows):
    errs = {t: _rel_rmse(_core.dequantize(_core.quantize(normal_rows, t), t, normal_rows.shape), normal_rows)
            for t in WEIGHT_TYPES}
    chain = ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_0"]
    assert all(errs[a] > errs[b] for a, b in zip(chain, chain[1:])), errs
    assert errs["q4_0"] > errs["q5_0"] and errs["q4_1"] > errs["q5_1"]


def test_q8_0_and_q4_1_element_error_bounds(normal_rows):
    x = normal_rows.reshape(-1, 32)
    back = _core.dequantize(_core.quantize(normal_rows, "q8_0"), "q8_0", normal_rows.shape).reshape(-1, 32)
    d = np.abs(x).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(back - x) <= 0.5 * d * 1.13)  # half a step, plus the fp16 rounding of d
    back = _core.dequantize(_core.quantize(normal_rows, "q4_1"), "q4_1", normal_rows.shape).reshape(-1, 32)
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    d = (hi - lo) / 15
    assert np.all(np.abs(back - x) <= 0.5 * d + 2.0 ** -10 * (np.abs(lo) + 15 * d) + 1e-7)


@pytest.mark.parametrize("t", WEIGHT_TYPES)
def test_special_blocks(t):
    n = 512
    rows = np.zeros((6, n), np.float32)
    rows[1] = 0.75                                   # constant
    rows[2, 17] = 1000.0                             # one outlier
    rows[3] = np.linspace(-1e-30, 1e-30, n)          # far below fp16 range
    rows[4] = np.where(np.arange(n) % 2, 3.0, -3.0)  # two values
    rows[5] = np.arange(n) / n - 0.5
    q = _core.quantize(rows, t)
    back = _core.dequantize(q, t, rows.shape)
    assert np.all(np.isfinite(back))
    assert np.all(back[0] == 0)
    assert np.all(np.abs(back[3]) < 1e-20)
    assert abs(back[2, 17] - 1000.0) < 1000.0 * 0.2
    assert np.abs(back[5] - rows[5]).max() < {"q2_k": 0.2, "q3_k": 0.1}.get(t, 0.04)


@pytest.mark.parametrize("t", LEGACY)
def test_legacy_quantizers_equal_the_gguf_package(t, normal_rows):
    """gguf.quants implements ggml's reference quantizers in numpy."""
    gguf, q = _gguf_quants()
    qt = getattr(gguf.GGMLQuantizationType, t.upper())
    x = normal_rows * 0.05
    x[0, :64] = 0.0
    x[1, 3] = 7.0
    assert np.array_equal(_core.quantize(x, t), q.quantize(x, qt))


@pytest.mark.parametrize("t", WEIGHT_TYPES)
def test_dequantizers_equal_the_gguf_package(t, normal_rows):
    gguf, q = _gguf_quants()
    qt = getattr(gguf.GGMLQuantizationType, t.upper())
    data = _core.quantize(normal_rows[:16], t)
    assert np.array_equal(_core.dequantize(data, t, (16, 1024)), q.dequantize(data, qt))


def test_quantization_does_not_depend_on_threads(normal_rows):
    for t in ("q4_k", "q5_0"):
        one = _core.quantize(normal_rows, t, 1)
        assert np.array_equal(one, _core.quantize(normal_rows, t, 3))
        # rows are independent: any row range quantizes the same
        assert np.array_equal(one[5:9], _core.quantize(normal_rows[5:9], t, 1))


def test_activation_formats_keep_their_sums(normal_rows):
    x = normal_rows[:4, :512]
    q81 = _core.quantize(x, "q8_1").reshape(-1, 36)
    qs = q81[:, 4:].view(np.int8).astype(np.float32)
    d = q81[:, 0:2].copy().view(np.float16).astype(np.float32)[:, 0]
    s = q81[:, 2:4].copy().view(np.float16).astype(np.float32)[:, 0]
    assert np.allclose(s, d * qs.sum(axis=1), rtol=2e-3, atol=1e-6)
    q8k = _core.quantize(x, "q8_k").reshape(-1, 292)
    qs = q8k[:, 4:260].view(np.int8).astype(np.int32)
    bsums = q8k[:, 260:].copy().view(np.int16).astype(np.int32)
    assert np.array_equal(bsums, qs.reshape(-1, 16, 16).sum(axis=2))
    back = _core.dequantize(q8k.reshape(-1), "q8_k", x.shape)
    assert _rel_rmse(back, x) < 0.01


def test_wrong_sizes_are_clear_errors():
    x = np.ones((2, 100), np.float32)
    with pytest.raises(ValueError, match="not a multiple of the q4_0 block size 32"):
        _core.quantize(x, "q4_0")
    with pytest.raises(ValueError, match="not a multiple of the q6_k block size 256"):
        _core.quantize(np.ones((2, 128), np.float32), "q6_k")
    with pytest.raises(ValueError, match=r"q8_0 tensor of shape \(2, 64\) must be 136 bytes, got 135"):
        _core.dequantize(bytes(135), "q8_0", (2, 64))
    with pytest.raises(ValueError, match="unknown tensor type 'q7_0'"):
        _core.quantize(x, "q7_0")
    with pytest.raises(ValueError, match="must be 144 bytes"):
        _testing.vec_dot(bytes(100), "q4_k", np.ones(256, np.float32))


# --------------------------------------------------------------------------- fused dot products


@pytest.mark.parametrize("t", WEIGHT_TYPES)
def test_linear_is_the_integer_dot_with_quantized_activations(t):
    rng = np.random.default_rng(7)
    n_out, n_in = 40, 512
    w = (rng.standard_normal((n_out, n_in)) * 0.05).astype(np.float32)
    x = rng.standard_normal((5, n_in)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    qw = _core.quantize(w, t)
    wd = _core.dequantize(qw, t, w.shape).astype(np.float64)
    dt = _core.quant_types()[t]["dot_type"]
    xd = _core.dequantize(_core.quantize(x, dt), dt, x.shape).astype(np.float64)
    y = _testing.linear(qw, t, n_out, n_in, x, bias, 2)
    ref = xd @ wd.T + bias
    scale = np.abs(xd) @ np.abs(wd).T
    if dt == "q8_1":
        # Q4_1/Q5_1 use the activation block's stored s = fp16(d * sum(q8)) for the min term
        m = qw.reshape(n_out, -1, GGML_BLOCKS[t][1])[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float64)
        s = np.abs(xd.reshape(len(x), -1, 32).sum(axis=2))
        scale = scale + 2.0 ** -11 * 1e5 * (s @ np.abs(m).T)
    assert np.all(np.abs(y - ref) <= 1e-5 * scale + 1e-5), t  # only float rounding differs
    # activation quantization costs little next to the float product
    exact = x.astype(np.float64) @ wd.T + bias
    assert np.abs(y - exact).max() < 0.02 * np.abs(exact).max()
    # one row at a time (vec_dot) gives the same numbers, and threads do not matter
    for r in (0, 17, 39):
        assert _testing.vec_dot(qw[r], t, x[2]) == pytest.approx(y[2, r] - bias[r], rel=1e-6, abs=1e-6)
    assert np.array_equal(y, _testing.linear(qw, t, n_out, n_in, x, bias, 1))
    # one token or many: the same per-token results up to float rounding (a prompt's
    # GEMM may sum a row's block products in another order than the decode kernel)
    one = _testing.linear(qw, t, n_out, n_in, x[3:4], bias, 1)
    assert np.all(np.abs(y[3:4] - one) <= 1e-5 * scale[3:4] + 1e-5), t


@pytest.mark.parametrize("t", WEIGHT_TYPES + ["f16", "f32"])
def test_get_rows_dequantizes_single_rows(t):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((50, 256)).astype(np.float32)
    if t == "f32":
        data = w
    elif t == "f16":
        data = w.astype(np.float16)
    else:
        data = _core.quantize(w, t)
    full = _core.dequantize(data, t, w.shape)
    rows = _testing.get_rows(data, t, 50, 256, [7, 0, 49, 7])
    assert np.array_equal(rows, full[[7, 0, 49, 7]])


# --------------------------------------------------------------------------- per-tensor type rules


def _tensor_list(n_layer, n_embd=256, n_ff=1024, n_vocab=1024, tied=True, qkv=None):
    qkv = qkv or n_embd + 2 * 64
    F32 = GGMLType.F32
    out = [("token_embd.weight", (n_embd, n_vocab), F32), ("position_embd.weight", (n_embd, 64), F32)]
    for i in range(n_layer):
        b = f"blk.{i}."
        out += [
            (b + "attn_norm.weight", (n_embd,), F32), (b + "attn_norm.bias", (n_embd,), F32),
            (b + "attn_qkv.weight", (n_embd, qkv), F32), (b + "attn_qkv.bias", (qkv,), F32),
            (b + "attn_output.weight", (n_embd, n_embd), F32), (b + "attn_output.bias", (n_embd,), F32),
            (b + "ffn_norm.weight", (n_embd,), F32), (b + "ffn_norm.bias", (n_embd,), F32),
            (b + "ffn_up.weight", (n_embd, n_ff), F32), (b + "ffn_up.bias", (n_ff,), F32),
            (b + "ffn_down.weight", (n_ff, n_embd), F32), (b + "ffn_down.bias", (n_embd,), F32),
        ]
    out += [("output_norm.weight", (n_embd,), F32), ("output_norm.bias", (n_embd,), F32)]
    if not tied:
        out.append(("output.weight", (n_embd, n_vocab), F32))
    return out


def _layer_types(plan, n_layer, what):
    return [plan[f"blk.{i}.{what}.weight"].name for i in range(n_layer)]


def test_use_more_bits_picks_llama_cpps_layers():
    assert [i for i in range(24) if use_more_bits(i, 24)] == [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]
    assert [i for i in range(8) if use_more_bits(i, 8)] == [0, 3, 6, 7]


def test_q4_k_m_and_q5_k_m_rules():
    t = _tensor_list(8)
    p = plan_tensor_types(t, "q4_k_m", 8, 16, 1)
    more = ["Q6_K" if i in (0, 3, 6, 7) else "Q4_K" for i in range(8)]
    assert _layer_types(p, 8, "attn_qkv") == more
    assert _layer_types(p, 8, "ffn_down") == more
    assert set(_layer_types(p, 8, "attn_output")) == {"Q4_K"} and set(_layer_types(p, 8, "ffn_up")) == {"Q4_K"}
    assert p["token_embd.weight"] == GGMLType.Q6_K  # tied: it is also the LM head
    assert p["position_embd.weight"] == GGMLType.F32
    assert all(p[n] == GGMLType.F32 for n, ne, _ in t if len(ne) == 1)
    p = plan_tensor_types(t, "q5_k_m", 8, 16, 1)
    assert _layer_types(p, 8, "attn_qkv") == [m.replace("Q4_K", "Q5_K") for m in more]
    assert set(_layer_types(p, 8, "ffn_up")) == {"Q5_K"}


def test_untied_embeddings_take_the_default_type_and_output_gets_q6_k():
    p = plan_tensor_types(_tensor_list(8, tied=False), "q4_k_m", 8, 16, 1)
    assert p["token_embd.weight"] == GGMLType.Q4_K and p["output.weight"] == GGMLType.Q6_K
    p = plan_tensor_types(_tensor_list(8, tied=False), "q8_0", 8, 16, 1)
    assert p["token_embd.weight"] == GGMLType.Q8_0 and p["output.weight"] == GGMLType.Q8_0


def test_legacy_presets_keep_a_q6_k_lm_head():
    for preset in ("q4_0", "q4_1", "q5_0", "q5_1"):
        p = plan_tensor_types(_tensor_list(4), preset, 4, 16, 1)
        assert p["token_embd.weight"] == GGMLType.Q6_K
        assert {p[f"blk.{i}.{w}.weight"].name.lower() for i in range(4)
                for w in ("attn_qkv", "attn_output", "ffn_up", "ffn_down")} == {preset}
    p = plan_tensor_types(_tensor_list(4), "q8_0", 4, 16, 1)
    assert p["token_embd.weight"] == GGMLType.Q8_0


def test_low_bit_presets():
    t = _tensor_list(8)
    p = plan_tensor_types(t, "q3_k_m", 8, 16, 1)
    assert _layer_types(p, 8, "attn_qkv") == ["Q5_K", "Q5_K"] + ["Q4_K"] * 6
    assert set(_layer_types(p, 8, "ffn_down")) == {"Q4_K"}  # n_layer/16 = 0 layers get Q5_K
    assert set(_layer_types(p, 8, "attn_output")) == {"Q4_K"} and set(_layer_types(p, 8, "ffn_up")) == {"Q3_K"}
    p16 = plan_tensor_types(_tensor_list(16), "q3_k_m", 16, 16, 1)
    assert _layer_types(p16, 16, "ffn_down") == ["Q5_K"] + ["Q4_K"] * 15
    p = plan_tensor_types(t, "q3_k_l", 8, 16, 1)
    assert {*_layer_types(p, 8, "attn_qkv"), *_layer_types(p, 8, "ffn_down"), *_layer_types(p, 8, "attn_output")} == {"Q5_K"}
    p = plan_tensor_types(t, "q3_k_s", 8, 16, 1)
    assert {p[n].name for n, ne, _ in t if len(ne) == 2 and "embd" not in n} == {"Q3_K"}
    # Q2_K: the fused QKV gets Q4_K when n_head / n_head_kv >= 4 (multi-query), else Q3_K
    p = plan_tensor_types(t, "q2_k", 8, 16, 1)
    assert set(_layer_types(p, 8, "attn_qkv")) == {"Q4_K"}
    assert set(_layer_types(p, 8, "ffn_down")) == {"Q3_K"} and set(_layer_types(p, 8, "attn_output")) == {"Q3_K"}
    assert set(_layer_types(p, 8, "ffn_up")) == {"Q2_K"}
    p = plan_tensor_types(_tensor_list(8, qkv=768), "q2_k", 8, 4, 4)
    assert set(_layer_types(p, 8, "attn_qkv")) == {"Q3_K"}
    p = plan_tensor_types(t, "q4_k_s", 8, 16, 1)
    assert _layer_types(p, 8, "attn_qkv") == ["Q5_K"] * 4 + ["Q4_K"] * 4
    assert _layer_types(p, 8, "ffn_down") == ["Q5_K"] + ["Q4_K"] * 7


def test_rows_that_do_not_fit_256_fall_back():
    t = _tensor_list(4, n_embd=128, n_ff=512, qkv=192)
    p = plan_tensor_types(t, "q4_k_m", 4, 4, 1)
    assert p["token_embd.weight"] == GGMLType.Q8_0  # Q6_K does not fit 128
    # use_more_bits(i, 4) picks layers 2 and 3; Q6_K -> Q8_0 and Q4_K -> Q5_0 on rows of 128
    assert _layer_types(p, 4, "attn_qkv") == ["Q5_0", "Q5_0", "Q8_0", "Q8_0"]
    assert _layer_types(p, 4, "ffn_down") == ["Q4_K", "Q4_K", "Q6_K", "Q6_K"]  # rows of 512 fit
    p = plan_tensor_types(t, "q5_k_s", 4, 4, 1)
    assert set(_layer_types(p, 4, "attn_output")) == {"Q5_1"}
    p = plan_tensor_types(t, "q3_k_s", 4, 4, 1)
    assert set(_layer_types(p, 4, "ffn_up")) == {"Q4_0"}
    # rows of 48: no 32-block type fits; llama.cpp gives up on Q4_0/Q8_0 targets ...
    with pytest.raises(QuantPlanError, match="row length 48 is not a multiple of the Q4_0 block size 32"):
        plan_tensor_types([("blk.0.ffn_up.weight", (48, 64), GGMLType.F32)], "q4_0", 1, 4, 1)
    # ... and stores a k-quant target as F16 (neither Q4_K nor its fallback Q5_0 fits)
    p = plan_tensor_types([("blk.0.ffn_up.weight", (48, 64), GGMLType.F32)], "q4_k_s", 1, 4, 1)
    assert p["blk.0.ffn_up.weight"] == GGMLType.F16


def test_presets_are_llama_cpps_file_types():
    expected = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_k": 10,
                "q3_k_s": 11, "q3_k_m": 12, "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16,
                "q5_k_m": 17, "q6_k": 18, "bf16": 32}
    assert {k: v[1] for k, v in PRESETS.items()} == expected
    assert normalize_preset("Q4_K_M") == "q4_k_m" and normalize_preset("q4_k") == "q4_k_m"
    with pytest.raises(QuantPlanError, match="unknown quantization type"):
        normalize_preset("q4_k_x")


# --------------------------------------------------------------------------- converter and quantizer


SHAPE = dict(n_embd=256, n_layer=8, n_head=4, n_inner=512, vocab_size=1024, n_positions=64)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A random n_embd=256 model (k-quants apply), converted to F32 and F16."""
    require_path(VOCAB_DIR / "starcoder-v1-tokenizer.json")
    d = tmp_path_factory.mktemp("qckpt")
    tok = d / "tokenizer.json"
    tok.write_text(json.dumps(truncated_tokenizer(1000)), encoding="utf-8")
    ckpt = mc.make_checkpoint(d / "hf", tokenizer_json=tok, **SHAPE)
    f32 = d / "f32.gguf"
    f16 = d / "f16.gguf"
    convert_checkpoint(ckpt, f32, out_type="f32", progress=False)
    convert_checkpoint(ckpt, f16, out_type="f16", progress=False)
    return {"hf": ckpt, "f32": f32, "f16": f16, "dir": d}


def _tensor_bytes(path):
    """name -> (type name, raw bytes) read with this project's own header parser."""
    head = read_gguf_header(path)
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    for t in head.tensors:
        block, size = (1, 4) if t.ggml_type == 0 else (1, 2) if t.ggml_type in (1, 30) else \
            (_core.quant_types()[GGMLType(t.ggml_type).name.lower()]["block_size"],
             _core.quant_types()[GGMLType(t.ggml_type).name.lower()]["type_size"])
        n = t.n_elements // block * size
        start = head.data_start + t.offset
        out[t.name] = (GGMLType(t.ggml_type).name.lower(), data[start:start + n])
    return head, out


def _logits(path, ids):
    m = starcoder_cpp.Model(str(path), n_ctx=64, n_threads=2)
    return np.asarray(m.eval(ids, all_logits=True), dtype=np.float64)


IDS = [31, 400, 7, 999, 12, 250, 3, 77, 501, 13, 640, 2]

# preset -> bound on RMS(logit error) / RMS(logit) against the F32 model (the
# random model's logits are small, so these are large; measured values are
# about 2/3 of the bounds: q8_0 0.020, q4_0 0.25, q4_k_m 0.16, q2_k 0.43)
LOGIT_BOUND = {"q8_0": 0.03, "q4_0": 0.37, "q4_k_m": 0.23, "q2_k": 0.65}


@pytest.mark.parametrize("preset", ["q8_0", "q4_0", "q4_k_m", "q2_k"])
def test_convert_writes_the_planned_types_and_runs(small, preset):
    out = small["dir"] / f"conv-{preset}.gguf"
    summary = convert_checkpoint(small["hf"], out, out_type=preset, progress=False)
    info = starcoder_cpp.inspect_gguf(str(out))
    md = info["metadata"]
    assert md["general.file_type"] == PRESETS[preset][1]
    assert md["general.quantization_version"] == 2
    f32_tensors = starcoder_cpp.inspect_gguf(str(small["f32"]))["tensors"]
    plan = plan_tensor_types([(t["name"], t["shape"], GGMLType.F32) for t in f32_tensors], preset, 8, 4, 1)
    assert [t["name"] for t in info["tensors"]] == [t["name"] for t in f32_tensors]  # same order
    assert {t["name"]: t["type"] for t in info["tensors"]} == {n: t.name.lower() for n, t in plan.items()}
    assert sum(summary["tensor_types"].values()) == len(plan)
    ref, got = _logits(small["f32"], IDS), _logits(out, IDS)
    rel = np.sqrt(np.mean((got - ref) ** 2)) / np.sqrt(np.mean(ref ** 2))
    assert rel < LOGIT_BOUND[preset], f"{preset}: relative logit error {rel:.4f}"
    # the re-quantizer gives the same bytes from the F32 file
    req = small["dir"] / f"req-{preset}.gguf"
    quantize_gguf(small["f32"], req, preset)
    (ha, a), (hb, b) = _tensor_bytes(out), _tensor_bytes(req)
    assert a == b
    assert {k: f.value for k, f in ha.fields.items()} == {k: f.value for k, f in hb.fields.items()}


def test_quantize_from_f16_quantizes_the_f16_values(small):
    out = small["dir"] / "from-f16-q5_k_m.gguf"
    summary = quantize_gguf(small["f16"], out, "q5_k_m", n_threads=2)
    assert summary["file_type"] == 17
    _, src = _tensor_bytes(small["f16"])
    head, got = _tensor_bytes(out)
    assert [t.name for t in head.tensors] == list(src)
    for name, (t, data) in got.items():
        st, sdata = src[name]
        if t == st:
            assert data == sdata  # copied (1-D tensors, position_embd)
            continue
        ne = next(x.ne for x in head.tensors if x.name == name)
        x = np.frombuffer(sdata, dtype=np.float16).astype(np.float32).reshape(ne[1], ne[0])
        assert data == _core.quantize(x, t).tobytes(), name
    # metadata is copied, with the new file type
    md_in = starcoder_cpp.inspect_gguf(str(small["f16"]))["metadata"]
    md_out = starcoder_cpp.inspect_gguf(str(out))["metadata"]
    assert md_out.pop("general.file_type") == 17 and md_in.pop("general.file_type") == 1
    assert md_out.pop("general.quantization_version") == 2
    assert md_out == md_in


def test_quantized_inputs_are_not_silently_requantized(small):
    q8 = small["dir"] / "rq-q8_0.gguf"
    quantize_gguf(small["f32"], q8, "q8_0")
    with pytest.raises(QuantizeError, match="already quantized .q8_0.*allow_requantize"):
        quantize_gguf(q8, small["dir"] / "rq-q4_0.gguf", "q4_0")
    quantize_gguf(q8, small["dir"] / "rq-q4_0.gguf", "q4_0", allow_requantize=True)
    # same preset again: every quantized tensor is copied as it is
    quantize_gguf(q8, small["dir"] / "rq-q8_0-again.gguf", "q8_0")
    assert _tensor_bytes(q8)[1] == _tensor_bytes(small["dir"] / "rq-q8_0-again.gguf")[1]


def test_quantize_onto_its_own_input_is_refused_through_any_path(small, tmp_path):
    link = tmp_path / "link.gguf"
    link.symlink_to(small["f16"])
    before = small["f16"].read_bytes()
    for out in (small["f16"], link):
        with pytest.raises(QuantizeError, match="is an input"):
            quantize_gguf(small["f16"], out, "q8_0")
    assert small["f16"].read_bytes() == before


def test_quantize_onto_a_fifo_is_refused_and_the_fifo_stays(small, tmp_path):
    fifo = tmp_path / "out.gguf"
    os.mkfifo(fifo)
    with pytest.raises(QuantizeError, match="not a regular file"):
        quantize_gguf(small["f16"], fifo, "q8_0")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_quantize_with_too_many_threads_is_refused_before_writing(small, tmp_path):
    out = tmp_path / "q.gguf"
    with pytest.raises(QuantizeError, match="more than"):
        quantize_gguf(small["f16"], out, "q8_0", n_threads=4 * len(os.sched_getaffinity(0)) + 1)
    assert not list(tmp_path.iterdir())


def test_cli_convert_and_quantize(small, capsys):
    from starcoder_cpp.cli import main

    out = small["dir"] / "cli-q4_1.gguf"
    assert main(["convert", str(small["hf"]), "-o", str(out), "--type", "Q4_1", "-q"]) == 0
    out2 = small["dir"] / "cli-q4_1-req.gguf"
    assert main(["quantize", str(small["f32"]), str(out2), "--type", "q4_1", "-t", "2", "-q"]) == 0
    assert _tensor_bytes(out)[1] == _tensor_bytes(out2)[1]
    with pytest.raises(SystemExit):
        main(["quantize", str(small["f32"]), str(out2), "--type", "q9_9"])
    capsys.readouterr()
    assert main(["quantize", str(out), str(small["dir"] / "x.gguf"), "--type", "q4_0", "-q"]) == 1
    assert "already quantized" in capsys.readouterr().err


def test_convert_rejects_unknown_types(small):
    with pytest.raises(ConversionError, match="unsupported output type 'q4_k_x'.*q4_k_m"):
        convert_checkpoint(small["hf"], small["dir"] / "bad.gguf", out_type="q4_k_x", progress=False)


# --------------------------------------------------------------------------- malformed files


def _patch_tensor_type(src: Path, dst: Path, name: str, new_type: int) -> None:
    """Copy a GGUF, changing one tensor's type id in its header."""
    head = read_gguf_header(src)
    data = bytearray(src.read_bytes())
    key = struct.pack("<Q", len(name)) + name.encode()
    pos = data.index(key) + len(key)
    n_dims = struct.unpack_from("<I", data, pos)[0]
    pos += 4 + 8 * n_dims
    assert struct.unpack_from("<I", data, pos)[0] == next(t.ggml_type for t in head.tensors if t.name == name)
    struct.pack_into("<I", data, pos, new_type)
    dst.write_bytes(bytes(data))


def test_quantized_tensors_of_the_wrong_size_are_rejected(small, tmp_path):
    # a row length that the type's blocks do not divide: no byte size is right
    gguf = require("gguf")
    w = gguf.GGUFWriter(tmp_path / "rowlen.gguf", "starcoder")
    w.add_tensor("t.weight", _core.quantize(np.ones((2, 96), np.float32), "q8_0"), raw_dtype=GGMLType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    bad = tmp_path / "bad-block.gguf"
    _patch_tensor_type(tmp_path / "rowlen.gguf", bad, "t.weight", int(GGMLType.Q4_K))
    with pytest.raises(starcoder_cpp.GGUFError, match="row length 96 is not a multiple of the q4_k block size 256"):
        starcoder_cpp.inspect_gguf(str(bad))
    with pytest.raises(starcoder_cpp.GGUFError):
        quantize_gguf(bad, tmp_path / "never.gguf", "q8_0")
    # a type that needs more bytes than the file holds for the tensor
    q4 = tmp_path / "q4_0.gguf"
    quantize_gguf(small["f32"], q4, "q4_0")
    name = "blk.7.ffn_down.weight"  # ne = [512, 256]
    big = tmp_path / "past-end.gguf"
    _patch_tensor_type(q4, big, name, int(GGMLType.Q8_0))
    head = read_gguf_header(q4)
    end = head.data_start + next(t.offset for t in head.tensors if t.name == name) + 256 * 512 // 32 * 18
    big.write_bytes(big.read_bytes()[:end])  # the file ends where the Q4_0 data ended
    with pytest.raises(starcoder_cpp.GGUFError, match="ffn_down.weight"):
        starcoder_cpp.inspect_gguf(str(big))
    with pytest.raises(starcoder_cpp.GGUFError):
        starcoder_cpp.Model(str(big), n_ctx=16)


def test_model_load_names_a_bad_quantized_tensor(tiny_gguf_f32, tmp_path):
    q8 = tmp_path / "tiny-q8_0.gguf"
    quantize_gguf(tiny_gguf_f32, q8, "q8_0")
    bad = tmp_path / "tiny-bad.gguf"
    _patch_tensor_type(q8, bad, "token_embd.weight", int(GGMLType.Q6_K))  # rows of 128 do not fit Q6_K
    with pytest.raises(starcoder_cpp.GGUFError, match="token_embd.weight.*row length 128 is not a multiple of the q6_k"):
        starcoder_cpp.Model(str(bad), n_ctx=16)


# --------------------------------------------------------------------------- quality on the real tiny model


def _window_ppl(model, ids, window=256, max_windows=None):
    nll, count = 0.0, 0
    starts = list(range(0, len(ids), window))
    for k, s in enumerate(starts[:max_windows]):
        chunk = ids[s:s + window]
        if len(chunk) < 2:
            continue
        model.reset()
        logits = model.eval(chunk, all_logits=True).astype(np.float64)[:-1]
        mx = logits.max(axis=1, keepdims=True)
        logz = np.log(np.exp(logits - mx).sum(axis=1)) + mx[:, 0]
        nll += float((logz - logits[np.arange(len(chunk) - 1), chunk[1:]]).sum())
        count += len(chunk) - 1
    return math.exp(nll / count)


@pytest.fixture(scope="module")
def tiny_q8_0(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tinyq") / "tiny-q8_0.gguf"
    convert_checkpoint(tiny_model_dir, out, out_type="q8_0", progress=False)
    return out


def _ppl_pair(f16_path, q8_path, max_windows):
    text = (TINY_MODEL_DIR / "val_sample.txt").read_text(encoding="utf-8")
    f16 = starcoder_cpp.Model(str(f16_path), n_ctx=256, n_threads=2)
    ids = f16.tokenize(text)
    a = _window_ppl(f16, ids, max_windows=max_windows)
    b = _window_ppl(starcoder_cpp.Model(str(q8_path), n_ctx=256, n_threads=2), ids, max_windows=max_windows)
    return a, b


def test_q8_0_perplexity_within_1_percent_of_f16_first_windows(tiny_gguf_f16, tiny_q8_0):
    a, b = _ppl_pair(tiny_gguf_f16, tiny_q8_0, max_windows=2)
    assert abs(b - a) / a < 0.01, (a, b)


@pytest.mark.slow
def test_q8_0_perplexity_within_1_percent_of_f16(tiny_gguf_f16, tiny_q8_0, tiny_reference):
    a, b = _ppl_pair(tiny_gguf_f16, tiny_q8_0, max_windows=None)
    assert abs(a - tiny_reference["val_sample_ppl_win256"]) / a < 0.002  # F16 is the model's own number
    assert abs(b - a) / a < 0.01, (a, b)
