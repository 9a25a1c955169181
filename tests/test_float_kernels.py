"""The float kernels of every CPU level against the plain C++ reference.

Each level this CPU can run is forced through the `_testing.kernel_*` hooks and
held against "generic" (and, where the reference itself rounds badly, against
a float64 computation): the prompt-path GEMM over odd shapes and column
slices, GELU (tanh and erf), LayerNorm, and the decode-path dot products.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from starcoder_cpp import _testing

LEVELS = [lv for lv in _testing.cpu_levels() if lv != "generic"]
ALL_LEVELS = _testing.cpu_levels()


def weights(rng, n_out, n_in, wtype):
    """Random weights as raw bytes of `wtype`, and their exact values as float64."""
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    if wtype == "f16":
        h = w.astype(np.float16)
        return h.view(np.uint8).reshape(-1), h.astype(np.float64)
    if wtype == "bf16":
        b = (w.view(np.uint32) >> 16).astype(np.uint16)
        return b.view(np.uint8).reshape(-1), (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return w.view(np.uint8).reshape(-1), w.astype(np.float64)


def reassociation_bound(x, w):
    """A few ulps of sum_k |x_k w_k|: what a different summation order may change."""
    return 1e-6 * (np.abs(x).astype(np.float64) @ np.abs(w).T + 1e-30)


# (n_out, n_in, n_tokens): a single element; less than one tile each way;
# edges in every direction; several K blocks (256) with a tail; more tokens
# than one token block and more outputs than one column block.
GEMM_SHAPES = [(1, 1, 1), (5, 8, 3), (37, 19, 7), (33, 257, 13), (64, 513, 25), (300, 70, 200), (96, 768, 12)]


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("wtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_gemm_matches_float64_and_the_reference(level, wtype, shape):
    n_out, n_in, n_tok = shape
    rng = np.random.default_rng(n_out * 1000 + n_in)
    wb, w = weights(rng, n_out, n_in, wtype)
    x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    exact = x.astype(np.float64) @ w.T + bias
    bound = reassociation_bound(x, w) + 1e-6 * np.abs(bias)
    ref = _testing.kernel_gemm("generic", wtype, wb, n_out, n_in, x, bias)
    for slice_ in (0, 1, 7, 40):  # thread slices of any width, tile-aligned or not
        got = _testing.kernel_gemm(level, wtype, wb, n_out, n_in, x, bias, slice_)
        assert np.all(np.abs(got - exact) <= bound), f"slice {slice_}: max err {np.abs(got - exact).max()}"
        assert np.all(np.abs(got - ref) <= 2 * bound)


@pytest.mark.parametrize("level", LEVELS)
def test_gemm_without_bias_and_with_extreme_values(level):
    rng = np.random.default_rng(5)
    n_out, n_in, n_tok = 70, 300, 17
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    w[3] = 0
    w[5, ::11] = 6e4  # near the top of the f16 range
    h = w.astype(np.float16)
    x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
    x[2] = 0
    ref = _testing.kernel_gemm("generic", "f16", h.view(np.uint8).reshape(-1), n_out, n_in, x)
    got = _testing.kernel_gemm(level, "f16", h.view(np.uint8).reshape(-1), n_out, n_in, x)
    assert np.all(np.abs(got - ref) <= 2 * reassociation_bound(x, h.astype(np.float64)))
    assert np.all(got[2] == 0)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("wtype", ["f32", "f16", "bf16"])
def test_backend_linear_prompt_and_decode_paths(n_threads, wtype):
    # through CpuBackend::linear at the start-up level: the GEMM (f32 always,
    # f16/bf16 from 3 tokens), the row dot products (f16, bf16) for 1-2
    # tokens, threads splitting outputs
    rng = np.random.default_rng(11)
    n_out, n_in = 131, 200
    wb, w = weights(rng, n_out, n_in, wtype)
    bias = rng.standard_normal(n_out).astype(np.float32)
    for n_tok in (1, 2, 3, 29):
        x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
        got = _testing.linear(wb, wtype, n_out, n_in, x, bias, n_threads=n_threads)
        exact = x.astype(np.float64) @ w.T + bias
        assert np.all(np.abs(got - exact) <= reassociation_bound(x, w) + 1e-6 * np.abs(bias))


# ---- the bf16 GEMM (matmul_precision "bf16") ----

BF16_LEVELS = [lv for lv in ALL_LEVELS if _testing.has_bf16_gemm(lv)]


def round_to_bf16(a):
    """float32 -> bfloat16 -> float64, round-to-nearest-even (finite inputs)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    return r.view(np.float32).astype(np.float64)


def cpu_has_avx512_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and "avx512_bf16" in line.split() for line in f)
    except OSError:
        return False


def test_bf16_gemm_is_at_the_reference_and_where_the_cpu_multiplies_bf16():
    # generic: the reference (float32 products of rounded values); AVX2 has
    # no bf16 products; both AVX-512 levels take vdpbf16ps exactly where
    # cpuid reports AVX512_BF16
    for level in ALL_LEVELS:
        want = level == "generic" or (level.startswith("avx512") and cpu_has_avx512_bf16())
        assert _testing.has_bf16_gemm(level) == want, level


def test_a_level_without_a_bf16_gemm_refuses_to_run_one():
    if "avx2" not in ALL_LEVELS:
        pytest.skip("this CPU has no avx2 level")
    w = np.zeros(4, np.float16).view(np.uint8)
    with pytest.raises(ValueError, match="no bf16 GEMM"):
        _testing.kernel_gemm("avx2", "f16", w, 2, 2, np.zeros((3, 2), np.float32), bf16=True)


@pytest.mark.parametrize("level", BF16_LEVELS)
@pytest.mark.parametrize("wtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_bf16_gemm_is_the_float64_product_of_bf16_rounded_inputs(level, wtype, shape):
    # odd K too: the last pair of a row is half padding
    n_out, n_in, n_tok = shape
    rng = np.random.default_rng(n_out * 1000 + n_in + 7)
    wb, w = weights(rng, n_out, n_in, wtype)
    x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    wr, xr = round_to_bf16(w), round_to_bf16(x)
    exact = xr @ wr.T + bias
    bound = reassociation_bound(xr, wr) + 1e-6 * np.abs(bias)
    for slice_ in (0, 1, 7, 40):
        got = _testing.kernel_gemm(level, wtype, wb, n_out, n_in, x, bias, slice_, bf16=True)
        assert np.all(np.abs(got - exact) <= bound), f"slice {slice_}: max err {np.abs(got - exact).max()}"


@pytest.mark.parametrize("level", BF16_LEVELS)
def test_bf16_gemm_keeps_zeros_and_the_top_of_the_f16_range(level):
    rng = np.random.default_rng(6)
    n_out, n_in, n_tok = 70, 300, 17
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    w[3] = 0
    w[5, ::11] = 6e4
    h = w.astype(np.float16)
    x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
    x[2] = 0
    got = _testing.kernel_gemm(level, "f16", h.view(np.uint8).reshape(-1), n_out, n_in, x, bf16=True)
    wr, xr = round_to_bf16(h.astype(np.float32)), round_to_bf16(x)
    assert np.all(np.abs(got - xr @ wr.T) <= reassociation_bound(xr, wr))
    assert np.all(got[2] == 0) and np.all(got[:, 3] == 0)


@pytest.mark.parametrize("wtype", ["f32", "f16", "bf16"])
def test_backend_bf16_precision_rounds_only_16_bit_weights_in_prompts(wtype):
    # through CpuBackend::linear at the start-up level with matmul_precision
    # "bf16": 1-2 tokens (decode) and f32 weights stay exact; 3+ tokens of
    # F16/BF16 weights are the product of rounded inputs where the level has
    # a bf16 GEMM, exact where it has not
    rng = np.random.default_rng(12)
    n_out, n_in = 131, 200
    wb, w = weights(rng, n_out, n_in, wtype)
    rounds = wtype != "f32" and _testing.has_bf16_gemm(_testing.default_level())
    for n_tok in (1, 2, 3, 29):
        x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
        got = _testing.linear(wb, wtype, n_out, n_in, x, None, n_threads=2, matmul_precision="bf16")
        wr, xr = (round_to_bf16(w), round_to_bf16(x)) if rounds and n_tok >= 3 else (w, x.astype(np.float64))
        assert np.all(np.abs(got - xr @ wr.T) <= reassociation_bound(xr, wr)), n_tok


# ---- GELU ----


def gelu_inputs():
    rng = np.random.default_rng(0)
    special = [0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 88.0, -88.0, 100.0, -100.0, 1e4, -1e4, 3e38, -3e38]
    x = np.concatenate([rng.standard_normal(20000) * 3, np.linspace(-20, 20, 40001), special])
    return x.astype(np.float32)


def gelu_float64(x, exact):
    xd = x.astype(np.float64)
    if exact:
        return np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in xd])
    u = math.sqrt(2 / math.pi) * (xd + 0.044715 * xd**3)
    with np.errstate(over="ignore"):
        return xd / (1 + np.exp(-2 * u))  # = 0.5 x (1 + tanh u), without cancellation


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("exact", [False, True])
def test_gelu_matches_the_reference(level, exact):
    x = gelu_inputs()
    ref = _testing.kernel_gelu("generic", x, exact).astype(np.float64)
    got = _testing.kernel_gelu(level, x, exact).astype(np.float64)
    assert np.all(np.isfinite(got))
    # Where 1 + tanh (1 + erf) does not cancel, 1e-6 relative. Below, the
    # reference's own rounding of 1 + tanh(u) (half an ulp of 1, times x/2)
    # is the yardstick.
    plain = x >= -1.5
    assert np.all(np.abs(got - ref)[plain] <= 1e-6 * np.abs(ref[plain]))
    assert np.all(np.abs(got - ref)[~plain] <= 1e-7 * np.abs(x[~plain]))
    # and far out, however large |x|, the result is 0 (x) like the reference's
    far = np.abs(x) >= 20
    assert np.all(np.abs(got - ref)[far] <= 1e-6 * np.abs(ref[far]) + 1e-30)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("exact", [False, True])
def test_gelu_is_accurate_in_the_negative_tail(level, exact):
    # The SIMD forms (x sigmoid(2u), x erfc(-x/sqrt2)/2) stay accurate where
    # the reference cancels: 3e-6 relative down to x = -5 (|y| ~ 1e-6).
    x = gelu_inputs()
    x = x[(x >= -5) & (x < 50)]
    got = _testing.kernel_gelu(level, x, exact).astype(np.float64)
    truth = gelu_float64(x, exact)
    assert np.all(np.abs(got - truth) <= 3e-6 * np.abs(truth))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 17, 33])
def test_gelu_tails(level, n):
    x = np.linspace(-4, 4, n).astype(np.float32)
    for exact in (False, True):
        ref = _testing.kernel_gelu("generic", x, exact)
        got = _testing.kernel_gelu(level, x, exact)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


# ---- LayerNorm ----


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n", [1, 7, 33, 768, 1000, 6144])
@pytest.mark.parametrize("kind", ["normal", "offset", "outliers", "constant"])
def test_layer_norm_matches_the_reference(level, n, kind):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((6, n)).astype(np.float32)
    if kind == "offset":  # mean far from zero against the spread
        x += 50
    if kind == "outliers":  # a few huge channels, as residual streams have
        x[:, ::97] *= 300
    if kind == "constant":
        x[:] = 3.0
    gamma = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    beta = (0.1 * rng.standard_normal(n)).astype(np.float32)
    ref = _testing.kernel_layer_norm("generic", x, gamma, beta, 1e-5)
    got = _testing.kernel_layer_norm(level, x, gamma, beta, 1e-5)
    # 1e-6 of the output, or of gamma where the output is near zero
    assert np.all(np.abs(got - ref) <= 1e-6 * (np.abs(ref) + np.abs(gamma)))


# ---- decode-path and attention kernels ----


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n", [1, 15, 16, 31, 33, 100, 768])
def test_dot_kernels_match_the_reference(level, n):
    rng = np.random.default_rng(n)
    w = rng.standard_normal((4, n)).astype(np.float32)
    h = w.astype(np.float16)
    bf = (w.view(np.uint32) >> 16).astype(np.uint16)
    for n_tok in (1, 2):
        x = rng.standard_normal((n_tok, n)).astype(np.float32)
        for wtype, wv in (("f32", w), ("f16", h.view(np.uint16)), ("bf16", bf)):
            ref = np.array(_testing.kernel_dot4("generic", wtype, wv, x))
            got = np.array(_testing.kernel_dot4(level, wtype, wv, x))
            bound = reassociation_bound(x, np.abs(w) + 1e-3).reshape(-1)
            assert np.all(np.abs(got - ref) <= 2 * bound), (wtype, n_tok)
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    _, d_ref = _testing.kernel_vec("generic", "dot", a, b)
    _, d_got = _testing.kernel_vec(level, "dot", a, b)
    assert abs(d_got - d_ref) <= 2e-6 * np.abs(a * b).sum()
    y_ref, _ = _testing.kernel_vec("generic", "axpy", a, b, 0.37)
    y_got, _ = _testing.kernel_vec(level, "axpy", a, b, 0.37)
    np.testing.assert_allclose(y_got, y_ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n", [1, 7, 16, 17, 100])
def test_softmax_exp_and_half_conversion_match_the_reference(level, n):
    rng = np.random.default_rng(n)
    s = (rng.standard_normal(n) * 10).astype(np.float32)
    s[0] = -200  # exp underflows to (almost) zero
    mx = float(s.max())
    e_ref, sum_ref = _testing.kernel_vec("generic", "exp_shift_sum", s, s, mx)
    e_got, sum_got = _testing.kernel_vec(level, "exp_shift_sum", s, s, mx)
    np.testing.assert_allclose(e_got, e_ref, rtol=1e-6, atol=1e-37)
    assert abs(sum_got - sum_ref) <= 1e-6 * sum_ref
    h = rng.standard_normal(n).astype(np.float16)
    h[0] = np.float16(6e-8)  # subnormal half
    bits = h.view(np.uint16)
    np.testing.assert_array_equal(_testing.kernel_f16_to_f32(level, bits), h.astype(np.float32))
