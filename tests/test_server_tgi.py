"""The Text Generation Inference routes, driven by huggingface_hub's
InferenceClient and by the bodies llm-ls and Continue send."""

import json

import httpx
import pytest

import starcoder_cpp
from server_helpers import client_body, running_server, sse_data

PROMPT = "def fibonacci(n):"


@pytest.fixture(scope="module")
def server():
    with running_server() as (url, state):
        yield url


@pytest.fixture(scope="module")
def model():
    return starcoder_cpp.Model("demo", n_ctx=1024, n_threads=1)


def test_generate_returns_an_object_with_the_greedy_completion(server, model):
    r = httpx.post(f"{server}/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 24}})
    assert r.status_code == 200
    assert r.json() == {"generated_text": model.complete(PROMPT, max_tokens=24, temperature=0)}


def test_root_returns_an_array_unless_streaming(server, model):
    r = httpx.post(f"{server}/", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 8}})
    assert r.json() == [{"generated_text": model.complete(PROMPT, max_tokens=8, temperature=0)}]
    with httpx.stream("POST", f"{server}/", json={"inputs": PROMPT, "stream": True,
                                                  "parameters": {"max_new_tokens": 8}}) as s:
        events = [json.loads(d) for d in sse_data(s.iter_lines())]
    assert events[-1]["generated_text"] == model.complete(PROMPT, max_tokens=8, temperature=0)


def test_inference_client_text_generation_with_details(server, model):
    from huggingface_hub import InferenceClient

    out = InferenceClient(base_url=server).text_generation(PROMPT, max_new_tokens=16, details=True)
    assert out.generated_text == model.complete(PROMPT, max_tokens=16, temperature=0)
    assert out.details.finish_reason == "length"
    assert out.details.generated_tokens == 16
    assert len(out.details.tokens) == 16 and all(t.logprob <= 0 for t in out.details.tokens)


def test_inference_client_streams_tokens_that_add_up_to_the_text(server, model):
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=server)  # kept alive: it owns the open stream
    pieces = list(client.text_generation(PROMPT, max_new_tokens=16, stream=True))
    assert "".join(pieces) == model.complete(PROMPT, max_tokens=16, temperature=0)


def test_stream_events_have_tgi_shape_and_final_details(server):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 6, "details": True}}
    with httpx.stream("POST", f"{server}/generate_stream", json=body) as s:
        events = [json.loads(d) for d in sse_data(s.iter_lines())]
    for e in events:
        assert set(e) >= {"index", "token", "generated_text", "details"}
        assert set(e["token"]) == {"id", "text", "logprob", "special"}
    assert all(e["generated_text"] is None for e in events[:-1])
    assert events[-1]["details"]["finish_reason"] == "length"
    assert events[-1]["details"]["generated_tokens"] == 6
    assert "".join(e["token"]["text"] for e in events) == events[-1]["generated_text"]


def test_stop_sequence_is_reported_and_not_included(server, model):
    ref = model.complete(PROMPT, max_tokens=40, temperature=0)
    stop = ref[5:9]
    r = httpx.post(f"{server}/generate", json={"inputs": PROMPT, "parameters": {
        "max_new_tokens": 40, "stop": [stop], "details": True}}).json()
    assert r["generated_text"] == ref[:ref.index(stop)]
    assert r["details"]["finish_reason"] == "stop_sequence"


def test_llm_ls_body_gets_a_single_object_without_fim_tokens(server):
    r = httpx.post(f"{server}/generate", json=client_body("llm_ls_tgi"))
    assert r.status_code == 200
    out = r.json()
    assert isinstance(out, dict) and isinstance(out["generated_text"], str)
    assert "<fim_" not in out["generated_text"] and "<|endoftext|>" not in out["generated_text"]


def test_continue_tgi_reads_info_and_token_text_of_every_event(server):
    info = httpx.get(f"{server}/info").json()
    assert info["model_id"] and info["max_input_length"] > 0 and info["max_total_tokens"] > 0
    with httpx.stream("POST", f"{server}/generate_stream", json=client_body("continue_tgi")) as s:
        assert s.status_code == 200
        events = [json.loads(d) for d in sse_data(s.iter_lines())]
    assert events and all(isinstance(e["token"]["text"], str) for e in events)


def test_return_full_text_prepends_the_inputs(server):
    r = httpx.post(f"{server}/generate", json={"inputs": PROMPT, "parameters": {
        "max_new_tokens": 4, "return_full_text": True}}).json()
    assert r["generated_text"].startswith(PROMPT)


def test_seeded_sampling_is_reproducible_and_reports_its_seed(server):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 12, "do_sample": True, "seed": 7, "details": True}}
    a, b = (httpx.post(f"{server}/generate", json=body).json() for _ in range(2))
    assert a["generated_text"] == b["generated_text"]
    assert a["details"]["seed"] == 7


def test_health_is_200(server):
    assert httpx.get(f"{server}/health").status_code == 200
