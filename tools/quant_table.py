#!/usr/bin/env python3
"""Perplexity and file size per quantization type, this project next to llama.cpp.

For a Hugging Face GPT-BigCode checkpoint (default: tests/data/tiny-bigcode-py)
and a text (default: its val_sample.txt):

1. convert it with this project's converter to F32, F16 and every quantized
   preset of the table (the converter quantizes in the C++ core);
2. check each quantized file against llama.cpp's own quantizer
   (``llama_model_quantize`` on the F32 file): same per-tensor types and bytes?
3. compute perplexity of every file in both runtimes, same token ids, same
   windows: the text is tokenized once, cut into consecutive non-overlapping
   windows of W tokens (W=256, the model's training length; the model README's
   protocol), each window evaluated from position 0 and scored on its W-1
   next-token predictions (single-token tails skipped); ppl = exp(mean NLL).
   This project: ``starcoder_cpp.Model.eval(ids, all_logits=True)``;
   llama.cpp: ``llama_cpp.Llama.eval`` + ``scores``.

    python tools/quant_table.py [--model-dir DIR] [--text FILE] [--window 256]
                                [--types f32,f16,q8_0,...] [--work DIR] [--threads N]

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "tests" / "data" / "tiny-bigcode-py"
DEFAULT_TYPES = ["f32", "f16", "q8_0", "q6_k", "q5_k_m", "q5_0", "q4_k_m", "q4_0", "q3_k_m", "q2_k"]


def windows(ids: Sequence[int], window: int) -> List[List[int]]:
    """Consecutive non-overlapping windows; a single-token tail is dropped."""
    out = [list(ids[s:s + window]) for s in range(0, len(ids), window)]
    return [w for w in out if len(w) >= 2]


def _nll(logits: np.ndarray, chunk: Sequence[int]) -> float:
    rows = np.asarray(logits, dtype=np.float64)[: len(chunk) - 1]
    mx = rows.max(axis=1, keepdims=True)
    logz = np.log(np.exp(rows - mx).sum(axis=1)) + mx[:, 0]
    return float((logz - rows[np.arange(len(chunk) - 1), np.asarray(chunk[1:])]).sum())


def _ppl(chunks, logits_of) -> float:
    nll, n = 0.0, 0
    for c in chunks:
        nll += _nll(logits_of(c), c)
        n += len(c) - 1
    return math.exp(nll / n)


def tokenize(model_path, text: str) -> List[int]:
    import starcoder_cpp

    return starcoder_cpp.Tokenizer(str(model_path)).tokenize(text)


def our_perplexity(path, text: str, window: int = 256, n_threads: int = 0, ids=None) -> float:
    import starcoder_cpp

    m = starcoder_cpp.Model(str(path), n_ctx=window, n_threads=n_threads)
    ids = m.tokenize(text) if ids is None else ids

    def logits_of(chunk):
        m.reset()
        return m.eval(chunk, all_logits=True)

    return _ppl(windows(ids, window), logits_of)


def llama_perplexity(path, text: str, window: int = 256, n_threads: int = 0, ids=None) -> float:
    import llama_cpp

    ids = tokenize(path, text) if ids is None else ids
    llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=window, n_batch=window,
                          n_threads=n_threads or os.cpu_count(), verbose=False)
    try:
        def logits_of(chunk):
            llm.reset()
            llm.eval(list(chunk))
            return np.array(llm.scores[: len(chunk)], dtype=np.float64)

        return _ppl(windows(ids, window), logits_of)
    finally:
        if hasattr(llm, "close"):
            llm.close()


def same_as_llama_quantize(ours: Path, f32: Path, preset: str, work: Path) -> Optional[bool]:
    """Quantize f32 with llama.cpp and compare tensor types and bytes with `ours`."""
    try:
        import gguf
        import llama_cpp
    except ImportError:
        return None
    from starcoder_cpp.quant_presets import PRESETS

    theirs = work / f"llama-{preset}.gguf"
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = PRESETS[preset][1]
    p.nthread = os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(str(f32).encode(), str(theirs).encode(), p) != 0:
        return False
    a = {t.name: (t.tensor_type, t.data.tobytes()) for t in gguf.GGUFReader(str(ours)).tensors}
    b = {t.name: (t.tensor_type, t.data.tobytes()) for t in gguf.GGUFReader(str(theirs)).tensors}
    theirs.unlink()
    return a == b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--text", type=Path, default=None, help="default: MODEL_DIR/val_sample.txt")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--types", default=",".join(DEFAULT_TYPES))
    ap.add_argument("--work", type=Path, default=None, help="where the GGUF files go (default: a temp dir)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-llama", action="store_true", help="only this project's numbers")
    args = ap.parse_args(argv)

    from starcoder_cpp.convert import convert_checkpoint

    text_path = args.text or args.model_dir / "val_sample.txt"
    text = text_path.read_text(encoding="utf-8")
    types = [t.strip().lower() for t in args.types.split(",") if t.strip()]
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="quant-table-")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    have_llama = not args.no_llama
    if have_llama:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            have_llama = False

    f32 = work / "model-f32.gguf"
    convert_checkpoint(args.model_dir, f32, out_type="f32", progress=False)
    ids = tokenize(f32, text)
    n_scored = sum(len(w) - 1 for w in windows(ids, args.window))
    print(f"model: {args.model_dir}  text: {text_path} ({len(ids)} tokens, {n_scored} scored, "
          f"W={args.window} non-overlapping windows)", file=sys.stderr)

    rows = []
    base = None
    for t in types:
        path = f32 if t == "f32" else work / f"model-{t}.gguf"
        if t != "f32":
            convert_checkpoint(args.model_dir, path, out_type=t, progress=False, n_threads=args.threads)
        t0 = time.monotonic()
        ours = our_perplexity(path, text, args.window, args.threads, ids)
        t1 = time.monotonic()
        theirs = llama_perplexity(path, text, args.window, args.threads, ids) if have_llama else None
        t2 = time.monotonic()
        same = None
        if have_llama and t not in ("f32", "f16", "bf16"):
            same = same_as_llama_quantize(path, f32, t, work)
        if base is None:
            base = ours
        rows.append((t, path.stat().st_size, ours, theirs, same))
        print(f"{t}: ours {ours:.4f} ({t1 - t0:.0f}s)" + (f", llama.cpp {theirs:.4f} ({t2 - t1:.0f}s)" if theirs else ""),
              file=sys.stderr)
        if t not in ("f32", "f16"):
            path.unlink()

    print()
    print("| type | file size | ppl starcoder-cpp | ppl llama.cpp | ours vs F32 | ours vs llama.cpp | bytes == llama-quantize |")
    print("|---|---:|---:|---:|---:|---:|:---:|")
    for t, size, ours, theirs, same in rows:
        vs_f32 = f"{(ours / base - 1) * 100:+.2f}%"
        vs_ll = f"{(ours / theirs - 1) * 100:+.3f}%" if theirs else "-"
        ll = f"{theirs:.4f}" if theirs else "-"
        eq = "-" if same is None else ("yes" if same else "NO")
        print(f"| {t.upper()} | {size / 2**20:.2f} MiB | {ours:.4f} | {ll} | {vs_f32} | {vs_ll} | {eq} |")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
