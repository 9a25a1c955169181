"""Quantization checked against llama.cpp itself (llama-cpp-python and its
bundled ggml libraries).

* kernels: this project's quantizers produce the bytes of ggml's
  ``ggml_quantize_chunk`` (what llama-quantize calls) for every type, and the
  fused quantized matmul gives ggml's CPU ``mul_mat`` result to float rounding;
* files: for every preset, the converter's output (and ``quantize IN OUT``) has
  the tensor types and the tensor bytes that ``llama_model_quantize`` writes for
  the converter's F32 file, and the same metadata;
* cross-loading: files quantized here run in llama.cpp, files quantized by
  llama.cpp run here, with the same logits within the tolerance below.

Logit tolerance (measured on the trained tiny model, all presets): the two
runtimes agree exactly on every quantized weight and on each matmul (1e-6),
but llama.cpp keeps the KV cache in F16 and evaluates GELU through an F16
table; those 1e-4-sized differences occasionally move an activation across a
rounding boundary of its 8-bit quantization, which shifts logits by about one
activation quantization step. Centered RMS logit difference <= 0.04 (measured
0.019-0.026), max |difference| <= 0.6 (measured <= 0.43), and the top-1 token
is the same wherever llama.cpp's top-2 margin exceeds 0.25 (measured: all
disagreements had margins < 0.1). For F32 files the difference is <= 0.01.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest

import make_checkpoint as mc
from conftest import VOCAB_DIR, require, require_path, truncated_tokenizer

import starcoder_cpp
from starcoder_cpp import _core, _testing
from starcoder_cpp.convert import convert_checkpoint
from starcoder_cpp.ggml_types import GGMLType
from starcoder_cpp.gguf_header import read_gguf_header
from starcoder_cpp.quant_presets import PRESETS
from starcoder_cpp.quantize import quantize_gguf

pytestmark = pytest.mark.llama_cpp

WEIGHT_TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]
TYPE_IDS = {"f32": 0, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q2_k": 10, "q3_k": 11,
            "q4_k": 12, "q5_k": 13, "q6_k": 14}
ALL_PRESETS = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q6_k", "q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s",
               "q3_k_s", "q3_k_m", "q3_k_l", "q2_k"]
LEGACY_PRESETS = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]


@pytest.fixture(scope="module")
def llama_cpp():
    return require("llama_cpp")


# --------------------------------------------------------------------------- ggml through ctypes


class _Ggml:
    """ggml_quantize_chunk and a CPU mul_mat from the ggml libraries llama-cpp-python ships."""

    class Params(ctypes.Structure):
        _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]

    def __init__(self, llama_cpp):
        lib = Path(llama_cpp.__file__).parent / "lib"
        base_path, cpu_path = lib / "libggml-base.so", lib / "libggml-cpu.so"
        if not base_path.exists() or not cpu_path.exists():
            pytest.skip("llama-cpp-python without separate ggml libraries")
        b = self.base = ctypes.CDLL(str(base_path), mode=ctypes.RTLD_GLOBAL)
        c = self.cpu = ctypes.CDLL(str(cpu_path), mode=ctypes.RTLD_GLOBAL)
        vp, i64 = ctypes.c_void_p, ctypes.c_int64
        b.ggml_quantize_chunk.restype = ctypes.c_size_t
        b.ggml_quantize_chunk.argtypes = [ctypes.c_int, vp, vp, i64, i64, i64, vp]
        b.ggml_quantize_init.argtypes = [ctypes.c_int]
        b.ggml_init.restype = vp
        b.ggml_init.argtypes = [self.Params]
        b.ggml_new_tensor_2d.restype = vp
        b.ggml_new_tensor_2d.argtypes = [vp, ctypes.c_int, i64, i64]
        b.ggml_mul_mat.restype = vp
        b.ggml_mul_mat.argtypes = [vp, vp, vp]
        b.ggml_new_graph.restype = vp
        b.ggml_new_graph.argtypes = [vp]
        b.ggml_build_forward_expand.argtypes = [vp, vp]
        b.ggml_get_data.restype = vp
        b.ggml_get_data.argtypes = [vp]
        b.ggml_nbytes.restype = ctypes.c_size_t
        b.ggml_nbytes.argtypes = [vp]
        b.ggml_free.argtypes = [vp]
        c.ggml_graph_compute_with_ctx.argtypes = [vp, vp, ctypes.c_int]
        for name in ("quantize_row_q8_K_ref", "quantize_row_q8_1_ref"):
            getattr(b, name).argtypes = [vp, vp, i64]

    def quantize(self, x: np.ndarray, t: str) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        info = _core.quant_types()[t]
        out = np.zeros(x.size // info["block_size"] * info["type_size"], np.uint8)
        self.base.ggml_quantize_init(TYPE_IDS[t])
        n = self.base.ggml_quantize_chunk(TYPE_IDS[t], x.ctypes.data, out.ctypes.data, 0, x.shape[0], x.shape[1], None)
        assert n == out.size
        return out.reshape(x.shape[0], -1)

    def quantize_ref_row(self, x: np.ndarray, t: str) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32).reshape(-1)
        info = _core.quant_types()[t]
        out = np.zeros(x.size // info["block_size"] * info["type_size"], np.uint8)
        getattr(self.base, {"q8_k": "quantize_row_q8_K_ref", "q8_1": "quantize_row_q8_1_ref"}[t])(
            x.ctypes.data, out.ctypes.data, x.size)
        return out

    def matmul(self, w: np.ndarray, t: str, n_out: int, n_in: int, x: np.ndarray) -> np.ndarray:
        b = self.base
        x = np.ascontiguousarray(x, np.float32)
        ctx = b.ggml_init(self.Params(64 << 20, None, False))
        try:
            W = b.ggml_new_tensor_2d(ctx, TYPE_IDS[t], n_in, n_out)
            X = b.ggml_new_tensor_2d(ctx, 0, n_in, x.shape[0])
            wb = np.ascontiguousarray(w).view(np.uint8).reshape(-1)
            assert b.ggml_nbytes(W) == wb.size
            ctypes.memmove(b.ggml_get_data(W), wb.ctypes.data, wb.size)
            ctypes.memmove(b.ggml_get_data(X), x.ctypes.data, x.nbytes)
            Y = b.ggml_mul_mat(ctx, W, X)
            g = b.ggml_new_graph(ctx)
            b.ggml_build_forward_expand(g, Y)
            self.cpu.ggml_graph_compute_with_ctx(ctx, g, 1)
            out = np.empty((x.shape[0], n_out), np.float32)
            ctypes.memmove(out.ctypes.data, b.ggml_get_data(Y), out.nbytes)
            return out
        finally:
            b.ggml_free(ctx)


@pytest.fixture(scope="module")
def ggml(llama_cpp):
    return _Ggml(llama_cpp)


def _test_rows(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((48, 768)) * 0.05).astype(np.float32)
    x[1] = rng.uniform(-1, 1, 768)
    x[2] = rng.standard_t(2, 768) * 0.02                 # heavy tails
    x[3, :300] = 0.0                                     # zero blocks and groups
    x[4] = 0.0
    x[5] = 1e-6 * rng.standard_normal(768)               # tiny scales (fp16 subnormals)
    x[6, ::7] = 5.0                                      # outliers
    x[7] = np.abs(x[7])                                  # one-signed
    x[8] = 0.3                                           # constant
    return x.astype(np.float32)


@pytest.mark.parametrize("t", WEIGHT_TYPES)
def test_quantizers_are_bit_exact_with_ggml(ggml, t):
    for seed in (0, 1):
        x = _test_rows(seed)
        if t.endswith("_k"):
            x = x[:, :512]
        mine, theirs = _core.quantize(x, t, 2), ggml.quantize(x, t)
        bad = np.nonzero((mine != theirs).any(axis=1))[0]
        assert bad.size == 0, f"{t}: rows {bad.tolist()} differ from ggml"


@pytest.mark.parametrize("t", ["q8_k", "q8_1"])
def test_activation_quantizers_are_bit_exact_with_ggml(ggml, t):
    x = _test_rows(2)[:, :512]
    assert np.array_equal(_core.quantize(x, t).reshape(-1), ggml.quantize_ref_row(x, t))


@pytest.mark.parametrize("t", WEIGHT_TYPES)
def test_fused_matmul_equals_ggml_cpu_mul_mat(ggml, t):
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((64, 512)) * 0.05).astype(np.float32)
    x = rng.standard_normal((7, 512)).astype(np.float32)
    q = _core.quantize(w, t)
    mine = _testing.linear(q, t, 64, 512, x, None, 2)
    theirs = ggml.matmul(q, t, 64, 512, x)
    assert np.abs(mine - theirs).max() <= 1e-5 * np.abs(theirs).max()
    # both quantize the activations: far from the float product on this scale
    ideal = x @ _core.dequantize(q, t, w.shape).T
    assert np.abs(mine - ideal).max() > 100 * np.abs(mine - theirs).max()


# --------------------------------------------------------------------------- whole files


MODELS = {
    # n_embd 256: every k-quant applies; tied embeddings (token_embd is the LM head)
    "mqa-tied": dict(n_embd=256, n_layer=8, n_head=4, n_inner=512, vocab_size=1024, n_positions=64),
    # one K/V head per query head (n_gqa = 1), its own lm_head, 16 layers (n_layer/16 rules)
    "mha-untied": dict(n_embd=256, n_layer=16, n_head=4, n_inner=768, vocab_size=1024, n_positions=64,
                       multi_query=False, tie_word_embeddings=False),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    require_path(VOCAB_DIR / "starcoder-v1-tokenizer.json")
    d = tmp_path_factory.mktemp("qll")
    tok = d / "tokenizer.json"
    tok.write_text(json.dumps(truncated_tokenizer(1000)), encoding="utf-8")
    out = {}
    for name, shape in MODELS.items():
        hf = mc.make_checkpoint(d / name, tokenizer_json=tok, **shape)
        f32 = d / f"{name}-f32.gguf"
        convert_checkpoint(hf, f32, out_type="f32", progress=False)
        out[name] = (hf, f32)
    return d, out


@pytest.fixture(scope="module")
def tiny_f32(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("qtiny") / "tiny-f32.gguf"
    convert_checkpoint(tiny_model_dir, out, out_type="f32", progress=False)
    return tiny_model_dir, out


def _llama_quantize(llama_cpp, src: Path, dst: Path, preset: str) -> None:
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = PRESETS[preset][1]
    p.nthread = 2
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), p) == 0


def _read(path):
    """Tensors (name -> (type, bytes)) and metadata (key -> raw packed value)."""
    head = read_gguf_header(path)
    data = Path(path).read_bytes()
    tensors = {}
    for t in head.tensors:
        name = GGMLType(t.ggml_type).name.lower()
        info = _core.quant_types()[name]
        n = t.n_elements // info["block_size"] * info["type_size"]
        start = head.data_start + t.offset
        tensors[t.name] = (name, data[start:start + n])
    return tensors, {k: f.raw for k, f in head.fields.items()}


def _compare_files(ours: Path, theirs: Path):
    a, ma = _read(ours)
    b, mb = _read(theirs)
    assert set(a) == set(b)
    types = {n: (a[n][0], b[n][0]) for n in a if a[n][0] != b[n][0]}
    assert not types, f"per-tensor types differ (ours, llama.cpp): {types}"
    differ = [n for n in a if a[n][1] != b[n][1]]
    assert not differ, f"tensor bytes differ: {differ}"
    assert ma == mb  # every metadata value, byte for byte
    return {t.upper() for t, _ in a.values()}


def _check_preset(llama_cpp, hf, f32, tmp: Path, preset: str):
    ours = tmp / f"ours-{preset}.gguf"
    theirs = tmp / f"llama-{preset}.gguf"
    requant = tmp / f"requant-{preset}.gguf"
    convert_checkpoint(hf, ours, out_type=preset, progress=False)
    _llama_quantize(llama_cpp, f32, theirs, preset)
    quantize_gguf(f32, requant, preset, n_threads=2)
    types = _compare_files(ours, theirs)
    _compare_files(requant, theirs)
    # quantize keeps the input's tensor order
    assert [t.name for t in read_gguf_header(requant).tensors] == [t.name for t in read_gguf_header(f32).tensors]
    return types


@pytest.mark.parametrize("preset", LEGACY_PRESETS)
def test_legacy_presets_are_byte_identical_to_llama_quantize(llama_cpp, models, preset):
    d, m = models
    hf, f32 = m["mqa-tied"]
    types = _check_preset(llama_cpp, hf, f32, d, preset)
    # the tied token_embd (also the LM head) is Q6_K except under Q8_0
    assert types == ({"F32", "Q8_0"} if preset == "q8_0" else {"F32", "Q6_K", preset.upper()})


@pytest.mark.parametrize("preset", [p for p in ALL_PRESETS if p not in LEGACY_PRESETS])
def test_k_quant_presets_are_byte_identical_to_llama_quantize(llama_cpp, models, preset):
    d, m = models
    hf, f32 = m["mqa-tied"]
    _check_preset(llama_cpp, hf, f32, d, preset)


@pytest.mark.parametrize("preset", ["q4_0", "q4_k_m", "q4_k_s", "q5_k_m", "q3_k_m", "q2_k", "q6_k"])
def test_untied_multi_head_model_types_and_bytes(llama_cpp, models, preset):
    d, m = models
    hf, f32 = m["mha-untied"]
    sub = d / "mha"
    sub.mkdir(exist_ok=True)
    _check_preset(llama_cpp, hf, f32, sub, preset)


FALLBACK_FAST = ["q8_0", "q4_0", "q6_k", "q4_k_m", "q5_k_s", "q3_k_m", "q2_k"]


@pytest.mark.parametrize(
    "preset", FALLBACK_FAST + [pytest.param(p, marks=pytest.mark.slow) for p in ALL_PRESETS if p not in FALLBACK_FAST]
)
def test_rows_of_128_fall_back_like_llama_cpp(llama_cpp, tiny_f32, tmp_path, preset):
    """The trained tiny model has n_embd 128: most k-quant targets fall back."""
    hf, f32 = tiny_f32
    _check_preset(llama_cpp, hf, f32, tmp_path, preset)


@pytest.mark.parametrize("preset", ["f16", "bf16"])
def test_float_presets_equal_llama_quantize(llama_cpp, models, preset):
    d, m = models
    _, f32 = m["mqa-tied"]
    ours, theirs = d / f"float-{preset}.gguf", d / f"float-llama-{preset}.gguf"
    quantize_gguf(f32, ours, preset)
    _llama_quantize(llama_cpp, f32, theirs, preset)
    assert _compare_files(ours, theirs) == {"F32", preset.upper()}


# --------------------------------------------------------------------------- cross-loading


def _prompt_ids(tiny_reference, n=115):
    ids = []
    for g in tiny_reference["greedy"]:
        ids += g["prompt_ids"] + g["greedy_new_ids"][:20]
    return ids[:n]


def _llama_logits(llama_cpp, path, ids):
    llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=128, n_batch=128, n_threads=2, verbose=False)
    try:
        llm.eval(list(ids))
        return np.array(llm.scores[:len(ids)], dtype=np.float64)
    finally:
        if hasattr(llm, "close"):
            llm.close()


def _our_logits(path, ids):
    m = starcoder_cpp.Model(str(path), n_ctx=128, n_threads=2)
    return np.asarray(m.eval(list(ids), all_logits=True), dtype=np.float64)


def _assert_close(ours, theirs, what):
    ac = ours - ours.mean(axis=1, keepdims=True)
    bc = theirs - theirs.mean(axis=1, keepdims=True)
    crms = float(np.sqrt(np.mean((ac - bc) ** 2)))
    mx = float(np.abs(ours - theirs).max())
    assert crms <= 0.04 and mx <= 0.6, f"{what}: centered RMS {crms:.4f}, max {mx:.3f}"
    top = np.sort(theirs, axis=1)
    margin = top[:, -1] - top[:, -2]
    disagree = ours.argmax(axis=1) != theirs.argmax(axis=1)
    assert not np.any(disagree & (margin > 0.25)), f"{what}: top-1 differs at a clear margin"


CROSS_PRESETS = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q6_k", "q4_k_m", "q5_k_m", "q3_k_m", "q2_k"]


@pytest.mark.parametrize("preset", CROSS_PRESETS)
def test_files_cross_load_with_the_same_logits(llama_cpp, tiny_f32, tiny_reference, tmp_path, preset):
    hf, f32 = tiny_f32
    ids = _prompt_ids(tiny_reference)
    ours = tmp_path / "ours.gguf"
    theirs = tmp_path / "llama.gguf"
    convert_checkpoint(hf, ours, out_type=preset, progress=False)
    _llama_quantize(llama_cpp, f32, theirs, preset)
    here_ours = _our_logits(ours, ids)
    here_theirs = _our_logits(theirs, ids)          # llama.cpp's file, run here
    there_ours = _llama_logits(llama_cpp, ours, ids)  # our file, run in llama.cpp
    assert np.array_equal(here_ours, here_theirs)   # same bytes, same numbers
    _assert_close(here_theirs, _llama_logits(llama_cpp, theirs, ids), f"{preset}: llama.cpp's file")
    _assert_close(here_ours, there_ours, f"{preset}: our file")
    # and both stay near the unquantized model
    f32_logits = _our_logits(f32, ids)
    assert np.mean(here_ours.argmax(1) == f32_logits.argmax(1)) > 0.8


def test_f32_files_agree_closely(llama_cpp, tiny_f32, tiny_reference):
    _, f32 = tiny_f32
    ids = _prompt_ids(tiny_reference)
    a, b = _our_logits(f32, ids), _llama_logits(llama_cpp, f32, ids)
    assert np.abs(a - b).max() < 0.01
    # The same next token wherever the choice is not a near-tie (the
    # tests/data model's f16-rounded weights give one at a gap of 6e-4).
    top2 = np.sort(a, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.01
    assert clear.mean() > 0.9
    assert np.array_equal(a.argmax(1)[clear], b.argmax(1)[clear])


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["q8_0", "q4_k_m"])
def test_perplexity_matches_llama_cpp(llama_cpp, tiny_f32, tmp_path, preset):
    from quant_table import llama_perplexity, our_perplexity  # tools/

    hf, _ = tiny_f32
    path = tmp_path / f"{preset}.gguf"
    convert_checkpoint(hf, path, out_type=preset, progress=False)
    text = (hf / "val_sample.txt").read_text(encoding="utf-8")
    ours = our_perplexity(path, text)
    theirs = llama_perplexity(path, text)
    assert abs(ours - theirs) / theirs < 0.005, (ours, theirs)
