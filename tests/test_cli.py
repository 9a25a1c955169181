"""The starcoder-cpp command line: output, exit codes, one-line errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

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


def test_prompt_too_long_names_the_cli_flag_not_the_python_argument(tiny_gguf_f32):
    r = cli("complete", "-m", tiny_gguf_f32, "-c", 32, "-n", 4, "x = 1\n" * 40)
    assert r.returncode == 1
    assert "--truncate" in r.stderr and "truncate_prompt" not in r.stderr
    r = cli("infill", "-m", tiny_gguf_f32, "-c", 32, "-n", 4, "--prefix", "x = 1\n" * 40, "--suffix", "")
    assert r.returncode == 1
    assert "--truncate" in r.stderr and "truncate_prompt" not in r.stderr


def test_truncate_flag_fits_a_long_infill(tiny_gguf_f32):
    r = cli("infill", "-m", tiny_gguf_f32, "-c", 32, "-n", 4, "--temperature", 0, "--truncate", "--middle-only",
            "--prefix", "x = 1\n" * 40, "--suffix", "y = 2\n" * 40)
    assert r.returncode == 0, r.stderr


def _interrupt(args, started) -> subprocess.CompletedProcess:
    """Runs the CLI, sends SIGINT once started(proc) says the work is under way.

    The child gets SIGINT's default disposition, as a command typed at a
    terminal has: a runner started in the background (`cmd &` in a script)
    ignores SIGINT, its children inherit that, and Python then installs no
    KeyboardInterrupt handler, so Ctrl-C would not reach the CLI at all."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # exec makes a handler SIG_DFL
    try:
        p = subprocess.Popen([sys.executable, "-m", "starcoder_cpp", *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 120
        while not started(p):
            assert p.poll() is None, "finished before it could be interrupted: " + p.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.002)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err.decode())


def test_ctrl_c_during_complete_exits_130_without_a_traceback(tiny_gguf_f32):
    # greedy on a repetitive prompt: the tiny model repeats it to the end of
    # the context (2048 positions), so it is still generating when the
    # first piece arrives
    r = _interrupt(["complete", "-m", tiny_gguf_f32, "-n", 4000, "--temperature", 0, "x = 1\n" * 8],
                   started=lambda p: p.stdout.read(1) != b"")
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "interrupted" in r.stderr


def test_ctrl_c_during_convert_exits_130_and_leaves_no_file(tiny_model_dir, tmp_path):
    out = tmp_path / "m.gguf"
    part = tmp_path / "m.gguf.part"
    r = _interrupt(["convert", tiny_model_dir, "-o", out, "--type", "q4_k_m", "-q"], started=lambda p: part.exists())
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and not part.exists()


def test_ctrl_c_during_quantize_exits_130_and_leaves_no_file(tiny_gguf_f32, tmp_path):
    out = tmp_path / "q.gguf"
    part = tmp_path / "q.gguf.part"
    r = _interrupt(["quantize", tiny_gguf_f32, out, "--type", "q4_k_m", "-q"], started=lambda p: part.exists())
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and not part.exists()
