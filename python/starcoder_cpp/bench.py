"""Speed and memory measurements of one GGUF model in this runtime.

    starcoder-cpp bench -m model.gguf [--threads N] [--prompt-tokens 512] [--decode-tokens 128]

What is measured (``run_suite``), in this order, in one process:

* load: the model constructor plus one 1-token evaluation (files that are
  memory-mapped are paged in lazily, so the constructor alone would flatter
  them), page cache assumed warm;
* prompt: tokens per second evaluating a ``prompt_tokens``-token prompt into an
  empty cache (batched, ``n_batch`` 512);
* decode: tokens per second generating ``decode_tokens`` tokens one at a time
  (greedy, each fed back) after a ``decode_prompt_tokens``-token prompt;
* TTFT: seconds from an empty cache to the first generated token of a
  ``fim_tokens``-token fill-in-the-middle prompt (token ids given, so
  tokenization is not included);
* long decode: tokens per second generating ``long_decode_tokens`` tokens
  whose positions end at ``long_context`` (the FIM prompt above stays in the
  cache and is topped up with filler tokens first);
* peak RSS: the process's peak resident set size at the end (VmHWM; see peak_rss_mb).

Prompts are random token ids (fixed seed), the same for every system, so the
measurements do not depend on a tokenizer. The measuring procedures only need a
*session* object with ``reset()`` (empty the KV cache) and ``eval(ids)``
(evaluate after the cached tokens, return the last position's logits as a
numpy vector): ``tools/bench.py`` runs the very same procedures on llama.cpp
and Hugging Face transformers sessions.

This module imports the native core lazily (only ``StarcoderSession`` needs
it), so a process that must not load it can import this module from the
source tree without the package's ``__init__`` (as ``tools/bench.py`` does).

A timing describes this machine at that moment; repeat runs in fresh processes
and take medians to compare systems.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

__all__ = [
    "BenchConfig",
    "QUICK",
    "make_plan",
    "run_suite",
    "measure_load",
    "measure_prompt",
    "measure_decode",
    "measure_ttft",
    "measure_long_decode",
    "StarcoderSession",
    "bench_model",
    "peak_rss_mb",
    "current_rss_mb",
    "raise_priority",
    "gguf_context_length",
    "fit_config",
    "decode_bytes_per_token",
    "prompt_ops",
    "measure_bandwidth",
    "format_report",
]


# --------------------------------------------------------------------------
# configuration and prompts


@dataclass
class BenchConfig:
    """Token counts of one benchmark run (defaults: issue 5's workload)."""

    prompt_tokens: int = 512          # prompt throughput
    decode_prompt_tokens: int = 128   # prompt before the decode measurement
    decode_tokens: int = 128          # decode throughput
    fim_tokens: int = 2048            # time to first token of a FIM prompt
    long_context: int = 4096          # decode throughput at this context ...
    long_decode_tokens: int = 32      # ... over this many tokens ending there
    seed: int = 0

    def check(self) -> None:
        for k, v in asdict(self).items():
            if k != "seed" and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{k} must be a positive int, got {v!r}")
        if self.fim_tokens < 5:
            raise ValueError("fim_tokens must be >= 5")
        if self.long_context < self.fim_tokens + self.long_decode_tokens:
            raise ValueError("long_context must be >= fim_tokens + long_decode_tokens "
                             "(the long decode continues after the FIM prompt)")

    @property
    def n_ctx(self) -> int:
        """Context size every system is given."""
        return max(self.long_context, self.prompt_tokens, self.decode_prompt_tokens + self.decode_tokens + 1)


# A smoke-run workload: same measurements, a few seconds on a small model.
QUICK = BenchConfig(prompt_tokens=128, decode_prompt_tokens=32, decode_tokens=32, fim_tokens=512,
                    long_context=1024, long_decode_tokens=16)


def _random_ids(n: int, rng: np.random.Generator, n_vocab: int) -> List[int]:
    hi = min(40000, n_vocab)  # ordinary (non-special) tokens of StarCoder's vocabulary
    lo = min(100, hi - 1)
    return rng.integers(lo, hi, size=n).tolist()


def make_plan(cfg: BenchConfig, fim_ids: Sequence[int] = (1, 3, 2), n_vocab: int = 49152) -> dict:
    """The token ids of every measurement, deterministic in cfg.seed.

    fim_ids: the ids of <fim_prefix>, <fim_suffix>, <fim_middle> (StarCoder's
    vocabulary: 1, 3, 2). Returns a JSON-serialisable dict.
    """
    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    pre, suf, mid = (int(x) for x in fim_ids)
    body = cfg.fim_tokens - 3
    n_prefix = body * 3 // 4  # the cursor three quarters into the file
    fim = [pre] + _random_ids(n_prefix, rng, n_vocab) + [suf] + _random_ids(body - n_prefix, rng, n_vocab) + [mid]
    return {
        "config": asdict(cfg),
        "n_ctx": cfg.n_ctx,
        "warm": _random_ids(1, rng, n_vocab),
        "prompt": _random_ids(cfg.prompt_tokens, rng, n_vocab),
        "decode_prompt": _random_ids(cfg.decode_prompt_tokens, rng, n_vocab),
        "decode_tokens": cfg.decode_tokens,
        "fim": fim,
        "long_fill": _random_ids(cfg.long_context - cfg.long_decode_tokens - len(fim), rng, n_vocab),
        "long_decode_tokens": cfg.long_decode_tokens,
    }


# --------------------------------------------------------------------------
# process helpers


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (1e6 bytes).

    On Linux this is VmHWM from /proc/self/status: getrusage's ru_maxrss
    would do in a process that was not started by a bigger one, but Linux
    carries the parent's peak across fork + exec into the child's
    ru_maxrss, so a benchmark child would report at least its parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6  # kB
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1e6 if sys.platform == "darwin" else r * 1024 / 1e6  # bytes on macOS, KiB elsewhere


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return float("nan")


def raise_priority(nice: int = -5) -> bool:
    """Asks for a higher CPU share for this process's autogroup (Linux; needs
    privileges to go below 0). Returns whether it worked; never raises."""
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# the measuring procedures (any session with reset() and eval(ids) -> logits)


def _next_token(logits) -> int:
    return int(np.argmax(logits))


def measure_load(factory: Callable[[], object], warm_ids: Sequence[int]):
    """Returns (session, seconds): the constructor plus a first evaluation."""
    t0 = time.perf_counter()
    session = factory()
    session.reset()
    session.eval(list(warm_ids))
    dt = time.perf_counter() - t0
    session.reset()
    return session, dt


def measure_prompt(session, ids: Sequence[int]) -> float:
    """Prompt tokens per second, evaluating ids into an empty cache."""
    ids = list(ids)
    session.reset()
    t0 = time.perf_counter()
    session.eval(ids)
    dt = time.perf_counter() - t0
    return len(ids) / dt


def _decode_loop(session, logits, n: int) -> float:
    tok = _next_token(logits)
    t0 = time.perf_counter()
    for _ in range(n):
        tok = _next_token(session.eval([tok]))
    return n / (time.perf_counter() - t0)


def measure_decode(session, prompt_ids: Sequence[int], n: int) -> float:
    """Tokens per second generating n tokens one by one (greedy, each fed
    back) after prompt_ids; the prompt itself is not timed."""
    session.reset()
    logits = session.eval(list(prompt_ids))
    return _decode_loop(session, logits, n)


def measure_ttft(session, ids: Sequence[int]):
    """Returns (seconds to the first token from an empty cache, logits)."""
    ids = list(ids)
    session.reset()
    t0 = time.perf_counter()
    logits = session.eval(ids)
    _next_token(logits)
    return time.perf_counter() - t0, logits


def measure_long_decode(session, fill_ids: Sequence[int], n: int) -> float:
    """Tokens per second decoding n tokens after the cache (not reset) is
    topped up with fill_ids (untimed)."""
    if not len(fill_ids):
        raise ValueError("measure_long_decode needs filler tokens")
    return _decode_loop(session, session.eval(list(fill_ids)), n)


def run_suite(factory: Callable[[], object], plan: dict) -> dict:
    """Every measurement of the plan on a session made by factory()."""
    rss_before = current_rss_mb()
    session, load_s = measure_load(factory, plan["warm"])
    prompt = measure_prompt(session, plan["prompt"])
    decode = measure_decode(session, plan["decode_prompt"], plan["decode_tokens"])
    ttft, _ = measure_ttft(session, plan["fim"])
    long_decode = measure_long_decode(session, plan["long_fill"], plan["long_decode_tokens"])
    return {
        "load_s": load_s,
        "prompt_tps": prompt,
        "decode_tps": decode,
        "ttft_s": ttft,
        "long_decode_tps": long_decode,
        "long_context": len(plan["fim"]) + len(plan["long_fill"]) + plan["long_decode_tokens"],
        "rss_before_load_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }


# --------------------------------------------------------------------------
# this runtime


class StarcoderSession:
    """A starcoder_cpp.Model behind the session interface."""

    def __init__(self, path, n_ctx: int, n_threads: Optional[int] = None, n_batch: int = 512,
                 matmul_precision: str = "f32"):
        from starcoder_cpp.model import Model  # lazy: see the module docstring

        self.model = Model(path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, matmul_precision=matmul_precision)

    def reset(self) -> None:
        self.model.reset()

    def eval(self, ids):
        return self.model.eval(ids)


def _fim_ids_of(path) -> tuple:
    from starcoder_cpp.model import Tokenizer

    tok = Tokenizer(path)
    ids = tuple(tok.token_id(t) for t in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"))
    if min(ids) < 0:
        ids = (1, 3, 2)  # a vocabulary without FIM tokens: any ids will do for timing
    return ids, tok.n_vocab


def bench_model(path, n_threads: Optional[int] = None, config: Optional[BenchConfig] = None,
                plan: Optional[dict] = None, matmul_precision: str = "f32") -> dict:
    """Runs the suite on a GGUF model in this process. Returns the metrics
    (see run_suite) plus backend, threads, matmul precision and the model's shape."""
    from starcoder_cpp.model import _resolve_path

    path = _resolve_path(path)
    if plan is None:
        cfg = fit_config(config or BenchConfig(), gguf_context_length(path))
        fim, n_vocab = _fim_ids_of(path)
        plan = make_plan(cfg, fim, n_vocab)
    holder = {}

    def factory():
        holder["s"] = StarcoderSession(path, n_ctx=plan["n_ctx"], n_threads=n_threads,
                                       matmul_precision=matmul_precision)
        return holder["s"]

    out = run_suite(factory, plan)
    info = holder["s"].model.info()
    out.update(system="starcoder-cpp", backend=info.get("backend"), n_threads=info.get("n_threads"),
               matmul_precision=info.get("matmul_precision"),
               model=path, tensor_types=info.get("tensor_types"), config=plan.get("config"))
    return out


# --------------------------------------------------------------------------
# weights read per token, and memory bandwidth

def gguf_context_length(path) -> Optional[int]:
    from .gguf_header import read_gguf_header  # here: the --bandwidth child runs this file as a script

    head = read_gguf_header(path)
    arch = head.get("general.architecture", "starcoder")
    v = head.get(f"{arch}.context_length")
    return int(v) if v is not None else None


def fit_config(cfg: BenchConfig, n_ctx_max: Optional[int]) -> BenchConfig:
    """cfg with its contexts shrunk to fit a model of n_ctx_max positions."""
    if not n_ctx_max or cfg.n_ctx <= n_ctx_max:
        return cfg
    c = BenchConfig(**asdict(cfg))
    c.prompt_tokens = min(c.prompt_tokens, n_ctx_max)
    c.decode_tokens = min(c.decode_tokens, n_ctx_max // 2)
    c.decode_prompt_tokens = min(c.decode_prompt_tokens, n_ctx_max - c.decode_tokens - 1)
    c.long_context = n_ctx_max
    c.long_decode_tokens = min(c.long_decode_tokens, n_ctx_max // 4)
    c.fim_tokens = min(c.fim_tokens, n_ctx_max - c.long_decode_tokens - 1)
    return c


def decode_bytes_per_token(path) -> int:
    """Bytes of weights one decode step reads: every matrix of every block and
    the output head (the token embedding when it is tied); the embedding
    lookups read one row each and are left out, as is the KV cache."""
    from .gguf_header import read_gguf_header

    tensors = {t.name: t for t in read_gguf_header(path).tensors}
    total = 0
    for name, t in tensors.items():
        if name in ("token_embd.weight", "position_embd.weight"):
            continue
        if len(t.ne) >= 2:
            total += t.nbytes
    if "output.weight" not in tensors and "token_embd.weight" in tensors:
        total += tensors["token_embd.weight"].nbytes
    return total


_FLOAT_WEIGHTS = ("F32", "F16", "BF16")  # the prompt path converts these to f32 and multiplies with FMA


def prompt_ops(path, n_tokens: int, last_token_only: bool = True) -> dict:
    """Arithmetic of one n_tokens prompt into an empty cache, in ops (2 per
    multiply-add), for reading prompt throughput against compute peaks.

    Weight matrices (every 2-D tensor of a block, and the LM head: the output
    matrix or the tied token embedding) cost 2 * n_in * n_out per row they
    are applied to. Rows: every prompt token, except that, as in this runtime
    and llama.cpp, only the last token's logits are wanted, so the last
    block's attention output projection and MLP, and the LM head, run on one
    row (last_token_only=False: every row through every block, as
    transformers does, and still one row through the head). Returns
    {"int8": ops on quantized weights (the integer dot products), "float":
    ops on F32/F16/BF16 weights (float FMA), "attention": causal QK^T and PV
    ops, 2 * n_embd * n_tokens * (n_tokens + 1) per block (float; reported
    apart, not in the weight ops)}."""
    from .gguf_header import read_gguf_header

    if n_tokens < 1:
        raise ValueError(f"n_tokens must be >= 1, got {n_tokens}")
    head = read_gguf_header(path)
    tensors = {t.name: t for t in head.tensors}
    blocks = [int(n.split(".")[1]) for n in tensors if n.startswith("blk.")]
    last = max(blocks) if blocks else -1
    ops = {"int8": 0, "float": 0, "attention": 0}

    def add(t, rows: int) -> None:
        kind = "float" if t.ggml_type.name in _FLOAT_WEIGHTS else "int8"
        ops[kind] += 2 * rows * t.ne[0] * t.ne[1]

    for name, t in tensors.items():
        if not name.startswith("blk.") or len(t.ne) < 2:
            continue
        before_attention = name.endswith(".attn_qkv.weight")  # the K/V of every token go into the cache
        trimmed = last_token_only and int(name.split(".")[1]) == last and not before_attention
        add(t, 1 if trimmed else n_tokens)
    lm_head = tensors.get("output.weight") or tensors.get("token_embd.weight")
    if lm_head is not None:
        add(lm_head, 1)
    arch = head.get("general.architecture", "starcoder")
    n_embd = head.get(f"{arch}.embedding_length")
    if n_embd:
        ops["attention"] = 2 * int(n_embd) * n_tokens * (n_tokens + 1) * (last + 1)
    return ops


def _bandwidth_here(n_threads: int, size_bytes: int, repeat: int) -> dict:
    """measure_bandwidth's work, in this process (BLAS must be single-threaded
    here, or the threads below oversubscribe the cores)."""
    cols = 4096
    rows = max(1, size_bytes // 4 // cols)
    src = np.ones((rows, cols), dtype=np.float32)
    dst = np.zeros_like(src)
    vec = np.ones(cols, dtype=np.float32)
    nbytes = rows * cols * 4

    def timed(fn, k):
        b = np.linspace(0, rows, k + 1).astype(np.int64)
        best = float("inf")
        for _ in range(repeat):
            ts = [threading.Thread(target=fn, args=(int(b[i]), int(b[i + 1]))) for i in range(k)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            best = min(best, time.perf_counter() - t0)
        return best

    def read(a, b):  # a matrix-vector product streams the matrix once, the vector stays in cache
        np.dot(src[a:b], vec)

    def copy(a, b):
        np.copyto(dst[a:b], src[a:b])

    res = {"size_bytes": int(nbytes), "n_threads": n_threads, "method": "numpy: gemv (read), copyto (copy)"}
    for k in sorted({1, n_threads}):
        res[f"read_gbps_{k}t"] = nbytes / timed(read, k) / 1e9
        res[f"copy_gbps_{k}t"] = 2 * nbytes / timed(copy, k) / 1e9  # read + write
    res["read_gbps"] = max(v for k, v in res.items() if k.startswith("read_gbps_"))
    res["copy_gbps"] = max(v for k, v in res.items() if k.startswith("copy_gbps_"))
    return res


def measure_bandwidth(n_threads: Optional[int] = None, size_bytes: int = 1 << 30, repeat: int = 5,
                      timeout: float = 300) -> dict:
    """Memory bandwidth measured with numpy in a fresh process (so that its
    BLAS can be pinned to one thread and the array does not stay in this
    process's memory): read = a matrix-vector product over a size_bytes float32
    matrix, copy = np.copyto (bytes read + written), each split over 1 and
    n_threads Python threads (numpy releases the GIL). Best of `repeat`, in
    GB/s (1e9). read_gbps / copy_gbps are the best over thread counts."""
    import subprocess

    n_threads = n_threads or os.cpu_count() or 1
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--bandwidth", str(n_threads), str(size_bytes),
                        str(repeat)], env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"bandwidth measurement failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# text report


def format_report(r: dict, bytes_per_token: Optional[int] = None, bandwidth_gbps: Optional[float] = None) -> str:
    """The result of bench_model as a few lines of text."""
    lines = [
        f"model: {r.get('model')}",
        f"backend: {r.get('backend')}, threads: {r.get('n_threads')}",
        f"load (constructor + first token): {r['load_s']:.3f} s",
        f"prompt: {r['prompt_tps']:.1f} tok/s",
        f"decode: {r['decode_tps']:.2f} tok/s",
        f"time to first token (FIM prompt): {r['ttft_s']:.3f} s",
        f"decode at {r['long_context']} context: {r['long_decode_tps']:.2f} tok/s",
        f"peak RSS: {r['peak_rss_mb']:.0f} MB",
    ]
    if bytes_per_token:
        lines.append(f"weights read per token: {bytes_per_token / 1e6:.1f} MB")
        if bandwidth_gbps:
            bound = bandwidth_gbps * 1e9 / bytes_per_token
            lines.append(f"memory bandwidth (numpy gemv read): {bandwidth_gbps:.1f} GB/s -> decode bound "
                         f"{bound:.1f} tok/s; decode at {100 * r['decode_tps'] / bound:.0f}% of it, "
                         f"at {r['long_context']} context {100 * r['long_decode_tps'] / bound:.0f}%")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--bandwidth":  # measure_bandwidth's child
        print(json.dumps(_bandwidth_here(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
    elif len(sys.argv) == 2:  # python -m starcoder_cpp.bench MODEL: the defaults, as JSON
        print(json.dumps(bench_model(sys.argv[1]), indent=2))
    else:
        sys.exit("usage: python -m starcoder_cpp.bench MODEL.gguf")
