"""Within/between-persona variance, ICC(1) and the convergence curve, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_synth import hand_rows, hand_scores, synth_responses

from valuescope.analysis.metrics import compute_metrics, convergence_curve, variance_components

# three personas, two repeats each, one value:
#   P1: 1, 3 (mean 2)   P2: 4, 6 (mean 5)   P3: 7, 7 (mean 7);  N = 6, P = 3, grand mean 28/6 = 4.6667
#   SSW = (1+1) + (1+1) + 0 = 4 -> MSW = 4 / (6-3) = 1.3333
#   MSB = 2 * [(2-4.667)^2 + (5-4.667)^2 + (7-4.667)^2] / 2 = 7.1111 + 0.1111 + 5.4444 = 12.6667
#   n0 = (6 - 12/6) / 2 = 2;  ICC(1) = (12.6667 - 1.3333) / (12.6667 + 1.3333) = 0.809524
#   var_between = var([2, 5, 7], ddof=1) = 12.6667 / 2 = 6.3333
HAND = {("P1", 0): 1, ("P1", 1): 3, ("P2", 0): 4, ("P2", 1): 6, ("P3", 0): 7, ("P3", 1): 7}


def test_variance_components_by_hand():
    units = np.array([u for u, _ in HAND])
    out = variance_components(np.array(list(HAND.values()), float), units)
    assert out["var_repeat"] == pytest.approx(4 / 3)
    assert out["var_between"] == pytest.approx(19 / 3)
    assert out["icc"] == pytest.approx((38 / 3 - 4 / 3) / 14)
    # var_persona = (MSB - MSW) / n0 = (38/3 - 4/3) / 2 = 17/3; icc = 17/3 / (17/3 + 4/3) = 17/21
    assert out["var_persona"] == pytest.approx(17 / 3)
    assert out["icc"] == pytest.approx(17 / 21)
    assert out["n_units"] == 3 and out["n_obs"] == 6
    assert np.isnan(out["var_sampling"]) and np.isnan(out["run_to_run_share"])  # no sampling variances given
    # with each score's sampling variance 0.5 (P1), 1 (P2), 0 (P3): var_sampling = mean = 0.5;
    # run_to_run_share = (4/3 + 1/2) / (17/3 + 4/3 + 1/2) = (11/6) / (15/2) = 11/45
    samp = np.array([0.5, 0.5, 1.0, 1.0, 0.0, 0.0])
    out = variance_components(np.array(list(HAND.values()), float), units, samp)
    assert out["var_sampling"] == pytest.approx(0.5)
    assert out["run_to_run_share"] == pytest.approx(11 / 45)


def test_icc_unbalanced_matches_anova_formula():
    # P1: 1, 3, 5 (mean 3)  P2: 6, 8 (mean 7); N = 5, grand mean 23/5 = 4.6
    # SSW = 8 + 2 = 10, MSW = 10/3; MSB = 3*(3-4.6)^2 + 2*(7-4.6)^2 = 7.68 + 11.52 = 19.2 (P-1 = 1)
    # n0 = (5 - (9+4)/5) / 1 = 2.4; ICC = (19.2 - 3.3333) / (19.2 + 1.4 * 3.3333) = 0.663082
    out = variance_components(np.array([1, 3, 5, 6, 8.0]), np.array(["a", "a", "a", "b", "b"]))
    assert out["icc"] == pytest.approx((19.2 - 10 / 3) / (19.2 + 1.4 * 10 / 3))


def _scores(values):
    return hand_scores({(p, "none", r): [v] for (p, r), v in values.items()}, ["V"])


def _resp():
    return hand_rows([("persona", "P1", "none", "i", "V", [1.0, 0, 0, 0, 0, 0])], instrument="pvq40")


def _row(m, metric):
    sel = m[(m.metric == metric) & (m.dimension == "V")]
    assert len(sel) == 1
    return sel.iloc[0]


def test_variance_rows_in_long_table():
    m = compute_metrics(_resp(), _scores(HAND), n_boot=50)
    assert _row(m, "icc")["value"] == pytest.approx(0.8095238)
    assert _row(m, "var_repeat")["value"] == pytest.approx(4 / 3)
    assert _row(m, "var_between")["value"] == pytest.approx(19 / 3)
    assert _row(m, "icc")["n"] == 3 and _row(m, "icc")["context_a"] == "none"


def test_variance_edge_cases():
    # no repeats -> within-persona variance and ICC undefined; between defined
    m = compute_metrics(_resp(), _scores({("P1", 0): 1, ("P2", 0): 2, ("P3", 0): 4}), n_boot=10)
    assert np.isnan(_row(m, "icc")["value"]) and "no repeats" in _row(m, "icc")["note"]
    assert _row(m, "var_between")["value"] == pytest.approx(7 / 3)
    # one persona -> between and ICC undefined
    m = compute_metrics(_resp(), _scores({("P1", 0): 1, ("P1", 1): 3}), n_boot=10)
    assert np.isnan(_row(m, "icc")["value"]) and "fewer than 2 personas" in _row(m, "icc")["note"]
    assert _row(m, "var_repeat")["value"] == pytest.approx(2.0)
    # zero variance everywhere -> ICC undefined (0/0)
    m = compute_metrics(_resp(), _scores({(p, r): 3 for p in ("a", "b") for r in (0, 1)}), n_boot=10)
    assert np.isnan(_row(m, "icc")["value"]) and "zero variance" in _row(m, "icc")["note"]
    assert _row(m, "var_repeat")["value"] == 0.0


def test_convergence_curve_shrinks_and_is_seeded():
    df = synth_responses(n_personas=120, seed=1)
    c1 = convergence_curve(df, n_draws=300, seed=4)
    c2 = convergence_curve(df, n_draws=300, seed=4)
    assert c1.equals(c2)
    harm = c1[c1.dimension == "Harm"].set_index("n_personas")["var_mean"]
    assert list(harm.index) == [10, 20, 50, 100, 120]
    # Var(mean of N) ~ sigma^2 / N: the N=10 variance is several times the N=100 one
    assert harm[10] > 4 * harm[100]
    # constant persona means -> zero variance at every N
    const = hand_rows([("persona", f"p{j}", "none", "i", "D", [0, 1.0, 0, 0, 0, 0]) for j in range(12)])
    cc = convergence_curve(const, n_draws=20)
    assert (cc["var_mean"] == 0).all() and list(cc["n_personas"]) == [10, 12]


def test_convergence_rows_in_long_table():
    df = synth_responses(n_personas=25, seed=2)
    m = compute_metrics(df, None, n_boot=40)
    conv = m[(m.metric == "convergence_var") & (m.dimension == "Harm")]
    assert conv["n"].tolist() == [10, 20, 25]
    assert conv["value"].is_monotonic_decreasing
