#!/usr/bin/env python3
"""The HTTP server under load, beside llama-cpp-python's server on the same GGUF.

    python tools/bench_server.py -m MODEL.gguf [--threads 2] [--clients 1,4,8] [--requests 6]
                                 [--max-tokens 48] [--peer] [--fim-tokens 2048] [--json out.json]

Each system runs in its own process on a free loopback port: this project's
`python -m starcoder_cpp.server --parallel <max clients>` and, with --peer,
`python -m llama_cpp.server` (interrupt_requests off, so requests queue
instead of cancelling each other; it decodes one request at a time).

Load: C concurrent clients, each sending --requests streaming
/v1/completions requests (greedy, --max-tokens, distinct prompts) one after
the other. Reported: requests/s, p50/p99 time to first token (first
non-empty text chunk), aggregate tokens/s (streamed chunks / wall time; one
chunk per token on both servers).

Editor FIM: a --fim-tokens file (capped to fit the context) cut in the
middle; time of a 1-token infill cold (cache_prompt off) and after typing one
character at the cursor, with PSM and SPM prompts (this server's
--fim-order) and for the peer (its suffix prompt is PSM).

Stall (chunked prefill): one stream decoding while a --stall-tokens prompt
arrives; reported: the stream's longest gap between two tokens, its median
gap, and the long request's time to first token, for --prefill-chunk values
(this server only: the peer decodes one request at a time).

Timings describe this machine at that moment; on a shared machine read them
as rough.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ["import os\n", "def fibonacci(n):", "class Stack:\n    def push(self, x):", "import sys\n\n",
           "def main(argv):\n    ", "from collections import", "x = [", "# Utilities\n"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list, port: int, env=None) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {' '.join(cmd)}")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def ours(model: str, threads: int, parallel: int, n_ctx: int, fim_order: str = "psm", prefill_chunk: int = 128):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    cmd = [sys.executable, "-m", "starcoder_cpp.server", "-m", model, "--port", str(port), "--threads", str(threads),
           "--parallel", str(parallel), "--ctx-size", str(n_ctx), "--fim-order", fim_order,
           "--prefill-chunk", str(prefill_chunk)]
    return start(cmd, port, env), port


def peer(model: str, threads: int, n_ctx: int):
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--port", str(port), "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx), "--interrupt_requests", "False"]
    return start(cmd, port), port


def one_stream(http: httpx.Client, url: str, body: dict):
    t0 = time.perf_counter()
    ttft = None
    chunks = 0
    with http.stream("POST", url + "/v1/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            ch = json.loads(line[5:])
            if ch.get("choices") and ch["choices"][0].get("text"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
    return ttft if ttft is not None else time.perf_counter() - t0, chunks


def load(url: str, clients: int, requests: int, max_tokens: int) -> dict:
    ttfts, chunks = [], [0]
    lock = threading.Lock()

    def client(i):
        with httpx.Client(timeout=600) as http:
            for k in range(requests):
                body = {"model": "m", "prompt": PROMPTS[(i + k) % len(PROMPTS)] + f"# {i}.{k}\n",
                        "max_tokens": max_tokens, "temperature": 0, "stream": True}
                t, n = one_stream(http, url, body)
                with lock:
                    ttfts.append(t)
                    chunks[0] += n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttfts.sort()
    return {"clients": clients, "requests": len(ttfts), "wall_s": wall, "req_per_s": len(ttfts) / wall,
            "ttft_p50_ms": 1000 * statistics.median(ttfts),
            "ttft_p99_ms": 1000 * ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))],
            "tok_per_s": chunks[0] / wall}


def fim_file(n_tokens: int) -> str:
    """Real Python source of about n_tokens tokens (the standard library's own files)."""
    import argparse as src1
    import inspect
    import json.decoder as src2

    text = inspect.getsource(src1) + inspect.getsource(src2)
    return text[: n_tokens * 3]  # ~3 characters per token for Python source


def infill_ms(http, url: str, prefix: str, suffix: str, cache: bool, route: str) -> float:
    t0 = time.perf_counter()
    if route == "infill":
        body = {"input_prefix": prefix, "input_suffix": suffix, "n_predict": 1, "temperature": 0,
                "cache_prompt": cache}
        r = http.post(url + "/infill", json=body)
    else:
        r = http.post(url + "/v1/completions", json={"model": "m", "prompt": prefix, "suffix": suffix,
                                                     "max_tokens": 1, "temperature": 0})
    r.raise_for_status()
    return 1000 * (time.perf_counter() - t0)


def fim_edit(url: str, route: str, text: str, repeat: int = 3) -> dict:
    cut = len(text) // 2
    cut = text.index("\n", cut) + 1
    prefix, suffix = text[:cut], text[cut:]
    cold, edit = [], []
    with httpx.Client(timeout=600) as http:
        for k in range(repeat):
            if route == "infill":
                cold.append(infill_ms(http, url, prefix, suffix, False, route))
            else:  # the peer has no cache switch: a different file evicts its cache
                infill_ms(http, url, "# other\n" + prefix, suffix, True, route)
                cold.append(infill_ms(http, url, prefix, suffix, True, route))
            typed = prefix + "x" * k
            infill_ms(http, url, typed, suffix, True, route)  # the editor's request before the keystroke
            edit.append(infill_ms(http, url, typed + "x", suffix, True, route))
    c, e = statistics.median(cold), statistics.median(edit)
    return {"cold_ms": c, "edit_ms": e, "edit_over_cold": e / c}


def stall(url: str, long_text: str, max_tokens: int = 400) -> dict:
    """A stream decodes; after its 10th token a long prompt arrives. The
    stream's token gaps while the prompt is read, and the prompt's TTFT."""
    times, long_ttft = [], [None]

    def long_request():
        with httpx.Client(timeout=600) as http:
            t0 = time.perf_counter()
            http.post(url + "/completion", json={"prompt": long_text, "n_predict": 1, "temperature": 0,
                                                 "cache_prompt": False}).raise_for_status()
            long_ttft[0] = time.perf_counter() - t0

    sender = threading.Thread(target=long_request)
    body = {"prompt": "import os\n", "n_predict": max_tokens, "temperature": 0, "stream": True,
            "cache_prompt": False}
    with httpx.Client(timeout=600) as http, http.stream("POST", url + "/completion", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            times.append(time.perf_counter())
            if len(times) == 10:
                sender.start()
            if long_ttft[0] is not None and len(times) > 20:
                break  # the long prompt is answered: the gaps it caused are in
    sender.join()
    gaps = [b - a for a, b in zip(times[10:], times[11:])]
    return {"max_gap_ms": 1000 * max(gaps), "median_gap_ms": 1000 * statistics.median(gaps),
            "long_ttft_ms": 1000 * long_ttft[0]}


def print_table(title: str, columns: list, rows: list) -> None:
    """A markdown table (nothing when there are no rows): the first column
    left-aligned, numbers right-aligned."""
    if not rows:
        return
    if title:
        print("\n" + title)
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--requests", type=int, default=6, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--ctx-size", type=int, default=1024, help="context per slot")
    ap.add_argument("--fim-tokens", type=int, default=2048)
    ap.add_argument("--peer", action="store_true", help="also run llama-cpp-python's server")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-fim", action="store_true")
    ap.add_argument("--stall-tokens", type=int, default=0, help="measure stalls with a prompt this long (0: skip)")
    ap.add_argument("--prefill-chunks", default="32,128,512", help="--prefill-chunk values for the stall test")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    model = str(Path(args.model).resolve()) if args.model != "demo" else \
        str(REPO / "python" / "starcoder_cpp" / "models" / "tiny-bigcode-py-q8_0.gguf")
    clients = [int(c) for c in args.clients.split(",")]
    text = fim_file(min(args.fim_tokens, args.ctx_size - 64))
    results = {"model": os.path.basename(model), "threads": args.threads, "load": {}, "fim": {}, "stall": {}}
    systems = [("starcoder-cpp", lambda: ours(model, args.threads, max(clients), args.ctx_size))]
    if args.peer:
        systems.append(("llama-cpp-python", lambda: peer(model, args.threads, args.ctx_size)))
    for name, launch in systems:
        proc, port = launch()
        url = f"http://127.0.0.1:{port}"
        try:
            if not args.skip_load:
                results["load"][name] = [load(url, c, args.requests, args.max_tokens) for c in clients]
            if name == "llama-cpp-python" and not args.skip_fim:
                results["fim"][name + " (PSM)"] = fim_edit(url, "openai", text)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    for order in () if args.skip_fim else ("psm", "spm"):
        proc, port = ours(model, args.threads, 1, args.ctx_size, order)
        try:
            results["fim"][f"starcoder-cpp ({order.upper()})"] = fim_edit(f"http://127.0.0.1:{port}", "infill", text)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    if args.stall_tokens:
        long_text = fim_file(min(args.stall_tokens, args.ctx_size - 64))
        for chunk in (int(c) for c in args.prefill_chunks.split(",")):
            proc, port = ours(model, args.threads, 2, args.ctx_size, prefill_chunk=chunk)
            try:
                results["stall"][chunk] = stall(f"http://127.0.0.1:{port}", long_text)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    print(f"model {results['model']}, {args.threads} threads, {args.max_tokens} tokens per request, "
          f"{args.requests} requests per client")
    print_table("", ["server", "clients", "req/s", "TTFT p50 ms", "TTFT p99 ms", "aggregate tok/s"],
                [[name, r["clients"], f"{r['req_per_s']:.2f}", f"{r['ttft_p50_ms']:.0f}", f"{r['ttft_p99_ms']:.0f}",
                  f"{r['tok_per_s']:.1f}"] for name, rows in results["load"].items() for r in rows])
    print_table(f"FIM on a {len(text)}-character file cut in the middle, 1-token infill:",
                ["server", "cold ms", "after a 1-character edit ms", "edit / cold"],
                [[name, f"{r['cold_ms']:.0f}", f"{r['edit_ms']:.0f}", f"{r['edit_over_cold']:.0%}"]
                 for name, r in results["fim"].items()])
    if results["stall"]:
        print_table(f"Stall: a {len(long_text)}-character prompt arrives while one stream decodes:",
                    ["--prefill-chunk", "stream's longest gap ms", "median gap ms", "long prompt's TTFT ms"],
                    [[chunk, f"{r['max_gap_ms']:.0f}", f"{r['median_gap_ms']:.0f}", f"{r['long_ttft_ms']:.0f}"]
                     for chunk, r in results["stall"].items()])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
