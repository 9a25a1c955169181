#!/usr/bin/env python3
"""Completion benchmarks: prefix reuse (time to first token, cold vs after a
small edit near the end of a long prompt) and batched decoding throughput.

    python tools/bench_completion.py [--shape tiny_starcoder_py] [--type f16] [--threads 2]

Builds a random-weight GPT-BigCode checkpoint of the given shape (see
tools/make_checkpoint.py), converts it, and measures. Timings are medians of
--repeat runs; they describe this machine at this moment, nothing more.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import starcoder_cpp  # noqa: E402
from make_checkpoint import SHAPES, make_checkpoint  # noqa: E402
from starcoder_cpp.convert import convert_checkpoint  # noqa: E402


def build_model(shape: str, out_type: str, workdir: Path) -> Path:
    gguf = workdir / f"{shape}-{out_type}.gguf"
    if gguf.exists():
        return gguf
    n_embd, n_layer, n_head, n_inner, vocab, n_pos = SHAPES[shape]
    hf = workdir / f"{shape}-hf"
    make_checkpoint(str(hf), n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_inner=n_inner,
                    vocab_size=vocab, n_positions=n_pos, dtype="float16")
    convert_checkpoint(str(hf), str(gguf), out_type=out_type, progress=False)
    return gguf


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_prefix_reuse(m: starcoder_cpp.Model, n_prompt: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    prompt = rng.integers(100, 40000, size=n_prompt).tolist()
    edited = prompt[:-5] + rng.integers(100, 40000, size=5).tolist()  # an edit 5 tokens from the end

    def cold():
        m.reset()
        m.complete(prompt, max_tokens=1, temperature=0)

    def warm():
        m.reset()
        m.complete(prompt, max_tokens=1, temperature=0)  # the editor's previous request
        t0 = time.perf_counter()
        r = m.complete(edited, max_tokens=1, temperature=0)
        warm.elapsed = time.perf_counter() - t0
        warm.reused = r.n_reused_tokens

    t_cold = median_time(cold, repeat)
    warm_times = []
    for _ in range(repeat):
        warm()
        warm_times.append(warm.elapsed)
    t_warm = statistics.median(warm_times)
    print(f"\nPrefix reuse: time to first token, {n_prompt}-token prompt")
    print("| case | TTFT (s) | prompt tokens evaluated |")
    print("|---|---|---|")
    print(f"| cold | {t_cold:.3f} | {n_prompt} |")
    print(f"| after an edit 5 tokens from the end | {t_warm:.3f} | {n_prompt - warm.reused} |")
    print(f"speed-up: {t_cold / t_warm:.1f}x")


def bench_batch(m: starcoder_cpp.Model, sizes, n_new: int, repeat: int) -> None:
    prompts = [f"def function_{i}(x):\n    return" for i in range(max(sizes))]
    print(f"\nBatched decoding: {n_new} new tokens per sequence (greedy, no early stop)")
    print("| sequences | wall (s) | aggregate tokens/s | vs 1 sequence |")
    print("|---|---|---|---|")
    base = None
    for b in sizes:
        def run():
            m.reset()
            r = m.complete_batch(prompts[:b], max_tokens=n_new, temperature=0, stop=None)
            run.tokens = sum(x.n_tokens for x in r)
        t = median_time(run, repeat)
        rate = run.tokens / t
        base = base or rate
        print(f"| {b} | {t:.2f} | {rate:.1f} | {rate / base:.2f}x |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="tiny_starcoder_py", choices=sorted(SHAPES))
    ap.add_argument("--type", default="f16", choices=["f32", "f16"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--prompt-tokens", type=int, default=1500)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "starcoder-cpp-bench"))
    args = ap.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = build_model(args.shape, args.type, workdir)
    m = starcoder_cpp.Model(path, n_ctx=max(2048, args.prompt_tokens + 16), n_threads=args.threads)
    print(f"model: {args.shape} shape, {args.type}, {path.stat().st_size / 1e6:.0f} MB, "
          f"threads: {m.n_threads}, machine: {os.cpu_count()} CPUs")
    bench_prefix_reuse(m, args.prompt_tokens, args.repeat)
    bench_batch(m, [int(x) for x in args.batch_sizes.split(",")], args.new_tokens, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
