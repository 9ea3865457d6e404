"""Steerability's estimate and CI are the jackknife's (metrics.intervals): a JSD's plug-in is biased upward, and
the plain percentile interval of a persona-blind model lay wholly above its own estimate."""

from __future__ import annotations

from metrics_synth import cyclic_orders, letter_model_responses

from valuescope.analysis.metrics import compute_metrics
from valuescope.analysis.metrics.steerability import match_strata, matched_jsd

ORDERS = cyclic_orders(6)


def _steer(df, reading="soft"):
    m = compute_metrics(df, None, n_boot=200, seed=1)
    row = m[(m["metric"] == f"steerability_jsd_{reading}") & (m["dimension"] == "D")].iloc[0]
    return row["value"], row["ci_low"], row["ci_high"]


def test_persona_blind_steerability_ci_contains_its_estimate_under_the_balanced_design():
    """Noisy persona-blind letter model, personas in rotation over 6 orders, baseline under all 6."""
    for seed in range(5):
        df = letter_model_responses(60, 6, persona_orders=ORDERS, baseline_orders=ORDERS, concentration=30.0,
                                    seed=seed)
        for reading in ("soft", "hard"):
            value, lo, hi = _steer(df, reading)
            assert lo <= value <= hi, (seed, reading, value, lo, hi)
            assert lo >= 0


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
