"""Bad input on every route gets that API's own error shape and status, and
the server keeps serving; the API key guards every route but /health."""

import httpx
import pytest

from server_helpers import running_server

KEY = "s3cret-key"
OK_BODIES = {
    "/generate": {"inputs": "x = ", "parameters": {"max_new_tokens": 2}},
    "/v1/completions": {"prompt": "x = ", "max_tokens": 2},
    "/completion": {"prompt": "x = ", "n_predict": 2},
    "/infill": {"input_prefix": "x = ", "input_suffix": "", "n_predict": 2},
}


@pytest.fixture(scope="module")
def server():
    with running_server(ctx_size=256) as (url, state):
        yield url


@pytest.fixture(scope="module")
def keyed():
    with running_server(ctx_size=256, api_key=KEY) as (url, state):
        yield url


def tgi_error(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "error_type"} and isinstance(body["error"], str)
    return body


def openai_error(r, status):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def llamacpp_error(r, status):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"code", "message", "type"} and err["code"] == status
    return err


def still_serves(server):
    for path, body in OK_BODIES.items():
        assert httpx.post(f"{server}{path}", json=body).status_code == 200


def test_invalid_json_on_each_route(server):
    tgi_error(httpx.post(f"{server}/generate", content=b"{not json"), 422)
    openai_error(httpx.post(f"{server}/v1/completions", content=b"{not json"), 400)
    llamacpp_error(httpx.post(f"{server}/completion", content=b"{not json"), 400)
    llamacpp_error(httpx.post(f"{server}/infill", content=b"[1, 2"), 400)
    still_serves(server)


def test_wrong_types_name_the_field(server):
    e = tgi_error(httpx.post(f"{server}/generate", json={"inputs": "x", "parameters": {"max_new_tokens": "9"}}), 422)
    assert "max_new_tokens" in e["error"] and e["error_type"] == "validation"
    e = openai_error(httpx.post(f"{server}/v1/completions", json={"prompt": "x", "temperature": "hot"}), 400)
    assert e["param"] == "temperature" and e["type"] == "invalid_request_error"
    e = llamacpp_error(httpx.post(f"{server}/completion", json={"prompt": {"a": 1}}), 400)
    assert "prompt" in e["message"]
    e = llamacpp_error(httpx.post(f"{server}/infill", json={"input_prefix": 3}), 400)
    assert "input_prefix" in e["message"]
    e = llamacpp_error(httpx.post(f"{server}/infill", json={"input_prefix": "a", "input_extra": "b"}), 400)
    assert "input_extra" in e["message"]
    still_serves(server)


def test_tgi_refuses_what_tgi_refuses(server):
    for params in ({"max_new_tokens": 0}, {"temperature": 0}, {"top_k": 0}, {"typical_p": 0.5},
                   {"stop": ["a", "b", "c", "d", "e"]}):
        tgi_error(httpx.post(f"{server}/generate", json={"inputs": "x", "parameters": params}), 422)
    tgi_error(httpx.post(f"{server}/generate", json={"inputs": ""}), 422)
    # top_p = 1.0 is harmless: accepted
    assert httpx.post(f"{server}/generate", json={"inputs": "x", "parameters": {"top_p": 1.0,
                                                                              "max_new_tokens": 2}}).status_code == 200


def test_openai_rejects_unknown_fields(server):
    e = openai_error(httpx.post(f"{server}/v1/completions", json={"prompt": "x", "bogus": 1}), 400)
    assert "bogus" in e["message"] and e["param"] == "bogus"


def test_prompt_past_the_context(server):
    long = "x = 1\n" * 400
    tgi_error(httpx.post(f"{server}/generate", json={"inputs": long}), 422)
    e = openai_error(httpx.post(f"{server}/v1/completions", json={"prompt": long}), 400)
    assert e["code"] == "context_length_exceeded"
    e = llamacpp_error(httpx.post(f"{server}/completion", json={"prompt": long}), 400)
    assert e["type"] == "exceed_context_size_error"
    # /infill trims instead: the editor sends whole files
    r = httpx.post(f"{server}/infill", json={"input_prefix": long, "input_suffix": long, "n_predict": 2})
    assert r.status_code == 200 and r.json()["truncated"] is True
    still_serves(server)


def test_huge_n_predict_is_capped_by_the_context(server):
    out = httpx.post(f"{server}/completion", json={"prompt": "x = ", "n_predict": 10**12, "temperature": 0},
                     timeout=120).json()
    assert out["stop"] is True and out["tokens_evaluated"] + out["tokens_predicted"] <= 257
    e = tgi_error(httpx.post(f"{server}/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 10**9}}),
                  422)
    assert "max_new_tokens" in e["error"]


def test_unknown_route_is_404(server):
    assert httpx.get(f"{server}/nope").status_code == 404


def test_without_a_key_any_authorization_header_is_ignored(server):
    r = httpx.post(f"{server}/completion", json=OK_BODIES["/completion"], headers={"Authorization": "Bearer undefined"})
    assert r.status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_bad_key_gets_401_in_each_shape(keyed, headers):
    tgi_error(httpx.post(f"{keyed}/generate", json=OK_BODIES["/generate"], headers=headers), 401)
    tgi_error(httpx.get(f"{keyed}/info", headers=headers), 401)
    openai_error(httpx.post(f"{keyed}/v1/completions", json=OK_BODIES["/v1/completions"], headers=headers), 401)
    openai_error(httpx.get(f"{keyed}/v1/models", headers=headers), 401)
    llamacpp_error(httpx.post(f"{keyed}/completion", json=OK_BODIES["/completion"], headers=headers), 401)
    llamacpp_error(httpx.post(f"{keyed}/infill", json=OK_BODIES["/infill"], headers=headers), 401)
    llamacpp_error(httpx.get(f"{keyed}/props", headers=headers), 401)


def test_right_key_is_served_and_health_needs_none(keyed):
    auth = {"Authorization": f"Bearer {KEY}"}
    for path, body in OK_BODIES.items():
        assert httpx.post(f"{keyed}{path}", json=body, headers=auth).status_code == 200
    assert httpx.get(f"{keyed}/health").status_code == 200


def test_openai_sdk_sees_an_authentication_error(keyed):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{keyed}/v1", api_key="wrong")
    with pytest.raises(openai.AuthenticationError):
        client.completions.create(model="x", prompt="x", max_tokens=2)


def test_serve_without_the_extra_says_what_to_install(monkeypatch, capsys):
    import sys

    from starcoder_cpp import cli

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the [server] extra were not installed
    assert cli.main(["serve", "-m", "demo"]) == 1
    assert "pip install 'starcoder-cpp[server]'" in capsys.readouterr().err


def test_python_dash_m_server_has_the_documented_options():
    import subprocess
    import sys

    # the package this test run imports (installed, or python/ with a dev build)
    import os
    from pathlib import Path

    import starcoder_cpp

    pkg_parent = str(Path(starcoder_cpp.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-m", "starcoder_cpp.server", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": pkg_parent})
    assert out.returncode == 0
    for opt in ("--host", "--port", "--parallel", "--ctx-size", "--threads", "--api-key", "--model-alias",
                "--fim-order", "--prefill-chunk"):
        assert opt in out.stdout


def test_streaming_several_infill_completions_is_refused(server):
    e = llamacpp_error(httpx.post(f"{server}/infill", json={"input_prefix": "a", "n_cmpl": 2, "stream": True}), 400)
    assert "n_cmpl" in e["message"]
    assert httpx.get(f"{server}/props").json()["queued"] == 0


@pytest.mark.parametrize("argv, message", [
    (["--parallel", "0"], "--parallel must be in [1, 64]"),
    (["--max-queue", "-1"], "--max-queue must be >= 0"),
    (["--prefill-chunk", "0"], "--prefill-chunk must be in [1, 512]"),
])
def test_serve_refuses_bad_sizes_with_one_line_and_status_1(argv, message, capsys):
    pytest.importorskip("uvicorn")
    from starcoder_cpp import cli

    assert cli.main(["serve", "-m", "demo", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
