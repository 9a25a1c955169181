"""The native serving engine's chunked prefill, driven step by step: one
forward pass per step holds every running slot's next token and at most
`prefill_chunk` prompt tokens, so a long new prompt never stalls the streams
already running."""

import math

import pytest

import starcoder_cpp
from starcoder_cpp import _core
from starcoder_cpp.model import demo_model_path

LONG = "import os\nimport sys\n\n\ndef main(argv):\n    parser = make_parser()\n" * 12


def greedy():
    p = _core.SamplingParams()
    p.temperature = 0.0
    return p


def make_engine(n_slots=2, prefill_chunk=32, n_batch=512):
    return _core.Engine(demo_model_path(), 1024, 1, n_batch, "f16", n_slots, prefill_chunk)


def start(engine, slot, ids, max_tokens=16):
    eos = engine.eos_id
    engine.start(slot, ids, greedy(), max_tokens, [], [eos])


def run_until_idle(engine, max_steps=2000):
    """Steps until no slot is busy; returns {slot: [token, ...]} and the steps taken."""
    tokens, steps = {}, 0
    while engine.n_busy:
        for ev in engine.step():
            assert not ev[9], ev[9]
            if ev[1] >= 0:
                tokens.setdefault(ev[0], []).append(ev[1])
        steps += 1
        assert steps < max_steps
    return tokens, steps


@pytest.fixture(scope="module")
def model():
    return starcoder_cpp.Model("demo", n_ctx=1024, n_threads=1)


def test_a_long_prompt_is_read_one_chunk_per_step_while_a_running_slot_keeps_decoding():
    engine = make_engine(prefill_chunk=32)
    start(engine, 0, engine.encode("def f(x):"), max_tokens=200)
    assert [ev[0] for ev in engine.step()] == [0]  # a short prompt: its first token in one step
    ids = engine.encode(LONG)
    assert len(ids) > 5 * 32
    start(engine, 1, ids)
    chunks = math.ceil(len(ids) / 32)
    for step in range(1, chunks + 1):
        slots = [ev[0] for ev in engine.step() if ev[1] >= 0]
        assert 0 in slots, f"slot 0 produced nothing in step {step} while slot 1 was prefilling"
        assert (1 in slots) == (step == chunks), f"slot 1's first token came in step {step}, not {chunks}"
        assert engine.n_cached(1) == min(step * 32, len(ids))


def test_a_prompt_longer_than_the_chunk_completes_as_model_complete_does(model):
    engine = make_engine(prefill_chunk=16)
    ids = engine.encode(LONG)
    start(engine, 0, ids, max_tokens=24)
    tokens, steps = run_until_idle(engine)
    text = engine.decode(tokens[0]).decode()
    assert text == model.complete(LONG, max_tokens=24, temperature=0)
    assert steps >= math.ceil(len(ids) / 16)


def test_prompts_of_two_new_slots_share_one_steps_chunk_oldest_first():
    engine = make_engine(prefill_chunk=32)
    a, b = engine.encode("import os\n" * 5), engine.encode(LONG)  # a: under one chunk
    assert len(a) < 32
    start(engine, 0, a)
    start(engine, 1, b)
    first = engine.step()
    assert [ev[0] for ev in first if ev[1] >= 0] == [0]
    assert engine.n_cached(0) == len(a)
    assert engine.n_cached(1) == 32 - len(a)  # the rest of the chunk went to the next request


def test_max_tokens_zero_caches_a_long_prompt_in_chunks_and_generates_nothing():
    engine = make_engine(prefill_chunk=32)
    ids = engine.encode(LONG)
    engine.start(0, ids, greedy(), 0, [], [engine.eos_id])
    events, steps = [], 0
    while engine.n_busy:
        events += engine.step()
        steps += 1
    assert steps == math.ceil(len(ids) / 32)
    assert len(events) == 1 and events[0][6] and events[0][1] == -1 and events[0][7] == "length"
    assert engine.n_cached(0) == len(ids)


def test_a_slot_cancelled_mid_prefill_is_free_and_keeps_the_chunks_it_read():
    engine = make_engine(prefill_chunk=32)
    ids = engine.encode(LONG)
    start(engine, 0, ids)
    engine.step()
    engine.step()
    engine.cancel(0)
    assert not engine.busy(0) and engine.n_cached(0) == 64
    assert engine.pick_slot(ids) == (0, 64)  # the same file again starts where it stopped


def test_the_prefill_chunk_is_capped_at_n_batch():
    assert make_engine(prefill_chunk=10_000, n_batch=64).prefill_chunk == 64


def test_engine_refuses_more_slots_than_one_batch_holds():
    with pytest.raises(ValueError, match="n_batch 4 is smaller than the 8 slots"):
        make_engine(n_slots=8, n_batch=4)


def test_engine_refuses_a_prefill_chunk_below_one():
    with pytest.raises(ValueError, match="prefill_chunk must be >= 1"):
        make_engine(prefill_chunk=0)


def test_step_logprobs_are_the_models_log_softmax_and_top_n_its_best_tokens(model):
    import numpy as np

    engine = make_engine(prefill_chunk=16)
    ids = engine.encode(LONG)
    engine.start(0, ids, greedy(), 4, [], [], 5)
    (ev,) = [e for e in run_steps(engine) if e[1] >= 0][:1]
    model.reset()
    logits = model.eval(ids).astype(np.float64).ravel()
    logp = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
    assert ev[1] == int(np.argmax(logits))
    assert abs(ev[2] - logp[ev[1]]) < 1e-4
    best = np.argsort(-logp)[:5]
    assert [t for t, _ in ev[4]] == list(best)
    assert np.allclose([lp for _, lp in ev[4]], logp[best], atol=1e-4)


def run_steps(engine):
    events = []
    while engine.n_busy:
        events += engine.step()
    return events
