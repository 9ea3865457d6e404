"""Inertia Index, JSD steerability, concentration and the permutation test (Lee et al. 2024), by hand."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_synth import hand_rows, synth_responses

from valuescope.analysis.metrics import (
    answer_distribution,
    compute_metrics,
    entropy_bits,
    inertia_index,
    jsd,
    steerability_test,
    top1_share,
    top2_adjacent,
)

LOG2_6 = np.log2(6)  # 2.5849625


def test_entropy_and_inertia_by_hand():
    # p = [.5, .5, 0, 0, 0, 0] -> H = 1 bit -> I = 1 - 1/log2 6 = 1 - 0.386853 = 0.613147
    p = [0.5, 0.5, 0, 0, 0, 0]
    assert entropy_bits(np.array(p)) == pytest.approx(1.0)
    assert inertia_index(np.array(p)) == pytest.approx(0.6131472, abs=1e-7)
    # uniform over 6 -> H = log2 6 -> I = 0 ; all mass on one option -> H = 0 -> I = 1
    assert inertia_index(np.full(6, 1 / 6)) == pytest.approx(0.0, abs=1e-12)
    assert inertia_index(np.array([0, 0, 1.0, 0, 0, 0])) == pytest.approx(1.0)
    # unnormalised counts are normalised first: [2, 1, 1, 0, 0, 0] = [.5, .25, .25] -> H = 1.5 bits
    assert entropy_bits(np.array([2.0, 1, 1, 0, 0, 0])) == pytest.approx(1.5)
    assert inertia_index(np.array([2.0, 1, 1, 0, 0, 0])) == pytest.approx(1 - 1.5 / LOG2_6)


def test_jsd_properties_and_hand_value():
    p = np.array([0.2, 0.3, 0.5])
    q = np.array([0.6, 0.1, 0.3])
    assert jsd(p, q) == pytest.approx(jsd(q, p))  # symmetric
    assert jsd(p, p) == pytest.approx(0.0, abs=1e-12)  # identical -> 0
    assert jsd(np.array([1.0, 0, 0, 0]), np.array([0, 0, 0.5, 0.5])) == pytest.approx(1.0)  # disjoint -> 1
    # p = [1, 0], q = [.5, .5]: m = [.75, .25], H(m) = 0.811278, H(p) = 0, H(q) = 1
    # JSD = 0.811278 - (0 + 1)/2 = 0.311278
    assert jsd(np.array([1.0, 0]), np.array([0.5, 0.5])) == pytest.approx(0.3112781, abs=1e-7)


def test_top_shares_by_hand():
    p = np.array([0.1, 0.2, 0.4, 0.05, 0.2, 0.05])
    assert top1_share(p) == pytest.approx(0.4)
    # adjacent sums: .3 .6 .45 .25 .25 -> .6
    assert top2_adjacent(p) == pytest.approx(0.6)
    # non-adjacent top-2 does not count: [.5, 0, .5] -> adjacent sums .5, .5
    assert top2_adjacent(np.array([0.5, 0, 0.5])) == pytest.approx(0.5)


def _tiny():
    # Persona A: h1 = [.5,.5,0..] (argmax 1), h2 = [0,1,0..] (argmax 2)
    # Persona B: h1 = [.25,.75,0..] (argmax 2), h2 = [0,0,1,0..] (argmax 3)
    # Baseline: h1 = h2 = [1,0,0..] (argmax 1)
    z = [0, 0, 0]
    return hand_rows([
        ("persona", "A", "none", "h1", "Harm", [0.5, 0.5, 0, *z]),
        ("persona", "A", "none", "h2", "Harm", [0, 1.0, 0, *z]),
        ("persona", "B", "none", "h1", "Harm", [0.25, 0.75, 0, *z]),
        ("persona", "B", "none", "h2", "Harm", [0, 0, 1.0, *z]),
        ("baseline", "baseline", "none", "h1", "Harm", [1.0, 0, 0, *z]),
        ("baseline", "baseline", "none", "h2", "Harm", [1.0, 0, 0, *z]),
    ])


def test_answer_distribution_soft_and_hard_by_hand():
    df = _tiny()
    soft = answer_distribution(df, kind="soft")
    ps = soft[soft["condition"] == "persona"].iloc[0]
    # soft sum = [.5+0+.25+0, .5+1+.75+0, 1, 0, 0, 0] / 4 = [.1875, .5625, .25, 0, 0, 0]
    assert [ps[f"p_{i}"] for i in range(1, 7)] == pytest.approx([0.1875, 0.5625, 0.25, 0, 0, 0])
    assert ps["n"] == 4
    hard = answer_distribution(df, kind="hard")
    ph = hard[hard["condition"] == "persona"].iloc[0]
    # argmax options 1, 2, 2, 3 -> [1, 2, 1, 0, 0, 0] / 4
    assert [ph[f"p_{i}"] for i in range(1, 7)] == pytest.approx([0.25, 0.5, 0.25, 0, 0, 0])


def _get(m, metric, dim="Harm", **kw):
    sel = m[(m["metric"] == metric) & (m["dimension"] == dim)]
    for k, v in kw.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, (metric, dim, kw, sel)
    return sel.iloc[0]


def test_compute_metrics_inertia_and_steerability_by_hand():
    """The plug-in values by hand, then the exported value: the jackknife bias-corrected estimate over the two
    personas, ``2 theta - mean(theta_(A), theta_(B))`` (metrics.intervals)."""
    m = compute_metrics(_tiny(), None, n_boot=50, seed=1)
    z = [0, 0, 0]
    # soft: H([.1875,.5625,.25]) = .1875*2.415037 + .5625*0.830075 + .25*2 = 1.419737 bits
    #       I = 1 - 1.419737 / 2.584963 = 0.450771
    assert inertia_index(np.array([0.1875, 0.5625, 0.25, *z])) == pytest.approx(0.4507709, abs=1e-6)
    # without B: A's [.25,.75,0] -> I = 1 - 0.811278/2.584963 = 0.686155; without A: B's [.125,.375,.5]
    # -> H = 1.405639, I = 0.456225; estimate = 2 * 0.450771 - (0.686155 + 0.456225) / 2 = 0.330352
    assert _get(m, "inertia_soft")["value"] == pytest.approx(0.3303520, abs=1e-6)
    # hard: [.25,.5,.25] -> H = 1.5 -> I = 0.419721; without either persona [.5,.5,0] -> I = 0.613147;
    # estimate = 2 * 0.419721 - 0.613147 = 0.226295
    assert _get(m, "inertia_hard")["value"] == pytest.approx(2 * 0.4197208 - 0.6131472, abs=1e-6)
    # top-1 0.5 and top-2 .75: maxima of shares are the plug-in maxima (no jackknife bias for a maximum, which is
    # not smooth at a tie; intervals.max_share_interval), where the jackknife read top-2 as 2 * .75 - 1.0 = 0.5
    assert _get(m, "top1_share_hard")["value"] == pytest.approx(0.5)
    assert _get(m, "top2_adjacent_hard")["value"] == pytest.approx(0.75)
    # steerability soft: q = [1,0,0], p = [.1875,.5625,.25]; m = [.59375,.28125,.125]
    #   H(m) = 1.336252; JSD = 1.336252 - (0 + 1.419737)/2 = 0.626383
    q = np.array([1.0, 0, 0, *z])
    assert float(jsd(q, np.array([0.1875, 0.5625, 0.25, *z]))) == pytest.approx(0.6263833, abs=1e-6)
    s = _get(m, "steerability_jsd_soft")
    loo = [float(jsd(q, np.array([0.25, 0.75, 0, *z]))), float(jsd(q, np.array([0.125, 0.375, 0.5, *z])))]
    # minus the baseline's own bias (steerability.baseline_bias): its answers' variance, borrowed from the personas'
    # within-respondent covariance S: residuals from the item means scaled by sqrt(2) (2 answers per item), less
    # each persona's mean, give e = +-sqrt(2) [.0625, -.3125, .25] (4 rows, 2 df): diag S = [.015625, .390625, .25];
    # the baseline's two answers (two items) weigh .5 each: var q = .5 diag S; m = (q + p) / 2 = [.59375, .28125,
    # .125]; bias = sum var / m / (8 ln 2) = (.0131579 + .6944444 + 1) / 5.5451774 = 0.3079437
    assert s["value"] == pytest.approx(2 * 0.6263833 - np.mean(loo) - 0.3079437, abs=1e-6)
    assert (s["context_a"], s["context_b"]) == ("none", "none")
    # hard: q = [1,0,0], p = [.25,.5,.25]; m = [.625,.25,.125]; H(m) = 1.298795; JSD = 1.298795 - .75
    hard_loo = [float(jsd(q, np.array([0.5, 0.5, 0, *z]))), float(jsd(q, np.array([0, 0.5, 0.5, *z])))]
    # the baseline's bias: e = +-sqrt(2) [.25, -.5, .25], diag S = [.25, 1, .25], var q = .5 diag S,
    # m = [.625, .25, .125]: (.2 + 2 + 1) / 5.5451774 = 0.5770780, more than the jackknife estimate: clipped to 0
    assert 2 * 0.5487949 - np.mean(hard_loo) - 0.5770780 < 0
    assert _get(m, "steerability_jsd_hard")["value"] == 0.0
    assert _get(m, "valid_share")["value"] == 1.0
    assert _get(m, "inertia_soft")["n"] == 4


def test_bootstrap_reproducible_and_contains_point():
    df = synth_responses(n_personas=40, seed=3)
    a = compute_metrics(df, None, n_boot=100, seed=7)
    b = compute_metrics(df, None, n_boot=100, seed=7)
    c = compute_metrics(df, None, n_boot=100, seed=8)
    assert a.equals(b)
    cols = ["ci_low", "ci_high"]
    inert = a[a["metric"] == "inertia_soft"]
    # the jackknife is deterministic: inertia's interval does not depend on the seed (metrics.intervals)
    assert np.allclose(inert[cols].to_numpy(), c[c["metric"] == "inertia_soft"][cols].to_numpy())
    for metric in ("inertia_soft", "inertia_hard", "steerability_jsd_soft", "top2_adjacent_hard"):
        rows = a[a["metric"] == metric]
        assert len(rows) == 3
        assert (rows["ci_low"] <= rows["value"] + 1e-12).all()
        assert (rows["value"] <= rows["ci_high"] + 1e-12).all()
        assert (rows["ci_low"] < rows["ci_high"]).all()


def test_permutation_test_separates_shifted_from_identical():
    rng = np.random.default_rng(0)
    specs = []
    for item in ("a", "b", "c"):
        specs.append(("baseline", "baseline", "none", item, "D", [1.0, 0, 0, 0, 0, 0]))
        for j in range(9):
            specs.append(("persona", f"p{j}", "none", item, "D", [0, 0, 0, 0, 0, 1.0]))
    shifted = hand_rows(specs)
    n_perm = 99
    obs, p, n = steerability_test(shifted[shifted.condition == "baseline"],
                                         shifted[shifted.condition == "persona"], 6, rng, n_perm)
    assert obs == pytest.approx(1.0)
    # each permutation puts the single baseline slot of an item on a persona row with prob 9/10, so a
    # permuted JSD reaches 1 only when all three items keep the baseline row: (1/10)^3 per draw
    assert n == n_perm and p <= 3 / (n_perm + 1)
    same = hand_rows([(c, pid, "none", it, "D", [0.2, 0.8, 0, 0, 0, 0]) for c, pid, _, it, _, _ in specs])
    obs0, p0, _ = steerability_test(same[same.condition == "baseline"],
                                           same[same.condition == "persona"], 6, rng, n_perm)
    assert obs0 == pytest.approx(0.0, abs=1e-12)
    assert p0 == 1.0  # every permuted JSD (0) >= observed (0)


def test_steerability_p_in_long_table_is_seeded():
    df = synth_responses(n_personas=15, seed=5)
    a = compute_metrics(df, None, n_boot=30, seed=2)
    b = compute_metrics(df, None, n_boot=30, seed=2)
    pa = a[a.metric == "steerability_p_soft"]
    assert pa["value"].between(1 / 31, 1).all()
    assert (pa["n"] == 30).all()
    assert pa["value"].tolist() == b[b.metric == "steerability_p_soft"]["value"].tolist()
