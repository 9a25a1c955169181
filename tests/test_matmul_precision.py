"""matmul_precision: prompts of F16/BF16 weights in float32 (default) or bf16.

"bf16" rounds the weights and activations of prompt products (3+ tokens) to
bfloat16 where the CPU multiplies bfloat16 in hardware (AVX512_BF16), and is
"f32" elsewhere; decode and quantized weights are the same either way. The
kernels themselves are held to float64 in test_float_kernels.py.
"""

from __future__ import annotations


import numpy as np
import pytest

import starcoder_cpp
from starcoder_cpp import _core, _testing

from test_cli import cli

HAS_BF16 = _testing.has_bf16_gemm(_testing.default_level())
IN_FORCE = "bf16" if HAS_BF16 else "f32"


@pytest.fixture(scope="module")
def prompt(tiny_gguf_f16):
    from conftest import TINY_MODEL_DIR

    text = (TINY_MODEL_DIR / "val_sample.txt").read_text()
    return starcoder_cpp.Model(tiny_gguf_f16, n_ctx=16).tokenize(text)[:200]


def test_f32_is_the_default_and_bf16_is_in_force_where_the_cpu_has_it(tiny_gguf_f16):
    assert starcoder_cpp.Model(tiny_gguf_f16, n_ctx=64).info()["matmul_precision"] == "f32"
    assert starcoder_cpp.Model(tiny_gguf_f16, n_ctx=64, matmul_precision="bf16").info()["matmul_precision"] == IN_FORCE


def test_bf16_prompt_logits_stay_within_bf16_rounding_of_f32(tiny_gguf_f16, prompt):
    f32 = starcoder_cpp.Model(tiny_gguf_f16, n_ctx=256).eval(prompt, all_logits=True)
    bf16 = starcoder_cpp.Model(tiny_gguf_f16, n_ctx=256, matmul_precision="bf16").eval(prompt, all_logits=True)
    if not HAS_BF16:
        np.testing.assert_array_equal(bf16, f32)
        return
    scale = np.abs(f32).max()
    # about 2^-9 relative per rounded input, through every layer
    assert 0 < np.abs(bf16 - f32).max() < 3e-2 * scale
    assert np.mean(bf16.argmax(1) == f32.argmax(1)) >= 0.95


def test_bf16_precision_leaves_single_token_decode_exact(tiny_gguf_f16, prompt):
    # one or two tokens take the row kernels, which read the weights as they are
    for ids in (prompt[:1], prompt[:2]):
        f32 = starcoder_cpp.Model(tiny_gguf_f16, n_ctx=64).eval(ids, all_logits=True)
        bf16 = starcoder_cpp.Model(tiny_gguf_f16, n_ctx=64, matmul_precision="bf16").eval(ids, all_logits=True)
        np.testing.assert_array_equal(bf16, f32)


def test_bf16_precision_leaves_quantized_files_alone(tiny_gguf_f16, prompt, tmp_path):
    from starcoder_cpp.quantize import quantize_gguf

    q = tmp_path / "q8_0.gguf"
    quantize_gguf(str(tiny_gguf_f16), str(q), "q8_0")
    ids = prompt[:40]
    a = starcoder_cpp.Model(q, n_ctx=64).eval(ids, all_logits=True)
    b = starcoder_cpp.Model(q, n_ctx=64, matmul_precision="bf16").eval(ids, all_logits=True)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", ["bf32", "", "BF16", 16])
def test_matmul_precision_must_be_f32_or_bf16(tiny_gguf_f16, bad):
    with pytest.raises((ValueError, TypeError), match="matmul_precision|incompatible"):
        starcoder_cpp.Model(tiny_gguf_f16, n_ctx=64, matmul_precision=bad)


def test_the_core_refuses_an_unknown_matmul_precision(tiny_gguf_f16):
    with pytest.raises(ValueError, match="matmul_precision must be 'f32' or 'bf16'"):
        _core.Model(str(tiny_gguf_f16), 64, 1, 512, "f16", "cpu", "half")
    with pytest.raises(ValueError, match="matmul_precision must be 'f32' or 'bf16'"):
        _core.Engine(str(tiny_gguf_f16), 64, 1, 512, "f16", 1, 128, "half")


def test_engine_reports_its_matmul_precision(tiny_gguf_f16):
    assert _core.Engine(str(tiny_gguf_f16), 64, 1, 512, "f16", 1).matmul_precision == "f32"
    assert _core.Engine(str(tiny_gguf_f16), 64, 1, 512, "f16", 1, 128, "bf16").matmul_precision == IN_FORCE


def test_cli_takes_matmul_precision(tiny_gguf_f16):
    expected = starcoder_cpp.Model(tiny_gguf_f16, matmul_precision="bf16").complete(
        "import os\nimport sys\n", max_tokens=6, temperature=0)
    r = cli("complete", "-m", tiny_gguf_f16, "import os\nimport sys\n", "-n", 6, "--temperature", 0,
            "--matmul-precision", "bf16")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "import os\nimport sys\n" + expected + "\n"
    r = cli("complete", "-m", tiny_gguf_f16, "x", "--matmul-precision", "f8")
    assert r.returncode != 0 and "--matmul-precision" in r.stderr
