"""The CUDA kernels' arithmetic, checked on the CPU.

The headers backend/cuda/*_math.cuh hold what each CUDA kernel computes (block
unpacking, integer part sums with a portable dp4a, the activation quantizers,
the online softmax, the LayerNorm step). `_testing` compiles them with the host
compiler, so these tests need no GPU: integer sums and quantized bytes must
equal the CPU reference exactly; where the kernel sums floats in its own order
(warp butterflies, tiles of keys) the result must match to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from starcoder_cpp import _core, _testing

LEGACY = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"]
KQUANTS = ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]


def rows(rng, n_rows, n, kind="normal"):
    if kind == "normal":
        return rng.standard_normal((n_rows, n)).astype(np.float32)
    if kind == "heavy":  # outliers in every block
        return (rng.standard_t(2, (n_rows, n)) * 3).astype(np.float32)
    if kind == "zeros":  # all-zero blocks beside normal ones
        x = rng.standard_normal((n_rows, n)).astype(np.float32)
        x[:, : n // 2] = 0
        return x
    raise ValueError(kind)


@pytest.mark.parametrize("act", ["q8_0", "q8_1", "q8_k"])
@pytest.mark.parametrize("kind", ["normal", "heavy", "zeros"])
def test_device_activation_quantizer_gives_the_reference_bytes(act, kind):
    x = rows(np.random.default_rng(3), 4, 1024, kind)
    assert _testing.cuda_math_quantize_act(act, x).tobytes() == _testing.kernel_quantize_act("generic", act, x).tobytes()


def test_device_q8_k_quantizer_ties_and_opposite_extremes():
    x = np.tile(np.arange(-126, 130, dtype=np.float32) % 252 - 126 + 0.5, (3, 1))
    x[0, 3], x[0, 200] = -127.0, 127.0
    x[1, 3], x[1, 200] = 127.0, -127.0
    x[2] = 0
    x[2, 255] = np.float32(-1e-30)
    assert _testing.cuda_math_quantize_act("q8_k", x).tobytes() == _testing.kernel_quantize_act("generic", "q8_k", x).tobytes()


@pytest.mark.parametrize("wtype", LEGACY + KQUANTS)
@pytest.mark.parametrize("kind", ["normal", "heavy", "zeros"])
def test_integer_part_sums_reproduce_the_reference_dot_bit_for_bit(wtype, kind):
    # In block order the only floats are the reference's own per-block
    # expressions, so any wrong unpacked level or scale shows as a mismatch.
    rng = np.random.default_rng(11)
    n_out, n_in = 9, 512
    w = rows(rng, n_out, n_in, kind)
    wq = _core.quantize(w, wtype)
    x = rows(rng, 3, n_in, kind)
    ref = _testing.kernel_quant_matmul("generic", wtype, wq, n_out, n_in, x)
    got = _testing.cuda_math_quant_matmul(wtype, wq, n_out, n_in, x, "block")
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("wtype", LEGACY + KQUANTS)
def test_kernel_order_of_the_quantized_dot_matches_to_rounding(wtype):
    rng = np.random.default_rng(5)
    n_out, n_in = 6, 4096  # 128 legacy blocks or 128 k-quant parts: every lane takes several
    w = rows(rng, n_out, n_in)
    wq = _core.quantize(w, wtype)
    x = rows(rng, 2, n_in, "heavy")
    ref = _testing.kernel_quant_matmul("generic", wtype, wq, n_out, n_in, x)
    got = _testing.cuda_math_quant_matmul(wtype, wq, n_out, n_in, x, "warp")
    bound = 1e-5 * (np.abs(x).sum(axis=1, keepdims=True) * np.abs(w).max() + 1.0)
    assert np.all(np.abs(got - ref) <= bound)


@pytest.mark.parametrize("wtype", LEGACY + KQUANTS)
def test_get_rows_dequantizer_equals_the_cpu_backend(wtype):
    rng = np.random.default_rng(2)
    w = rows(rng, 5, 512, "heavy")
    wq = _core.quantize(w, wtype)
    ref = _testing.get_rows(wq, wtype, 5, 512, list(range(5)))
    got = _testing.cuda_math_dequantize(wtype, wq, 5, 512)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * float(np.abs(ref).max()))


def test_host_half_conversion_is_ieee_round_to_nearest_even():
    all_halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    finite = all_halves[np.isfinite(all_halves)].astype(np.float32)
    bits, back = _testing.cuda_math_half(finite)
    np.testing.assert_array_equal(back, finite)
    x = np.random.default_rng(0).standard_normal(100_000).astype(np.float32) * np.float32(1000)
    x = np.concatenate([x, x * np.float32(1e-6), np.array([65504, 65520, 1e-8, -0.0], np.float32)])
    bits, _ = _testing.cuda_math_half(x)
    with np.errstate(over="ignore"):  # 65520 rounds to infinity, as it must
        np.testing.assert_array_equal(bits, x.astype(np.float16).view(np.uint16))


@pytest.mark.parametrize("exact", [False, True])
def test_gelu_formula_is_the_cpu_reference(exact):
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    np.testing.assert_array_equal(_testing.cuda_math_gelu(x, exact), _testing.kernel_gelu("generic", x, exact))


@pytest.mark.parametrize("n", [64, 768, 6144, 1000])
def test_layer_norm_in_the_kernel_order_matches_the_reference(n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((3, n)) * 4 + 2).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    ref = _testing.kernel_layer_norm("generic", x, g, b, 1e-5)
    got = _testing.cuda_math_layer_norm(x, g, b, 1e-5)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "n_tokens,n_past,n_head,n_head_kv,d",
    [(1, 0, 4, 1, 64), (1, 300, 8, 1, 128), (7, 40, 4, 1, 64), (33, 0, 6, 2, 32), (5, 70, 8, 8, 64)],
)
def test_online_softmax_attention_in_tiles_of_32_matches_the_cpu_kernel(n_tokens, n_past, n_head, n_head_kv, d):
    rng = np.random.default_rng(n_past + n_tokens)
    q = rng.standard_normal((n_tokens, n_head * d)).astype(np.float32)
    k = (rng.standard_normal((n_past + n_tokens, n_head_kv * d)) * 2).astype(np.float32)
    v = rng.standard_normal((n_past + n_tokens, n_head_kv * d)).astype(np.float32)
    ref = _testing.kernel_attention("generic", q, k, v, n_past, n_head, n_head_kv)
    got = _testing.cuda_math_attention(q, k, v, n_past, n_head, n_head_kv)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_softmax_merge_weights_partial_states_by_their_maxima():
    m, l, wa, wb = _testing.cuda_math_softmax_merge(1.0, 2.0, 3.0, 0.5)
    assert m == 3.0
    assert wb == 1.0 and wa == pytest.approx(np.exp(-2.0))
    assert l == pytest.approx(2.0 * np.exp(-2.0) + 0.5)
    # an empty partial (no visible keys) contributes nothing
    m, l, wa, wb = _testing.cuda_math_softmax_merge(float("-inf"), 0.0, 0.5, 1.5)
    assert (m, l, wa, wb) == (0.5, 1.5, 0.0, 1.0)
