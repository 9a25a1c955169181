"""Bad files and bad arguments raise clear Python exceptions and lose nothing."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

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


# --- tensors the model would silently do without ----------------------------


def _renamed_copy(src, dst, old: bytes, new: bytes, count: int = 1):
    """The GGUF at src with `count` occurrences of a tensor name changed (same
    length, so every offset stays valid)."""
    assert len(old) == len(new)
    blob = src.read_bytes()
    assert blob.count(old) >= count
    dst.write_bytes(blob.replace(old, new, count))
    return dst


def test_a_bias_missing_in_one_layer_raises_model_error_naming_it(tiny_gguf_f32, tmp_path):
    p = _renamed_copy(tiny_gguf_f32, tmp_path / "m.gguf", b"blk.0.attn_qkv.bias", b"blk.0.attn_qkv.biaz")
    with pytest.raises(starcoder_cpp.ModelError, match=r"attn_qkv\.bias.*blk\.0\.attn_qkv\.bias"):
        starcoder_cpp.Model(p)


def test_a_tensor_the_model_does_not_use_raises_model_error_naming_it(tiny_gguf_f32, tmp_path):
    # every layer's qkv bias renamed: no layer has one, so only the unused names are wrong
    n = tiny_gguf_f32.read_bytes().count(b".attn_qkv.bias")
    p = _renamed_copy(tiny_gguf_f32, tmp_path / "m.gguf", b".attn_qkv.bias", b".attn_qkv.biaz", n)
    with pytest.raises(starcoder_cpp.ModelError, match=r"does not use.*blk\.0\.attn_qkv\.biaz"):
        starcoder_cpp.Model(p)


# --- threads ------------------------------------------------------------------


def test_n_threads_above_four_times_the_cores_raises_value_error(tiny_gguf_f32):
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match=f"more than {4 * cores}"):
        starcoder_cpp.Model(tiny_gguf_f32, n_ctx=32, n_threads=4 * cores + 1)


def test_n_threads_up_to_four_times_the_cores_is_accepted(tiny_gguf_f32):
    n = 4 * len(os.sched_getaffinity(0))
    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=32, n_threads=n)
    assert m.n_threads == n
    assert m.eval([1, 2, 3]).shape == (m.n_vocab,)


def test_threads_that_cannot_be_created_raise_runtime_error_and_the_process_goes_on(tiny_gguf_f32):
    # In a child whose address space leaves no room for the threads' stacks
    # (64 MiB each, RLIMIT_STACK), creating the pool fails part-way: that must
    # be a RuntimeError after the started threads are joined, not an abort.
    n = min(8, 4 * len(os.sched_getaffinity(0)))
    script = f"""
import resource, starcoder_cpp
path = {str(tiny_gguf_f32)!r}
starcoder_cpp.Model(path, n_ctx=32, n_threads=1)  # loads once: the rest of the load fits
vm = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:')][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + (160 << 20), resource.RLIM_INFINITY))
try:
    starcoder_cpp.Model(path, n_ctx=32, n_threads={n})
    print('loaded')
except RuntimeError as e:
    print('RuntimeError:', e)
m = starcoder_cpp.Model(path, n_ctx=32, n_threads=1)
print('then', m.eval([1, 2]).shape)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_STACK, (64 << 20, 64 << 20)))
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("RuntimeError: cannot start thread"), r.stdout
    assert lines[1].startswith("then")


# --- a FIFO is not a model ------------------------------------------------------


@pytest.mark.parametrize("opener", ["Model", "Tokenizer"])
def test_a_fifo_raises_gguf_error_instead_of_waiting_for_a_writer(tmp_path, opener):
    fifo = tmp_path / "m.gguf"
    os.mkfifo(fifo)
    # in a child, so that a regression hangs the child (killed by the timeout), not the test run
    script = f"import starcoder_cpp\ntry:\n    starcoder_cpp.{opener}({str(fifo)!r})\n" \
             f"except starcoder_cpp.GGUFError as e:\n    print('GGUFError', e)\n"
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "not a regular file" in r.stdout, r.stderr[-2000:]


# --- token ids are integers -----------------------------------------------------


@pytest.mark.parametrize("tokens", [[1.9, 2.7], ["5"], [True, 2], np.array([1.0, 2.0]), "12"])
def test_eval_of_non_integer_ids_raises_type_error_naming_tokens(model, tokens):
    n_past = model.n_past
    with pytest.raises(TypeError, match="tokens"):
        model.eval(tokens)
    assert model.n_past == n_past


def test_eval_accepts_numpy_integer_arrays_and_scalars(model):
    model.reset()
    a = model.eval(np.array([1, 2, 3], dtype=np.uint16))
    model.reset()
    b = model.eval([np.int64(1), np.int32(2), 3])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call", [
    lambda m: m.complete([1.5, 2], max_tokens=1),
    lambda m: m.generate([1.5, 2], 1),
    lambda m: m.detokenize([1.5]),
    lambda m: m.complete_batch([[1, "2"]], max_tokens=1),
])
def test_every_call_taking_ids_refuses_non_integers(model, call):
    with pytest.raises(TypeError, match="token ids"):
        call(model)


# --- argument types are named -----------------------------------------------------


@pytest.mark.parametrize("call, name", [
    (lambda m: m.tokenize("x", special="yes"), "special"),
    (lambda m: m.token_id(5), "text"),
    (lambda m: m.eval([1], all_logits="yes"), "all_logits"),
    (lambda m: m.infill(None, "x"), "prefix"),
    (lambda m: m.infill("x", 5), "suffix"),
    (lambda m: m.complete(5), "prompt"),
    (lambda m: m.complete("x", special=1), "special"),
])
def test_a_bad_argument_type_is_a_type_error_naming_the_argument(model, call, name):
    with pytest.raises(TypeError, match=name) as e:
        call(model)
    assert "incompatible function arguments" not in str(e.value)


def test_a_block_count_the_tensor_table_cannot_hold_is_refused_at_once():
    # Found by tests/fuzz/fuzz_gguf.cpp: block_count 16711681 in a 1-layer
    # file went through seconds (28 s under ASan) of per-layer checks before
    # failing; the count is now checked against the tensor table first.
    from pathlib import Path

    path = Path(__file__).parent / "fuzz" / "regressions" / "gguf" / "huge-block-count.gguf"
    with pytest.raises(starcoder_cpp.ModelError, match="block_count is 16711681 but the file holds only 16 tensors"):
        starcoder_cpp.Model(path, n_ctx=8)
