"""Text completion on the trained tiny model: seeds, stop strings, UTF-8
holding, fill-in-the-middle, prefix reuse, context limits, batching."""

from __future__ import annotations

import numpy as np
import pytest

import starcoder_cpp
from starcoder_cpp.model import fim_prompt_ids
from conftest import VOCAB_DIR, require

PROMPT = "import os\n\ndef list_files(path):"


@pytest.fixture(scope="module")
def model(tiny_gguf_f32):
    return starcoder_cpp.Model(tiny_gguf_f32, n_ctx=512)


def test_same_seed_gives_the_same_text(model):
    a = model.complete(PROMPT, max_tokens=40, temperature=0.9, seed=11)
    b = model.complete(PROMPT, max_tokens=40, temperature=0.9, seed=11)
    c = model.complete(PROMPT, max_tokens=40, temperature=0.9, seed=12)
    assert a == b
    assert a != c


def test_zero_temperature_equals_greedy_generation(model):
    ids = model.tokenize(PROMPT)
    greedy = model.generate(ids, 32, stop_at_eos=False)
    text = model.complete(PROMPT, max_tokens=32, temperature=0)
    assert text == model.detokenize(greedy)
    assert text.finish_reason == "length" and text.n_tokens == 32


def test_end_of_text_finishes_with_eos(model):
    # Training files end with <|endoftext|>; this one ends right here.
    r = model.complete('if __name__ == "__main__":\n    unittest.main()\n', temperature=0, max_tokens=20)
    assert r.finish_reason == "eos" and r == ""


def _greedy_pieces(model, prompt, n):
    ids = model.generate(model.tokenize(prompt), n, stop_at_eos=False)
    return [model._m.token_bytes(t).decode("utf-8") for t in ids]


def test_stop_string_split_across_tokens_ends_generation_and_is_not_emitted(model):
    pieces = _greedy_pieces(model, PROMPT, 40)
    full = "".join(pieces)
    # A stop string made of the end of one token and the start of the next.
    i = next(k for k in range(3, len(pieces) - 1) if len(pieces[k]) >= 2 and len(pieces[k + 1]) >= 2)
    stop = pieces[i][-2:] + pieces[i + 1][:2]
    expected = full[: full.index(stop)]
    r = model.complete(PROMPT, max_tokens=40, temperature=0, stop=["never-appears", stop])
    assert r == expected
    assert r.finish_reason == "stop"
    streamed = list(model.complete(PROMPT, max_tokens=40, temperature=0, stop=stop, stream=True))
    assert "".join(streamed) == expected
    assert all(stop not in p for p in streamed)


def test_stream_yields_the_same_text_as_a_plain_call(model):
    stream = model.complete(PROMPT, max_tokens=30, temperature=0.8, seed=3, stream=True)
    pieces = list(stream)
    assert len(pieces) > 1
    plain = model.complete(PROMPT, max_tokens=30, temperature=0.8, seed=3)
    assert "".join(pieces) == plain
    assert stream.finish_reason == plain.finish_reason


def test_streaming_never_splits_a_utf8_character(tmp_path):
    # A random-weight model at high temperature emits tokens uniformly, many
    # of which are partial UTF-8 sequences (byte-level BPE pieces of CJK, emoji).
    from hf_models import build_hf_model
    from starcoder_cpp.convert import convert_checkpoint

    build_hf_model(tmp_path, n_embd=32, n_layer=1, n_head=2, n_inner=64, seed=9)
    convert_checkpoint(str(tmp_path), str(tmp_path / "m.gguf"), out_type="f32", progress=False)
    m = starcoder_cpp.Model(tmp_path / "m.gguf")
    sp = _core_params(temperature=50.0)
    h = m._m.start_completion([0], sp, 300, [], [])
    pieces = []
    while (p := h.next()) is not None:
        pieces.append(p)
    partial = [t for t in h.generated if not _valid_utf8(m._m.token_bytes(t))]
    assert partial, "the test needs tokens that are not whole characters"
    whole = b"".join(pieces).decode("utf-8", errors="replace")
    assert "".join(p.decode("utf-8", errors="replace") for p in pieces) == whole
    for p in pieces[:-1]:
        assert _ends_complete(p)


def _core_params(**kw):
    from starcoder_cpp import _core

    p = _core.SamplingParams()
    p.top_k, p.top_p, p.min_p, p.seed = 0, 1.0, 0.0, 5
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def _valid_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _ends_complete(b: bytes) -> bool:
    # No lead byte in the last 3 bytes still waiting for continuation bytes.
    for back in range(1, min(3, len(b)) + 1):
        c = b[-back]
        if c & 0xC0 == 0x80:
            continue
        need = 2 if c & 0xE0 == 0xC0 else 3 if c & 0xF0 == 0xE0 else 4 if c & 0xF8 == 0xF0 else 1
        return need <= back
    return True


def test_infill_prompt_layout_matches_starcoder_psm_format(model):
    tokenizers = require("tokenizers")
    hf = tokenizers.Tokenizer.from_file(str(VOCAB_DIR / "starcoder-v1-tokenizer.json"))
    prefix, suffix = "def add(a, b):\n    ", "\n    return result\n"
    expected = hf.encode(f"<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>", add_special_tokens=False).ids
    assert fim_prompt_ids(model, prefix, suffix) == expected
    assert expected[0] == 1 and expected[-1] == 2


def test_infill_keeps_special_token_strings_in_the_code_as_text(model):
    ids = fim_prompt_ids(model, "s = '<fim_suffix>'", "")
    assert ids.count(model.token_id("<fim_suffix>")) == 1


def test_greedy_infill_matches_transformers_on_the_reference_fim_prompt(model, tiny_reference):
    case = tiny_reference["greedy"][3]  # the <fim_prefix>def add(a, b): ... prompt
    r = model.infill("def add(a, b):\n    ", "\n    return result\n", temperature=0, max_tokens=64)
    assert model.tokenize(r) == case["greedy_new_ids"][: len(model.tokenize(r))]
    assert r.startswith(model.detokenize(case["greedy_new_ids"][:8]))
    assert r.finish_reason == "length"


def test_prefix_reuse_gives_the_logits_of_a_cold_evaluation(model, tiny_gguf_f32):
    a = model.tokenize(PROMPT + "\n    return os.listdir(path)\n")
    b = a[:-3] + model.tokenize(" + 1\n")
    model.reset()
    model.eval(a)
    common = len(a) - 3
    model.truncate(common)
    warm = model.eval(b[common:], all_logits=True)
    cold = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=512).eval(b, all_logits=True)[common:]
    np.testing.assert_allclose(warm, cold, rtol=0, atol=1e-5)


def test_completion_reuses_the_cached_prefix_of_an_edited_prompt(model):
    model.reset()
    first = model.complete(PROMPT + "\n    x = 1", max_tokens=4, temperature=0)
    assert first.n_reused_tokens == 0
    edited = model.complete(PROMPT + "\n    y = 2", max_tokens=4, temperature=0)
    n_common = len(model.tokenize(PROMPT + "\n    "))
    assert edited.n_reused_tokens >= n_common - 1
    cold = starcoder_cpp.Model(model.path, n_ctx=512).complete(PROMPT + "\n    y = 2", max_tokens=4, temperature=0)
    assert edited == cold


def test_prompt_longer_than_the_context_raises(tiny_gguf_f32):
    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=32)
    with pytest.raises(starcoder_cpp.ContextOverflowError, match="truncate_prompt"):
        m.complete("x = 1\n" * 40, max_tokens=4)


def test_truncate_prompt_drops_tokens_from_the_left(tiny_gguf_f32):
    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=32)
    text = "".join(f"a{i} = {i}\n" for i in range(20))
    r = m.complete(text, max_tokens=8, temperature=0, truncate_prompt=True)
    assert r.n_prompt_tokens == 24
    kept = m.tokenize(text)[-24:]
    assert r == m.complete(kept, max_tokens=8, temperature=0)


LONG_PREFIX = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(40)) + "def g(y):\n    "
LONG_SUFFIX = "\n    return z\n\n" + "".join(f"v{i} = g({i})\n" for i in range(60))


def test_truncated_infill_keeps_the_fim_tokens_the_end_of_the_prefix_and_the_start_of_the_suffix(tiny_gguf_f32):
    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=128)
    pre, suf = m.tokenize(LONG_PREFIX), m.tokenize(LONG_SUFFIX)
    assert len(pre) + len(suf) > 128  # the whole file does not fit
    r = m.infill(LONG_PREFIX, LONG_SUFFIX, max_tokens=8, temperature=0, truncate_prompt=True)
    room = 128 - 8 - 3  # text tokens beside <fim_prefix>, <fim_suffix>, <fim_middle>
    n_suf = room // 4   # the suffix's share (FIM_SUFFIX_SHARE)
    kept = ([m.token_id("<fim_prefix>")] + pre[len(pre) - (room - n_suf):] + [m.token_id("<fim_suffix>")]
            + suf[:n_suf] + [m.token_id("<fim_middle>")])
    assert r.n_prompt_tokens == len(kept) == 128 - 8
    # the same text as completing that prompt (which does not stop at <fim_pad>)
    assert m.complete(kept, max_tokens=8, temperature=0).startswith(r)


def test_truncated_infill_gives_a_short_suffix_all_of_it_and_the_prefix_the_rest(model):
    short_suffix = "\n    return z\n"
    ids = fim_prompt_ids(model, LONG_PREFIX, short_suffix, room=100)
    suf = model.tokenize(short_suffix)
    assert len(ids) == 100
    assert ids[-len(suf) - 2:] == [model.token_id("<fim_suffix>")] + suf + [model.token_id("<fim_middle>")]
    assert ids[1:-len(suf) - 2] == model.tokenize(LONG_PREFIX)[-(100 - 3 - len(suf)):]


def test_truncated_infill_gives_a_short_prefix_all_of_it_and_the_suffix_the_rest(model):
    short_prefix = "def g(y):\n    "
    ids = fim_prompt_ids(model, short_prefix, LONG_SUFFIX, room=100)
    pre = model.tokenize(short_prefix)
    assert len(ids) == 100
    assert ids[:len(pre) + 2] == [model.token_id("<fim_prefix>")] + pre + [model.token_id("<fim_suffix>")]
    assert ids[len(pre) + 2:-1] == model.tokenize(LONG_SUFFIX)[:100 - 3 - len(pre)]


def test_infill_that_fits_is_not_truncated(model):
    assert fim_prompt_ids(model, "def f(", "):", room=100) == fim_prompt_ids(model, "def f(", "):")


def test_infill_too_long_without_truncate_raises(tiny_gguf_f32):
    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=128)
    with pytest.raises(starcoder_cpp.ContextOverflowError, match="truncate_prompt"):
        m.infill(LONG_PREFIX, LONG_SUFFIX, max_tokens=8)


def test_generation_stops_with_length_when_the_context_is_full(tiny_gguf_f32):
    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=16)
    r = m.complete("class Stack:", max_tokens=100, temperature=0)
    assert r.finish_reason == "length"
    assert r.n_prompt_tokens + r.n_tokens == 17  # 16 evaluated + the last one sampled


def test_batch_greedy_equals_one_by_one(model):
    prompts = ["def fibonacci(n):", "class Stack:", PROMPT, "import sys\n"]
    batch = model.complete_batch(prompts, max_tokens=24, temperature=0)
    single = [model.complete(p, max_tokens=24, temperature=0) for p in prompts]
    assert batch == single
    assert [b.finish_reason for b in batch] == [s.finish_reason for s in single]


def test_batch_sampling_uses_seed_plus_index(model):
    prompts = ["def fibonacci(n):", "class Stack:"]
    batch = model.complete_batch(prompts, max_tokens=16, temperature=0.8, seed=100)
    assert batch[0] == model.complete(prompts[0], max_tokens=16, temperature=0.8, seed=100)
    assert batch[1] == model.complete(prompts[1], max_tokens=16, temperature=0.8, seed=101)


def test_batch_honours_stop_strings_per_prompt(model):
    r = model.complete_batch(["def fibonacci(n):", "class Stack:"], max_tokens=40, temperature=0, stop='"""')
    assert all('"""' not in t for t in r)


def test_invalid_sampling_argument_raises_value_error(model):
    with pytest.raises(ValueError, match="top_p"):
        model.complete("x", top_p=0.0)
    with pytest.raises(ValueError, match="stop"):
        model.complete("x", stop=[""])
    with pytest.raises(ValueError, match="seed"):
        model.complete("x", seed=-1)


def test_other_calls_between_stream_pieces_do_not_corrupt_the_stream(model):
    expected = model.complete(PROMPT, max_tokens=20, temperature=0)
    stream = model.complete(PROMPT, max_tokens=20, temperature=0, stream=True)
    pieces = [next(stream)]
    model.complete("class Other:", max_tokens=5, temperature=0)  # reuses the same cache
    pieces.extend(stream)
    assert "".join(pieces) == expected


def test_sampling_options_give_the_same_text_as_keywords(model):
    from starcoder_cpp import SamplingOptions

    opts = SamplingOptions(temperature=0.9, top_k=20, seed=11)
    assert model.complete(PROMPT, max_tokens=24, sampling=opts) == model.complete(
        PROMPT, max_tokens=24, temperature=0.9, top_k=20, seed=11)
    prefix, suffix = "def add(a, b):\n    ", "\n    return result\n"
    assert model.infill(prefix, suffix, max_tokens=16, sampling=opts) == model.infill(
        prefix, suffix, max_tokens=16, temperature=0.9, top_k=20, seed=11)
    assert model.complete_batch([PROMPT], max_tokens=16, sampling=opts) == model.complete_batch(
        [PROMPT], max_tokens=16, temperature=0.9, top_k=20, seed=11)


def test_keywords_take_the_place_of_sampling_fields(model):
    from starcoder_cpp import SamplingOptions

    hot = SamplingOptions(temperature=0.9, seed=11)
    greedy = model.complete(PROMPT, max_tokens=24, temperature=0)
    assert model.complete(PROMPT, max_tokens=24, sampling=hot) != greedy
    assert model.complete(PROMPT, max_tokens=24, sampling=hot, temperature=0) == greedy


def test_one_model_used_from_several_python_threads_gives_each_its_sequential_text(model):
    # each call takes the model's lock around every step with the GIL released; a
    # completion finding the cache changed by another restores its own prefix
    import threading

    prompts = [PROMPT, "class Stack:\n    def push(self, x):", "def fib(n):\n    if n < 2:", "import sys\n"]
    expected = [str(model.complete(p, max_tokens=12, temperature=0)) for p in prompts]
    got, errors = {}, []

    def run(i):
        try:
            got[i] = str(model.complete(prompts[i % 4], max_tokens=12, temperature=0))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and all(not t.is_alive() for t in threads)
    assert [got[i] for i in range(8)] == expected * 2


def test_streams_interleaved_and_one_abandoned_midway_leave_the_other_intact(model):
    a = model.complete(PROMPT, max_tokens=16, temperature=0, stream=True)
    b = model.complete("def fib(n):\n    if n < 2:", max_tokens=16, temperature=0, stream=True)
    first_a, first_b = next(a), next(b)
    del b  # abandoned after one piece
    rest = "".join(a)
    assert first_a + rest == str(model.complete(PROMPT, max_tokens=16, temperature=0))
    assert first_b  # it had started
    # and the model is still usable for a fresh call
    assert str(model.complete("def fib(n):\n    if n < 2:", max_tokens=16, temperature=0)).startswith(first_b)


def test_max_tokens_beyond_the_context_runs_until_the_context_is_full(tiny_gguf_f32):
    m = starcoder_cpp.Model(tiny_gguf_f32, n_ctx=40)
    r = m.complete("def f(x):", max_tokens=10**12, temperature=0)
    assert r.finish_reason in ("length", "eos", "stop")
    assert r.n_prompt_tokens + r.n_tokens <= 40 + 1  # the last token is sampled, never evaluated
