"""The starcoder-cpp command line: output, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "starcoder_cpp", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_the_commands():
    r = cli("--help")
    assert r.returncode == 0
    for cmd in ("convert", "complete", "infill", "tokenize", "info", "perplexity"):
        assert cmd in r.stdout


def test_complete_prints_prompt_and_greedy_continuation(tiny_gguf_f32):
    import starcoder_cpp

    expected = starcoder_cpp.Model(tiny_gguf_f32).complete("class Stack:", max_tokens=12, temperature=0)
    r = cli("complete", "-m", tiny_gguf_f32, "class Stack:", "-n", 12, "--temperature", 0)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "class Stack:" + expected + "\n"


def test_complete_with_the_bundled_demo_model():
    r = cli("complete", "-m", "demo", "def fibonacci(n):", "-n", 8, "--seed", 1)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("def fibonacci(n):") and len(r.stdout) > len("def fibonacci(n):\n")


def test_infill_prints_prefix_middle_suffix(tiny_gguf_f32):
    import starcoder_cpp

    middle = starcoder_cpp.Model(tiny_gguf_f32).infill("def f(x):\n", "\n    return y\n", max_tokens=10,
                                                         temperature=0)
    r = cli("infill", "-m", tiny_gguf_f32, "--prefix", "def f(x):\n", "--suffix", "\n    return y\n", "-n", 10,
            "--temperature", 0)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "def f(x):\n" + middle + "\n    return y\n" + "\n"


def test_tokenize_prints_ids(tiny_gguf_f32):
    r = cli("tokenize", "-m", tiny_gguf_f32, "def fibonacci(n):", "--ids-only")
    assert r.returncode == 0
    assert r.stdout.split() == ["589", "28176", "34682", "26", "96", "711"]


def test_info_shows_the_shape(tiny_gguf_f32):
    r = cli("info", tiny_gguf_f32)
    assert r.returncode == 0
    assert '"n_layer": 4' in r.stdout and '"n_head_kv": 1' in r.stdout


def test_perplexity_prints_a_number(tiny_gguf_f32, tiny_model_dir):
    r = cli("perplexity", "-m", tiny_gguf_f32, tiny_model_dir / "val_sample.txt", "--window", 256, "-q")
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) == pytest.approx(71.1267, rel=1e-3)


def test_missing_model_is_a_one_line_runtime_error():
    r = cli("complete", "-m", "no-such-file.gguf", "x")
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "no-such-file.gguf" in r.stderr


def test_bad_model_file_is_a_one_line_runtime_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 40)
    r = cli("info", bad)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and r.stderr.startswith("starcoder-cpp: error:")


def test_verbose_shows_the_traceback(tmp_path):
    r = cli("--verbose", "info", tmp_path / "none.gguf")
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_usage_errors_exit_2():
    assert cli("complete").returncode == 2
    assert cli("no-such-command").returncode == 2
    assert cli("complete", "-m", "demo", "x", "--temperature", "hot").returncode == 2
