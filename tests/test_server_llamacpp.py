"""llama.cpp's server routes, with the bodies Tabby (llama.cpp/completion),
llama.vscode (/infill), Continue (llama.cpp) and llm-ls (llamacpp) send."""

import json

import httpx
import pytest

import starcoder_cpp
from server_helpers import DATA, client_body, running_server, sse_data

PREFIX, SUFFIX = "def f(x):", "\n    return y\n"


@pytest.fixture(scope="module")
def server():
    with running_server() as (url, state):
        yield url


@pytest.fixture(scope="module")
def model():
    return starcoder_cpp.Model("demo", n_ctx=1024, n_threads=1)


def test_completion_greedy_equals_complete_and_reports_llama_cpp_fields(server, model):
    r = httpx.post(f"{server}/completion", json={"prompt": "import os\n", "n_predict": 16, "temperature": 0})
    out = r.json()
    assert out["content"] == model.complete("import os\n", max_tokens=16, temperature=0)
    assert out["stop"] is True and out["stop_type"] == "limit" and out["stopped_limit"] is True
    assert out["tokens_predicted"] == 16 and out["tokens_evaluated"] == len(model.tokenize("import os\n"))
    assert out["generation_settings"]["n_ctx"] == 1024
    assert set(out["timings"]) >= {"prompt_n", "prompt_ms", "prompt_per_second", "predicted_n", "predicted_ms",
                                   "predicted_per_second", "cache_n"}


def test_completions_alias_and_token_id_prompt(server, model):
    ids = model.tokenize("class Stack:")
    out = httpx.post(f"{server}/completions", json={"prompt": ids, "n_predict": 8, "temperature": 0}).json()
    assert out["content"] == model.complete(ids, max_tokens=8, temperature=0)


def test_stream_is_json_with_content_on_every_line_and_never_done(server, model):
    with httpx.stream("POST", f"{server}/completion", json={"prompt": "import os\n", "n_predict": 12,
                                                            "temperature": 0, "stream": True}) as s:
        data = sse_data(s.iter_lines())
    events = [json.loads(d) for d in data]  # raises on [DONE] or any non-JSON line
    assert all("content" in e for e in events)
    assert [e["stop"] for e in events] == [False] * (len(events) - 1) + [True]
    assert "".join(e["content"] for e in events) == model.complete("import os\n", max_tokens=12, temperature=0)


def test_stop_word_is_named(server, model):
    ref = model.complete("import os\n", max_tokens=30, temperature=0)
    word = ref[3:7]
    out = httpx.post(f"{server}/completion", json={"prompt": "import os\n", "n_predict": 30, "temperature": 0,
                                                   "stop": [word]}).json()
    assert out["content"] == ref[:ref.index(word)]
    assert out["stop_type"] == "word" and out["stopped_word"] and out["stopping_word"] == word


def test_infill_equals_model_infill(server, model):
    out = httpx.post(f"{server}/infill", json={"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 24,
                                               "temperature": 0}).json()
    assert out["content"] == model.infill(PREFIX, SUFFIX, max_tokens=24, temperature=0)


def test_infill_never_returns_fim_tokens_or_eos(server):
    for prefix, suffix in [(PREFIX, SUFFIX), ("import os\n", ""), ("class A:\n    def __init__(self):\n", "\n")]:
        out = httpx.post(f"{server}/infill", json={"input_prefix": prefix, "input_suffix": suffix, "n_predict": 64,
                                                   "temperature": 0}).json()
        for special in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<|endoftext|>"):
            assert special not in out["content"]


def test_tabby_llamacpp_body_streams_content_and_stop(server):
    with httpx.stream("POST", f"{server}/completion", json=client_body("tabby_llamacpp")) as s:
        assert s.status_code == 200
        events = [json.loads(d) for d in sse_data(s.iter_lines())]
    assert all(isinstance(e["content"], str) and isinstance(e["stop"], bool) for e in events)
    assert events[-1]["stop"] is True
    text = "".join(e["content"] for e in events)
    assert "<fim_" not in text and "<|endoftext|>" not in text


def test_llama_vscode_infill_body_with_repository_context(server):
    out = httpx.post(f"{server}/infill", json=client_body("llama_vscode_infill")).json()
    assert isinstance(out["content"], str)
    assert isinstance(out["tokens_cached"], int) and out["truncated"] is False
    assert out["timings"]["prompt_n"] > 0


def test_llama_vscode_warmup_caches_the_context_so_the_next_infill_reuses_it(server):
    warm = httpx.post(f"{server}/infill", json=client_body("llama_vscode_warmup")).json()
    assert warm["content"] == "" and warm["tokens_predicted"] == 0
    body = client_body("llama_vscode_warmup")
    body.update(n_predict=4, input_prefix="x", t_max_predict_ms=0)
    again = httpx.post(f"{server}/infill", json=body).json()
    assert again["timings"]["cache_n"] > 0


def test_repository_context_is_trimmed_from_the_oldest_end(server):
    big = [{"filename": f"f{i}.py", "text": "x = 1\n" * 200} for i in range(4)]
    out = httpx.post(f"{server}/infill", json={"input_prefix": PREFIX, "input_suffix": SUFFIX, "input_extra": big,
                                               "n_predict": 8, "temperature": 0}).json()
    assert out["truncated"] is True
    assert out["tokens_evaluated"] <= 1024


def test_n_cmpl_answers_an_array(server):
    out = httpx.post(f"{server}/infill", json={"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 8,
                                               "n_cmpl": 2, "temperature": 0}).json()
    assert isinstance(out, list) and len(out) == 2 and out[0]["content"] == out[1]["content"]


def test_continue_llamacpp_body_with_bearer_undefined(server):
    d = json.loads((DATA / "continue_llamacpp.json").read_text())
    with httpx.stream("POST", f"{server}/completion", json=d["body"], headers=d["headers"]) as s:
        assert s.status_code == 200
        events = [json.loads(x) for x in sse_data(s.iter_lines())]
    assert events[-1]["stop"] is True


def test_llm_ls_llamacpp_body_reads_content(server):
    out = httpx.post(f"{server}/completion", json=client_body("llm_ls_llamacpp")).json()
    assert isinstance(out["content"], str) and "<fim_" not in out["content"]


def test_health_and_props(server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    props = httpx.get(f"{server}/props").json()
    assert props["default_generation_settings"]["n_ctx"] == 1024
    assert props["total_slots"] == 4 and props["model_path"].endswith(".gguf")


def test_n_probs_reports_top_tokens(server):
    out = httpx.post(f"{server}/completion", json={"prompt": "import os\n", "n_predict": 3, "temperature": 0,
                                                   "n_probs": 3}).json()
    probs = out["completion_probabilities"]
    assert len(probs) == 3 and all(len(p["top_logprobs"]) == 3 for p in probs)
    assert all(p["id"] == p["top_logprobs"][0]["id"] for p in probs)  # greedy picks the best


def test_n_indent_stops_before_a_line_indented_less(server, model):
    prompt = "class A:\n    def f(self):\n        return 1\n"
    free = model.complete(prompt, max_tokens=40, temperature=0)
    out = httpx.post(f"{server}/completion", json={"prompt": prompt, "n_predict": 40, "temperature": 0,
                                                   "n_indent": 4}).json()
    assert free.startswith(out["content"]) and len(out["content"]) < len(free)
    for line in out["content"].split("\n")[1:]:
        assert not line.strip() or len(line) - len(line.lstrip()) >= 4
