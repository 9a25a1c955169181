"""Every CPU kernel level computes, end to end, what the plain C++ reference
computes: whole-model logits for the prompt path and the decode path, for
float and quantized files. Each level runs in its own process (the level is
chosen once, at start-up, from STARCODER_CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import make_checkpoint as mc  # tools/ (conftest puts it on sys.path)
from conftest import VOCAB_DIR, json_from_python, require_path, truncated_tokenizer

from starcoder_cpp import _testing
from starcoder_cpp.convert import convert_checkpoint
from starcoder_cpp.quantize import quantize_gguf

SCRIPT = """
import json, sys
import numpy as np
import starcoder_cpp
out = {}
for path in sys.argv[1:]:
    # float32 KV cache: an F16 cache rounds K/V to 11 bits, which turns the
    # last-bit differences of two summation orders into half-ulp flips that
    # the next 8-bit activation quantization can amplify into visible jumps
    m = starcoder_cpp.Model(path, n_ctx=64, kv_type="f32")
    ids = [(i * 37) % 900 + 20 for i in range(40)]
    prompt = m.eval(ids, all_logits=True)                      # prompt path (GEMM kernels)
    steps = [m.eval([t]) for t in (200, 201, 202, 203, 204)]   # decode path
    rows = np.concatenate([prompt, np.stack(steps)])
    out[path] = {"backend": m.info()["backend"], "logits": rows[:, :1000].tolist()}
print(json.dumps(out))
"""

LEVELS = [lv for lv in _testing.cpu_levels() if lv != "generic"]
PRESETS = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k"]


def run_level(paths, level):
    env = dict(os.environ)
    env.pop("STARCODER_CPU", None)
    if level:
        env["STARCODER_CPU"] = level
    r = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, paths)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    return {p: (v["backend"], np.array(v["logits"], dtype=np.float32)) for p, v in json.loads(r.stdout).items()}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, tiny_gguf_f16, tiny_gguf_f32):
    """The real tiny model (F16/F32) and a random n_embd=256 model (every
    k-quant applies) in every quantization preset."""
    require_path(VOCAB_DIR / "starcoder-v1-tokenizer.json")
    d = tmp_path_factory.mktemp("dispatch")
    tok = d / "tokenizer.json"
    tok.write_text(json.dumps(truncated_tokenizer(1000)), encoding="utf-8")
    ckpt = mc.make_checkpoint(d / "hf", tokenizer_json=tok, n_embd=256, n_layer=2, n_head=4, n_inner=1024,
                              vocab_size=1024, n_positions=64)
    f16 = d / "f16.gguf"
    convert_checkpoint(ckpt, f16, out_type="f16", progress=False)
    files = {"tiny-f16": tiny_gguf_f16, "tiny-f32": tiny_gguf_f32, "random-f16": f16}
    for preset in PRESETS:
        files[preset] = d / f"{preset}.gguf"
        quantize_gguf(str(f16), str(files[preset]), preset)
    return files


@pytest.fixture(scope="module")
def generic_logits(model_files):
    return run_level(model_files.values(), "generic")


def test_the_default_is_the_best_level_with_avx512_split_by_the_zmm_width_probe():
    chosen, full_width, levels = json_from_python(
        "import json, starcoder_cpp._testing as t; "
        "print(json.dumps([t.default_level(), t.zmm_full_width(), t.cpu_levels()]))")
    if "avx512" in levels:
        assert chosen == ("avx512_zmm" if full_width else "avx512")
    else:
        assert not full_width and chosen == levels[-1]


@pytest.mark.parametrize("level", ["avx512", "avx512_zmm"])
def test_either_avx512_level_can_be_forced(level):
    if level not in LEVELS:
        pytest.skip(f"this CPU has no {level} level")
    assert json_from_python("import json, starcoder_cpp._testing as t; print(json.dumps(t.default_level()))",
                            level) == level


def test_forced_generic_level_is_reported(model_files, generic_logits):
    assert {b for b, _ in generic_logits.values()} == {"cpu-generic"}


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_gives_the_reference_logits_for_float_files(model_files, generic_logits, level):
    got = run_level([p for n, p in model_files.items() if n not in PRESETS], level)
    for path, (backend, logits) in got.items():
        assert backend == f"cpu-{level}"
        ref = generic_logits[path][1]
        # same math, different summation order: agreement to float rounding
        assert np.abs(logits - ref).max() < 2e-5 * np.abs(ref).max(), path


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_is_as_accurate_as_the_reference_for_quantized_files(model_files, generic_logits, level):
    # Activations are quantized to 8 bits before every quantized matmul, so a
    # last-bit difference in an earlier sum can round one activation the
    # other way: a discrete step, not a drift. Logits therefore need not
    # match the reference exactly; what must hold is that they are as close
    # to the unquantized model as the reference's are.
    got = run_level([model_files[p] for p in PRESETS], level)
    f16 = generic_logits[str(model_files["random-f16"])][1]
    for preset in PRESETS:
        backend, logits = got[str(model_files[preset])]
        assert backend == f"cpu-{level}"
        ref = generic_logits[str(model_files[preset])][1]
        ref_err = rms(ref - f16)
        assert rms(logits - f16) <= 1.02 * ref_err, preset
        assert rms(logits - ref) <= 0.25 * ref_err, preset
