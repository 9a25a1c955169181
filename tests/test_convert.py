"""Specs for the Hugging Face GPT-BigCode -> GGUF converter (starcoder_cpp.convert).

Converted files are read back with the independent ``gguf`` package (GGUFReader).
Random checkpoints come from tools/make_checkpoint.py. Most of them use a
*truncated* copy of the real StarCoder v1 tokenizer (its first 1000 ids and the
merges among them) because GGUFReader needs several seconds to parse a
49152-token vocabulary; the full vocabulary is covered by the real
tiny-bigcode-py model and the tokenizer specs, each read once per module.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import os
import stat
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGUFReader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
TINY_REAL = DATA / "tiny-bigcode-py"
V1_TOKENIZER = DATA / "vocab" / "starcoder-v1-tokenizer.json"
V1_VOCAB_GGUF = DATA / "vocab" / "ggml-vocab-starcoder-v1.gguf"

sys.path.insert(0, str(ROOT / "tools"))
import make_checkpoint as mc  # noqa: E402

try:  # the shared conftest turns skips into failures under STARCODER_REQUIRE_PEERS=1
    from conftest import require as _require, require_path as _require_path
except ImportError:  # pragma: no cover - running this file on its own
    _require = pytest.importorskip

    def _require_path(path: Path) -> Path:
        if not path.exists():
            pytest.skip(f"{path} not present")
        return path


def _import_pure(module: str):
    """The converter modules are pure Python. Import them from the installed
    package when it imports; otherwise (compiled extension not built yet) load
    them straight from python/starcoder_cpp as a stand-alone package."""
    try:
        return importlib.import_module(f"starcoder_cpp.{module}")
    except ImportError:
        pkg = "_starcoder_cpp_pure"
        if pkg not in sys.modules:
            m = types.ModuleType(pkg)
            m.__path__ = [str(ROOT / "python" / "starcoder_cpp")]
            sys.modules[pkg] = m
        return importlib.import_module(f"{pkg}.{module}")


convert = _import_pure("convert")
gt = _import_pure("ggml_types")
gout = _import_pure("gguf_output")
st_reader = _import_pure("safetensors_reader")
ConversionError = convert.ConversionError

SMALL = dict(n_embd=64, n_layer=2, n_head=4, n_inner=256, vocab_size=1024, n_positions=128)
SMALL_VOCAB_TOKENS = 1000  # ids kept in the truncated tokenizer; 1000..1023 are padding


# --------------------------------------------------------------------------- helpers


def _truncated_tokenizer(n_keep: int, string_merges: bool = False) -> dict:
    tok = json.loads(V1_TOKENIZER.read_text(encoding="utf-8"))
    vocab = {t: i for t, i in tok["model"]["vocab"].items() if i < n_keep}
    merges = []
    for a, b in tok["model"]["merges"]:
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(f"{a} {b}" if string_merges else [a, b])
    tok["model"]["vocab"] = vocab
    tok["model"]["merges"] = merges
    return tok


@pytest.fixture(scope="module")
def small_tokenizer(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    p.write_text(json.dumps(_truncated_tokenizer(SMALL_VOCAB_TOKENS)), encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def build(tmp_path_factory, small_tokenizer):
    """build(**overrides) -> checkpoint dir of a small random model (cached per arguments)."""
    cache = {}

    def _build(**kw):
        args = dict(SMALL, tokenizer_json=small_tokenizer)
        args.update(kw)
        key = json.dumps(args, sort_keys=True, default=str)
        if key not in cache:
            out = tmp_path_factory.mktemp("ckpt")
            cache[key] = mc.make_checkpoint(out, **args)
        return cache[key]

    return _build


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    """conv(ckpt_dir, out_type) -> (GGUFReader, summary), cached."""
    cache = {}

    def _conv(ckpt: Path, out_type: str = "f16"):
        key = (str(ckpt), out_type)
        if key not in cache:
            out = tmp_path_factory.mktemp("gguf") / f"model-{out_type}.gguf"
            summary = convert.convert_checkpoint(ckpt, out, out_type=out_type, progress=False)
            cache[key] = (GGUFReader(str(out)), summary)
        return cache[key]

    return _conv


def _field(reader, key):
    f = reader.fields.get(key)
    assert f is not None, f"missing GGUF key {key}"
    return f.contents()


def _tensors(reader) -> dict:
    return {t.name: t for t in reader.tensors}


def _source(ckpt: Path) -> dict:
    """All source tensors as float32, read with the reference safetensors package (via torch for bf16)."""
    from safetensors import safe_open

    out = {}
    for f in sorted(ckpt.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as sf:
            for k in sf.keys():
                out[k] = sf.get_tensor(k)
    return out


def _np32(t) -> np.ndarray:
    return t.float().numpy()


def _hf_to_gguf_pairs(n_layer: int):
    pairs = [("transformer.wte.weight", "token_embd.weight"), ("transformer.wpe.weight", "position_embd.weight")]
    for i in range(n_layer):
        for hf, g in (
            ("ln_1", "attn_norm"),
            ("attn.c_attn", "attn_qkv"),
            ("attn.c_proj", "attn_output"),
            ("ln_2", "ffn_norm"),
            ("mlp.c_fc", "ffn_up"),
            ("mlp.c_proj", "ffn_down"),
        ):
            for kind in ("weight", "bias"):
                pairs.append((f"transformer.h.{i}.{hf}.{kind}", f"blk.{i}.{g}.{kind}"))
    pairs += [("transformer.ln_f.weight", "output_norm.weight"), ("transformer.ln_f.bias", "output_norm.bias")]
    return pairs


def _qkv_to_gguf_order(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reference re-ordering of a multi-head HF c_attn (rows interleaved per head) to [Q; K; V]."""
    hd = w.shape[0] // (3 * n_head)
    per_head = w.reshape(n_head, 3, hd, *w.shape[1:])
    return np.concatenate([per_head[:, part].reshape(n_head * hd, *w.shape[1:]) for part in range(3)])


# ----------------------------------------------------------------- numpy reference forward


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gguf_forward(reader, ids) -> np.ndarray:
    """Logits of a GGUF 'starcoder' model, computed in float64 with numpy, reading
    the file the way llama.cpp's graph does (fused QKV split as [Q; K; V])."""
    T = {t.name: np.asarray(t.data, dtype=np.float64) for t in reader.tensors}
    n_embd = int(_field(reader, "starcoder.embedding_length"))
    n_head = int(_field(reader, "starcoder.attention.head_count"))
    n_kv = int(_field(reader, "starcoder.attention.head_count_kv"))
    n_layer = int(_field(reader, "starcoder.block_count"))
    eps = float(_field(reader, "starcoder.attention.layer_norm_epsilon"))
    act = _field(reader, "starcoder_cpp.activation")
    hd = n_embd // n_head
    n = len(ids)
    x = T["token_embd.weight"][ids] + T["position_embd.weight"][:n]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(n_layer):
        p = f"blk.{i}."
        h = _layer_norm(x, T[p + "attn_norm.weight"], T[p + "attn_norm.bias"], eps)
        qkv = h @ T[p + "attn_qkv.weight"].T + T[p + "attn_qkv.bias"]
        q = qkv[:, :n_embd].reshape(n, n_head, hd)
        k = qkv[:, n_embd:n_embd + n_kv * hd].reshape(n, n_kv, hd)
        v = qkv[:, n_embd + n_kv * hd:].reshape(n, n_kv, hd)
        att = np.empty((n, n_head, hd))
        for hh in range(n_head):
            kv = hh // (n_head // n_kv)
            s = q[:, hh] @ k[:, kv].T / math.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            att[:, hh] = s @ v[:, kv]
        x = x + att.reshape(n, n_embd) @ T[p + "attn_output.weight"].T + T[p + "attn_output.bias"]
        h = _layer_norm(x, T[p + "ffn_norm.weight"], T[p + "ffn_norm.bias"], eps)
        u = h @ T[p + "ffn_up.weight"].T + T[p + "ffn_up.bias"]
        if act == "gelu_tanh":
            u = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u**3)))
        else:
            u = 0.5 * u * (1 + np.vectorize(math.erf)(u / math.sqrt(2)))
        x = x + u @ T[p + "ffn_down.weight"].T + T[p + "ffn_down.bias"]
    x = _layer_norm(x, T["output_norm.weight"], T["output_norm.bias"], eps)
    out_w = T.get("output.weight", T["token_embd.weight"])
    return x @ out_w.T


# ============================================================================ tensors


def test_tensor_names_shapes_and_types_follow_llama_cpp_starcoder(build, conv):
    reader, summary = conv(build(), "f16")
    t = _tensors(reader)
    e, f, v, ctx = SMALL["n_embd"], SMALL["n_inner"], SMALL["vocab_size"], SMALL["n_positions"]
    q = e + 2 * (e // SMALL["n_head"])
    expected = {
        "token_embd.weight": ([e, v], "F16"),
        "position_embd.weight": ([e, ctx], "F32"),
        "output_norm.weight": ([e], "F32"),
        "output_norm.bias": ([e], "F32"),
    }
    for i in range(SMALL["n_layer"]):
        p = f"blk.{i}."
        expected.update({
            p + "attn_norm.weight": ([e], "F32"),
            p + "attn_norm.bias": ([e], "F32"),
            p + "attn_qkv.weight": ([e, q], "F16"),
            p + "attn_qkv.bias": ([q], "F32"),
            p + "attn_output.weight": ([e, e], "F16"),
            p + "attn_output.bias": ([e], "F32"),
            p + "ffn_norm.weight": ([e], "F32"),
            p + "ffn_norm.bias": ([e], "F32"),
            p + "ffn_up.weight": ([e, f], "F16"),
            p + "ffn_up.bias": ([f], "F32"),
            p + "ffn_down.weight": ([f, e], "F16"),
            p + "ffn_down.bias": ([e], "F32"),
        })
    got = {name: (list(map(int, ti.shape)), ti.tensor_type.name) for name, ti in t.items()}
    assert got == expected  # GGUF ne order: innermost first
    assert summary["n_tensors"] == len(expected)


def test_metadata_describes_the_model(build, conv):
    reader, _ = conv(build(), "f16")
    assert _field(reader, "general.architecture") == "starcoder"
    assert _field(reader, "general.file_type") == 1
    assert isinstance(_field(reader, "general.name"), str)
    assert _field(reader, "starcoder.context_length") == SMALL["n_positions"]
    assert _field(reader, "starcoder.embedding_length") == SMALL["n_embd"]
    assert _field(reader, "starcoder.feed_forward_length") == SMALL["n_inner"]
    assert _field(reader, "starcoder.block_count") == SMALL["n_layer"]
    assert _field(reader, "starcoder.attention.head_count") == SMALL["n_head"]
    assert _field(reader, "starcoder.attention.head_count_kv") == 1
    assert _field(reader, "starcoder.attention.layer_norm_epsilon") == pytest.approx(1e-5)
    assert _field(reader, "starcoder_cpp.activation") == "gelu_tanh"
    # the integer keys have the types llama.cpp reads them as
    assert reader.fields["starcoder.block_count"].types == [gguf.GGUFValueType.UINT32]
    assert reader.fields["starcoder.attention.layer_norm_epsilon"].types == [gguf.GGUFValueType.FLOAT32]


def test_f32_output_of_f32_source_is_bit_exact(build, conv):
    ckpt = build()
    reader, summary = conv(ckpt, "f32")
    assert _field(reader, "general.file_type") == 0
    t = _tensors(reader)
    assert all(ti.tensor_type.name == "F32" for ti in t.values())
    src = _source(ckpt)
    for hf, g in _hf_to_gguf_pairs(SMALL["n_layer"]):
        a = _np32(src[hf])
        np.testing.assert_array_equal(np.asarray(t[g].data).reshape(a.shape), a, err_msg=g)


def test_f16_output_equals_numpys_float16_rounding(build, conv):
    ckpt = build()
    reader, _ = conv(ckpt, "f16")
    t = _tensors(reader)
    src = _source(ckpt)
    for hf, g in _hf_to_gguf_pairs(SMALL["n_layer"]):
        a = _np32(src[hf])
        got = np.asarray(t[g].data).reshape(a.shape)
        want = a.astype(np.float16) if t[g].tensor_type.name == "F16" else a
        assert got.dtype == want.dtype, g
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=g)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_sources_convert_exactly(build, conv, dtype):
    ckpt = build(dtype=dtype)
    src = _source(ckpt)
    r32, _ = conv(ckpt, "f32")
    r16, _ = conv(ckpt, "f16")
    t32, t16 = _tensors(r32), _tensors(r16)
    for hf, g in _hf_to_gguf_pairs(SMALL["n_layer"]):
        a = _np32(src[hf])  # exact widening of the stored half values
        np.testing.assert_array_equal(np.asarray(t32[g].data).reshape(a.shape), a, err_msg=g)
        got16 = np.asarray(t16[g].data).reshape(a.shape)
        want16 = a.astype(np.float16) if t16[g].tensor_type.name == "F16" else a
        np.testing.assert_array_equal(got16, want16, err_msg=g)
    if dtype == "float16":  # F16 -> F16 keeps the stored bits
        w = src["transformer.h.0.mlp.c_fc.weight"].numpy()
        np.testing.assert_array_equal(np.asarray(t16["blk.0.ffn_up.weight"].data).view(np.uint16), w.view(np.uint16))


def test_sharded_checkpoint_gives_the_same_tensors_as_a_single_file(build, conv):
    single, _ = conv(build(), "f16")
    sharded_dir = build(shards=3)
    assert (sharded_dir / "model.safetensors.index.json").is_file()
    assert len(list(sharded_dir.glob("model-*-of-00003.safetensors"))) == 3
    sharded, summary = conv(sharded_dir, "f16")
    assert summary["source"] == "3 safetensors files"
    a, b = _tensors(single), _tensors(sharded)
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name].data), np.asarray(b[name].data), err_msg=name)


def test_shards_without_an_index_are_all_read(build, tmp_path):
    import shutil

    src = build(shards=2)
    d = tmp_path / "noindex"
    shutil.copytree(src, d)
    (d / "model.safetensors.index.json").unlink()
    summary = convert.convert_checkpoint(d, tmp_path / "m.gguf", progress=False)
    assert summary["n_tensors"] == 4 + 12 * SMALL["n_layer"]


def test_index_naming_a_missing_shard_is_a_clear_error(build, tmp_path):
    import shutil

    d = tmp_path / "broken"
    shutil.copytree(build(shards=2), d)
    (d / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ConversionError, match="model-00002-of-00002.safetensors"):
        convert.convert_checkpoint(d, tmp_path / "m.gguf", progress=False)
    assert not (tmp_path / "m.gguf").exists()


def test_multi_head_qkv_rows_are_reordered_to_q_k_v(build, conv):
    ckpt = build(multi_query=False)
    reader, summary = conv(ckpt, "f32")
    assert _field(reader, "starcoder.attention.head_count_kv") == SMALL["n_head"]
    assert summary["n_head_kv"] == SMALL["n_head"]
    t = _tensors(reader)
    src = _source(ckpt)
    e = SMALL["n_embd"]
    for i in range(SMALL["n_layer"]):
        w = _np32(src[f"transformer.h.{i}.attn.c_attn.weight"])
        b = _np32(src[f"transformer.h.{i}.attn.c_attn.bias"])
        assert w.shape == (3 * e, e)
        got_w = np.asarray(t[f"blk.{i}.attn_qkv.weight"].data).reshape(w.shape)
        got_b = np.asarray(t[f"blk.{i}.attn_qkv.bias"].data).reshape(b.shape)
        np.testing.assert_array_equal(got_w, _qkv_to_gguf_order(w, SMALL["n_head"]))
        np.testing.assert_array_equal(got_b, _qkv_to_gguf_order(b, SMALL["n_head"]))
        assert not np.array_equal(got_w, w)  # it really moved


def test_multi_query_qkv_rows_keep_their_order(build, conv):
    ckpt = build()
    reader, _ = conv(ckpt, "f32")
    w = _np32(_source(ckpt)["transformer.h.1.attn.c_attn.weight"])
    np.testing.assert_array_equal(np.asarray(_tensors(reader)["blk.1.attn_qkv.weight"].data).reshape(w.shape), w)


@pytest.fixture(scope="module")
def transformers_mod():
    return _require("transformers")


@pytest.mark.parametrize("multi_query", [True, False], ids=["mqa", "mha"])
def test_converted_file_computes_the_same_logits_as_transformers(build, conv, transformers_mod, multi_query):
    import torch

    ckpt = build(multi_query=multi_query, tie_word_embeddings=multi_query)
    model, info = transformers_mod.AutoModelForCausalLM.from_pretrained(
        str(ckpt), output_loading_info=True, dtype=torch.float32
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ids = [5, 17, 300, 2, 999, 41, 7, 7, 123]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].double().numpy()
    reader, _ = conv(ckpt, "f32")
    got = _gguf_forward(reader, ids)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)


# ============================================================================ lm_head


def test_tied_embeddings_give_no_output_tensor(build, conv):
    reader, summary = conv(build(tie_word_embeddings=True), "f16")
    assert "output.weight" not in _tensors(reader)
    assert summary["tied_output"] is True


def test_tied_config_with_a_stored_lm_head_still_ties(build, conv):
    reader, _ = conv(build(tie_word_embeddings=True, write_lm_head=True), "f16")
    assert "output.weight" not in _tensors(reader)


def test_untied_lm_head_becomes_output_weight(build, conv):
    ckpt = build(tie_word_embeddings=False)
    reader, summary = conv(ckpt, "f32")
    t = _tensors(reader)
    assert summary["tied_output"] is False
    assert [int(d) for d in t["output.weight"].shape] == [SMALL["n_embd"], SMALL["vocab_size"]]
    assert t["output.weight"].tensor_type.name == "F32"
    lm = _np32(_source(ckpt)["lm_head.weight"])
    np.testing.assert_array_equal(np.asarray(t["output.weight"].data).reshape(lm.shape), lm)
    r16, _ = conv(ckpt, "f16")
    assert _tensors(r16)["output.weight"].tensor_type.name == "F16"


def test_untied_config_without_lm_head_is_refused(build, tmp_path):
    ckpt = build(tie_word_embeddings=False, write_lm_head=False)
    with pytest.raises(ConversionError, match="lm_head"):
        convert.convert_checkpoint(ckpt, tmp_path / "m.gguf", progress=False)


# ============================================================================ config checks


def test_non_gpt_bigcode_model_is_refused(build, tmp_path):
    ckpt = build(config_overrides={"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    with pytest.raises(ConversionError, match=r"model_type='llama'.*gpt_bigcode"):
        convert.convert_checkpoint(ckpt, tmp_path / "m.gguf", progress=False)
    assert not (tmp_path / "m.gguf").exists()


def test_unscaled_attention_is_refused(build, tmp_path):
    ckpt = build(config_overrides={"scale_attn_weights": False})
    with pytest.raises(ConversionError, match="scale_attn_weights"):
        convert.convert_checkpoint(ckpt, tmp_path / "m.gguf", progress=False)


def test_unknown_activation_is_refused(build, tmp_path):
    ckpt = build(activation="relu")
    with pytest.raises(ConversionError, match="activation_function='relu'"):
        convert.convert_checkpoint(ckpt, tmp_path / "m.gguf", progress=False)


@pytest.mark.parametrize("act", [["gelu"], {"name": "gelu"}, 1])
def test_activation_that_is_not_a_name_is_refused(act):
    # found by tests/fuzz/fuzz_config.py: a list used to escape as a TypeError
    cfg = {"model_type": "gpt_bigcode", "activation_function": act}
    with pytest.raises(ConversionError, match="activation_function="):
        convert.read_hparams(cfg)


@pytest.mark.parametrize(
    "hf_act, key",
    [("gelu_pytorch_tanh", "gelu_tanh"), ("gelu_new", "gelu_tanh"), ("gelu_fast", "gelu_tanh"), ("gelu", "gelu")],
)
def test_activation_is_recorded(hf_act, key):
    cfg = {"model_type": "gpt_bigcode", "activation_function": hf_act}
    assert convert.read_hparams(cfg).activation == key


def test_null_n_inner_means_four_times_n_embd(build, conv):
    reader, _ = conv(build(n_inner=None), "f16")
    assert _field(reader, "starcoder.feed_forward_length") == 4 * SMALL["n_embd"]
    assert [int(d) for d in _tensors(reader)["blk.0.ffn_up.weight"].shape] == [SMALL["n_embd"], 4 * SMALL["n_embd"]]


def test_tensor_shape_that_contradicts_the_config_is_refused(build, tmp_path):
    ckpt = build(config_overrides={"n_inner": 128})
    with pytest.raises(ConversionError, match=r"mlp\.c_fc\.weight: shape \[256, 64\].*\[128, 64\]"):
        convert.convert_checkpoint(ckpt, tmp_path / "m.gguf", progress=False)


def test_missing_layers_are_refused(build, tmp_path):
    ckpt = build(config_overrides={"n_layer": 3})
    with pytest.raises(ConversionError, match=r"missing 12 tensor\(s\).*blk\.2\.attn_norm\.weight"):
        convert.convert_checkpoint(ckpt, tmp_path / "m.gguf", progress=False)


def test_bad_output_type_is_refused(build, tmp_path):
    with pytest.raises(ConversionError, match="q9_z"):
        convert.convert_checkpoint(build(), tmp_path / "m.gguf", out_type="q9_z", progress=False)


# ============================================================================ missing / broken files


def _copy_without(src: Path, dst: Path, *names: str) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*names))
    return dst


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ConversionError, match="not found"):
        convert.convert_checkpoint(tmp_path / "nope", tmp_path / "m.gguf", progress=False)


def test_missing_config_is_a_clear_error(build, tmp_path):
    d = _copy_without(build(), tmp_path / "c", "config.json")
    with pytest.raises(ConversionError, match="config.json not found"):
        convert.convert_checkpoint(d, tmp_path / "m.gguf", progress=False)


def test_missing_weights_are_a_clear_error(build, tmp_path):
    d = _copy_without(build(), tmp_path / "w", "*.safetensors")
    with pytest.raises(ConversionError, match="no model weights"):
        convert.convert_checkpoint(d, tmp_path / "m.gguf", progress=False)


def test_missing_tokenizer_is_a_clear_error(build, tmp_path):
    d = _copy_without(build(), tmp_path / "t", "tokenizer.json")
    with pytest.raises(ConversionError, match="tokenizer.json not found"):
        convert.convert_checkpoint(d, tmp_path / "m.gguf", progress=False)


def test_truncated_safetensors_is_a_clear_error(build, tmp_path):
    d = _copy_without(build(), tmp_path / "tr")
    f = d / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="out of bounds"):
        convert.convert_checkpoint(d, tmp_path / "m.gguf", progress=False)
    assert not list(tmp_path.glob("m.gguf*"))


def test_failed_conversion_keeps_an_existing_output_untouched(build, tmp_path):
    out = tmp_path / "m.gguf"
    out.write_bytes(b"old")
    with pytest.raises(ConversionError):
        convert.convert_checkpoint(build(activation="relu"), out, progress=False)
    assert out.read_bytes() == b"old"


@pytest.mark.parametrize("target", ["model.safetensors", "config.json", "tokenizer.json"])
def test_output_onto_an_input_file_is_refused_before_anything_is_touched(build, tmp_path, target):
    d = _copy_without(build(), tmp_path / "ck")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(ConversionError, match="is an input"):
        convert.convert_checkpoint(d, d / target, progress=False)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # no .part either


def test_an_earlier_conversion_beside_the_checkpoint_may_be_replaced(build, tmp_path):
    d = _copy_without(build(), tmp_path / "ck")
    out = d / "model-f32.gguf"
    convert.convert_checkpoint(d, out, progress=False)
    first = out.read_bytes()
    convert.convert_checkpoint(d, out, progress=False)
    assert out.read_bytes() == first


def test_output_onto_an_input_through_another_path_is_refused(build, tmp_path):
    d = _copy_without(build(), tmp_path / "ck")
    (tmp_path / "link.safetensors").symlink_to(d / "model.safetensors")
    (tmp_path / "hard.safetensors").hardlink_to(d / "model.safetensors")
    for out in (tmp_path / "link.safetensors", tmp_path / "hard.safetensors", d / "sub" / ".." / "config.json"):
        (d / "sub").mkdir(exist_ok=True)
        with pytest.raises(ConversionError, match="is an input"):
            convert.convert_checkpoint(d, out, progress=False)


def test_output_onto_a_lora_adapter_file_is_refused(build, tmp_path):
    ad = tmp_path / "adapter"
    ad.mkdir()
    (ad / "adapter_config.json").write_text("{}")
    with pytest.raises(ConversionError, match="is an input"):
        convert.convert_checkpoint(build(), ad / "adapter_config.json", lora_dir=ad, progress=False)


def test_output_onto_a_fifo_is_refused_and_the_fifo_stays(build, tmp_path):
    fifo = tmp_path / "out.gguf"
    os.mkfifo(fifo)
    with pytest.raises(ConversionError, match="not a regular file"):
        convert.convert_checkpoint(build(), fifo, progress=False)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_output_onto_a_device_node_is_refused(build):
    with pytest.raises(ConversionError, match="not a regular file"):
        convert.convert_checkpoint(build(), "/dev/null", progress=False)


def test_too_many_threads_are_refused_before_writing(build, tmp_path):
    with pytest.raises(ConversionError, match="more than"):
        convert.convert_checkpoint(build(), tmp_path / "m.gguf", out_type="q8_0", progress=False,
                                   n_threads=4 * len(os.sched_getaffinity(0)) + 1)
    assert not list(tmp_path.iterdir())


def test_values_beyond_the_f16_range_give_a_warning(build, tmp_path, capsys):
    d = _copy_without(build(), tmp_path / "big")
    f = st_reader.SafetensorsFile(d / "model.safetensors")
    info = f.info("transformer.h.0.mlp.c_fc.weight")
    with open(d / "model.safetensors", "r+b") as fh:
        fh.seek(f.data_start + info.begin)
        fh.write(struct.pack("<f", 1e6))
    summary = convert.convert_checkpoint(d, tmp_path / "m.gguf", progress=False)
    assert len(summary["warnings"]) == 1 and "mlp.c_fc.weight" in summary["warnings"][0]
    assert "F16 range" in capsys.readouterr().err


# ============================================================================ PyTorch .bin checkpoints


def test_pytorch_bin_checkpoint_converts_like_safetensors(build, conv, tmp_path):
    pytest.importorskip("torch")
    a, _ = conv(build(dtype="bfloat16"), "f16")
    b_dir = build(dtype="bfloat16", fmt="pytorch")
    assert (b_dir / "pytorch_model.bin").is_file()
    b, summary = conv(b_dir, "f16")
    assert summary["source"] == "1 PyTorch .bin file"
    ta, tb = _tensors(a), _tensors(b)
    assert list(ta) == list(tb)
    for n in ta:
        np.testing.assert_array_equal(np.asarray(ta[n].data), np.asarray(tb[n].data), err_msg=n)


def test_pytorch_bin_without_torch_says_how_to_proceed(build, tmp_path, monkeypatch):
    pytest.importorskip("torch")  # to build the checkpoint
    ckpt = build(dtype="bfloat16", fmt="pytorch")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ConversionError, match=r"torch is not installed.*pip install torch.*safetensors"):
        convert.convert_checkpoint(ckpt, tmp_path / "m.gguf", progress=False)


# ============================================================================ tokenizer


@pytest.fixture(scope="module")
def real_f16(tmp_path_factory):
    """The real tiny-bigcode-py model converted to F16 (full 49152-token vocabulary)."""
    _require_path(TINY_REAL)
    out = tmp_path_factory.mktemp("real") / "tiny-bigcode-py-f16.gguf"
    summary = convert.convert_checkpoint(TINY_REAL, out, out_type="f16", progress=False)
    return out, GGUFReader(str(out)), summary


def test_tokenizer_tokens_and_types_match_tokenizer_json(real_f16):
    _, reader, _ = real_f16
    tok = json.loads((TINY_REAL / "tokenizer.json").read_text(encoding="utf-8"))
    by_id = {i: t for t, i in tok["model"]["vocab"].items()}
    special = {a["id"]: a["content"] for a in tok["added_tokens"] if a["special"]}
    by_id.update(special)
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types_ = _field(reader, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types_) == 49152
    assert tokens == [by_id[i] for i in range(49152)]
    assert [i for i, t in enumerate(types_) if t == 3] == sorted(special) == list(range(19))
    assert all(t == 1 for i, t in enumerate(types_) if i >= 19)
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.ggml.pre") == "starcoder"


def test_tokenizer_merges_match_tokenizer_json(real_f16):
    _, reader, _ = real_f16
    tok = json.loads((TINY_REAL / "tokenizer.json").read_text(encoding="utf-8"))
    merges = _field(reader, "tokenizer.ggml.merges")
    assert merges == [f"{a} {b}" for a, b in tok["model"]["merges"]]
    assert len(merges) == 48891


def test_tokenizer_special_ids(real_f16):
    _, reader, _ = real_f16
    assert _field(reader, "tokenizer.ggml.bos_token_id") == 0
    assert _field(reader, "tokenizer.ggml.eos_token_id") == 0
    assert _field(reader, "tokenizer.ggml.unknown_token_id") == 0
    assert _field(reader, "tokenizer.ggml.fim_pre_token_id") == 1
    assert _field(reader, "tokenizer.ggml.fim_mid_token_id") == 2
    assert _field(reader, "tokenizer.ggml.fim_suf_token_id") == 3
    assert _field(reader, "tokenizer.ggml.fim_pad_token_id") == 4
    assert _field(reader, "tokenizer.ggml.add_bos_token") is False
    assert "tokenizer.ggml.padding_token_id" not in reader.fields


@pytest.mark.slow  # GGUFReader needs ~8 s to parse the reference vocabulary
def test_vocabulary_is_identical_to_llama_cpps_starcoder_vocab(real_f16):
    _require_path(V1_VOCAB_GGUF)
    _, reader, _ = real_f16
    ref = GGUFReader(str(V1_VOCAB_GGUF))
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"):
        assert _field(reader, key) == _field(ref, key), key


def test_string_form_merges_are_read_too(build, conv, tmp_path):
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps(_truncated_tokenizer(SMALL_VOCAB_TOKENS, string_merges=True)), encoding="utf-8")
    a, _ = conv(build(), "f16")
    b, _ = conv(build(tokenizer_json=p), "f16")
    assert _field(b, "tokenizer.ggml.merges") == _field(a, "tokenizer.ggml.merges")
    assert len(_field(a, "tokenizer.ggml.merges")) > 100


def test_embedding_rows_beyond_the_vocabulary_become_unused_pad_tokens(build, conv):
    reader, _ = conv(build(), "f16")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types_ = _field(reader, "tokenizer.ggml.token_type")
    assert len(tokens) == SMALL["vocab_size"]
    assert tokens[SMALL_VOCAB_TOKENS:] == [f"[PAD{i}]" for i in range(SMALL_VOCAB_TOKENS, SMALL["vocab_size"])]
    assert set(types_[SMALL_VOCAB_TOKENS:]) == {5}  # UNUSED
    assert tokens[:3] == ["<|endoftext|>", "<fim_prefix>", "<fim_middle>"]


def test_tokenizer_with_more_tokens_than_the_embedding_is_refused(build, tmp_path):
    ckpt = build(vocab_size=512, config_overrides={})
    with pytest.raises(ConversionError, match="vocab_size is 512"):
        convert.convert_checkpoint(ckpt, tmp_path / "m.gguf", progress=False)


# ============================================================================ the real tiny model


def test_real_tiny_model_converts(real_f16):
    path, reader, summary = real_f16
    assert summary["n_params"] == 7_116_800
    assert summary["n_tensors"] == 52
    assert summary["tied_output"] is True
    assert _field(reader, "starcoder.block_count") == 4
    assert _field(reader, "starcoder.context_length") == 1024
    assert _field(reader, "general.name") == "tiny-bigcode-py"


def test_real_tiny_model_reproduces_reference_logits(real_f16):
    _, reader, _ = real_f16
    ref = json.loads((TINY_REAL / "reference.json").read_text())
    assert ref["greedy"][0]["prompt"] == ref["reference_next_token_top5"]["prompt"]
    logits = _gguf_forward(reader, ref["greedy"][0]["prompt_ids"])[-1]
    top = ref["reference_next_token_top5"]
    assert list(np.argsort(-logits)[:5]) == top["ids"]
    np.testing.assert_allclose(logits[top["ids"]], top["logits"], atol=2e-2)  # F16 weights


# ============================================================================ progress


def test_no_progress_output_when_stderr_is_not_a_terminal(build, tmp_path, capsys):
    convert.convert_checkpoint(build(), tmp_path / "m.gguf", progress=True)
    assert capsys.readouterr().err == ""


def test_progress_bar_is_drawn_on_a_terminal(build, tmp_path, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    convert.convert_checkpoint(build(), tmp_path / "m.gguf", progress=True)
    text = err.getvalue()
    assert "\r" in text and "100%" in text and text.endswith("\n")


# ============================================================================ GGUF output


def test_every_tensor_starts_at_an_aligned_offset(build, conv):
    reader, _ = conv(build(), "f16")
    assert "general.alignment" not in reader.fields  # 32 is the default
    assert all(t.data_offset % 32 == 0 for t in reader.tensors)


def test_output_streams_chunks_into_typed_tensors(tmp_path):
    path = tmp_path / "w.gguf"
    shapes = {"t0": (3,), "t1": (5, 7), "t2": (2, 3, 4)}
    types_ = {"t0": gt.GGMLType.F32, "t1": gt.GGMLType.F16, "t2": gt.GGMLType.F32}
    vals = {n: np.arange(np.prod(s), dtype=np.float32).reshape(s) for n, s in shapes.items()}
    with gout.GGUFOutput(path, "starcoder") as out:
        out.writer.add_string("a.str", "héllo")
        for n, s in shapes.items():
            out.declare(n, s, types_[n])
        out.write_header()
        for n, v in vals.items():  # one chunk per row
            rows = v.reshape(-1, shapes[n][-1])
            out.write_tensor(n, (gt.encode(types_[n], row) for row in rows))
    assert not (tmp_path / "w.gguf.part").exists()
    r = GGUFReader(str(path))
    assert _field(r, "general.architecture") == "starcoder" and _field(r, "a.str") == "héllo"
    for t in r.tensors:
        assert t.tensor_type == types_[t.name]
        assert list(map(int, t.shape)) == list(reversed(shapes[t.name]))
        np.testing.assert_array_equal(np.asarray(t.data, dtype=np.float32).reshape(shapes[t.name]), vals[t.name])


def test_output_with_custom_alignment_records_it(tmp_path):
    path = tmp_path / "a.gguf"
    with gout.GGUFOutput(path, "starcoder", alignment=64) as out:
        out.declare("a", (3,), gt.GGMLType.F32)
        out.declare("b", (5,), gt.GGMLType.F32)
        out.write_header()
        out.write_tensor("a", [np.ones(3, np.float32)])
        out.write_tensor("b", [np.full(5, 2, np.float32)])
    r = GGUFReader(str(path))
    assert _field(r, "general.alignment") == 64
    assert [t.data_offset % 64 for t in r.tensors] == [0, 0]
    np.testing.assert_array_equal(_tensors(r)["b"].data, np.full(5, 2, np.float32))


@pytest.mark.parametrize(
    "write, match",
    [
        (lambda out: out.write_tensor("b", [np.zeros(4, np.float32)]), "out of order"),
        (lambda out: out.write_tensor("a", [np.zeros(4, np.float32), np.zeros(1, np.float32)]), "more than"),
        (lambda out: out.write_tensor("a", [np.zeros(3, np.float32)]), "12 bytes of data, declared 16"),
        (lambda out: out.write_tensor("a", [np.zeros(4, np.float32)]), "not written"),
    ],
    ids=["out-of-order", "too-long", "too-short", "unfinished"],
)
def test_output_refuses_wrong_data_and_leaves_no_file(tmp_path, write, match):
    path = tmp_path / "x.gguf"
    with pytest.raises(gout.GGUFOutputError, match=match):
        with gout.GGUFOutput(path, "starcoder") as out:
            out.declare("a", (4,), gt.GGMLType.F32)
            out.declare("b", (4,), gt.GGMLType.F32)
            out.write_header()
            write(out)
    assert list(tmp_path.iterdir()) == []


def test_tensor_nbytes_handles_block_types():
    assert gt.tensor_nbytes(gt.GGMLType.F16, (3, 64)) == 3 * 64 * 2
    assert gt.tensor_nbytes(gt.GGMLType.Q8_0, (3, 64)) == 3 * 2 * 34
    with pytest.raises(ValueError, match="multiple of 32"):
        gt.tensor_nbytes(gt.GGMLType.Q8_0, (3, 48))


# ============================================================================ safetensors reader


def _write_st(path: Path, header: dict, data: bytes) -> Path:
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


def test_reader_matches_the_safetensors_package(build):
    ckpt = build(dtype="bfloat16")
    f = st_reader.SafetensorsFile(ckpt / "model.safetensors")
    src = _source(ckpt)
    assert sorted(f.keys()) == sorted(src)
    for name, t in src.items():
        info = f.info(name)
        assert info.dtype == "BF16" and info.shape == tuple(t.shape)
        np.testing.assert_array_equal(f.float32(name), _np32(t))


def test_bf16_widening_is_exact():
    import torch

    x = torch.tensor([0.0, -0.0, 1.0, -2.5, 3.140625, 1e-40, float("inf"), 65504.0, 3.0e38], dtype=torch.bfloat16)
    bits = x.view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(st_reader.bf16_to_float32(bits), x.float().numpy())


@pytest.mark.parametrize(
    "header, data, match",
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "out of bounds"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "12 bytes"),
        ({"a": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "unsupported dtype"),
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "non-negative"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, b"\0" * 8, "data_offsets"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            "overlap",
        ),
        # an empty tensor passes the byte count whatever its other dimensions
        ({"a": {"dtype": "F32", "shape": [0, 2**70], "data_offsets": [0, 0]}}, b"", "spans more than"),
        ({"a": {"dtype": "F32", "shape": [1] * 65 + [0], "data_offsets": [0, 0]}}, b"", "more than 16 dimensions"),
    ],
    ids=["truncated", "size-mismatch", "dtype", "negative-dim", "offsets", "overlap", "huge-empty-dim", "65-dims"],
)
def test_reader_validates_the_header(tmp_path, header, data, match):
    p = _write_st(tmp_path / "x.safetensors", header, data)
    with pytest.raises(st_reader.SafetensorsError, match=match):
        st_reader.SafetensorsFile(p)


def test_reader_refuses_a_non_safetensors_file(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(st_reader.SafetensorsError, match="header length"):
        st_reader.SafetensorsFile(p)


# ============================================================================ llama.cpp


@pytest.fixture(scope="module")
def llama_cpp():
    return _require("llama_cpp")


@pytest.mark.llama_cpp
def test_llama_cpp_loads_the_vocabulary_and_tokenizes_like_hf(real_f16, llama_cpp):
    path, _, _ = real_f16
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(TINY_REAL / "tokenizer.json"))
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    assert llm.n_vocab() == 49152
    assert llm.token_bos() == 0 and llm.token_eos() == 0
    for text in ["def fibonacci(n):\n    return n", "x = 12345 + 6", "  héllo wörld\t\n\n", "<fim_prefix>a"]:
        want = hf.encode(text, add_special_tokens=False).ids
        got = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        assert got == want, text


@pytest.mark.llama_cpp
@pytest.mark.parametrize("out_type", ["f32", "f16"])
def test_llama_cpp_runs_the_real_model_to_the_reference_logits(tmp_path, llama_cpp, out_type):
    _require_path(TINY_REAL)
    ref = json.loads((TINY_REAL / "reference.json").read_text())
    out = tmp_path / f"tiny-{out_type}.gguf"
    convert.convert_checkpoint(TINY_REAL, out, out_type=out_type, progress=False)
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=64, logits_all=True, verbose=False, n_threads=2)
    ids = ref["greedy"][0]["prompt_ids"]
    llm.eval(ids)
    logits = np.asarray(llm.scores[len(ids) - 1], dtype=np.float64)
    top = ref["reference_next_token_top5"]
    assert list(np.argsort(-logits)[:5]) == top["ids"]
    np.testing.assert_allclose(logits[top["ids"]], top["logits"], atol=2e-2 if out_type == "f16" else 2e-3)


@pytest.mark.llama_cpp
@pytest.mark.parametrize("multi_query", [True, False], ids=["mqa", "mha"])
def test_llama_cpp_computes_transformers_logits_on_random_models(build, conv, llama_cpp, transformers_mod, multi_query):
    import torch

    ckpt = build(multi_query=multi_query, tie_word_embeddings=not multi_query)
    model = transformers_mod.AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32)
    ids = [5, 17, 300, 2, 999, 41, 7]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].double().numpy()
    _, summary = conv(ckpt, "f32")
    llm = llama_cpp.Llama(model_path=summary["path"], n_ctx=32, logits_all=True, verbose=False, n_threads=2)
    llm.eval(ids)
    got = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
    np.testing.assert_allclose(got, want, atol=1e-3)


# ============================================================================ slow: memory


@pytest.mark.slow
def test_conversion_memory_stays_near_one_tensor(tmp_path):
    """tiny_starcoder_py shape (164M params, f32 source, 650 MB): the converting
    process's peak RSS stays far below the checkpoint size."""
    import measure_convert_rss

    ck = tmp_path / "ck"
    n_embd, n_layer, n_head, n_inner, vocab, n_pos = mc.SHAPES["tiny_starcoder_py"]
    mc.make_checkpoint(ck, n_embd, n_layer, n_head, n_inner, vocab, n_pos, dtype="float32")
    size = (ck / "model.safetensors").stat().st_size
    s = measure_convert_rss.convert_in_subprocess(ck, tmp_path / "o.gguf", "f16")
    assert s["peak_rss_kb"] * 1024 < 0.4 * size, (s["peak_rss_kb"], size)


def test_a_hub_model_id_is_refused_with_what_to_copy_instead(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no such relative directory here
    with pytest.raises(ConversionError, match=r"never downloads.*huggingface-cli download bigcode/starcoderbase-1b.*copy"):
        convert.convert_checkpoint("bigcode/starcoderbase-1b", tmp_path / "m.gguf", progress=False)
    assert not (tmp_path / "m.gguf").exists()


FUZZ_REGRESSIONS = Path(__file__).resolve().parent / "fuzz" / "regressions"


# what each input tests/fuzz/fuzz_config.py found is refused for
FUZZED_CONFIG_ERRORS = {
    "huge-n-layer.json": "beyond any GPT-BigCode model",
    "activation-function-list.json": "activation_function=",
}


@pytest.mark.parametrize("path", sorted((FUZZ_REGRESSIONS / "config").glob("*.json")), ids=lambda p: p.name)
def test_fuzzed_configs_are_refused_at_once(path):
    # each is a ConversionError before any planning
    from starcoder_cpp.convert.hparams import read_hparams

    with pytest.raises(ConversionError, match=FUZZED_CONFIG_ERRORS[path.name]):
        read_hparams(json.loads(path.read_text()))


@pytest.mark.parametrize("key", ["n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "n_inner"])
def test_a_size_beyond_any_gpt_bigcode_model_is_refused_naming_it(key):
    from starcoder_cpp.convert.hparams import LIMITS, read_hparams

    config = {"model_type": "gpt_bigcode", "n_embd": 64, "n_head": 4, "n_layer": 2, key: LIMITS[key] + 1}
    with pytest.raises(ConversionError, match=f"'{key}' = {LIMITS[key] + 1} is beyond"):
        read_hparams(config)


@pytest.mark.parametrize("path", sorted((FUZZ_REGRESSIONS / "safetensors").glob("*.safetensors")),
                         ids=lambda p: p.name)
def test_fuzzed_safetensors_headers_raise_safetensors_error(path):
    # numpy's ValueError (an empty tensor of huge extent) or a TypeError (a dtype that is a
    # list) used to escape for these
    with pytest.raises(st_reader.SafetensorsError, match="dimensions or spans more than|unsupported dtype"):
        st_reader.SafetensorsFile(path)
