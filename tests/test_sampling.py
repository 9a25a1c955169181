"""Each sampler's effect equals a numpy reference on fixed logits, and the
seeded draw is deterministic and follows the distribution."""

from __future__ import annotations

import numpy as np
import pytest

from starcoder_cpp import _core

LOGITS = np.array([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, 3.0, 2.5, -2.0], dtype=np.float32)


def params(**kw):
    p = _core.SamplingParams()
    p.temperature, p.top_k, p.top_p, p.min_p, p.repeat_penalty = 1.0, 0, 1.0, 0.0, 1.0
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def dist(logits=LOGITS, recent=(), **kw) -> dict:
    return dict(_core.sampling_distribution(logits, params(**kw), list(recent)))


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def assert_dist(got: dict, ref: np.ndarray):
    keep = {i: p for i, p in enumerate(ref) if p > 0}
    assert set(got) == set(keep)
    for i, p in keep.items():
        assert got[i] == pytest.approx(p, rel=1e-5)


def test_temperature_scales_logits_before_softmax():
    for t in (0.5, 1.0, 2.0):
        assert_dist(dist(temperature=t), softmax(LOGITS.astype(np.float64) / t))


def test_zero_temperature_is_greedy():
    assert dist(temperature=0.0) == {7: 1.0}


def test_top_k_keeps_the_k_most_likely():
    ref = softmax(LOGITS.astype(np.float64))
    ref[np.argsort(-LOGITS)[3:]] = 0
    assert_dist(dist(top_k=3), ref / ref.sum())


def test_top_p_keeps_the_smallest_set_reaching_p():
    p = softmax(LOGITS.astype(np.float64))
    order = np.argsort(-p)
    cum = np.cumsum(p[order])
    n = int(np.searchsorted(cum, 0.8) + 1)
    ref = np.zeros_like(p)
    ref[order[:n]] = p[order[:n]]
    assert_dist(dist(top_p=0.8), ref / ref.sum())


def test_min_p_drops_tokens_below_a_fraction_of_the_best():
    p = softmax(LOGITS.astype(np.float64))
    ref = np.where(p >= 0.2 * p.max(), p, 0)
    assert_dist(dist(min_p=0.2), ref / ref.sum())


def test_repeat_penalty_divides_positive_and_multiplies_negative_logits():
    pen = LOGITS.astype(np.float64).copy()
    for t in (7, 6):  # 7 has a positive logit, 6 a negative one
        pen[t] = pen[t] / 1.5 if pen[t] > 0 else pen[t] * 1.5
    assert_dist(dist(recent=[7, 6, 7], repeat_penalty=1.5), softmax(pen))


def test_repeat_penalty_only_sees_the_last_n_tokens():
    pen = LOGITS.astype(np.float64).copy()
    pen[6] *= 2.0
    assert_dist(dist(recent=[7, 6], repeat_penalty=2.0, repeat_last_n=1), softmax(pen))


def test_chain_applies_penalty_temperature_top_k_top_p_min_p_in_order():
    x = LOGITS.astype(np.float64).copy()
    x[8] /= 1.3  # penalty on token 8 (positive logit)
    x /= 0.7
    keep = np.argsort(-x)[:5]
    p = np.zeros_like(x)
    p[keep] = softmax(x[keep])
    order = np.argsort(-p)
    n = int(np.searchsorted(np.cumsum(p[order]), 0.9) + 1)
    q = np.zeros_like(p)
    q[order[:n]] = p[order[:n]]
    q = np.where(q >= 0.1 * q.max(), q, 0)
    got = dist(recent=[8], repeat_penalty=1.3, temperature=0.7, top_k=5, top_p=0.9, min_p=0.1)
    assert_dist(got, q / q.sum())


def test_same_seed_same_draws():
    a = _core.sample_tokens(LOGITS, params(seed=42), 200)
    b = _core.sample_tokens(LOGITS, params(seed=42), 200)
    c = _core.sample_tokens(LOGITS, params(seed=43), 200)
    assert a == b
    assert a != c


def test_draws_follow_the_distribution():
    n = 20000
    draws = np.bincount(_core.sample_tokens(LOGITS, params(seed=7), n), minlength=len(LOGITS)) / n
    expected = softmax(LOGITS.astype(np.float64))
    # 5 standard deviations of a binomial proportion
    assert np.all(np.abs(draws - expected) <= 5 * np.sqrt(expected * (1 - expected) / n) + 1e-9)


@pytest.mark.parametrize(
    "field,value",
    [("temperature", -0.1), ("top_k", -1), ("top_p", 0.0), ("top_p", 1.5), ("min_p", -0.1), ("repeat_penalty", 0.0)],
)
def test_invalid_parameters_raise_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        params(**{field: value}).check()


# --------------------------------------------------------------------------- SamplingOptions

from starcoder_cpp import SamplingOptions  # noqa: E402

FIELDS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n")


def test_sampling_options_defaults_are_the_cores():
    core = _core.SamplingParams()
    py = SamplingOptions()
    for f in FIELDS:
        assert getattr(py, f) == pytest.approx(getattr(core, f), rel=1e-6), f
    assert py.seed is None  # a random seed per call


def test_cli_defaults_are_the_sampling_options_defaults():
    from starcoder_cpp.cli import build_parser

    for cmd in (["complete", "-m", "demo", "x"], ["infill", "-m", "demo", "--prefix", "x"]):
        args = build_parser().parse_args(cmd)
        assert {f: getattr(args, f) for f in FIELDS + ("seed",)} == {f: getattr(SamplingOptions(), f) for f in FIELDS + ("seed",)}


@pytest.mark.parametrize(
    "field,value",
    [("temperature", -0.1), ("top_k", -1), ("top_p", 0.0), ("top_p", 1.5), ("min_p", -0.1), ("repeat_penalty", 0.0),
     ("repeat_last_n", -2), ("seed", -1)],
)
def test_invalid_sampling_options_raise_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingOptions(**{field: value})


@pytest.mark.parametrize("field,value", [("temperature", "hot"), ("top_k", 1.5), ("seed", True), ("top_p", None)])
def test_sampling_options_of_the_wrong_type_raise_type_error(field, value):
    with pytest.raises(TypeError, match=field):
        SamplingOptions(**{field: value})


def test_merged_options_take_the_given_keywords_over_the_base():
    base = SamplingOptions(temperature=0.7, top_k=5, seed=3)
    m = SamplingOptions.merged(base, temperature=0, top_k=None, seed=None)
    assert (m.temperature, m.top_k, m.seed) == (0.0, 5, 3)
    assert SamplingOptions.merged(None) == SamplingOptions()
    with pytest.raises(TypeError, match="SamplingOptions"):
        SamplingOptions.merged({"temperature": 0})
