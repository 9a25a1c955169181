#!/usr/bin/env python3
"""Tokens per second: starcoder_cpp's C++ tokenizer vs Hugging Face `tokenizers`.

Input: every .py file of the running CPython's standard library (the Lib dir
from sysconfig, installed packages excluded), read as bytes and decoded
without newline translation. Both tokenizers get exactly the same strings in
the same run, with special-token strings treated as plain text on both sides
(ours: special=False; HF: encode_special_tokens=True), so their ids must be
identical -- the script checks that too.

Rows:
  starcoder_cpp  tokenize()     one call per file, one thread (the GIL is
                                released, but nothing runs in parallel)
  tokenizers     encode()       one call per file, one thread
  tokenizers     encode_batch() all files in one call, on Rayon's thread
                                pool (all cores): shown for honesty, it is
                                not a single-threaded number

Each is run --repeat times; "cold" is the first pass (empty merge caches in
both libraries), "best" the fastest pass.

    python tools/bench_tokenizer.py                 # StarCoder 1 vocab
    python tools/bench_tokenizer.py --vocab all --repeat 3
"""
from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import time
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VOCAB_DIR = REPO / "tests" / "data" / "vocab"
VOCABS = {
    "starcoder1": ("ggml-vocab-starcoder-v1.gguf", "starcoder-v1-tokenizer.json"),
    "starcoder2": ("ggml-vocab-starcoder.gguf", "starcoder-tokenizer.json"),
}
SKIPPED_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_sources() -> list[Path]:
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
        files += [Path(dirpath, f) for f in filenames if f.endswith(".py")]
    return sorted(files)


def read_source(path: Path) -> str:
    """Text with line endings untouched; the few non-UTF-8 test files are
    decoded with their declared coding (Latin-1 if that is broken)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        with path.open("rb") as f:
            encoding, _ = tokenize.detect_encoding(f.readline)
    except SyntaxError:
        encoding = "latin-1"
    return raw.decode(encoding, errors="replace")


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def bench_vocab(name: str, texts: list[str], repeat: int) -> None:
    import tokenizers

    from starcoder_cpp import Tokenizer

    gguf_name, json_name = VOCABS[name]
    ours = Tokenizer(str(VOCAB_DIR / gguf_name))
    hf = tokenizers.Tokenizer.from_file(str(VOCAB_DIR / json_name))
    hf.encode_special_tokens = True  # special strings are plain text, like ours

    runs = {
        "starcoder_cpp tokenize()": lambda: [ours.tokenize(t) for t in texts],
        "tokenizers encode()": lambda: [
            hf.encode(t, add_special_tokens=False).ids for t in texts
        ],
        "tokenizers encode_batch()": lambda: [
            e.ids for e in hf.encode_batch(texts, add_special_tokens=False)
        ],
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    outputs: dict[str, list[list[int]]] = {}
    for _ in range(repeat):
        for label, fn in runs.items():  # interleaved, so drift hits all rows alike
            seconds, ids = timed(fn)
            times[label].append(seconds)
            outputs.setdefault(label, ids)

    reference = outputs["starcoder_cpp tokenize()"]
    n_tokens = sum(map(len, reference))
    for label, ids in outputs.items():
        bad = sum(a != b for a, b in zip(ids, reference))
        if bad:
            print(f"WARNING: {label} differs from starcoder_cpp on {bad} files", file=sys.stderr)

    ours_best = n_tokens / min(times["starcoder_cpp tokenize()"])
    print(f"\nvocab {name} ({gguf_name}): {len(texts)} files, "
          f"{sum(map(len, texts)) / 1e6:.1f}M chars, {n_tokens:,} tokens, "
          f"ids identical: {all(o == reference for o in outputs.values())}")
    header = f"{'engine':<28}{'cold tok/s':>14}{'best tok/s':>14}{'best s':>9}{'ours/this':>11}"
    print(header)
    print("-" * len(header))
    for label, ts in times.items():
        cold, best = n_tokens / ts[0], n_tokens / min(ts)
        print(f"{label:<28}{cold:>14,.0f}{best:>14,.0f}{min(ts):>9.2f}{ours_best / best:>10.1f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", choices=[*VOCABS, "all"], default="starcoder1")
    ap.add_argument("--repeat", type=int, default=2, help="passes per engine (default 2)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N files")
    args = ap.parse_args()

    files = stdlib_sources()
    if args.limit:
        files = files[: args.limit]
    texts = [read_source(p) for p in files]
    print(f"Python {sys.version.split()[0]} stdlib at {sysconfig.get_paths()['stdlib']}")
    print(f"CPU cores: {os.cpu_count()} (used only by encode_batch)")
    import tokenizers

    print(f"tokenizers {tokenizers.__version__}")
    for name in VOCABS if args.vocab == "all" else [args.vocab]:
        bench_vocab(name, texts, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
