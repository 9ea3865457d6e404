"""Steerability's bootstrap CI is bias-corrected: a JSD's replicates are biased upward, so the
plain percentile interval of a persona-blind model lies wholly above its own estimate."""

from __future__ import annotations

import numpy as np
from metrics_synth import cyclic_orders, letter_model_responses

from valuescope.analysis.metrics import compute_metrics
from valuescope.analysis.metrics._common import bias_corrected_ci

ORDERS = cyclic_orders(6)


def _steer(df, reading="soft"):
    m = compute_metrics(df, None, n_boot=200, seed=1)
    row = m[(m["metric"] == f"steerability_jsd_{reading}") & (m["dimension"] == "D")].iloc[0]
    return row["value"], row["ci_low"], row["ci_high"]


def test_bias_corrected_ci_by_hand():
    boot = np.array([0.01, 0.02, 0.03, 0.04, 0.05])  # mean 0.03
    lo, hi = bias_corrected_ci(boot, 0.01, alpha=0.5)  # quartiles 0.02, 0.04; bias 0.02
    assert np.isclose(lo, 0.0) and np.isclose(hi, 0.02)
    assert bias_corrected_ci(np.array([np.nan]), 0.1) != bias_corrected_ci(np.array([np.nan]), 0.1)  # NaN pair
    assert bias_corrected_ci(np.array([0.5, 0.7, 0.9]), 0.7, upper=0.8)[1] <= 0.8


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
    """12 personas (the demo's size), little noise: the estimate is pure sampling noise, and its interval
    must reach well below it (the plain percentile interval starts at the estimate itself)."""
    for conc in (1000.0, 100.0):
        df = letter_model_responses(12, 6, persona_orders=ORDERS, baseline_orders=ORDERS, concentration=conc,
                                    seed=0)
        value, lo, hi = _steer(df, "soft")
        assert 0 <= lo <= 0.5 * value < value <= hi, (conc, value, lo, hi)


def test_a_real_persona_effect_keeps_a_ci_above_zero():
    df = letter_model_responses(60, 6, persona_orders=ORDERS, baseline_orders=ORDERS, w_letter=0.3,
                                persona_shift=0.6, concentration=200.0, seed=3)
    value, lo, hi = _steer(df)
    assert value > 0.01 and 0 < lo <= value <= hi
