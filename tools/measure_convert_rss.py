#!/usr/bin/env python3
"""Measure the converter's peak memory and time on a big random checkpoint.

Builds a random GPT-BigCode checkpoint of a given shape (default: the
starcoderbase-1b shape, 1.1B parameters) with tools/make_checkpoint.py, then
converts it to GGUF in a child process and reports the child's peak RSS
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, taken in a small wrapper
process whose only child is the converter) and wall time.

    python tools/measure_convert_rss.py [--shape 1b] [--dtype bfloat16|float32|float16]
                                        [--out-type f16] [--work /tmp/sc-rss] [--keep]

The child imports only the pure-Python converter modules (it does not need the
compiled extension).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
sys.path.insert(0, str(TOOLS))

import make_checkpoint as mc  # noqa: E402

# Loads python/starcoder_cpp/convert/ without importing the package
# __init__ (which needs the compiled _core extension).
_CHILD = r"""
import importlib, json, sys, types, time
pkg = types.ModuleType("_sc_pure"); pkg.__path__ = [sys.argv[1]]; sys.modules["_sc_pure"] = pkg
convert = importlib.import_module("_sc_pure.convert")
t0 = time.monotonic()
s = convert.convert_checkpoint(sys.argv[2], sys.argv[3], out_type=sys.argv[4], progress=False)
s["child_seconds"] = time.monotonic() - t0
try:
    with open("/proc/self/status") as f:
        s["child_vmhwm_kb"] = int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
except (OSError, StopIteration):
    s["child_vmhwm_kb"] = None
print(json.dumps(s))
"""

# A fresh, small Python process whose only child is the converter, so that its
# RUSAGE_CHILDREN peak is the converter's own. (Linux carries ru_maxrss across
# fork/exec: a child spawned straight from a big process, e.g. pytest or this
# script after building a checkpoint, would report the parent's peak.)
_WRAPPER = r"""
import json, resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
print(json.dumps({"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr,
                  "children_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def convert_in_subprocess(hf_dir, out_path, out_type: str = "f16") -> dict:
    """Convert in a fresh Python process; returns the converter's summary plus
    ``peak_rss_kb`` (the converter's ru_maxrss, via RUSAGE_CHILDREN of a small
    wrapper process), ``child_vmhwm_kb`` (its /proc VmHWM) and ``wall_seconds``."""
    child = [sys.executable, "-c", _CHILD, str(ROOT / "python" / "starcoder_cpp"), str(hf_dir), str(out_path), out_type]
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-S", "-c", _WRAPPER] + child, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        raise RuntimeError(f"measurement wrapper failed:\n{res.stderr}")
    w = json.loads(res.stdout.strip().splitlines()[-1])
    if w["rc"] != 0:
        raise RuntimeError(f"conversion failed:\n{w['stderr']}")
    summary = json.loads(w["stdout"].strip().splitlines()[-1])
    summary["peak_rss_kb"] = w["children_maxrss_kb"]
    summary["wall_seconds"] = wall
    return summary


def _dir_size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="1b", choices=sorted(mc.SHAPES))
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--out-type", default="f16", choices=["f16", "f32"])
    ap.add_argument("--work", default="/tmp/starcoder-cpp-rss")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint and the GGUF file")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing checkpoint in --work")
    args = ap.parse_args(argv)

    work = Path(args.work)
    ckpt = work / f"{args.shape}-{args.dtype}"
    out = work / f"{args.shape}-{args.dtype}-{args.out_type}.gguf"
    work.mkdir(parents=True, exist_ok=True)
    n_embd, n_layer, n_head, n_inner, vocab, n_pos = mc.SHAPES[args.shape]
    if not (args.reuse and (ckpt / "config.json").is_file()):
        if ckpt.exists():
            shutil.rmtree(ckpt)
        t0 = time.monotonic()
        mc.make_checkpoint(ckpt, n_embd, n_layer, n_head, n_inner, vocab, n_pos, dtype=args.dtype)
        print(f"built {ckpt} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    src_size = _dir_size(ckpt)
    try:
        s = convert_in_subprocess(ckpt, out, args.out_type)
        report = {
            "shape": args.shape,
            "source_dtype": args.dtype,
            "out_type": args.out_type,
            "n_params": s["n_params"],
            "checkpoint_bytes": src_size,
            "gguf_bytes": s["file_size"],
            "peak_rss_mb": round(s["peak_rss_kb"] / 1024, 1),
            "vmhwm_mb": round(s["child_vmhwm_kb"] / 1024, 1) if s["child_vmhwm_kb"] else None,
            "convert_seconds": round(s["child_seconds"], 2),
            "wall_seconds_incl_startup": round(s["wall_seconds"], 2),
        }
        print(json.dumps(report, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(ckpt, ignore_errors=True)
            try:
                os.unlink(out)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
