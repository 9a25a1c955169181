#!/usr/bin/env python3
"""starcoder-cpp side by side with its peers, in one run, with ratios.

    python tools/bench.py [--shapes tiny_starcoder_py,1b] [--types f16,q8_0,q4_0,q4_k_m]
                          [--threads 2] [--repeat 3] [--peers llama_cpp,transformers]
                          [--tiers this,laptop] [--llama-cpp-avx2-path DIR] [--out results.md] [--quick]

Systems, each run in its own fresh process (so load time and peak RSS are its
own), on random-weight GPT-BigCode checkpoints this tool builds and caches in
--workdir (tools/make_checkpoint.py, then starcoder_cpp.convert):

* starcoder-cpp on the GGUF file;
* llama.cpp (the installed llama-cpp-python) on the same GGUF file, same
  n_threads, n_batch 512, flash attention on (its fastest CPU setting);
* Hugging Face transformers on the Hugging Face checkpoint (one run per
  shape, shown beside every type), in bf16 where the CPU multiplies bf16 in
  hardware, else in float32 (hf_dtype).

Two tiers: "this machine" (this project's best kernels vs the installed
llama.cpp) and "laptop" (STARCODER_CPU=avx2 vs a llama.cpp built for
AVX2/FMA/F16C only, imported from --llama-cpp-avx2-path).

Workload (every system gets the same token ids; see starcoder_cpp/bench.py):
prompt tok/s for a 512-token prompt; decode tok/s for 128 tokens after a
128-token prompt; decode tok/s for 32 tokens ending at 4096 positions; time to
first token of a 2048-token FIM prompt; load time (constructor + one 1-token
evaluation, page cache warm); peak RSS of the process. Systems alternate run
by run (the order flips every round) and each cell is the median of --repeat
rounds with its spread. Decode figures are also shown as a fraction of the
memory-bandwidth bound: numpy-measured read bandwidth / bytes of weights read
per token; prompt figures as a fraction of the compute bound: the CPU's peaks
(fp32 FMA, int8 dot, bf16 dot where it has one), measured each round by this
project's micro-kernels (starcoder_cpp._core.cpu_peaks, in a child process, at
each tier's kernel level), against the arithmetic of the prompt's weight
matrices (starcoder_cpp.bench.prompt_ops). The header names the CPU and the
ISA extensions that decide which instructions can run.

A timing describes this machine at that moment: on a shared machine expect
noise, and read the spread.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
CORE_BENCH_FILE = REPO / "python" / "starcoder_cpp" / "bench.py"
sys.path.insert(0, str(REPO / "tools"))
from make_checkpoint import DIRECT_SHAPES, SHAPES  # noqa: E402  (numpy only: no native library in this process)

TYPES = {  # name -> (label, llama.cpp LLAMA_FTYPE_MOSTLY_*)
    "f16": ("F16", 1),
    "q8_0": ("Q8_0", 7),
    "q4_0": ("Q4_0", 2),
    "q4_k_m": ("Q4_K_M", 15),
}
PEERS = ("llama_cpp", "transformers")
TIERS = ("this", "laptop")
# --no-cache-dir --no-binary: otherwise pip reuses the native build it cached
# for the default install, AVX-512 and all (measured: it did).
AVX2_BUILD_HINT = ('CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF '
                   '-DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF '
                   '-DGGML_AMX_INT8=OFF" CC=clang CXX=clang++ pip install --no-cache-dir --no-binary '
                   'llama-cpp-python --no-deps --target DIR llama-cpp-python')


def avx512_instructions_in(package_dir: str) -> Optional[int]:
    """How many instructions of llama.cpp's CPU library use zmm registers
    (0 for a true AVX2 build), or None when objdump is not available."""
    import glob
    import shutil

    objdump = shutil.which("objdump")
    libs = glob.glob(os.path.join(package_dir, "llama_cpp", "lib", "libggml-cpu*.so"))
    if not objdump or not libs:
        return None
    r = subprocess.run([objdump, "-d", libs[0]], capture_output=True, text=True)
    return sum(1 for line in r.stdout.splitlines() if "%zmm" in line)


def load_core_bench():
    """The measuring procedures of python/starcoder_cpp/bench.py, loaded from
    the source tree as part of a stand-in package (its relative imports work,
    and the package __init__, which loads the native library, never runs): a
    peer's process must not load this project's native library."""
    pkg = "_starcoder_pure"
    if pkg not in sys.modules:
        m = types.ModuleType(pkg)
        m.__path__ = [str(CORE_BENCH_FILE.parent)]
        sys.modules[pkg] = m
    return importlib.import_module(f"{pkg}.bench")


# ===========================================================================
# child processes: one system, one model, the whole suite


class LlamaCppSession:
    """llama.cpp through llama-cpp-python: Llama(...).eval, last-row logits."""

    def __init__(self, path: str, n_ctx: int, n_threads: int):
        import numpy as np
        import llama_cpp
        from llama_cpp import Llama

        self._np, self._lc = np, llama_cpp
        # flash_attn: llama.cpp's fastest CPU configuration for prompts and long
        # contexts (its KV cache stays F16, as ours).
        self.llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                         n_batch=512, n_ubatch=512, logits_all=False, flash_attn=True, verbose=False)
        self.n_vocab = self.llm.n_vocab()

    def reset(self):
        self.llm.reset()  # n_tokens = 0: the next eval drops every cached position

    def eval(self, ids):
        self.llm.eval(ids)
        ptr = self._lc.llama_get_logits_ith(self.llm.ctx, -1)
        return self._np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()


class TransformersSession:
    """GPTBigCodeForCausalLM in bf16 or fp32; one forward per eval, with the KV cache."""

    def __init__(self, hf_dir: str, n_threads: int, dtype: str):
        import torch
        from transformers import GPTBigCodeForCausalLM

        torch.set_num_threads(n_threads)
        self.torch = torch
        torch_dtype = getattr(torch, HF_DTYPES[dtype][0])
        try:
            self.model = GPTBigCodeForCausalLM.from_pretrained(hf_dir, dtype=torch_dtype)
        except TypeError:  # transformers < 4.56
            self.model = GPTBigCodeForCausalLM.from_pretrained(hf_dir, torch_dtype=torch_dtype)
        self.model.eval()
        self.past = None

    def reset(self):
        self.past = None

    def eval(self, ids):
        torch = self.torch
        x = torch.tensor([list(ids)], dtype=torch.long)
        with torch.inference_mode():
            try:  # only the last position's logits, as the other systems compute
                out = self.model(input_ids=x, past_key_values=self.past, use_cache=True, logits_to_keep=1)
            except TypeError:  # transformers without logits_to_keep
                out = self.model(input_ids=x, past_key_values=self.past, use_cache=True)
        self.past = out.past_key_values
        return out.logits[0, -1].float().numpy()


def child_main(spec: dict) -> dict:
    core = load_core_bench()
    core.raise_priority(-5)
    plan = json.loads(Path(spec["plan"]).read_text())
    n = spec["n_threads"]
    system = spec["system"]
    if system == "starcoder-cpp":
        try:
            import starcoder_cpp.bench as ours  # the installed package's copy
        except ImportError:  # an installed package older than bench.py
            ours = core
        if spec.get("matmul_precision", "f32") != "f32":
            return ours.bench_model(spec["path"], n_threads=n, plan=plan, matmul_precision=spec["matmul_precision"])
        return ours.bench_model(spec["path"], n_threads=n, plan=plan)
    if system == "llama.cpp":
        if spec.get("llama_path"):
            sys.path.insert(0, spec["llama_path"])
        import llama_cpp

        holder = {}

        def factory():
            holder["s"] = LlamaCppSession(spec["path"], plan["n_ctx"], n)
            return holder["s"]

        r = core.run_suite(factory, plan)
        info = llama_cpp.llama_print_system_info()
        r.update(system="llama.cpp", backend=info.decode() if isinstance(info, bytes) else str(info),
                 version=getattr(llama_cpp, "__version__", "?"), module=os.path.dirname(llama_cpp.__file__),
                 n_threads=n)
        return r
    if system == "transformers":
        import torch
        import transformers

        r = core.run_suite(lambda: TransformersSession(spec["path"], n, spec["dtype"]), plan)
        cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
        r.update(system="transformers", backend=f"torch {torch.__version__} ({cap}), transformers "
                 f"{transformers.__version__}, {spec['dtype']}", n_threads=torch.get_num_threads())
        return r
    raise ValueError(f"unknown system {system!r}")


def quantize_with_llama_cpp(src: str, dst: str, ftype: int, n_threads: int) -> None:
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = n_threads
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize returned {rc}")


# ===========================================================================
# the parent: build models, schedule runs, print tables


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else "no output"


def run_child(args: List[str], env: dict, timeout: float) -> dict:
    """Runs this file in child mode; returns its result dict or {'error': ...}."""
    cmd = [sys.executable, os.path.abspath(__file__)] + args
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": _last_line(r.stderr) if r.stderr.strip() else f"exit code {r.returncode}"}


class Builder:
    """Random-weight checkpoints and their GGUF files, cached in workdir."""

    def __init__(self, workdir: Path, n_threads: int, rebuild: bool, llama_available: bool):
        self.workdir = workdir
        self.n_threads = n_threads
        self.rebuild = rebuild
        self.llama_available = llama_available
        workdir.mkdir(parents=True, exist_ok=True)

    def hf(self, shape: str) -> Path:
        from make_checkpoint import make_checkpoint

        d = self.workdir / f"{shape}-hf"
        if (d / ".complete").exists() and not self.rebuild:
            return d
        n_embd, n_layer, n_head, n_inner, vocab, n_pos = SHAPES[shape]
        tmp = self.workdir / f"{shape}-hf.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"building the {shape} checkpoint (random weights, float16) in {d}")
        make_checkpoint(str(tmp), n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_inner=n_inner,
                        vocab_size=vocab, n_positions=n_pos, dtype="float16")
        (tmp / ".complete").write_text("")
        shutil.rmtree(d, ignore_errors=True)
        os.replace(tmp, d)
        return d

    def gguf(self, shape: str, typ: str):
        """Returns (path or None, provenance or reason it is missing)."""
        out = self.workdir / f"{shape}-{typ}.gguf"
        meta = out.with_name(out.name + ".json")
        if out.exists() and meta.exists() and not self.rebuild:
            return out, json.loads(meta.read_text())["made_by"]
        if shape in DIRECT_SHAPES:
            return self.direct_gguf(shape, typ, out, meta)
        hf = self.hf(shape)
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        attempts = []

        def done(made_by):
            os.replace(tmp, out)
            meta.write_text(json.dumps({"made_by": made_by}))
            log(f"  {out.name}: {out.stat().st_size / 1e6:.0f} MB, made by {made_by}")
            return out, made_by

        log(f"converting {shape} to {typ}")
        try:
            from starcoder_cpp.convert import convert_checkpoint

            convert_checkpoint(str(hf), str(tmp), out_type=typ, progress=False)
            return done("starcoder-cpp convert")
        except Exception as e:  # noqa: BLE001 - a type the converter cannot make yet
            attempts.append(f"convert: {_short(e)}")
        if typ != "f16":
            f16, why = self.gguf(shape, "f16")
            if f16 is not None:
                try:
                    from starcoder_cpp.quantize import quantize_gguf

                    quantize_gguf(str(f16), str(tmp), typ, n_threads=self.n_threads)
                    return done("starcoder-cpp quantize")
                except Exception as e:  # noqa: BLE001
                    attempts.append(f"quantize: {_short(e)}")
                if self.llama_available:
                    r = run_child(["--quantize-with-llama-cpp", str(f16), str(tmp), str(TYPES[typ][1]),
                                   str(self.n_threads)], dict(os.environ), 3600)
                    if "error" not in r and tmp.exists():
                        return done("llama.cpp quantize (starcoder-cpp could not: " + "; ".join(attempts) + ")")
                    attempts.append(f"llama.cpp quantize: {r.get('error')}")
        for p in (tmp,):
            if p.exists():
                p.unlink()
        return None, "; ".join(attempts)

    def direct_gguf(self, shape: str, typ: str, out: Path, meta: Path):
        """A shape too large for a float checkpoint: random blocks written
        straight into the GGUF file (tools/make_random_gguf.py)."""
        from make_random_gguf import make_random_gguf

        if typ == "f16":
            return None, f"the {shape} shape is written from random quantized blocks only (F16 needs float weights)"
        log(f"writing {shape} {typ} from random blocks")
        made_by = "tools/make_random_gguf.py (random blocks)"
        make_random_gguf(out, shape, typ)
        meta.write_text(json.dumps({"made_by": made_by}))
        log(f"  {out.name}: {out.stat().st_size / 1e6:.0f} MB, made by {made_by}")
        return out, made_by


def shape_dims(shape: str):
    """(n_embd, n_layer, n_head, n_inner, vocab_size, n_positions) of a
    checkpoint shape or a directly written one."""
    return SHAPES[shape] if shape in SHAPES else DIRECT_SHAPES[shape]


def _short(e: BaseException) -> str:
    s = f"{type(e).__name__}: {e}".splitlines()[0]
    return s[:140]


def warm_page_cache(path: Path) -> None:
    paths = [p for p in path.iterdir() if p.is_file()] if path.is_dir() else [path]
    for p in paths:
        with open(p, "rb") as f:
            while f.read(16 << 20):
                pass


def hf_bytes_per_token(hf_dir: Path, bytes_per_weight: int) -> int:
    """Bytes of weights one decode step reads (2-D weights and the tied
    head) at bytes_per_weight (2 for bf16, 4 for fp32), from the
    safetensors headers."""
    total = 0
    tied_wte = 0
    has_head = False
    for f in sorted(hf_dir.glob("*.safetensors")):
        with open(f, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        for name, t in header.items():
            if name == "__metadata__" or len(t["shape"]) < 2:
                continue
            nbytes = bytes_per_weight
            for d in t["shape"]:
                nbytes *= d
            if name.endswith("wte.weight"):
                tied_wte = nbytes
            elif name.endswith("wpe.weight"):
                continue
            else:
                has_head |= name.startswith("lm_head")
                total += nbytes
    return total + (0 if has_head else tied_wte)


def probe_backend(env: dict) -> str:
    code = "import starcoder_cpp; print(starcoder_cpp.Model('demo', n_ctx=16, n_threads=1).info()['backend'])"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return r.stdout.strip() if r.returncode == 0 else f"? ({_last_line(r.stderr)})"


# --------------------------------------------------------------------------
# the compute roofline: this CPU, its peaks, the arithmetic of a prompt

# /proc/cpuinfo flags that decide which instructions prompt kernels can use
ISA_FLAGS = {"x86": ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                     "amx_bf16"),
             "arm": ("asimd", "asimddp", "i8mm", "bf16", "sve")}


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The first processor of /proc/cpuinfo: model name, its family/model
    numbers and which ISA_FLAGS it has (empty fields where not Linux)."""
    fields: Dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break  # the first processor is enough
                    continue
                k, _, v = line.partition(":")
                fields.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    if "flags" in fields:  # x86
        have = set(fields["flags"].split())
        ids = ", ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields)
        isa = {f: f in have for f in ISA_FLAGS["x86"]}
    else:  # aarch64 says Features and its implementer/part numbers
        have = set(fields.get("Features", "").split())
        ids = ", ".join(f"{k} {fields[k]}" for k in ("CPU implementer", "CPU part", "CPU variant") if k in fields)
        isa = {f: f in have for f in ISA_FLAGS["arm"]} if have else {}
    return {"model": fields.get("model name") or fields.get("Model") or platform.processor() or "?", "ids": ids,
            "isa": isa}


PEAK_RATES = ("fp32_gflops", "int8_gops", "bf16_gflops")


# transformers' dtypes: torch's name and bytes per weight
HF_DTYPES = {"bf16": ("bfloat16", 2), "fp32": ("float32", 4)}


def hf_dtype(isa: dict) -> str:
    """transformers' dtype on this CPU: bf16 where it multiplies bf16 in
    hardware (AVX512_BF16 or AMX on x86, BF16 on ARM: what oneDNN uses),
    else fp32. Without that hardware torch widens every bf16 matmul to
    float32 on the fly: on a Zen 3 (AVX2 only) its tiny_starcoder_py prompt
    ran at 9% of the fp32 bound and one 1B-shape suite took over 6 minutes,
    a peer far slower than the same library in float32."""
    return "bf16" if any(isa.get(f) for f in ("avx512_bf16", "amx_bf16", "bf16")) else "fp32"


def median_peaks(rounds: List[dict]) -> Optional[dict]:
    """Each rate's median over the rounds (None where a level has no such
    kernel); the level and instruction names of the first round."""
    if not rounds:
        return None
    out = dict(rounds[0])
    for k in PEAK_RATES:
        vals = [r[k] for r in rounds if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
    out["rounds"] = len(rounds)
    return out


def compute_bound(ops: Optional[dict], n_tokens: int, int8_gops: Optional[float],
                  float_gflops: Optional[float]) -> Optional[float]:
    """Prompt tokens per second if every weight multiply ran at its peak:
    n_tokens / (int8 ops / int8 peak + float ops / float peak). None when an
    operation's peak is not known."""
    if not ops:
        return None
    seconds = 0.0
    for n_ops, peak in ((ops["int8"], int8_gops), (ops["float"], float_gflops)):
        if n_ops:
            if not peak:
                return None
            seconds += n_ops / (peak * 1e9)
    return n_tokens / seconds if seconds > 0 else None


def _ops_text(n: float) -> str:
    return f"{n / 1e9:.2f} GOP" if n >= 1e8 else f"{n / 1e6:.2f} MOP"


def _peak_text(p: Optional[dict], key: str, unit: str, instruction_key: str) -> str:
    if p is None or p.get(key) is None:
        return "n/a"
    return f"{p[key]:.0f} {unit} ({p[instruction_key]})"


# --------------------------------------------------------------------------
# statistics and formatting

METRICS = [  # key, label, higher is better, format
    ("prompt_tps", "prompt tok/s ({prompt_tokens} tokens)", True, "{:.1f}"),
    ("decode_tps", "decode tok/s ({decode_tokens} after {decode_prompt_tokens})", True, "{:.2f}"),
    ("long_decode_tps", "decode tok/s at {long_context} context", True, "{:.2f}"),
    ("ttft_s", "time to first token, {fim_tokens}-token FIM prompt (s)", False, "{:.3f}"),
    ("load_s", "load (s)", False, "{:.3f}"),
    ("peak_rss_mb", "peak RSS (MB)", False, "{:.0f}"),
]


def stats(values: List[float]):
    if not values:
        return None
    med = statistics.median(values)
    spread = (max(values) - min(values)) / 2 / med if med and len(values) > 1 else None
    return med, spread, len(values)


def cell(runs: Optional[list], key: str, fmt: str, bound: Optional[float],
         compute: Optional[float] = None) -> str:
    """A table cell: median, spread, and for decode the fraction of the
    bandwidth bound `bound`, for prompts the fraction of the compute bound."""
    if runs is None:
        return "—"
    if isinstance(runs, str):
        return runs
    s = stats([r[key] for r in runs])
    if s is None:
        return "—"
    med, spread, _ = s
    text = fmt.format(med)
    if spread is not None:
        text += f" ±{100 * spread:.0f}%"
    if bound and key.endswith("decode_tps"):
        text += f" ({100 * med / bound:.0f}% of bandwidth bound)"
    if compute and key == "prompt_tps":
        text += f" ({100 * med / compute:.0f}% of compute bound)"
    return text


def ratio(ours, peer, key: str, higher_better: bool) -> str:
    if not isinstance(ours, list) or not isinstance(peer, list) or not ours or not peer:
        return "—"
    a = statistics.median([r[key] for r in ours])
    b = statistics.median([r[key] for r in peer])
    if a <= 0 or b <= 0:
        return "—"
    return f"×{(a / b if higher_better else b / a):.2f}"


def na(reason: str) -> str:
    reason = reason.replace("|", "/").replace("\n", " ")
    return f"n/a: {reason[:150]}"


def _file_note(path: Optional[Path], made_by: str, bpt: Optional[int]) -> str:
    if path is None:
        return f"file: n/a ({made_by})"
    return (f"file {path.name}, {path.stat().st_size / 1e6:.0f} MB (made by {made_by}); "
            f"weights read per token {bpt / 1e6:.0f} MB" if bpt else f"file {path.name}")


# ===========================================================================


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="tiny_starcoder_py,1b",
                    help="comma list (tools/make_checkpoint.py SHAPES, or DIRECT_SHAPES such as 15b: random quantized blocks)")
    ap.add_argument("--types", default="f16,q8_0,q4_0,q4_k_m", help=f"comma list of {', '.join(TYPES)}")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every system")
    ap.add_argument("--repeat", type=int, default=None, help="rounds; cells are medians (default 3; 1 with --quick)")
    ap.add_argument("--peers", default="llama_cpp,transformers", help="comma list of llama_cpp, transformers "
                    "(empty: this project only)")
    ap.add_argument("--tiers", default="this,laptop", help="this (best kernels), laptop (AVX2 only)")
    ap.add_argument("--llama-cpp-avx2-path", default=None, metavar="DIR",
                    help="a directory holding a llama_cpp package built for AVX2/FMA only (laptop tier); "
                         f"build one with: {AVX2_BUILD_HINT}")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny_starcoder_py, f16, fewer tokens")
    ap.add_argument("--out", default=None, help="also write the markdown report here")
    ap.add_argument("--raw", default=None, help="write every run's numbers here as JSON")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "starcoder-cpp-bench-peers"),
                    help="cache of built checkpoints and GGUF files (default: %(default)s)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild cached checkpoints and GGUF files")
    ap.add_argument("--matmul-precision", choices=("f32", "bf16"), default="f32",
                    help="this project's products of F16/BF16 weights in prompts (Model(matmul_precision=...); "
                         "bf16 where the CPU has AVX512_BF16, as transformers' bf16)")
    ap.add_argument("--child-timeout", type=float, default=3600, help="seconds one system's run may take")
    for name, default in (("prompt-tokens", 512), ("decode-prompt-tokens", 128), ("decode-tokens", 128),
                          ("fim-tokens", 2048), ("long-context", 4096), ("long-decode-tokens", 32)):
        ap.add_argument(f"--{name}", type=int, default=None, help=f"default {default}")
    # internal modes
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quantize-with-llama-cpp", nargs=4, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--peaks", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.peaks is not None:  # this project's child: its native library measures the CPU
        from starcoder_cpp import _core

        print("RESULT " + json.dumps(_core.cpu_peaks(args.peaks)), flush=True)
        return 0

    if args.child is not None:
        print("RESULT " + json.dumps(child_main(json.loads(args.child))), flush=True)
        return 0
    if args.quantize_with_llama_cpp is not None:
        src, dst, ftype, n = args.quantize_with_llama_cpp
        quantize_with_llama_cpp(src, dst, int(ftype), int(n))
        print("RESULT {}", flush=True)
        return 0
    return run_benchmark(args)


def run_benchmark(args) -> int:
    core = load_core_bench()
    shapes = ["tiny_starcoder_py"] if args.quick else [s for s in args.shapes.split(",") if s]
    types = ["f16"] if args.quick else [t.lower() for t in args.types.split(",") if t]
    for s in shapes:
        if s not in SHAPES and s not in DIRECT_SHAPES:
            sys.exit(f"bench.py: unknown shape {s!r}; choose from {', '.join([*SHAPES, *DIRECT_SHAPES])}")
    for t in types:
        if t not in TYPES:
            sys.exit(f"bench.py: unknown type {t!r}; choose from {', '.join(TYPES)}")
    peers = [p for p in args.peers.split(",") if p]
    for p in peers:
        if p not in PEERS:
            sys.exit(f"bench.py: unknown peer {p!r}; choose from {', '.join(PEERS)}")
    tiers = [t for t in args.tiers.split(",") if t]
    for t in tiers:
        if t not in TIERS:
            sys.exit(f"bench.py: unknown tier {t!r}; choose from {', '.join(TIERS)}")
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        sys.exit("bench.py: --repeat must be >= 1")
    base = core.QUICK if args.quick else core.BenchConfig()
    cfg = core.BenchConfig(**{k: (getattr(args, k) if getattr(args, k, None) is not None else v)
                              for k, v in vars(base).items()})
    try:
        cfg.check()
    except ValueError as e:
        sys.exit(f"bench.py: {e}")
    n = args.threads
    core.raise_priority(-5)

    # --- what can run ------------------------------------------------------
    llama_installed = importlib.util.find_spec("llama_cpp") is not None
    transformers_installed = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    hf_kind = hf_dtype(cpu_description()["isa"])
    base_env = dict(os.environ, OMP_NUM_THREADS=str(n))
    base_env.pop("STARCODER_CPU", None)
    avx2_env = dict(base_env, STARCODER_CPU="avx2")
    best_backend = probe_backend(base_env)
    avx2_backend = probe_backend(avx2_env) if "laptop" in tiers else None
    avx2_path = os.path.abspath(args.llama_cpp_avx2_path) if args.llama_cpp_avx2_path else None
    if avx2_path and not (Path(avx2_path) / "llama_cpp").is_dir():
        sys.exit(f"bench.py: --llama-cpp-avx2-path {avx2_path} holds no llama_cpp package")
    if avx2_path and "laptop" in tiers:
        n_zmm = avx512_instructions_in(avx2_path)
        if n_zmm:
            sys.exit(f"bench.py: the llama.cpp in {avx2_path} has {n_zmm} AVX-512 instructions: not an AVX2 "
                     f"build (pip may have reused a cached native wheel); build one with: {AVX2_BUILD_HINT}")

    # systems: key -> (label, kind, env, llama_path)
    systems: Dict[str, tuple] = {}
    notes: List[str] = []
    if "this" in tiers:
        systems["ours"] = ("starcoder-cpp", "starcoder-cpp", base_env, None)
        if "llama_cpp" in peers:
            systems["llama"] = ("llama.cpp", "llama.cpp", base_env, None)
        if "transformers" in peers:
            systems["hf"] = (f"transformers {hf_kind}", "transformers", base_env, None)
    if "laptop" in tiers:
        if avx2_backend == best_backend and "ours" in systems:
            notes.append(f"laptop tier: this project's best level here is already {best_backend}, so its "
                         f"runs are shared with the 'this machine' tier.")
        else:
            systems["ours_avx2"] = ("starcoder-cpp (STARCODER_CPU=avx2)", "starcoder-cpp", avx2_env, None)
        if "llama_cpp" in peers:
            if avx2_path:
                systems["llama_avx2"] = ("llama.cpp (AVX2 build)", "llama.cpp", base_env, avx2_path)
            else:
                notes.append("laptop tier: the llama.cpp column is unavailable: no AVX2/FMA-only build was "
                             f"given. Build one with `{AVX2_BUILD_HINT}` and pass --llama-cpp-avx2-path DIR.")
    # compute peaks, per tier, at the level that tier's starcoder-cpp runs
    peak_envs: Dict[str, dict] = {}
    if "this" in tiers:
        peak_envs["this"] = base_env
    if "laptop" in tiers and not ("this" in tiers and avx2_backend == best_backend):
        peak_envs["laptop"] = avx2_env
    if "llama_cpp" in peers and not llama_installed:
        notes.append("llama.cpp: not installed (CC=clang CXX=clang++ pip install llama-cpp-python)")
    if "transformers" in peers and not transformers_installed:
        notes.append("transformers: torch or transformers is not installed")

    # --- models -------------------------------------------------------------
    workdir = Path(args.workdir)
    builder = Builder(workdir, n, args.rebuild, llama_installed)
    files: Dict[tuple, tuple] = {}   # (shape, type) -> (path|None, made_by|reason)
    bpt: Dict[tuple, Optional[int]] = {}
    hf_dirs: Dict[str, Optional[Path]] = {}
    for shape in shapes:
        hf_dirs[shape] = None if shape in DIRECT_SHAPES else builder.hf(shape)
        for typ in types:
            path, why = builder.gguf(shape, typ)
            files[(shape, typ)] = (path, why)
            bpt[(shape, typ)] = core.decode_bytes_per_token(path) if path else None
        bpt[(shape, "hf")] = (hf_bytes_per_token(hf_dirs[shape], HF_DTYPES[hf_kind][1])
                              if hf_dirs[shape] else None)

    plan_cache: Dict[str, Path] = {}

    def plan_for(shape: str) -> Path:
        if shape not in plan_cache:
            vocab = shape_dims(shape)[4]
            p = workdir / f"plan-{shape}-{os.getpid()}.json"
            p.write_text(json.dumps(core.make_plan(cfg, (1, 3, 2), vocab)))  # StarCoder's FIM token ids
            plan_cache[shape] = p
        return plan_cache[shape]

    # --- runs ---------------------------------------------------------------
    # results[(system key, shape, type or None)] = list of run dicts, or an "n/a: ..." string
    results: Dict[tuple, object] = {}
    raw: List[dict] = []
    bandwidths: List[dict] = []
    peak_rounds: Dict[str, List[dict]] = {t: [] for t in peak_envs}
    peak_errors: Dict[str, str] = {}
    load_avg = [os.getloadavg()]
    t_start = time.time()

    def job_list(shape: str, rnd: int):
        jobs = []
        for typ in types:
            pair = [k for k in ("ours", "llama", "ours_avx2", "llama_avx2") if k in systems]
            jobs.append([(k, typ) for k in pair])
        groups = [g for g in jobs if g]
        if "hf" in systems:
            groups.insert(0, [("hf", None)])
        if rnd % 2:  # ABAB: flip the order every round
            groups = [list(reversed(g)) for g in reversed(groups)]
        return [j for g in groups for j in g]

    for rnd in range(repeat):
        log(f"round {rnd + 1}/{repeat}: memory bandwidth")
        try:
            bandwidths.append(core.measure_bandwidth(n))
        except Exception as e:  # noqa: BLE001
            log(f"  bandwidth measurement failed: {_short(e)}")
        for tier, env in peak_envs.items():
            log(f"round {rnd + 1}/{repeat}: compute peaks, {tier} tier")
            r = run_child(["--peaks", str(n)], env, 300)
            if "error" in r:
                log(f"  peak measurement failed: {r['error']}")
                peak_errors[tier] = r["error"]
            else:
                log(f"  {r['level']}: fp32 {r['fp32_gflops']:.0f} GFLOP/s, int8 "
                    + (f"{r['int8_gops']:.0f} GOP/s" if r.get("int8_gops") else "n/a") + ", bf16 "
                    + (f"{r['bf16_gflops']:.0f} GFLOP/s" if r.get("bf16_gflops") else "n/a"))
                peak_rounds[tier].append(r)
        for shape in shapes:
            warmed = set()
            for key, typ in job_list(shape, rnd):
                label, kind, env, llama_path = systems[key]
                rkey = (key, shape, typ)
                if isinstance(results.get(rkey), str):
                    continue  # failed before: the same reason holds
                if kind == "transformers":
                    if not transformers_installed:
                        results[rkey] = na("torch/transformers not installed")
                        continue
                    target = hf_dirs[shape]
                    if target is None:
                        results[rkey] = na(f"no float checkpoint of the {shape} shape (written from random "
                                           f"quantized blocks)")
                        continue
                else:
                    if kind == "llama.cpp" and not (llama_installed or llama_path):
                        results[rkey] = na("llama_cpp not installed")
                        continue
                    target, why = files[(shape, typ)]
                    if target is None:
                        results[rkey] = na(f"no {TYPES[typ][0]} file: {why}")
                        continue
                if target not in warmed:
                    warm_page_cache(target)
                    warmed.add(target)
                spec = {"system": kind, "path": str(target), "n_threads": n, "plan": str(plan_for(shape)),
                        "llama_path": llama_path, "dtype": hf_kind, "matmul_precision": args.matmul_precision}
                log(f"  {shape} {typ or hf_kind}: {label}")
                t0 = time.time()
                r = run_child(["--child", json.dumps(spec)], env, args.child_timeout)
                r.update(key=key, shape=shape, type=typ, round=rnd, wall_s=time.time() - t0)
                raw.append(r)
                if "error" in r:
                    log(f"    failed: {r['error']}")
                    results[rkey] = na(r["error"])
                else:
                    log(f"    prompt {r['prompt_tps']:.1f} tok/s, decode {r['decode_tps']:.2f} tok/s, "
                        f"long {r['long_decode_tps']:.2f} tok/s, ttft {r['ttft_s']:.2f} s, "
                        f"load {r['load_s']:.2f} s, rss {r['peak_rss_mb']:.0f} MB ({time.time() - t0:.0f} s)")
                    results.setdefault(rkey, []).append(r)
        load_avg.append(os.getloadavg())

    # --- report -------------------------------------------------------------
    bw = statistics.median([b["read_gbps"] for b in bandwidths]) if bandwidths else None
    peaks = {t: median_peaks(r) for t, r in peak_rounds.items()}
    if "laptop" in tiers and "laptop" not in peak_envs:
        peaks["laptop"] = peaks.get("this")  # the same level: the same runs
    pops = {}  # (shape, type) -> ops of the prompt (ours and llama.cpp), and of transformers
    for (shape, typ), (path, _why) in files.items():
        if path is not None:
            pops[(shape, typ)] = (core.prompt_ops(path, cfg.prompt_tokens),
                                  core.prompt_ops(path, cfg.prompt_tokens, last_token_only=False))
    md = report(args, cfg, shapes, types, systems, results, files, bpt, bw, bandwidths, notes, best_backend,
                avx2_backend, load_avg, time.time() - t_start, repeat, peaks, peak_errors, pops, hf_kind)
    print(md)
    if args.out:
        Path(args.out).write_text(md + "\n")
        log(f"wrote {args.out}")
    if args.raw:
        Path(args.raw).write_text(json.dumps({"runs": raw, "bandwidth": bandwidths, "peaks": peak_rounds,
                                              "config": vars(cfg)}, indent=1))
        log(f"wrote {args.raw}")
    for p in plan_cache.values():
        p.unlink(missing_ok=True)
    return 0


def _first(results, key):
    for (k, _s, _t), v in results.items():
        if k == key and isinstance(v, list) and v:
            return v[0]
    return None


def _hf_peak(peaks: dict, dtype: str):
    """The peak of transformers' matmuls: for bf16 the AVX512_BF16 peak
    where this CPU has it (oneDNN uses it), else (and for fp32) float32 FMA."""
    p = peaks.get("this")
    if not p:
        return None, ""
    if dtype == "bf16" and p.get("bf16_gflops"):
        return p["bf16_gflops"], "bf16"
    return p.get("fp32_gflops"), "fp32 FMA"


def report(args, cfg, shapes, types, systems, results, files, bpt, bw, bandwidths, notes, best_backend,
           avx2_backend, load_avg, elapsed, repeat, peaks, peak_errors, pops, hf_kind) -> str:
    c = vars(cfg)
    out: List[str] = []
    cpu = cpu_description()
    isa = cpu["isa"]
    isa_text = ("; ISA: " + " ".join(f for f, ok in isa.items() if ok)
                + (", no " + "/".join(f for f, ok in isa.items() if not ok) if not all(isa.values()) else "")
                if isa else "")
    out.append("# starcoder-cpp vs peers")
    out.append("")
    out.append(f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}; machine: {cpu['model']}"
               + (f" ({cpu['ids']})" if cpu["ids"] else "") + isa_text
               + f"; {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; threads per system: {args.threads}")
    out.append("- load average at the start / after each round: "
               + ", ".join("/".join(f"{x:.1f}" for x in la) for la in load_avg)
               + f" (a loaded machine makes every number noisy); wall time {elapsed / 60:.1f} min")
    out.append(f"- rounds: {repeat}, systems alternating (order flipped every round); cells: median ±half the "
               f"min–max spread relative to the median; each run is a fresh process")
    out.append(f"- workload: prompt {c['prompt_tokens']} tokens; decode {c['decode_tokens']} tokens after "
               f"{c['decode_prompt_tokens']}; long decode {c['long_decode_tokens']} tokens ending at "
               f"{c['long_context']} positions (after the FIM prompt); FIM prompt {c['fim_tokens']} tokens; "
               f"load = constructor + a 1-token eval, page cache warm; random token ids, the same for all")
    if bw:
        spread = [b["read_gbps"] for b in bandwidths]
        out.append(f"- memory bandwidth (numpy gemv read, best of 1/{args.threads} threads, median of rounds): "
                   f"{bw:.1f} GB/s (rounds: {', '.join(f'{x:.1f}' for x in spread)}); copy "
                   f"{statistics.median([b['copy_gbps'] for b in bandwidths]):.1f} GB/s (read+write). "
                   f"Decode bound = bandwidth / weights read per token (KV cache reads not counted, so the "
                   f"long-context bound is optimistic; a small model's weights partly fit in cache and can beat it)")
    for tier, label in (("this", "this machine"), ("laptop", "laptop tier, STARCODER_CPU=avx2")):
        if tier in peaks or tier in peak_errors:
            p = peaks.get(tier)
            if tier == "laptop" and p is not None and p is peaks.get("this"):
                out.append(f"- compute peaks, {label}: the same kernel level ({p['level']}) as this machine, "
                           f"so the same figures")
                continue
            if p is None:
                out.append(f"- compute peaks, {label}: n/a ({peak_errors.get(tier, 'not measured')})")
                continue
            bf16 = _peak_text(p, "bf16_gflops", "GFLOP/s", "bf16_instruction")
            if bf16 == "n/a":
                bf16 += (" (no AVX512_BF16 on this CPU)" if isa and not isa.get("avx512_bf16", False)
                         else f" (no bf16 kernel at the {p['level']} level)")
            out.append(f"- compute peaks, {label} (kernel level {p['level']}; micro-kernels of the instructions "
                       f"our kernels use, {p['n_threads']} threads, best of 3 × 0.1 s, median of {p['rounds']} "
                       f"round{'s' if p['rounds'] > 1 else ''}): fp32 {_peak_text(p, 'fp32_gflops', 'GFLOP/s', 'fp32_instruction')}; int8 "
                       f"{_peak_text(p, 'int8_gops', 'GOP/s', 'int8_instruction')}; bf16 {bf16}")
    hf_peak, hf_peak_kind = _hf_peak(peaks, hf_kind)
    if peaks:
        attention_share = []  # attention ops / weight ops, per shape (the same for every type)
        for shape in shapes:
            ops = next((o for (s2, _t), (o, _hf) in pops.items() if s2 == shape), None)
            if ops and ops["int8"] + ops["float"]:
                attention_share.append(f"{100 * ops['attention'] / (ops['int8'] + ops['float']):.0f}% ({shape})")
        out.append(f"- Prompt compute bound = prompt tokens / Σ over weight matrices of rows × 2·n_in·n_out / "
                   f"peak (int8 peak for quantized weights; fp32 FMA peak for F16/BF16/F32 weights, which our "
                   f"prompt path converts to f32"
                   + ("; with --matmul-precision bf16, the bf16 peak for F16/BF16 weights on the 'this machine' "
                      "tier, for every system's percentage" if args.matmul_precision == "bf16" else "")
                   + f"). Rows: every prompt token, but the last block after attention "
                   f"and the LM head run on the last token only (its logits are all that is wanted), as in this "
                   f"project and llama.cpp; transformers: every token through every block, at the "
                   f"{hf_peak_kind or '?'} peak. Attention (QKᵀ and PV, float) is not counted: it would add "
                   f"{', '.join(attention_share) or '?'} to the weight ops at {c['prompt_tokens']} tokens")
    out.append(f"- starcoder-cpp kernels: best {best_backend}" + (f", STARCODER_CPU=avx2 → {avx2_backend}"
                                                                  if avx2_backend else "")
               + f"; matmul_precision {args.matmul_precision}"
               + (f" (in force: {_first(results, 'ours').get('matmul_precision')})"
                  if args.matmul_precision != "f32" and _first(results, "ours") else ""))
    for key in ("llama", "llama_avx2", "hf"):
        r = _first(results, key)
        if r:
            extra = f" {r.get('version', '')} from {r.get('module')}" if key != "hf" else ""
            out.append(f"- {systems[key][0]}{extra}: {r.get('backend', '').strip()}")
    for note in notes:
        out.append(f"- {note}")
    out.append("- ratio columns: ×>1 means starcoder-cpp is better (faster, or less time/memory)")
    out.append("")

    tier_cols = []
    if "ours" in systems:
        cols = [("llama", "llama.cpp")] if "llama" in systems else []
        if "hf" in systems:
            cols.append(("hf", systems["hf"][0]))
        tier_cols.append(("This machine", "ours", cols, "this"))
    if "laptop" in args.tiers.split(","):
        ours_key = "ours_avx2" if "ours_avx2" in systems else "ours"
        if ours_key in systems:
            cols = [("llama_avx2", "llama.cpp (AVX2 build)")]
            tier_cols.append(("Laptop (AVX2 only)", ours_key, cols, "laptop"))

    summary_rows = []
    for tier, ours_key, cols, tier_key in tier_cols:
        p = peaks.get(tier_key) or {}
        out.append(f"## {tier}")
        out.append("")
        for shape in shapes:
            for typ in types:
                path, made_by = files[(shape, typ)]
                b_file = bpt.get((shape, typ))
                b_hf = bpt.get((shape, "hf"))
                bound = bw * 1e9 / b_file if (bw and b_file) else None
                bound_hf = bw * 1e9 / b_hf if (bw and b_hf) else None
                ops, ops_hf = pops.get((shape, typ), (None, None))
                # with --matmul-precision bf16 the float bound is the bf16 peak where the tier has one
                float_peak = (p.get("bf16_gflops") if args.matmul_precision == "bf16" and tier_key == "this"
                              else None) or p.get("fp32_gflops")
                cbound = compute_bound(ops, c["prompt_tokens"], p.get("int8_gops"), float_peak)
                cbound_hf = compute_bound(ops_hf and {"int8": 0, "float": ops_hf["int8"] + ops_hf["float"]},
                                          c["prompt_tokens"], None, hf_peak)
                out.append(f"### {shape}, {TYPES[typ][0]}")
                out.append("")
                out.append(f"{_file_note(path, made_by, b_file)}"
                           + (f"; bandwidth bound {bound:.1f} tok/s" if bound else "")
                           + (f"; prompt compute bound {cbound:.0f} tok/s "
                              f"({_ops_text((ops['int8'] + ops['float']) / c['prompt_tokens'])}/token)"
                              if cbound else "")
                           + (f"; {systems['hf'][0]} reads {b_hf / 1e6:.0f} MB/token, bandwidth bound "
                              f"{bound_hf:.1f} tok/s" + (f", prompt compute bound {cbound_hf:.0f} tok/s"
                                                         if cbound_hf else "")
                              if bound_hf and "hf" in [k for k, _ in cols] else ""))
                out.append("")
                ours = results.get((ours_key, shape, typ))
                if ours_key == "ours" and "ours" not in systems:
                    ours = None
                head = ["metric", systems[ours_key][0]]
                for k, label in cols:
                    head += [label if k in systems else f"{label}", f"vs {label}"]
                out.append("| " + " | ".join(head) + " |")
                out.append("|" + "---|" * len(head))
                for key, label, higher, fmt in METRICS:
                    row = [label.format(**c), cell(ours, key, fmt, bound, cbound)]
                    for k, col_label in cols:
                        if k not in systems:
                            row += ["unavailable" if k == "llama_avx2" else "—", "—"]
                            continue
                        peer = results.get((k, shape, None if k == "hf" else typ))
                        row += [cell(peer, key, fmt, bound_hf if k == "hf" else bound,
                                     cbound_hf if k == "hf" else cbound),
                                ratio(ours, peer, key, higher)]
                    out.append("| " + " | ".join(row) + " |")
                out.append("")
                for k, col_label in cols:
                    if k in systems:
                        peer = results.get((k, shape, None if k == "hf" else typ))
                        summary_rows.append((tier, shape, TYPES[typ][0], col_label,
                                             [ratio(ours, peer, key, higher) for key, _l, higher, _f in METRICS]))
    if summary_rows:
        out.append("## Summary: starcoder-cpp's advantage (×>1: starcoder-cpp better)")
        out.append("")
        out.append("| tier | shape | type | vs | prompt | decode | decode @" + str(c["long_context"])
                   + " | TTFT | load | peak RSS |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for tier, shape, typ, peer, ratios in summary_rows:
            out.append(f"| {tier} | {shape} | {typ} | {peer} | " + " | ".join(ratios) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
