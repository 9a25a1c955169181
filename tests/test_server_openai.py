"""POST /v1/completions and GET /v1/models through the openai SDK, and the
bodies Tabby (openai/completion) and Continue (openai) send."""

import json

import httpx
import pytest

import starcoder_cpp
from server_helpers import client_body, running_server, sse_data

PREFIX, SUFFIX = "def add(a, b):\n    ", "\n    return c\n"


@pytest.fixture(scope="module")
def server():
    with running_server() as (url, state):
        yield url


@pytest.fixture(scope="module")
def model():
    return starcoder_cpp.Model("demo", n_ctx=1024, n_threads=1)


@pytest.fixture(scope="module")
def client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused")


def test_sdk_completion_equals_greedy_complete(client, model):
    r = client.completions.create(model="x", prompt="import os\n", max_tokens=20, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text == model.complete("import os\n", max_tokens=20, temperature=0)
    assert r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.completion_tokens == 20 or r.choices[0].finish_reason == "stop"


def test_sdk_suffix_is_fill_in_the_middle(client, model):
    r = client.completions.create(model="x", prompt=PREFIX, suffix=SUFFIX, max_tokens=24, temperature=0)
    assert r.choices[0].text == model.infill(PREFIX, SUFFIX, max_tokens=24, temperature=0)


def test_sdk_stream_adds_up_and_ends_with_a_finish_reason(client, model):
    chunks = list(client.completions.create(model="x", prompt=PREFIX, suffix=SUFFIX, max_tokens=24,
                                            temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == model.infill(PREFIX, SUFFIX, max_tokens=24, temperature=0)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_stream_ends_with_done(server):
    with httpx.stream("POST", f"{server}/v1/completions", json={"prompt": "x = ", "max_tokens": 4,
                                                                "stream": True}) as s:
        data = sse_data(s.iter_lines())
    assert data[-1] == "[DONE]"
    assert all(json.loads(d)["object"] == "text_completion" for d in data[:-1])


def test_prompt_forms_give_one_choice_each(client, model):
    ids = model.tokenize("class Stack:")
    r = client.completions.create(model="x", prompt=["import os\n", "class Stack:"], max_tokens=8, temperature=0)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[1].text == model.complete("class Stack:", max_tokens=8, temperature=0)
    r = client.completions.create(model="x", prompt=[ids, ids], max_tokens=8, temperature=0)
    assert r.choices[0].text == r.choices[1].text == model.complete("class Stack:", max_tokens=8, temperature=0)


def test_echo_and_logprobs(client, model):
    r = client.completions.create(model="x", prompt="import os\n", max_tokens=5, temperature=0, echo=True,
                                  logprobs=2)
    c = r.choices[0]
    assert c.text.startswith("import os\n")
    assert len(c.logprobs.tokens) == 5 and all(len(t) == 2 for t in c.logprobs.top_logprobs)
    assert all(lp <= 0 for lp in c.logprobs.token_logprobs)
    # greedy: the chosen token is the most likely one
    assert all(max(t.values()) == pytest.approx(lp, abs=1e-5)
               for t, lp in zip(c.logprobs.top_logprobs, c.logprobs.token_logprobs))


def test_models_lists_the_alias(client):
    assert [m.id for m in client.models.list().data] == ["tiny-bigcode-py-q8_0"]


def test_tabby_openai_body_streams_choices_text_until_finish(server):
    with httpx.stream("POST", f"{server}/v1/completions", json=client_body("tabby_openai")) as s:
        assert s.status_code == 200
        data = sse_data(s.iter_lines())
    chunks = [json.loads(d) for d in data if d != "[DONE]"]
    assert all(isinstance(c["choices"][0]["text"], str) for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] is not None
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert "<fim_" not in text and "<|endoftext|>" not in text


def test_continue_openai_body_with_bearer_undefined(server):
    d = json.loads(open(__file__.replace("test_server_openai.py", "data/server/continue_openai.json")).read())
    with httpx.stream("POST", f"{server}/v1/completions", json=d["body"], headers=d["headers"]) as s:
        assert s.status_code == 200
        data = sse_data(s.iter_lines())
    assert data[-1] == "[DONE]"
    assert isinstance(json.loads(data[0])["choices"][0]["text"], str)


def test_streamed_chunks_carry_logprobs_when_asked(server):
    body = {"prompt": "import os\n", "max_tokens": 4, "temperature": 0, "stream": True, "logprobs": 2}
    with httpx.stream("POST", f"{server}/v1/completions", json=body) as s:
        chunks = [json.loads(d) for d in sse_data(s.iter_lines()) if d != "[DONE]"]
    with_lp = [c for c in chunks if c["choices"][0]["logprobs"]]
    assert with_lp and all(len(c["choices"][0]["logprobs"]["top_logprobs"][0]) == 2 for c in with_lp)
