"""Position bias and like-for-like steerability on models whose truth is known: a persona-blind model
that answers by letter position (like the embedded SmolLM2), a content model, and mixtures of the two.
Option orders are the cyclic shifts (non-self-inverse), so a mix-up of order and inverse would show."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_synth import LETTER_BIAS, cyclic_orders, letter_model_responses

from valuescope.analysis.metrics import compute_metrics, position_bias, steerability_test
from valuescope.analysis.metrics.position import WARN_AT_LEAST, position_rows, warning_text
from valuescope.analysis.tidy import option_probs_in_scale_order

ORDERS = cyclic_orders(6)
CONTENT = (0.05, 0.05, 0.10, 0.20, 0.40, 0.20)


def test_non_self_inverse_mapping_letter_to_scale():
    # order (1, 2, 0): letter A shows option 1, B shows 2, C shows 0 -- a 3-cycle, not its own inverse
    assert option_probs_in_scale_order([0.7, 0.2, 0.1], [1, 2, 0]) == [0.1, 0.7, 0.2]
    # the inverse order would put them elsewhere: a swapped mapping cannot pass
    assert option_probs_in_scale_order([0.7, 0.2, 0.1], [2, 0, 1]) == [0.2, 0.1, 0.7]


def test_position_bias_bound_by_hand():
    """Noise-free mixtures ``w * letter + (1 - w) * content``: the bound is ``w (1 - K min letter)`` exactly;
    a one-letter habit reads 1 on both readings, a content-only model 0."""
    k_min = 6 * min(LETTER_BIAS)
    for w in (0.0, 0.25, 0.5, 1.0):
        mix = letter_model_responses(4, persona_orders=ORDERS, baseline_orders=ORDERS, content=CONTENT, w_letter=w)
        assert position_bias(mix, "soft") == pytest.approx(w * (1 - k_min), abs=1e-9), w
    one = (0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    letter = letter_model_responses(4, persona_orders=ORDERS, baseline_orders=ORDERS, letter=one, w_letter=1.0)
    assert position_bias(letter, "soft") == pytest.approx(1.0) and position_bias(letter, "hard") == pytest.approx(1.0)
    content = letter_model_responses(4, persona_orders=ORDERS, baseline_orders=ORDERS, content=CONTENT, w_letter=0.0)
    assert position_bias(content, "soft") == pytest.approx(0.0, abs=1e-9)
    assert position_bias(content, "hard") == pytest.approx(0.0, abs=1e-9)
    # the answers reading: the letter habit (45% on C) moves every argmax at w = 0.5 (content peak 0.4 + ...)
    half = letter_model_responses(4, persona_orders=ORDERS, baseline_orders=ORDERS, content=CONTENT, w_letter=0.5)
    assert position_bias(half, "hard") == pytest.approx(1.0)


def test_persona_disagreement_cannot_enter():
    """Personas that move the content a lot (each asked once per item) leave the reading unchanged: it is
    read where one respondent answers an item under several orders (here the baseline)."""
    kw = dict(persona_orders=ORDERS, baseline_orders=ORDERS, content=CONTENT, w_letter=0.25)
    calm = letter_model_responses(30, **kw)
    moved = letter_model_responses(30, persona_shift=0.8, **kw)
    for reading in ("soft", "hard"):
        assert position_bias(moved, reading) == pytest.approx(position_bias(calm, reading), abs=1e-12)
    rows = {r["metric"]: r for r in position_rows(moved, ("r1", "m", "inst"), n_boot=50, seed=0)}
    soft = rows["position_bias_soft"]
    assert soft["value"] == pytest.approx(0.25 * (1 - 6 * min(LETTER_BIAS)))
    assert soft["n"] == 6 * 6 and "the baseline" in soft["note"]  # 6 items x 6 orders of the baseline


def test_position_rows_ci_notes_and_fixed_orders():
    noisy = letter_model_responses(30, persona_orders=ORDERS, baseline_orders=ORDERS, concentration=30.0, seed=3)
    rows = {r["metric"]: r for r in position_rows(noisy, ("r1", "m", "inst"), n_boot=60, seed=0)}
    soft = rows["position_bias_soft"]
    assert soft["ci_low"] <= soft["value"] <= soft["ci_high"] and soft["ci_high"] > soft["ci_low"]
    assert abs(soft["value"] - (1 - 6 * min(LETTER_BIAS))) < 0.1  # Dirichlet noise: a little above the bound
    assert soft["context_a"] == "all" and soft["dimension"] == ""
    fixed = letter_model_responses(10, persona_orders=ORDERS[:1], baseline_orders=ORDERS[:1])
    rows = position_rows(fixed, ("r1", "m", "inst"), n_boot=10, seed=0)
    assert all(np.isnan(r["value"]) and "never permuted" in r["note"] for r in rows)
    # permuted, but every respondent answers an item under one order: not identified, and the note says why
    once = letter_model_responses(10, persona_orders=ORDERS, baseline_orders=ORDERS[:1])
    rows = position_rows(once, ("r1", "m", "inst"), n_boot=10, seed=0)
    assert all(np.isnan(r["value"]) and "option_order: balanced" in r["note"] for r in rows)
    # in the long table, per instrument
    m = compute_metrics(noisy, None, n_boot=20)
    assert set(m[m.metric.str.startswith("position_bias")]["instrument"]) == {"inst"}


def test_warning_words_what_is_measured():
    assert warning_text(WARN_AT_LEAST - 0.01) is None and warning_text(float("nan")) is None
    text = warning_text(0.4)
    assert text is not None and text.startswith("at least 40% of the probability follows the letter shown")


def test_steerability_never_compared_across_option_orders():
    # the demo's old design: the baseline under one order, each persona under its own. A persona-blind
    # letter model then "moves" every persona; like for like, nothing can be compared: NaN with the reason
    df = letter_model_responses(12, persona_orders=ORDERS[1:], baseline_orders=ORDERS[:1])
    m = compute_metrics(df, None, n_boot=20, n_perm=50)
    for name in ("steerability_jsd_hard", "steerability_jsd_soft", "steerability_p_soft"):
        row = m[m.metric == name].iloc[0]
        assert np.isnan(row["value"]) and "like for like" in row["note"]
    # what comparing across orders would have said (the artefact): labels exchanged per item only
    blind = df.drop(columns=["option_order"])
    obs, p, _ = steerability_test(blind[blind.condition == "baseline"], blind[blind.condition == "persona"],
                                         6, np.random.default_rng(0), 199)
    assert obs > 0.05 and p <= 0.01


def test_steerability_partial_overlap_counts_what_is_left_out():
    # baseline under orders 0 and 1; personas rotate over 0..2: the order-2 personas are left out, counted
    df = letter_model_responses(9, persona_orders=ORDERS[:3], baseline_orders=ORDERS[:2])
    row = compute_metrics(df, None, n_boot=20, n_perm=20).query("metric == 'steerability_jsd_soft'").iloc[0]
    assert row["value"] == pytest.approx(0.0, abs=1e-12)
    assert row["n"] == 6 * 6 and "18 persona answers (3 of 9 personas wholly) left out" in row["note"]


@pytest.mark.slow  # several hundred seeded replications through the steerability test: 19 CPU-s here (2026-12-05)
def test_like_for_like_persona_blind_gives_zero_and_uniform_p():
    # deterministic letter model, baseline under every order of the set: JSD exactly 0, p = 1
    df = letter_model_responses(24, persona_orders=ORDERS, baseline_orders=ORDERS)
    m = compute_metrics(df, None, n_boot=20, n_perm=50)
    assert m[m.metric == "steerability_jsd_soft"]["value"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert m[m.metric == "steerability_jsd_hard"]["value"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert m[m.metric == "steerability_p_soft"]["value"].iloc[0] == 1.0
    # noisy model whose noise one respondent's answers to an item share across option orders (the test's
    # assumption, steerability.baseline_spread): p uniform under H0, the false-positive rate at 0.05 near 5%
    # (200 seeds: binomial sd of the rate 0.015; measured 0.035, mean p 0.505)
    def pvalues(noise: str, w_letter: float) -> np.ndarray:
        out = []
        for seed in range(200):
            d = letter_model_responses(18, n_items=4, persona_orders=ORDERS, baseline_orders=ORDERS, content=CONTENT,
                                       w_letter=w_letter, concentration=20.0, seed=seed, noise=noise)
            _, p, _ = steerability_test(d[d.condition == "baseline"], d[d.condition == "persona"], 6,
                                        np.random.default_rng(seed), 99)
            out.append(p)
        return np.array(out)

    shared = pvalues("query", 0.5)
    assert 0.01 <= float(np.mean(shared <= 0.05)) <= 0.10, np.mean(shared <= 0.05)
    assert 0.42 <= shared.mean() <= 0.58
    # noise drawn afresh for every answer (an order adds noise of its own): the test assumes it shared, the
    # upper bound of the baseline's variance, so it is conservative, never anti-conservative (measured: no
    # p <= 0.10 in 200 seeds, mean p 0.94)
    fresh = pvalues("answer", 1.0)
    assert float(np.mean(fresh <= 0.05)) <= 0.05 and fresh.mean() >= 0.5


def test_like_for_like_detects_a_planted_persona_effect():
    d = letter_model_responses(18, n_items=4, persona_orders=ORDERS, baseline_orders=ORDERS, content=CONTENT,
                               w_letter=0.5, concentration=20.0, persona_shift=0.3, seed=1, noise="query")
    obs, p, _ = steerability_test(d[d.condition == "baseline"], d[d.condition == "persona"], 6,
                                         np.random.default_rng(0), 199)
    assert obs > 0.01 and p <= 0.01


def test_no_steerability_test_when_every_order_has_one_persona_says_why():
    # 6 personas under 6 orders: each (item, order) stratum holds one persona answer, so no respondent's
    # deviation can be read (steerability._deviations); with 12 personas (two per order) the test runs
    noisy = dict(persona_orders=ORDERS, baseline_orders=ORDERS, concentration=20.0, seed=1)
    one = compute_metrics(letter_model_responses(6, **noisy), None, n_boot=20, n_perm=50)
    for reading in ("soft", "hard"):
        row = one[one.metric == f"steerability_p_{reading}"].iloc[0]
        assert np.isnan(row["value"]) and row["n"] == 0 and "no (item, option order) was answered by two" in row["note"]
    two = compute_metrics(letter_model_responses(12, **noisy), None, n_boot=20, n_perm=50)
    row = two[two.metric == "steerability_p_soft"].iloc[0]
    assert 0.0 < row["value"] <= 1.0 and row["n"] == 50 and "no test" not in row["note"]
