"""Bad files and bad arguments raise clear Python exceptions and lose nothing."""

from __future__ import annotations

import numpy as np
import pytest

import starcoder_cpp
from conftest import VOCAB_DIR, require_path


@pytest.fixture(scope="module")
def model(tiny_gguf_f32):
    return starcoder_cpp.Model(tiny_gguf_f32, n_ctx=64)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        starcoder_cpp.Model(tmp_path / "nope.gguf")


def test_directory_raises_with_a_hint_to_convert(tmp_path):
    with pytest.raises(IsADirectoryError, match="convert"):
        starcoder_cpp.Model(tmp_path)


def test_non_gguf_file_raises_gguf_error(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"this is not a model at all, just some text" * 4)
    with pytest.raises(starcoder_cpp.GGUFError, match="magic"):
        starcoder_cpp.Model(p)


def test_other_architecture_raises_model_error():
    # The StarCoder2 vocabulary file says general.architecture = starcoder2.
    path = require_path(VOCAB_DIR / "ggml-vocab-starcoder.gguf")
    with pytest.raises(starcoder_cpp.ModelError, match="starcoder2"):
        starcoder_cpp.Model(path)


def test_vocab_only_file_raises_model_error_naming_the_missing_tensor():
    path = require_path(VOCAB_DIR / "ggml-vocab-starcoder-v1.gguf")
    with pytest.raises(starcoder_cpp.ModelError, match="token_embd"):
        starcoder_cpp.Model(path)


def test_token_id_out_of_range_raises_and_keeps_cache(model):
    model.reset()
    model.eval([1, 2, 3])
    with pytest.raises(ValueError, match="out of range"):
        model.eval([5, model.n_vocab])
    with pytest.raises(ValueError, match="out of range"):
        model.eval([-1])
    assert model.n_past == 3


def test_too_many_tokens_raise_context_overflow_and_keep_cache(model):
    model.reset()
    model.eval(list(range(60)))
    with pytest.raises(starcoder_cpp.ContextOverflowError, match="context"):
        model.eval(list(range(5)))
    assert model.n_past == 60
    model.eval(list(range(4)))  # exactly fills the context
    assert model.n_past == 64


def test_context_overflow_is_a_value_error():
    assert issubclass(starcoder_cpp.ContextOverflowError, ValueError)
    assert issubclass(starcoder_cpp.GGUFError, ValueError)


def test_n_ctx_beyond_training_context_raises(tiny_gguf_f32):
    with pytest.raises(starcoder_cpp.ModelError, match="context length"):
        starcoder_cpp.Model(tiny_gguf_f32, n_ctx=4096)


def test_negative_arguments_raise_value_error(tiny_gguf_f32):
    with pytest.raises(ValueError):
        starcoder_cpp.Model(tiny_gguf_f32, n_threads=-1)
    with pytest.raises(ValueError):
        starcoder_cpp.Model(tiny_gguf_f32, n_ctx=-5)


def test_empty_eval_raises(model):
    with pytest.raises(ValueError):
        model.eval([])


def test_non_integer_tokens_raise_type_error(model):
    with pytest.raises((TypeError, ValueError)):
        model.eval(["a", "b"])


def test_two_dimensional_tokens_raise(model):
    with pytest.raises(ValueError):
        model.eval(np.zeros((2, 2), dtype=np.int32))


def test_generate_prompt_longer_than_context_raises(model):
    with pytest.raises(starcoder_cpp.ContextOverflowError):
        model.generate(list(range(100)), 4)


def test_generation_stops_when_the_context_is_full(model):
    model.reset()
    new = model.generate(list(range(60)), 50, stop_at_eos=False)
    assert len(new) == 5  # 60 prompt + 4 evaluated new tokens fill 64; the 5th is returned unevaluated
