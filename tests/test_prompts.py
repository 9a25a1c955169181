"""StarCoder's training formats as prompt builders."""

import pytest

from starcoder_cpp import prompts


@pytest.mark.parametrize("stars,bucket", [(0, "0"), (1, "1-10"), (9, "1-10"), (10, "10-100"), (999, "100-1000"),
                                          (1000, "1000+"), (250000, "1000+")])
def test_stars_buckets(stars, bucket):
    assert prompts.stars_bucket(stars) == bucket


def test_repo_prompt_orders_metadata_then_newline_then_code():
    p = prompts.repo_prompt("import os\n", reponame="psf/requests", filename="src/api.py", stars=42)
    assert p == "<reponame>psf/requests<filename>src/api.py<gh_stars>10-100\nimport os\n"


def test_repo_prompt_fields_are_optional():
    assert prompts.repo_prompt("x = 1", filename="a.py") == "<filename>a.py\nx = 1"
    assert prompts.repo_prompt("x = 1") == "x = 1"


def test_commit_prompt():
    assert prompts.commit_prompt("a = 1\n", "Rename a to b") == "<commit_before>a = 1\n<commit_msg>Rename a to b<commit_after>"


def test_jupyter_prompt():
    p = prompts.jupyter_prompt([("text", "# Load data"), ("code", "import pandas"), ("output", "ok")])
    assert p == "<jupyter_start><jupyter_text># Load data<jupyter_code>import pandas<jupyter_output>ok"
    with pytest.raises(ValueError):
        prompts.jupyter_prompt([("markdown", "x")])


def test_issue_prompt():
    p = prompts.issue_prompt("Crash on start", [("alice", "It crashes."), ("bob", "Fixed in #2.")], closed=True)
    assert p == "<issue_start>Title: Crash on start\nalice: It crashes.<issue_comment>bob: Fixed in #2.<issue_closed>"


def test_prompts_tokenize_to_special_tokens(tiny_gguf_f32):
    import starcoder_cpp

    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=64)
    ids = m.tokenize(prompts.repo_prompt("x", reponame="r", filename="f", stars=3), special=True)
    for name in ("<reponame>", "<filename>", "<gh_stars>"):
        assert m.token_id(name) in ids
    assert m.tokenize(prompts.fim_prompt("a", "b"), special=True)[0] == m.token_id("<fim_prefix>")
