"""Steerability's estimate and CI are the jackknife's (metrics.intervals): a JSD's plug-in is biased upward, and
the plain percentile interval of a persona-blind model lay wholly above its own estimate."""

from __future__ import annotations

from metrics_synth import cyclic_orders, letter_model_responses
from replications import family_metrics

from valuescope.analysis.metrics import compute_metrics
from valuescope.analysis.metrics.steerability import match_strata, matched_jsd

ORDERS = cyclic_orders(6)


def _steer_both(df) -> dict[str, tuple[float, float, float]]:
    """(value, ci_low, ci_high) of both readings from one ``compute_metrics`` call."""
    m = compute_metrics(df, None, n_boot=200, seed=1)
    out = {}
    for reading in ("soft", "hard"):
        row = m[(m["metric"] == f"steerability_jsd_{reading}") & (m["dimension"] == "D")].iloc[0]
        out[reading] = (row["value"], row["ci_low"], row["ci_high"])
    return out


def _steer(df, reading="soft"):
    return _steer_both(df)[reading]


def test_persona_blind_steerability_ci_covers_zero_under_the_balanced_design():
    """Noisy persona-blind letter model, personas in rotation over 6 orders, baseline under all 6: the truth is 0,
    so a 95% interval may exclude it (ci_low > 0) in about 5% of replications. 30 replications: at most 3
    (0.05 + 2 binomial sd at n = 30, sd 0.040); measured 0 of 100 in both readings (the baseline's borrowed
    spread is conservative when an order adds noise of its own). Each estimate also lies inside its interval,
    and the interval inside [0, 1]."""
    excluded = {"soft": 0, "hard": 0}
    for seed in range(30):
        df = letter_model_responses(60, 6, persona_orders=ORDERS, baseline_orders=ORDERS, concentration=30.0,
                                    seed=seed)
        m = family_metrics(df, families=("dimension",), n_boot=200, seed=1)  # the rows compute_metrics gives
        for reading in excluded:
            row = m[(m["metric"] == f"steerability_jsd_{reading}") & (m["dimension"] == "D")].iloc[0]
            assert 0 <= row["ci_low"] <= row["value"] <= row["ci_high"] <= 1, (seed, reading, row)
            excluded[reading] += int(row["ci_low"] > 0)
    assert max(excluded.values()) <= 3, excluded


def test_persona_blind_ci_reaches_down_to_zero():
    """12 personas (the demo's size), little noise: the plug-in JSD is pure sampling noise; the estimate removes
    most of it and its interval reaches the truth, 0."""
    for conc in (1000.0, 100.0):
        df = letter_model_responses(12, 6, persona_orders=ORDERS, baseline_orders=ORDERS, concentration=conc,
                                    seed=0)
        d = df[df["dimension"] == "D"]
        plug_in = matched_jsd(match_strata(d[d["condition"] == "baseline"], d[d["condition"] == "persona"], 6), "soft")
        value, lo, hi = _steer(df, "soft")
        assert lo == 0.0 <= value <= 0.5 * plug_in < plug_in <= hi, (conc, plug_in, value, lo, hi)


def test_a_real_persona_effect_keeps_a_ci_above_zero():
    df = letter_model_responses(60, 6, persona_orders=ORDERS, baseline_orders=ORDERS, w_letter=0.3,
                                persona_shift=0.6, concentration=200.0, seed=3)
    value, lo, hi = _steer(df)
    assert value > 0.01 and 0 < lo <= value <= hi


def test_baseline_answers_to_one_query_under_several_orders_count_as_one_draw():
    """Hand-computed: 2 items x 2 orders, 4 personas each answering both items under one order (w_s = 1/4), a
    baseline answering each (item, order) once. Its two orders of an item are one query asked again (their
    noise is shared): var(p_base) = sum over queries of (sum of its answers' w_s)^2 = 2 * (1/2)^2 = 0.5 times
    the answer covariance, not sum_s w_s^2 = 0.25 (independent answers); a second repeat is a new query."""
    import numpy as np
    import pandas as pd

    from valuescope.analysis.metrics.steerability import baseline_spread

    probs = [[0.6, 0.4], [0.2, 0.8], [0.5, 0.5], [0.9, 0.1]]
    rows = []
    for u in range(4):
        for j, item in enumerate(("a", "b")):
            p = probs[(u + j) % 4]
            rows.append({"condition": "persona", "persona_id": f"p{u}", "item_id": item, "option_order": str(u % 2),
                         "repeat": 0, "p_1": p[0], "p_2": p[1], "argmax": 1 + int(p[1] > p[0]), "valid": True})
    for repeat in (0, 1):
        for item in ("a", "b"):
            for order in ("0", "1"):
                rows.append({"condition": "baseline", "persona_id": "baseline", "item_id": item,
                             "option_order": order, "repeat": repeat, "p_1": 0.5, "p_2": 0.5, "argmax": 1,
                             "valid": True})
    df = pd.DataFrame(rows)
    pers = df[df["condition"] == "persona"]
    one = df[(df["condition"] == "baseline") & (df["repeat"] == 0)]
    cov_one = baseline_spread(match_strata(one, pers, 2), "soft", [], 2, conversation=False).cov
    # the answers' independent reading, for the hand-computed ratio: each baseline answer its own query
    cov_indep = baseline_spread(match_strata(one.drop(columns="item_id").assign(
        item_id=one["item_id"] + one["option_order"]), pers.assign(item_id=pers["item_id"] + pers["option_order"]),
        2), "soft", [], 2, conversation=False).cov
    assert np.abs(cov_one).max() > 0
    np.testing.assert_allclose(cov_one, 2.0 * cov_indep)  # 0.5 / 0.25
    # two repeats: each stratum holds 2 answers (weight w_s / 2 each), 4 queries of weight 1/4: 4 / 16 = 0.25
    two = df[df["condition"] == "baseline"]
    cov_two = baseline_spread(match_strata(two, pers, 2), "soft", [], 2, conversation=False).cov
    np.testing.assert_allclose(cov_two, cov_one / 2.0)
