#!/usr/bin/env python3
"""File size and peak memory of each quantization type on a big model.

Builds a random GPT-BigCode checkpoint of the starcoderbase-1b shape (1.1B
parameters; tools/make_checkpoint.py, bfloat16), converts it to F16 GGUF, then
for each type:

* quantizes the F16 file with ``starcoder-cpp quantize`` (one tensor at a time)
  in a child process, recording that process's peak RSS and time;
* runs the quantized model in a fresh child process: load, evaluate a prompt,
  then decode tokens one at a time; records the peak RSS (the weights are
  memory-mapped, so once every weight has been used the resident set is about
  the file plus the KV cache and work buffers) and the time per token.

Each child is started from a small wrapper process whose only child it is, so
that ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is the child's own peak (Linux
carries ru_maxrss across fork/exec from the parent otherwise).

    python tools/quant_memory.py [--shape 1b] [--types f16,q8_0,q6_k,q5_k_m,q4_k_m,q4_0,q3_k_m,q2_k]
                                 [--work /tmp/sc-qmem] [--prompt 32] [--decode 8] [--threads N] [--keep]

Prints a markdown table. Needs about 2.3 GB (checkpoint) + 2.3 GB (F16) + the
quantized files of disk in --work (4.5 GB more with f32 in --types).
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
sys.path.insert(0, str(TOOLS))

import make_checkpoint as mc  # noqa: E402

_WRAPPER = r"""
import json, resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
print(json.dumps({"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr,
                  "children_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

_RUN = r"""
import json, sys, time
import starcoder_cpp
path, n_prompt, n_decode, n_threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def status(key):
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith(key)).split()[1])
t0 = time.monotonic()
m = starcoder_cpp.Model(path, n_ctx=n_prompt + n_decode + 8, n_threads=n_threads)
t1 = time.monotonic()
rss_loaded = status("VmRSS:")
ids = [(i * 7919) % 40000 + 100 for i in range(n_prompt)]
logits = m.eval(ids)
t2 = time.monotonic()
tok = int(logits.argmax())
for _ in range(n_decode):
    tok = int(m.eval([tok]).argmax())
t3 = time.monotonic()
print(json.dumps({"load_s": t1 - t0, "prompt_s": t2 - t1, "decode_s_per_token": (t3 - t2) / max(n_decode, 1),
                  "rss_after_load_kb": rss_loaded, "vmhwm_kb": status("VmHWM:"), "last_token": tok}))
"""


def _measure(cmd):
    """Run cmd under the wrapper; returns (parsed JSON of the child's last stdout line or None, peak RSS in MiB)."""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", _WRAPPER] + cmd, stdout=subprocess.PIPE, universal_newlines=True,
                       check=True)
    wall = time.monotonic() - t0
    out = json.loads(r.stdout)
    if out["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out['stderr'][-3000:]}")
    lines = [l for l in out["stdout"].splitlines() if l.strip().startswith("{")]
    child = json.loads(lines[-1]) if lines else None
    return child, out["children_maxrss_kb"] / 1024, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="1b", choices=sorted(mc.SHAPES))
    ap.add_argument("--types", default="f16,q8_0,q6_k,q5_k_m,q4_k_m,q4_0,q3_k_m,q2_k")
    ap.add_argument("--work", type=Path, default=Path("/tmp/sc-qmem"))
    ap.add_argument("--prompt", type=int, default=32, help="prompt tokens evaluated in one batch")
    ap.add_argument("--decode", type=int, default=8, help="tokens then decoded one at a time")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint and GGUF files")
    args = ap.parse_args(argv)
    types = [t.strip().lower() for t in args.types.split(",") if t.strip()]
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    n_threads = args.threads or os.cpu_count() or 1
    cli = [sys.executable, "-m", "starcoder_cpp"]

    ckpt = work / f"hf-{args.shape}"
    if not (ckpt / "config.json").exists():
        n_embd, n_layer, n_head, n_inner, vocab, n_pos = mc.SHAPES[args.shape]
        print(f"building the {args.shape} checkpoint in {ckpt} ...", file=sys.stderr)
        mc.make_checkpoint(ckpt, n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_inner=n_inner,
                           vocab_size=vocab, n_positions=n_pos, dtype="bfloat16")
    sources = {}
    for base in ("f16", "f32"):
        if base == "f16" or base in types:
            p = work / f"model-{base}.gguf"
            if not p.exists():
                print(f"converting to {base} ...", file=sys.stderr)
                subprocess.run(cli + ["convert", str(ckpt), "-o", str(p), "--type", base, "-q"], check=True)
            sources[base] = p

    rows = []
    for t in types:
        if t in sources:
            path, q_rss, q_wall = sources[t], None, None
        else:
            path = work / f"model-{t}.gguf"
            print(f"quantizing to {t} ...", file=sys.stderr)
            _, q_rss, q_wall = _measure(cli + ["quantize", str(sources["f16"]), str(path), "--type", t, "-q",
                                               "-t", str(n_threads)])
        print(f"running {t} ...", file=sys.stderr)
        run, rss, _ = _measure([sys.executable, "-c", _RUN, str(path), str(args.prompt), str(args.decode),
                                str(n_threads)])
        rows.append(dict(type=t, size=path.stat().st_size, q_rss=q_rss, q_wall=q_wall, rss=rss, **run))
        print(json.dumps(rows[-1]), file=sys.stderr)
        if not args.keep and t not in sources:
            path.unlink()

    print()
    print(f"shape {args.shape}: {mc.SHAPES[args.shape]} (n_embd, n_layer, n_head, n_inner, vocab, n_pos); "
          f"{n_threads} threads, prompt {args.prompt} tokens, then {args.decode} decoded")
    print()
    print("| type | file size | peak RSS running | RSS after load | prompt eval | decode / token | "
          "quantize peak RSS | quantize time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        q = f"{r['q_rss']:.0f} MiB" if r["q_rss"] is not None else "-"
        qt = f"{r['q_wall']:.0f} s" if r["q_wall"] is not None else "-"
        print(f"| {r['type'].upper()} | {r['size'] / 2**20:.0f} MiB | {r['rss']:.0f} MiB | "
              f"{r['rss_after_load_kb'] / 1024:.0f} MiB | {r['prompt_s']:.1f} s | {r['decode_s_per_token']:.2f} s | "
              f"{q} | {qt} |")
    if not args.keep:
        shutil.rmtree(ckpt, ignore_errors=True)
        for p in sources.values():
            p.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
