"""The serving engine behind the routes: continuous batching, the per-slot
prefix cache, disconnects, the bounded queue, SPM prompts."""

import json
import threading
import time

import httpx
import pytest

import starcoder_cpp
from server_helpers import running_server, sse_data

LOOPING = "import os\n"
PROMPTS = ["def fibonacci(n):", "class Stack:", "import os\n\ndef list_files(path):", "import sys\n"]


@pytest.fixture(scope="module")
def model():
    return starcoder_cpp.Model("demo", n_ctx=1024, n_threads=1)


@pytest.fixture(scope="module")
def server():
    with running_server(parallel=4) as (url, state):
        yield url


def wait_idle(url, deadline_s=20.0):
    end = time.time() + deadline_s
    while time.time() < end:
        props = httpx.get(f"{url}/props").json()
        if props["busy_slots"] == 0 and props["queued"] == 0:
            return props
        time.sleep(0.05)
    raise AssertionError(f"slots still busy: {props}")


def test_concurrent_requests_decode_together_and_each_equals_complete(server, model):
    results = {}

    def run(p):
        results[p] = httpx.post(f"{server}/completion", json={"prompt": p, "n_predict": 24, "temperature": 0},
                                timeout=60).json()

    threads = [threading.Thread(target=run, args=(p,)) for p in PROMPTS * 2]  # 8 requests on 4 slots
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in PROMPTS:
        assert results[p]["content"] == model.complete(p, max_tokens=24, temperature=0)
    wait_idle(server)


def test_a_repeated_request_lands_on_its_slot_and_evaluates_only_the_tail(server):
    doc = "import os\nimport sys\n\n\ndef main(argv):\n    parser = make_parser()\n" * 6
    first = httpx.post(f"{server}/completion", json={"prompt": doc, "n_predict": 2}).json()
    httpx.post(f"{server}/completion", json={"prompt": "class Other:", "n_predict": 2})
    again = httpx.post(f"{server}/completion", json={"prompt": doc + "    args", "n_predict": 2}).json()
    assert again["id_slot"] == first["id_slot"]
    assert again["timings"]["cache_n"] >= first["tokens_evaluated"] - 1
    assert again["timings"]["prompt_n"] < 5


def test_cache_prompt_false_evaluates_everything(server):
    body = {"prompt": "def g(a, b, c):\n    return a", "n_predict": 2}
    httpx.post(f"{server}/completion", json=body)
    out = httpx.post(f"{server}/completion", json={**body, "cache_prompt": False}).json()
    assert out["timings"]["cache_n"] == 0


def test_disconnect_mid_stream_stops_decoding_and_frees_the_slot(server):
    before = httpx.get(f"{server}/props").json()["cancelled"]
    # Greedy "import os\n" repeats itself: it runs to n_predict unless stopped.
    with httpx.stream("POST", f"{server}/completion", json={"prompt": LOOPING, "n_predict": 1000,
                                                            "temperature": 0, "stream": True}) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                assert json.loads(line[5:])["stop"] is False
                break
    # leaving the block closed the connection mid-stream
    props = wait_idle(server)
    assert props["busy_slots"] == 0 and props["cancelled"] == before + 1
    assert httpx.post(f"{server}/completion", json={"prompt": "x", "n_predict": 2}).status_code == 200


def test_t_max_predict_ms_stops_after_a_newline(server):
    out = httpx.post(f"{server}/completion", json={"prompt": "import os\n", "n_predict": 900, "temperature": 0,
                                                   "t_max_predict_ms": 1}).json()
    assert out["stop_type"] == "limit" and "\n" in out["content"] and out["tokens_predicted"] < 900


def test_full_queue_is_overload_in_each_apis_shape():
    with running_server(parallel=1, max_queue=0, ctx_size=1024) as (url, state):
        with httpx.stream("POST", f"{url}/completion", json={"prompt": LOOPING, "n_predict": 1000,
                                                             "temperature": 0, "stream": True}) as s:
            lines = s.iter_lines()  # kept: dropping the iterator would close the connection
            next(lines)  # the only slot is now decoding (and will be for 1000 tokens)
            r = httpx.post(f"{url}/generate", json={"inputs": "x"})
            assert r.status_code == 429 and r.json()["error_type"] == "overloaded"
            r = httpx.post(f"{url}/v1/completions", json={"prompt": "x"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
            r = httpx.post(f"{url}/completion", json={"prompt": "x"})
            assert r.status_code == 503 and r.json()["error"]["type"] == "unavailable_error"
        wait_idle(url)
        assert httpx.post(f"{url}/completion", json={"prompt": "x", "n_predict": 2}).status_code == 200


def test_spm_order_serves_suffix_prefix_middle_prompts(model):
    prefix, suffix = "def add(a, b):\n    ", "\n    return c\n"
    with running_server(fim_order="spm") as (url, state):
        out = httpx.post(f"{url}/infill", json={"input_prefix": prefix, "input_suffix": suffix, "n_predict": 16,
                                                "temperature": 0}).json()
        sdk = httpx.post(f"{url}/v1/completions", json={"prompt": prefix, "suffix": suffix, "max_tokens": 16,
                                                        "temperature": 0}).json()
    expect = model.infill(prefix, suffix, max_tokens=16, temperature=0, fim_order="spm")
    assert out["content"] == expect and sdk["choices"][0]["text"] == expect


def test_disconnect_during_a_non_streaming_request_stops_it_too(server):
    before = httpx.get(f"{server}/props").json()["cancelled"]
    # the client gives up after 0.05 s: on a Zen 5 core the tiny model
    # decodes the 1000 tokens in about 0.5 s, so the request is still running
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server}/completion", json={"prompt": LOOPING, "n_predict": 1000, "temperature": 0},
                   timeout=httpx.Timeout(5.0, read=0.05))
    props = wait_idle(server)
    assert props["cancelled"] == before + 1
