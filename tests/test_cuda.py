"""The CUDA backend against the CPU backend, op by op and on full logits.

Runs only where libstarcoder_cuda.so is installed (or named by
STARCODER_CUDA_LIB) and a GPU is usable; elsewhere every test is skipped
with the reason the backend gave. Thresholds are llama.cpp test-backend-ops'
normalized mean squared errors: 1e-7 for element-wise ops, 5e-4 for matrix
products and attention.
"""

from __future__ import annotations

import numpy as np
import pytest

import starcoder_cpp
from starcoder_cpp import _core, _testing

pytestmark = pytest.mark.cuda

LEGACY = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"]
KQUANTS = ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]


def _cuda_unavailable_reason():
    try:
        _testing.op_elementwise("cuda", "add", np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32))
    except starcoder_cpp.BackendError as e:
        return str(e)
    return None


_REASON = _cuda_unavailable_reason()
if _REASON:
    pytestmark = [pytest.mark.cuda, pytest.mark.skip(reason=_REASON)]


def nmse(got, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.sum((np.asarray(got, np.float64) - ref) ** 2) / max(np.sum(ref**2), 1e-30))


@pytest.mark.parametrize("wtype", ["f32", "f16", "bf16"] + LEGACY + KQUANTS)
@pytest.mark.parametrize("n_tokens", [1, 3, 8, 9, 70])
def test_linear_matches_the_cpu(wtype, n_tokens):
    rng = np.random.default_rng(n_tokens)
    n_out, n_in = 96, 1024
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    wb = w if wtype == "f32" else _core.quantize(w, wtype)
    x = rng.standard_normal((n_tokens, n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    ref = _testing.op_linear("cpu", wb, wtype, n_out, n_in, x, b)
    assert nmse(_testing.op_linear("cuda", wb, wtype, n_out, n_in, x, b), ref) < 5e-4


@pytest.mark.parametrize("wtype", ["f32", "f16"] + LEGACY + KQUANTS)
def test_get_rows_matches_the_cpu(wtype):
    w = np.random.default_rng(1).standard_normal((40, 512)).astype(np.float32)
    wb = w if wtype == "f32" else _core.quantize(w, wtype)
    ids = [3, 0, 39, 3]
    assert nmse(_testing.op_get_rows("cuda", wb, wtype, 40, 512, ids), _testing.op_get_rows("cpu", wb, wtype, 40, 512, ids)) < 1e-7


@pytest.mark.parametrize("op", ["gelu_tanh", "gelu_erf", "add", "layer_norm", "gather_rows"])
def test_elementwise_ops_match_the_cpu(op):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((7, 2048)) * 3).astype(np.float32)
    other = {"add": rng.standard_normal((7, 2048)).astype(np.float32),
             "layer_norm": rng.standard_normal((2, 2048)).astype(np.float32),
             "gather_rows": [6, 0, 3]}.get(op)
    ref = _testing.op_elementwise("cpu", op, x, other)
    assert nmse(_testing.op_elementwise("cuda", op, x, other), ref) < 1e-7


@pytest.mark.parametrize("kv", ["f16", "f32", "q8_0"])
@pytest.mark.parametrize("n_tokens,n_past,n_head,n_head_kv,d",
                         [(1, 0, 16, 1, 128), (1, 4000, 48, 1, 128), (37, 100, 16, 1, 64), (9, 20, 8, 2, 64),
                          (5, 60, 8, 8, 32)])
def test_attention_matches_the_cpu(kv, n_tokens, n_past, n_head, n_head_kv, d):
    rng = np.random.default_rng(n_past)
    q = rng.standard_normal((n_tokens, n_head * d)).astype(np.float32)
    k = rng.standard_normal((n_past + n_tokens, n_head_kv * d)).astype(np.float32)
    v = rng.standard_normal((n_past + n_tokens, n_head_kv * d)).astype(np.float32)
    args = (kv, q, k, v, n_past, n_head, n_head_kv, 1, 2)
    assert nmse(_testing.op_attention("cuda", *args), _testing.op_attention("cpu", *args)) < 5e-4


def test_tiny_model_logits_match_the_cpu_for_prompt_and_decode():
    path = starcoder_cpp.demo_model_path()
    cpu = starcoder_cpp.Model(path, n_ctx=512, backend="cpu")
    gpu = starcoder_cpp.Model(path, n_ctx=512, backend="cuda")
    assert gpu.info()["backend"].startswith("cuda-")
    ids = cpu.tokenize("import os\nimport sys\n\ndef main(argv):\n    for name in argv:\n")
    a, b = cpu.eval(ids, all_logits=True), gpu.eval(ids, all_logits=True)
    assert nmse(b, a) < 5e-4
    assert np.mean(a.argmax(-1) == b.argmax(-1)) > 0.95
    for tok in ids[:16]:  # decode, one token at a time
        assert nmse(gpu.eval([tok]), cpu.eval([tok])) < 5e-4


def test_auto_picks_the_gpu_when_one_works():
    m = starcoder_cpp.Model(starcoder_cpp.demo_model_path(), n_ctx=64, backend="auto")
    assert m.info()["backend"].startswith("cuda-")
    assert m.info()["backend_note"] == ""
