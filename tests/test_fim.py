"""Fill-in-the-middle prompts and what ends a middle."""

import pytest

import starcoder_cpp
from starcoder_cpp.model import end_token_ids, fim_prompt_ids, suffix_echo_stop

SPECIALS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<|endoftext|>")


@pytest.fixture(scope="module")
def model():
    return starcoder_cpp.Model("demo", n_ctx=512, n_threads=1)


def test_greedy_infill_stops_at_a_fim_sentinel_instead_of_printing_it(model):
    # Regression: this infill used to return '     # <fim_suffix>     #  LATIN ...'.
    r = model.infill("def f(x):", "\n    return y\n", max_tokens=32, temperature=0)
    assert not any(s in r for s in SPECIALS)
    assert r.finish_reason == "eos"


@pytest.mark.parametrize("prefix,suffix", [("import os\n", ""), ("class A:\n", "\n\nclass B:\n    pass\n"),
                                           ("def g(", "):\n    return 1\n")])
def test_infill_never_contains_special_tokens(model, prefix, suffix):
    for order in ("psm", "spm"):
        r = model.infill(prefix, suffix, max_tokens=48, temperature=0, fim_order=order)
        assert not any(s in r for s in SPECIALS)


def test_psm_and_spm_token_layouts(model):
    pre, suf, mid = (model.token_id(t) for t in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"))
    p, s = model.tokenize("def f(x):"), model.tokenize("\n    return y\n")
    assert fim_prompt_ids(model, "def f(x):", "\n    return y\n", "psm") == [pre] + p + [suf] + s + [mid]
    # bigcode Megatron-LM SPM: [prefix_tok, suffix_tok] + suffix + [middle_tok] + prefix
    assert fim_prompt_ids(model, "def f(x):", "\n    return y\n", "spm") == [pre, suf] + s + [mid] + p


def test_unknown_fim_order_is_refused(model):
    with pytest.raises(ValueError, match="psm"):
        model.infill("a", "b", fim_order="mps")


def test_fim_end_tokens_include_the_sentinels_plain_ones_do_not(model):
    fim = end_token_ids(model, fim=True)
    plain = end_token_ids(model, fim=False)
    assert model.token_id("<fim_suffix>") in fim and model.token_id("<fim_suffix>") not in plain
    assert model.eos_id in plain and model.token_id("<fim_pad>") in plain


def test_a_completion_of_a_fim_prompt_string_stops_like_infill(model):
    text = model.complete("<fim_prefix>def f(x):<fim_suffix>\n    return y\n<fim_middle>", max_tokens=32,
                          temperature=0)
    assert text == model.infill("def f(x):", "\n    return y\n", max_tokens=32, temperature=0)


def test_suffix_echo_stop_uses_the_first_real_line():
    assert suffix_echo_stop("\n    return result\n") == ["\n    return result"]
    assert suffix_echo_stop("\n)\n") == []  # too short to tell an echo from code
    assert suffix_echo_stop("") == []
