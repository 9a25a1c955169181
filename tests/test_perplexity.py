"""Model.perplexity reproduces the tiny model's reference numbers."""

from __future__ import annotations

import pytest

import starcoder_cpp


@pytest.fixture(scope="module")
def model(tiny_gguf_f32):
    return starcoder_cpp.Model(tiny_gguf_f32, kv_type="f32")  # the reference is float32 throughout


def test_non_overlapping_256_token_windows_match_transformers(model, tiny_model_dir, tiny_reference):
    text = (tiny_model_dir / "val_sample.txt").read_text()
    assert model.perplexity(text, window=256) == pytest.approx(tiny_reference["val_sample_ppl_win256"], rel=1e-4)


def test_1024_token_windows_match_transformers(model, tiny_model_dir, tiny_reference):
    text = (tiny_model_dir / "val_sample.txt").read_text()
    assert model.perplexity(text, window=1024) == pytest.approx(tiny_reference["val_sample_ppl_win1024"], rel=1e-4)


def test_strided_windows_score_every_token_once_with_more_context(model, tiny_model_dir):
    text = (tiny_model_dir / "val_sample.txt").read_text()[:4000]
    calls = []
    strided = model.perplexity(text, window=256, stride=128, progress=lambda d, t: calls.append((d, t)))
    plain = model.perplexity(text, window=256)
    assert calls and calls[-1][0] == calls[-1][1]
    assert strided < plain  # more context per scored token on this in-distribution text


def test_too_short_text_raises(model):
    with pytest.raises(ValueError):
        model.perplexity("x")
