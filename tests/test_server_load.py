"""Load from a second process: 16 concurrent streaming clients x 20 requests
on every streaming route, mixed lengths, a quarter of them hanging up
mid-stream. No 5xx, every finished stream well-formed, every slot free
afterwards, and the server's RSS reported (it must not grow without bound)."""

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from server_helpers import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
CLIENTS, REQUESTS = 16, 20


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def request_for(rng: random.Random):
    n = rng.choice([4, 8, 16, 32, 64])
    prompt = rng.choice(["def fibonacci(n):", "import os\n", "class Stack:\n    def push(self, x):", "x = ["])
    kind = rng.choice(["llamacpp", "infill", "tgi", "openai"])
    if kind == "llamacpp":
        return kind, "/completion", {"prompt": prompt, "n_predict": n, "stream": True}
    if kind == "infill":
        return kind, "/infill", {"input_prefix": prompt, "input_suffix": "\n    return x\n", "n_predict": n,
                                 "stream": True}
    if kind == "tgi":
        return kind, "/generate_stream", {"inputs": prompt, "parameters": {"max_new_tokens": n, "do_sample": True}}
    return kind, "/v1/completions", {"prompt": prompt, "max_tokens": n, "stream": True}


def well_formed(kind: str, data: list) -> bool:
    if kind == "openai":
        return data[-1] == "[DONE]" and json.loads(data[-2])["choices"][0]["finish_reason"] is not None
    events = [json.loads(d) for d in data]
    if kind == "tgi":
        return events[-1]["generated_text"] is not None and all(e["generated_text"] is None for e in events[:-1])
    return "[DONE]" not in data and events[-1]["stop"] is True and all("content" in e for e in events)


def client(url: str, seed: int, stats: dict, lock: threading.Lock):
    rng = random.Random(seed)
    with httpx.Client(timeout=120) as http:
        for _ in range(REQUESTS):
            kind, path, body = request_for(rng)
            hang_up = rng.random() < 0.25
            with http.stream("POST", url + path, json=body) as r:
                status = r.status_code
                data = []
                if status == 200:
                    for line in r.iter_lines():
                        if line.startswith("data:"):
                            data.append(line[5:].strip())
                            if hang_up and len(data) == 2:
                                break
            with lock:
                stats["status"][status] = stats["status"].get(status, 0) + 1
                if status == 200 and not (hang_up and len(data) == 2):
                    stats["complete"] += 1
                    stats["malformed"] += 0 if well_formed(kind, data) else 1
                elif hang_up:
                    stats["hung_up"] += 1


def test_sixteen_streaming_clients_with_disconnects():
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    proc = subprocess.Popen([sys.executable, "-m", "starcoder_cpp.server", "-m", "demo", "--port", str(port),
                             "--parallel", "4", "--ctx-size", "512", "--threads", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/health")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        rss_start = rss_kib(proc.pid)
        stats = {"status": {}, "complete": 0, "malformed": 0, "hung_up": 0}
        lock = threading.Lock()
        threads = [threading.Thread(target=client, args=(url, i, stats, lock)) for i in range(CLIENTS)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
        for _ in range(100):
            props = httpx.get(url + "/props").json()
            if props["busy_slots"] == 0:
                break
            time.sleep(0.1)
        rss_end = rss_kib(proc.pid)
        print(f"\nload: {CLIENTS}x{REQUESTS} requests in {elapsed:.1f}s, statuses {stats['status']}, "
              f"{stats['complete']} complete, {stats['hung_up']} hung up, "
              f"server RSS {rss_start / 1024:.1f} -> {rss_end / 1024:.1f} MiB")
        assert not any(s >= 500 for s in stats["status"])
        assert stats["status"].get(200) == CLIENTS * REQUESTS
        assert stats["malformed"] == 0
        assert props["busy_slots"] == 0 and props["queued"] == 0
        assert props["cancelled"] <= stats["hung_up"]
        assert rss_end < rss_start + 64 * 1024  # KV caches are reserved on first use; growth beyond that is a leak
    finally:
        proc.terminate()
        proc.wait(timeout=30)
