"""Every SIMD kernel level computes what the scalar reference computes.

The levels this CPU can run are forced one by one through `_core` test hooks
(the production path picks one at start-up). Integer block sums are exact, so
the only allowed difference is the order of the float accumulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from starcoder_cpp import _core, _testing

LEVELS = [lv for lv in _testing.cpu_levels() if lv != "generic"]
LEGACY = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"]
KQUANTS = ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]


def test_generic_level_is_always_available():
    assert _testing.cpu_levels()[0] == "generic"


def test_an_unsupported_level_is_a_clear_error():
    with pytest.raises(ValueError, match="not supported"):
        _testing.kernel_quantize_act("sse9", "q8_0", np.zeros((1, 32), np.float32))


def random_rows(rng, n_rows, n, kind):
    if kind == "normal":
        return rng.standard_normal((n_rows, n)).astype(np.float32)
    if kind == "heavy":  # outliers in every block, as real activations have
        x = rng.standard_t(2, (n_rows, n)).astype(np.float32)
        return x * np.float32(3.0)
    if kind == "zeros":  # all-zero blocks beside normal ones
        x = rng.standard_normal((n_rows, n)).astype(np.float32)
        x[:, : n // 2] = 0
        return x
    raise ValueError(kind)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("act", ["q8_0", "q8_1", "q8_k"])
@pytest.mark.parametrize("kind", ["normal", "heavy", "zeros"])
def test_activation_quantizer_gives_the_reference_bytes(level, act, kind):
    rng = np.random.default_rng(7)
    x = random_rows(rng, 5, 1024, kind)
    ref = _testing.kernel_quantize_act("generic", act, x)
    got = _testing.kernel_quantize_act(level, act, x)
    assert got.tobytes() == ref.tobytes()


def check_close(got, ref, x, w_scale):
    # bound on the float reassociation error: a few ulps of sum |w_i x_i|
    bound = 1e-5 * (np.abs(x).sum(axis=1, keepdims=True) * w_scale + 1.0)
    diff = np.abs(got - ref)
    assert np.all(diff <= bound), f"max diff {diff.max()} (bound {bound.min()})"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("wtype", LEGACY + KQUANTS)
# 1-8: the few-token row kernels (k-quants: one instance per count), 13: the
# tiles that take the rows a panel GEMM leaves (slices of 7 rows fill none)
@pytest.mark.parametrize("n_act", [1, 2, 3, 5, 7, 8, 13])
def test_quantized_matmul_equals_the_reference(level, wtype, n_act):
    rng = np.random.default_rng(hash((wtype, n_act)) % 2**32)
    n_out, n_in = 12, 768 if wtype in LEGACY else 1024
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    wq = _core.quantize(w, wtype)
    x = random_rows(rng, n_act, n_in, "heavy")
    ref = _testing.kernel_quant_matmul("generic", wtype, wq, n_out, n_in, x)
    got = _testing.kernel_quant_matmul(level, wtype, wq, n_out, n_in, x)
    check_close(got, ref, x, np.abs(w).max())


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("wtype", LEGACY + KQUANTS)
@pytest.mark.parametrize("row_split", [7, 16])  # 16: whole 8-row panels of the prompt GEMM, or one 16-row panel
def test_quantized_matmul_handles_extreme_weights(level, wtype, row_split):
    # zero rows, a single huge outlier per row, and the largest codes of each format
    rng = np.random.default_rng(3)
    n_out, n_in = 16, 512
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    w[0] = 0
    w[1, ::37] = 1e4
    w[2] = np.sign(w[2]) * 65000.0 / 127
    wq = _core.quantize(w, wtype)
    x = random_rows(rng, 16, n_in, "normal")  # 16: enough tokens for the prompt GEMM of every format
    w[3] = 65000.0 / 127  # every code at the format's largest level
    x[3] = 1.0  # every activation code at 127: the int16 partial sums at their largest
    ref = _testing.kernel_quant_matmul("generic", wtype, wq, n_out, n_in, x, row_split=row_split)
    got = _testing.kernel_quant_matmul(level, wtype, wq, n_out, n_in, x, row_split=row_split)
    check_close(got, ref, x, np.abs(w).max())


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("wtype", LEGACY + KQUANTS)
# Q4_0: 4+ tokens the panel (avx2: the 16-row pair tile, then an 8-row panel;
# avx512: 4-7 the 8-row panel, 8+ the pair tile; avx512_zmm: 4-7 the zmm
# tiles, 8+ the 16-row panel); Q8_0: 8+ the panel (avx512: the pair tile);
# k-quants: 8+ (AVX2) or 9+ (VNNI) the panel
@pytest.mark.parametrize("n_act", [4, 5, 11, 19, 32])
def test_prompt_sized_matmul_over_whole_row_panels_equals_the_reference(level, wtype, n_act):
    # slices of 28 rows, as a thread's share of a prompt GEMM: three 8-row
    # panels (or a 16-row panel and an 8-row one, Q4_0's 12 rows the zmm
    # tiles) and 4 rows left over, then
    # 16 rows: two 8-row panels or one 16-row panel
    rng = np.random.default_rng(hash((wtype, n_act, "panels")) % 2**32)
    n_out, n_in = 44, 512 if wtype in LEGACY else 1024
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    w[3, :32] = 0  # a zero block in a panel row
    wq = _core.quantize(w, wtype)
    x = random_rows(rng, n_act, n_in, "heavy")
    ref = _testing.kernel_quant_matmul("generic", wtype, wq, n_out, n_in, x, row_split=28)
    got = _testing.kernel_quant_matmul(level, wtype, wq, n_out, n_in, x, row_split=28)
    check_close(got, ref, x, np.abs(w).max())


# (level, type) pairs whose 16-row slices take the pair tile: AVX2's Q4_0 from
# 4 tokens, the avx512 level's Q4_0 and Q8_0 (offset formats with VNNI) from 8
PAIR_TILES = [("avx2", "q4_0"), ("avx512", "q4_0"), ("avx512", "q8_0")]


@pytest.mark.parametrize("level,type_name", PAIR_TILES)
@pytest.mark.parametrize("n_act", [4, 7, 8, 13, 21])
def test_16_row_pair_tile_gives_the_8_row_tiles_outputs_bit_for_bit(level, type_name, n_act):
    # 16-row slices go through the pair tile (two 8-row panels per activation
    # broadcast), 8-row slices through the 8-row tile: the same integer sums
    # and float steps lane for lane, so a token's outputs do not depend on
    # which one a thread's share of rows took
    if level not in LEVELS:
        pytest.skip(f"this CPU cannot run the {level} level")
    rng = np.random.default_rng(n_act)
    n_out, n_in = 48, 768
    wq = _core.quantize(rng.standard_normal((n_out, n_in)).astype(np.float32), type_name)
    x = random_rows(rng, n_act, n_in, "heavy")
    pair = _testing.kernel_quant_matmul(level, type_name, wq, n_out, n_in, x, row_split=16)
    single = _testing.kernel_quant_matmul(level, type_name, wq, n_out, n_in, x, row_split=8)
    assert pair.tobytes() == single.tobytes()


@pytest.mark.parametrize("level", LEVELS)
def test_prompt_matmul_keeps_q8_0s_most_negative_code_exact(level):
    # a file may hold -128, which no quantizer writes: |w| * |y| still fits
    # the int16 pair sums of AVX2, and w + 128 = 0 the unsigned codes of VNNI
    rng = np.random.default_rng(5)
    n_out, n_in = 16, 256
    wq = np.frombuffer(_core.quantize(rng.standard_normal((n_out, n_in)).astype(np.float32), "q8_0"),
                       np.uint8).copy().reshape(n_out, -1)
    for b in range(n_in // 32):
        wq[:, b * 34 + 2: b * 34 + 34] = 0x80  # every code -128
    x = np.full((16, n_in), -1.0, np.float32)  # every activation code -127; 16 rows: the prompt GEMM
    ref = _testing.kernel_quant_matmul("generic", "q8_0", wq, n_out, n_in, x, row_split=16)
    got = _testing.kernel_quant_matmul(level, "q8_0", wq, n_out, n_in, x, row_split=16)
    check_close(got, ref, x, 128.0 * 4)


# ---------------------------------------------------------------- attention

def attention_reference(q, k, v, n_past, n_head, n_head_kv):
    n_tokens, d = q.shape[0], q.shape[1] // n_head
    k = k.astype(np.float64)
    v = v.astype(np.float64)
    out = np.zeros((n_tokens, n_head * d))
    for t in range(n_tokens):
        for h in range(n_head):
            g = h // (n_head // n_head_kv)
            keys = k[: n_past + t + 1, g * d:(g + 1) * d]
            s = keys @ q[t, h * d:(h + 1) * d].astype(np.float64) / np.sqrt(d)
            p = np.exp(s - s.max())
            out[t, h * d:(h + 1) * d] = (p / p.sum()) @ v[: n_past + t + 1, g * d:(g + 1) * d]
    return out


ATTN_CASES = [  # (n_tokens, n_past, n_head, n_head_kv, head_dim)
    (1, 0, 12, 1, 64),      # first decode step
    (1, 700, 16, 1, 128),   # decode over a long cache (keys split across threads)
    (37, 5, 12, 1, 64),     # prompt chunk after a few cached tokens, odd sizes
    (70, 0, 4, 4, 32),      # multi-head
    (9, 130, 6, 2, 48),     # grouped heads, head_dim not a multiple of the tiles
    (3, 75, 4, 1, 20),      # head_dim not a multiple of 8 (the F16 key pack's K tail)
]


@pytest.mark.parametrize("level", ["generic"] + LEVELS)
@pytest.mark.parametrize("case", ATTN_CASES)
@pytest.mark.parametrize("kv", ["f32", "f16"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_attention_tiles_equal_the_softmax_reference(level, case, kv, n_threads):
    n_tokens, n_past, n_head, n_head_kv, d = case
    rng = np.random.default_rng(n_tokens * 1000 + n_past)
    n_ctx = n_past + n_tokens
    q = rng.standard_normal((n_tokens, n_head * d)).astype(np.float32) * 2
    k = rng.standard_normal((n_ctx, n_head_kv * d)).astype(np.float32)
    v = rng.standard_normal((n_ctx, n_head_kv * d)).astype(np.float32)
    if kv == "f16":
        k, v = k.astype(np.float16), v.astype(np.float16)
    got = _testing.kernel_attention(level, q, k, v, n_past, n_head, n_head_kv, n_threads)
    ref = attention_reference(q, k, v, n_past, n_head, n_head_kv)
    assert np.abs(got - ref).max() < 2e-5

@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("wtype", LEGACY)
@pytest.mark.parametrize("n_in", [32, 96, 800])
def test_legacy_matmul_handles_odd_block_counts(level, wtype, n_in):
    # rows of 1, 3 and 25 blocks: the kernels work on pairs of blocks and on
    # 64-byte loads, so the last blocks of a row take a separate path
    rng = np.random.default_rng(n_in)
    n_out = 19
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    wq = _core.quantize(w, wtype)
    for n_act in (1, 2, 5, 9):
        x = random_rows(rng, n_act, n_in, "heavy")
        ref = _testing.kernel_quant_matmul("generic", wtype, wq, n_out, n_in, x)
        got = _testing.kernel_quant_matmul(level, wtype, wq, n_out, n_in, x)
        check_close(got, ref, x, np.abs(w).max())

@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("wtype", KQUANTS)
def test_kquant_matmul_over_several_token_chunks(level, wtype):
    # more activation rows than one pass of the prompt path takes (32)
    rng = np.random.default_rng(11)
    n_out, n_in = 9, 512
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    wq = _core.quantize(w, wtype)
    x = random_rows(rng, 70, n_in, "heavy")
    ref = _testing.kernel_quant_matmul("generic", wtype, wq, n_out, n_in, x)
    got = _testing.kernel_quant_matmul(level, wtype, wq, n_out, n_in, x)
    check_close(got, ref, x, np.abs(w).max())


@pytest.mark.parametrize("level", LEVELS)
def test_q8_k_quantizer_ties_and_opposite_extremes(level):
    # the scale comes from the first element of largest magnitude (here
    # -127 before +127, and the reverse), and halves round to even
    x = np.tile(np.arange(-126, 130, dtype=np.float32) % 252 - 126 + 0.5, (4, 1))  # |x| <= 125.5
    x[0, 3], x[0, 200] = -127.0, 127.0
    x[1, 3], x[1, 200] = 127.0, -127.0
    x[2, :] = np.float32(0.5) * np.sign(x[2])
    x[2, 77] = -127.0
    x[3] = 0
    x[3, 255] = np.float32(-1e-30)
    ref = _testing.kernel_quantize_act("generic", "q8_k", x)
    got = _testing.kernel_quantize_act(level, "q8_k", x)
    assert got.tobytes() == ref.tobytes()
