"""The forward pass gives transformers' logits, for every supported layout."""

from __future__ import annotations

import numpy as np
import pytest

import starcoder_cpp
from hf_models import build_hf_model, hf_greedy, hf_logits, round_like_gguf

PROMPT_LEN = 24


def convert(hf_dir, out_type):
    from starcoder_cpp.convert import convert_checkpoint

    out = hf_dir / f"model-{out_type}.gguf"
    convert_checkpoint(str(hf_dir), str(out), out_type=out_type, progress=False)
    return out


def random_ids(n, seed=1):
    return np.random.default_rng(seed).integers(0, 49152, size=n).tolist()


def rel_err(ours, ref):
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


@pytest.fixture(scope="module", params=["multi_query", "multi_head"])
def checkpoint(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    model = build_hf_model(d, multi_query=request.param == "multi_query")
    return d, model


def test_f32_logits_match_transformers(checkpoint):
    d, hf = checkpoint
    m = starcoder_cpp.Model(convert(d, "f32"), kv_type="f32")
    ids = random_ids(PROMPT_LEN)
    ours = m.eval(ids, all_logits=True)
    assert ours.shape == (PROMPT_LEN, 49152)
    assert rel_err(ours, hf_logits(hf, ids)) <= 1e-4


def test_f16_logits_match_transformers_on_f16_rounded_weights(checkpoint):
    # An F16 file differs from the checkpoint only by rounding each matrix
    # weight to float16 (compute stays float32), so against transformers run
    # on those same rounded weights it must be as exact as F32 ...
    d, hf = checkpoint
    path = convert(d, "f16")
    ours = starcoder_cpp.Model(path, kv_type="f32").eval(random_ids(PROMPT_LEN), all_logits=True)
    ids = random_ids(PROMPT_LEN)
    assert rel_err(ours, hf_logits(round_like_gguf(hf, path), ids)) <= 1e-4
    # ... and the rounding itself moves logits by about 2^-11 relative per
    # weight; across these layers it stays well below 1% of the logit scale.
    assert rel_err(ours, hf_logits(hf, ids)) <= 1e-2


def test_last_logits_equal_last_row_of_all_logits(checkpoint):
    d, _ = checkpoint
    m = starcoder_cpp.Model(convert(d, "f32"), kv_type="f32")
    ids = random_ids(PROMPT_LEN)
    all_rows = m.eval(ids, all_logits=True)
    m.reset()
    last = m.eval(ids)
    assert last.shape == (49152,)
    np.testing.assert_array_equal(last, all_rows[-1])


def test_incremental_decoding_equals_one_shot(checkpoint):
    d, _ = checkpoint
    m = starcoder_cpp.Model(convert(d, "f32"), kv_type="f32")
    ids = random_ids(PROMPT_LEN)
    one_shot = m.eval(ids, all_logits=True)
    m.reset()
    m.eval(ids[:10])
    steps = [m.eval([t]) for t in ids[10:]]
    np.testing.assert_allclose(np.stack(steps), one_shot[10:], rtol=0, atol=1e-5 * np.abs(one_shot).max())
    assert m.n_past == PROMPT_LEN


def test_prompt_split_into_batches_equals_one_batch(checkpoint):
    d, _ = checkpoint
    path = convert(d, "f32")
    ids = random_ids(100)
    whole = starcoder_cpp.Model(path, kv_type="f32").eval(ids, all_logits=True)
    chunked = starcoder_cpp.Model(path, n_batch=7, kv_type="f32").eval(ids, all_logits=True)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5 * np.abs(whole).max())


def test_greedy_generation_of_64_tokens_equals_transformers(checkpoint):
    d, hf = checkpoint
    m = starcoder_cpp.Model(convert(d, "f32"), kv_type="f32")
    prompt = random_ids(8, seed=3)
    ours = m.generate(prompt, 64, stop_at_eos=False)
    assert ours == hf_greedy(hf, prompt, 64)


def test_untied_lm_head_matches_transformers(tmp_path):
    hf = build_hf_model(tmp_path, tie=False, seed=5)
    m = starcoder_cpp.Model(convert(tmp_path, "f32"), kv_type="f32")
    assert "output.weight" in m._m.tensor_types
    ids = random_ids(PROMPT_LEN)
    assert rel_err(m.eval(ids, all_logits=True), hf_logits(hf, ids)) <= 1e-4


def test_exact_gelu_config_matches_transformers(tmp_path):
    hf = build_hf_model(tmp_path, activation="gelu", seed=6)
    m = starcoder_cpp.Model(convert(tmp_path, "f32"), kv_type="f32")
    ids = random_ids(PROMPT_LEN)
    assert rel_err(m.eval(ids, all_logits=True), hf_logits(hf, ids)) <= 1e-4


def test_threads_do_not_change_results(checkpoint):
    d, _ = checkpoint
    path = convert(d, "f32")
    ids = random_ids(PROMPT_LEN)
    one = starcoder_cpp.Model(path, n_threads=1, kv_type="f32").eval(ids, all_logits=True)
    two = starcoder_cpp.Model(path, n_threads=2, kv_type="f32").eval(ids, all_logits=True)
    np.testing.assert_array_equal(one, two)
