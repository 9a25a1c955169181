"""Configurations that cannot fit the machine are refused before anything is
allocated: the weights plus a full KV cache for every sequence (one for a
Model, every slot for a server) must fit the backend's memory, or
STARCODER_MEMORY_LIMIT when it is set."""

import os
import subprocess
import sys

import pytest

import starcoder_cpp
from starcoder_cpp import _core
from starcoder_cpp.model import demo_model_path

N_CTX = 1024


@pytest.fixture()
def limit(monkeypatch):
    def set_limit(value):
        monkeypatch.setenv("STARCODER_MEMORY_LIMIT", str(value))
    return set_limit


@pytest.fixture(scope="module")
def kv_per_seq():
    return starcoder_cpp.Model("demo", n_ctx=N_CTX, n_threads=1).info()["kv_bytes_per_sequence"]


def test_kv_bytes_per_sequence_is_keys_and_values_of_every_layer_for_the_whole_context():
    info = starcoder_cpp.Model("demo", n_ctx=N_CTX, n_threads=1).info()
    kv_dim = info["n_embd"] // info["n_head"] * info["n_head_kv"]
    assert info["kv_bytes_per_sequence"] == 2 * info["n_layer"] * N_CTX * kv_dim * 2  # f16


def test_a_model_larger_than_the_limit_raises_memory_limit_error_naming_the_sizes(limit):
    limit("4M")
    with pytest.raises(starcoder_cpp.MemoryLimitError, match=r"the weights 9\.\d MiB: more than the 4\.0 MiB of "
                                                            r"STARCODER_MEMORY_LIMIT"):
        starcoder_cpp.Model("demo", n_ctx=N_CTX, n_threads=1)


def test_memory_limit_error_is_a_memory_error():
    assert issubclass(starcoder_cpp.MemoryLimitError, MemoryError)


def test_a_server_with_more_slots_than_fit_is_refused_and_fewer_are_accepted(limit, kv_per_seq):
    limit(os.path.getsize(demo_model_path()) + 2 * kv_per_seq)
    assert _core.Engine(demo_model_path(), N_CTX, 1, 512, "f16", 2).n_slots == 2
    with pytest.raises(starcoder_cpp.MemoryLimitError, match=f"3 sequences of {N_CTX} tokens need .* f16 KV cache.*"
                                                            "Use fewer slots"):
        _core.Engine(demo_model_path(), N_CTX, 1, 512, "f16", 3)


def test_a_q8_0_kv_cache_fits_where_f16_does_not(limit, kv_per_seq):
    limit(os.path.getsize(demo_model_path()) + 3 * kv_per_seq)
    with pytest.raises(MemoryError):
        _core.Engine(demo_model_path(), N_CTX, 1, 512, "f16", 4)
    assert _core.Engine(demo_model_path(), N_CTX, 1, 512, "q8_0", 4).n_slots == 4


def test_a_batch_of_prompts_that_cannot_fit_is_refused_before_evaluating(limit, kv_per_seq):
    m = starcoder_cpp.Model("demo", n_ctx=N_CTX, n_threads=1)
    limit(os.path.getsize(demo_model_path()) + 2 * kv_per_seq)
    with pytest.raises(MemoryError, match="3 sequences"):
        m.complete_batch(["a", "b", "c"], max_tokens=2)
    assert len(m.complete_batch(["a", "b"], max_tokens=2)) == 2


@pytest.mark.parametrize("value", ["lots", "12Q", "-1", "0", "1.5G"])
def test_a_limit_that_is_not_a_size_raises_value_error_naming_the_variable(limit, value):
    limit(value)
    with pytest.raises(ValueError, match="STARCODER_MEMORY_LIMIT='.*' is not a size"):
        starcoder_cpp.Model("demo", n_ctx=N_CTX, n_threads=1)


@pytest.mark.parametrize("value", ["64G", "64GiB", "64gb", "68719476736"])
def test_limit_suffixes_are_powers_of_1024(limit, value):
    limit(value)
    starcoder_cpp.Model("demo", n_ctx=N_CTX, n_threads=1)  # 64 GiB in any spelling: fits


def test_serve_refuses_slots_that_cannot_fit_with_one_line_and_status_1(kv_per_seq):
    env = dict(os.environ, STARCODER_MEMORY_LIMIT=str(os.path.getsize(demo_model_path()) + kv_per_seq))
    pytest.importorskip("uvicorn")
    r = subprocess.run([sys.executable, "-m", "starcoder_cpp", "serve", "-m", "demo", "--parallel", "4",
                        "--ctx-size", str(N_CTX), "--port", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1
    assert "error: 4 sequences of 1024 tokens need" in r.stderr and "Traceback" not in r.stderr
