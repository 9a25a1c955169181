"""The benchmark code: starcoder_cpp.bench (behind `starcoder-cpp bench`) and
tools/bench.py. Smoke tests only: they check that the measurements run and
return sensible numbers, never how fast anything is."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import VOCAB_DIR, require_path

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "bench.py"

# A workload of a few dozen tokens: seconds on the demo model.
SMALL = dict(prompt_tokens=16, decode_prompt_tokens=8, decode_tokens=4, fim_tokens=24, long_context=48,
             long_decode_tokens=4)
METRICS = ("load_s", "prompt_tps", "decode_tps", "ttft_s", "long_decode_tps", "peak_rss_mb")


def _positive(r: dict) -> None:
    for k in METRICS:
        assert isinstance(r[k], float) and math.isfinite(r[k]) and r[k] > 0, (k, r[k])


def test_bench_model_returns_positive_numbers():
    from starcoder_cpp import bench

    r = bench.bench_model("demo", n_threads=1, config=bench.BenchConfig(**SMALL))
    _positive(r)
    assert r["long_context"] == SMALL["long_context"]
    assert r["backend"].startswith("cpu-")
    assert r["n_threads"] == 1


def test_measuring_procedures_on_a_session():
    from starcoder_cpp import bench
    from starcoder_cpp.model import demo_model_path

    plan = bench.make_plan(bench.BenchConfig(**SMALL))
    assert len(plan["fim"]) == SMALL["fim_tokens"]
    assert plan["fim"][0] == 1 and plan["fim"][-1] == 2  # <fim_prefix> ... <fim_middle>
    assert len(plan["fim"]) + len(plan["long_fill"]) + SMALL["long_decode_tokens"] == SMALL["long_context"]
    assert plan == bench.make_plan(bench.BenchConfig(**SMALL))  # deterministic

    session, load_s = bench.measure_load(lambda: bench.StarcoderSession(demo_model_path(), 64, 1), plan["warm"])
    assert load_s > 0
    assert bench.measure_prompt(session, plan["prompt"]) > 0
    assert session.model.n_past == SMALL["prompt_tokens"]
    assert bench.measure_decode(session, plan["decode_prompt"], 3) > 0
    assert session.model.n_past == SMALL["decode_prompt_tokens"] + 3
    ttft, logits = bench.measure_ttft(session, plan["fim"])
    assert ttft > 0 and logits.shape == (session.model.n_vocab,)
    assert bench.measure_long_decode(session, plan["long_fill"], 4) > 0
    assert session.model.n_past == SMALL["long_context"]


def test_weights_read_per_token_counts_every_matrix_and_the_tied_head():
    from starcoder_cpp import bench
    from starcoder_cpp.gguf_header import read_gguf_header
    from starcoder_cpp.model import Model, demo_model_path

    path = demo_model_path()
    head = read_gguf_header(path)
    tensors = {t.name: t for t in head.tensors}
    m = Model(path, n_ctx=16, n_threads=1)
    assert head.get("general.architecture") == "starcoder"
    assert bench.gguf_context_length(path) == m.n_ctx_train
    assert tensors["token_embd.weight"].ne == (m.n_embd, m.n_vocab)

    def nbytes(name, n_weights):
        return n_weights // 32 * {1: 64, 8: 34}[int(tensors[name].ggml_type)]  # per 32 weights: F16, Q8_0

    e, ff = m.n_embd, m.n_ff
    qkv = e + 2 * (e // m.n_head) * m.n_head_kv
    expected = sum(nbytes(f"blk.{i}.attn_qkv.weight", qkv * e) + nbytes(f"blk.{i}.attn_output.weight", e * e)
                   + nbytes(f"blk.{i}.ffn_up.weight", ff * e) + nbytes(f"blk.{i}.ffn_down.weight", e * ff)
                   for i in range(m.n_layer))
    expected += 0 if "output.weight" in tensors else nbytes("token_embd.weight", m.n_vocab * e)
    assert bench.decode_bytes_per_token(path) == expected
    assert bench.decode_bytes_per_token(path) < os.path.getsize(path)


def test_prompt_ops_count_each_matrix_once_per_row_it_multiplies():
    from starcoder_cpp import bench
    from starcoder_cpp.gguf_header import read_gguf_header
    from starcoder_cpp.model import Model, demo_model_path

    path = demo_model_path()  # Q8_0 weights, tied head
    tensors = {t.name for t in read_gguf_header(path).tensors}
    m = Model(path, n_ctx=16, n_threads=1)
    e, ff, L, T = m.n_embd, m.n_ff, m.n_layer, 100
    qkv = e + 2 * (e // m.n_head) * m.n_head_kv
    rest = e * e + 2 * e * ff  # attention output, MLP up and down
    head = 0 if "output.weight" in tensors else e * m.n_vocab
    ops = bench.prompt_ops(path, T)
    # K/V of every token go into the cache; past the last block's attention only the last token matters
    assert ops == {"int8": 2 * (T * L * qkv * e + (T * (L - 1) + 1) * rest + head), "float": 0,
                   "attention": 2 * e * T * (T + 1) * L}
    every_row = bench.prompt_ops(path, T, last_token_only=False)
    assert every_row["int8"] == 2 * (T * L * (qkv * e + rest) + head)
    with pytest.raises(ValueError):
        bench.prompt_ops(path, 0)


def test_tool_compute_bound_adds_the_time_of_each_kind_of_operation():
    sys.path.insert(0, str(REPO / "tools"))
    import bench as tool  # tools/bench.py

    ops = {"int8": 4e9, "float": 1e9, "attention": 5e8}
    assert tool.compute_bound(ops, 10, int8_gops=200.0, float_gflops=100.0) == pytest.approx(10 / (0.02 + 0.01))
    assert tool.compute_bound(ops, 10, int8_gops=None, float_gflops=100.0) is None  # a peak this level lacks
    assert tool.compute_bound({"int8": 0, "float": 1e9, "attention": 0}, 10, None, 100.0) == pytest.approx(1000)


def test_tool_describes_the_cpu_and_the_isa_extensions_that_matter(tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    import bench as tool  # tools/bench.py

    x86 = tmp_path / "cpuinfo_x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
                   "model name\t: AMD EPYC 7B13\nstepping\t: 1\nflags\t\t: fpu sse2 avx2 fma f16c\n\n"
                   "processor\t: 1\nmodel name\t: second CPU\nflags\t\t: avx512f\n")
    d = tool.cpu_description(str(x86))
    assert d["model"] == "AMD EPYC 7B13" and d["ids"] == "cpu family 25, model 1, stepping 1"
    assert [f for f, ok in d["isa"].items() if ok] == ["avx2", "fma", "f16c"]
    assert d["isa"]["avx512_bf16"] is False
    arm = tmp_path / "cpuinfo_arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU implementer\t: 0x41\n"
                   "CPU part\t: 0xd0c\n\n")
    d = tool.cpu_description(str(arm))
    assert d["ids"] == "CPU implementer 0x41, CPU part 0xd0c"
    assert [f for f, ok in d["isa"].items() if ok] == ["asimd", "asimddp", "i8mm"]


def test_transformers_peer_uses_bf16_only_where_the_cpu_multiplies_bf16_in_hardware():
    sys.path.insert(0, str(REPO / "tools"))
    import bench as tool  # tools/bench.py

    assert tool.hf_dtype({"avx2": True, "avx512f": True, "avx512_bf16": True}) == "bf16"
    assert tool.hf_dtype({"avx2": True, "amx_bf16": True}) == "bf16"
    assert tool.hf_dtype({"asimd": True, "bf16": True}) == "bf16"
    assert tool.hf_dtype({"avx2": True, "avx512f": True, "avx512_bf16": False}) == "fp32"
    assert tool.hf_dtype({}) == "fp32"  # nothing known about the CPU


def test_transformers_peer_session_in_float32_continues_its_cache(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    sys.path.insert(0, str(REPO / "tools"))
    import bench as tool  # tools/bench.py
    from make_checkpoint import make_checkpoint

    make_checkpoint(str(tmp_path), n_embd=64, n_layer=2, n_head=4, n_inner=256, vocab_size=512, n_positions=64,
                    dtype="float16")
    s = tool.TransformersSession(str(tmp_path), 1, "fp32")
    assert next(s.model.parameters()).dtype == s.torch.float32
    s.eval([1, 2, 3])
    continued = s.eval([4])
    s.reset()
    whole = s.eval([1, 2, 3, 4])
    assert continued.shape == (512,) and np.isfinite(continued).all()
    np.testing.assert_allclose(continued, whole, rtol=1e-4, atol=1e-4)


def test_fit_config_shrinks_the_workload_to_the_model():
    from starcoder_cpp import bench

    c = bench.fit_config(bench.BenchConfig(), 1024)
    c.check()
    assert c.n_ctx <= 1024 and c.long_context == 1024
    same = bench.BenchConfig()
    assert bench.fit_config(same, 8192) is same
    with pytest.raises(ValueError):
        bench.BenchConfig(fim_tokens=4096, long_context=4096).check()


def test_cli_bench_prints_the_numbers(capsys):
    from starcoder_cpp.cli import main

    args = ["bench", "-m", "demo", "-t", "1"] + [
        x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    assert main(args) == 0
    out = capsys.readouterr().out
    for text in ("prompt:", "decode:", "time to first token", "peak RSS", "weights read per token"):
        assert text in out


def test_tool_help_exits_0():
    r = subprocess.run([sys.executable, str(TOOL), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--llama-cpp-avx2-path" in r.stdout and "--quick" in r.stdout


def test_tool_table_cells_say_why_a_number_is_missing():
    sys.path.insert(0, str(REPO / "tools"))
    import bench as tool  # tools/bench.py

    reason = tool.na("no Q4_K_M file: convert: ValueError: unsupported output type 'q4_k_m'")
    assert reason.startswith("n/a: ")
    assert tool.cell(reason, "decode_tps", "{:.2f}", 10.0) == reason
    runs = [{"decode_tps": 4.0}, {"decode_tps": 5.0}, {"decode_tps": 6.0}]
    assert tool.cell(runs, "decode_tps", "{:.2f}", 10.0) == "5.00 ±20% (50% of bandwidth bound)"
    prompt = [{"prompt_tps": 30.0}, {"prompt_tps": 40.0}]
    assert tool.cell(prompt, "prompt_tps", "{:.1f}", 10.0, 140.0) == "35.0 ±14% (25% of compute bound)"
    assert tool.ratio(runs, [{"decode_tps": 2.5}], "decode_tps", True) == "×2.00"
    assert tool.ratio([{"ttft_s": 1.0}], [{"ttft_s": 3.0}], "ttft_s", False) == "×3.00"
    assert tool.ratio(reason, runs, "decode_tps", True) == "—"


def test_tool_runs_this_project_alone_end_to_end(tmp_path):
    require_path(VOCAB_DIR)
    out = tmp_path / "results.md"
    cmd = [sys.executable, str(TOOL), "--shapes", "tiny", "--types", "f16", "--peers", "", "--tiers", "this",
           "--repeat", "1", "--threads", "1", "--workdir", str(tmp_path / "work"), "--out", str(out)] + [
        x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    md = out.read_text()
    assert "### tiny, F16" in md
    row = next(line for line in md.splitlines() if line.startswith("| prompt tok/s"))
    assert "n/a" not in row and "—" not in row.split("|")[2], row
    assert "% of compute bound)" in row.split("|")[2], row
    peaks = next(line for line in md.splitlines() if line.startswith("- compute peaks, this machine"))
    assert re.search(r"fp32 \d+ GFLOP/s \(\S+", peaks), peaks
    assert "Prompt compute bound = " in md


def test_bandwidth_is_measured_in_a_child_process():
    # the child runs bench.py as a script, where a relative import cannot resolve
    from starcoder_cpp.bench import measure_bandwidth

    r = measure_bandwidth(n_threads=2, size_bytes=1 << 24, repeat=1)
    for k in ("read_gbps", "copy_gbps", "read_gbps_1t", "read_gbps_2t"):
        assert math.isfinite(r[k]) and r[k] > 0, (k, r[k])


# ---------------------------------------------------------------- random GGUF files written from blocks

def test_random_gguf_has_the_presets_types_and_runs(tmp_path):
    import make_random_gguf as mrg
    import starcoder_cpp

    path = mrg.make_random_gguf(tmp_path / "r.gguf", "small_direct", "q4_k_m")
    m = starcoder_cpp.Model(str(path), n_ctx=64)
    info = m.info()
    assert (info["n_embd"], info["n_layer"], info["n_head"], info["n_head_kv"]) == (256, 2, 8, 1)
    # Q4_K_M: Q4_K by default, Q6_K where llama-quantize gives more bits
    assert set(info["tensor_types"]) == {"q4_k", "q6_k", "f32"}
    logits = m.eval(list(range(10, 30)), all_logits=True)
    assert np.isfinite(logits).all() and logits.std() > 0


def test_random_gguf_refuses_a_float_type_and_leaves_no_file(tmp_path):
    import make_random_gguf as mrg

    with pytest.raises(ValueError, match="only quantization presets"):
        mrg.make_random_gguf(tmp_path / "r.gguf", "small_direct", "f16")
    assert list(tmp_path.iterdir()) == []


def test_random_gguf_blocks_carry_small_finite_scales():
    import make_random_gguf as mrg
    from starcoder_cpp.ggml_types import GGMLType, to_float32

    rows = mrg.random_rows(np.random.default_rng(0), GGMLType.Q4_K, 8, 512)
    w = to_float32(rows, GGMLType.Q4_K, (8, 512))
    assert np.isfinite(w).all() and 0.005 < np.abs(w).max() < 0.2
