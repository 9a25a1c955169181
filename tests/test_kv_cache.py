"""The KV cache: F16 by default (as llama.cpp), F32 on request, and the tiled
attention over it giving the same result however the work is split."""

from __future__ import annotations

import numpy as np
import pytest

import starcoder_cpp


@pytest.fixture(scope="module")
def text_ids(tiny_gguf_f32):
    from conftest import TINY_MODEL_DIR

    text = (TINY_MODEL_DIR / "val_sample.txt").read_text()
    return starcoder_cpp.Model(tiny_gguf_f32, n_ctx=16).tokenize(text)[:700]


def test_default_cache_is_f16_and_reported(tiny_gguf_f32):
    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=16)
    assert m.info()["kv_type"] == "f16"
    assert starcoder_cpp.Model(tiny_gguf_f32, n_ctx=16, kv_type="f32").info()["kv_type"] == "f32"


def test_unknown_cache_type_is_a_value_error(tiny_gguf_f32):
    with pytest.raises(ValueError, match="kv_type"):
        starcoder_cpp.Model(tiny_gguf_f32, n_ctx=16, kv_type="q4_0")


def test_f16_cache_logits_stay_within_half_rounding_of_f32(tiny_gguf_f32, text_ids):
    ids = text_ids[:400]
    f32 = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=512, kv_type="f32").eval(ids, all_logits=True)
    f16 = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=512, kv_type="f16").eval(ids, all_logits=True)
    scale = np.abs(f32).max()
    assert np.abs(f16 - f32).max() < 2e-3 * scale
    # the top token only changes where the top two were nearly tied
    top = np.sort(f32, axis=1)[:, -2:]
    flipped = f16.argmax(1) != f32.argmax(1)
    assert np.all(top[flipped, 1] - top[flipped, 0] < 0.05)


@pytest.mark.parametrize("kv_type", ["f16", "f32"])
def test_decode_over_a_long_cache_equals_the_prompt_pass(tiny_gguf_f32, text_ids, kv_type):
    # Decoding one token at a time over 600+ cached positions splits the keys
    # across threads (flash-decoding) and merges the partial softmaxes; the
    # prompt pass tiles queries instead. Both must agree.
    ids = text_ids[:660]
    whole = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=700, n_threads=2, kv_type=kv_type).eval(ids, all_logits=True)
    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=700, n_threads=2, kv_type=kv_type)
    m.eval(ids[:600])
    steps = np.stack([m.eval([t]) for t in ids[600:]])
    assert np.abs(steps - whole[600:]).max() < 1e-4 * np.abs(whole).max()


def test_attention_is_independent_of_the_thread_count(tiny_gguf_f32, text_ids):
    ids = text_ids[:300]
    out = []
    for n_threads in (1, 2, 3):
        m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=512, n_threads=n_threads)
        m.eval(ids)
        out.append(np.stack([m.eval([t]) for t in (11, 12, 13)]))
    assert np.abs(out[1] - out[0]).max() < 1e-4 * np.abs(out[0]).max()
    assert np.abs(out[2] - out[0]).max() < 1e-4 * np.abs(out[0]).max()


def test_q8_0_cache_stays_close_to_f32(tiny_gguf_f32, text_ids):
    ids = text_ids[:300]
    f32 = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=512, kv_type="f32").eval(ids, all_logits=True)
    q8 = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=512, kv_type="q8_0")
    assert q8.info()["kv_type"] == "q8_0"
    got = q8.eval(ids, all_logits=True)
    assert np.abs(got - f32).max() < 2e-2 * np.abs(f32).max()
    assert (got.argmax(1) == f32.argmax(1)).mean() > 0.97


def test_q8_0_cache_needs_head_dim_multiple_of_32(tmp_path):
    import make_checkpoint as mc
    from starcoder_cpp.convert import convert_checkpoint

    # n_embd 48 over 2 heads: head_dim 24
    ckpt = mc.make_checkpoint(tmp_path / "hf", n_embd=48, n_layer=1, n_head=2, n_inner=96, vocab_size=49152,
                              n_positions=32)
    path = tmp_path / "m.gguf"
    convert_checkpoint(ckpt, path, out_type="f32", progress=False)
    with pytest.raises(ValueError, match="multiple of 32"):
        starcoder_cpp.Model(path, kv_type="q8_0")
