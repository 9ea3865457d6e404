"""Rank-Order / Ipsative stability, distance to neutral, donation and length (Kovač et al. 2024), by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from metrics_synth import hand_rows, hand_scores
from scipy import stats

from valuescope.analysis.metrics import average_ranks, compute_metrics, ipsative_by_persona, spearman_last

VALUES = ["V1", "V2", "V3"]
# Context a: persona -> scores of V1, V2, V3
A = {"P1": [1, 2, 3], "P2": [2, 1, 4], "P3": [3, 4, 1], "P4": [4, 3, 2]}
# Context b
B = {"P1": [1, 4.5, 2], "P2": [3, 1.5, 4], "P3": [2, 2.5, 3], "P4": [4, 3.5, 1]}


def _scores(contexts=("a@3", "b@3"), baseline=True):
    prof = {}
    for ctx in contexts:
        src = A if ctx.startswith(("a", "c")) else B
        for pid, v in src.items():
            prof[(pid, ctx, 0)] = v
    if baseline:
        prof[("baseline", "none", 0)] = [1, 2, 3]  # value ranks [1, 2, 3]
        prof[("baseline", "none", 1)] = [2, 1, 3]  # value ranks [2, 1, 3]
    return hand_scores(prof, VALUES)


def _responses():
    # a minimal responses table for the same run/instrument so compute_metrics has both inputs
    return hand_rows([("persona", "P1", "a@3", "i1", "V1", [1.0, 0, 0, 0, 0, 0])], instrument="pvq40")


def _get(m, metric, dim="", a="all", b="all"):
    sel = m[(m.metric == metric) & (m.dimension == dim) & (m.context_a == a) & (m.context_b == b)]
    assert len(sel) == 1, (metric, dim, a, b)
    return sel.iloc[0]


def test_average_ranks_and_spearman_match_scipy():
    x = np.array([[3.0, 1, 2, 2, np.nan], [5, 5, 5, 1, 2]])
    r = average_ranks(x)
    assert r[0, :4].tolist() == [4.0, 1.0, 2.5, 2.5] and np.isnan(r[0, 4])
    assert r[1].tolist() == [4.0, 4.0, 4.0, 1.0, 2.0]
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, size=(2, 30)).astype(float)
    rho, n = spearman_last(a, b)
    assert n == 30 and rho == pytest.approx(stats.spearmanr(a, b).statistic)


def _jk(a, b):
    """Spearman's rho of a vs b, jackknife bias-corrected over the units: n rho - (n - 1) mean(rho without i)."""
    n = len(a)
    loo = [stats.spearmanr(np.delete(a, i), np.delete(b, i)).statistic for i in range(n)]
    return n * stats.spearmanr(a, b).statistic - (n - 1) * np.mean(loo)


#: the exported Rank-Order of A vs B averaged over the three values (jackknife estimates; plug-in 1.4 / 3)
_JK_MEAN = np.mean([_jk(np.array([A[p][j] for p in A]), np.array([B[p][j] for p in B])) for j in range(3)])


def test_rank_order_and_ipsative_by_hand():
    m = compute_metrics(_responses(), _scores(), n_boot=50)
    # Rank-Order plug-in, V1: a = [1,2,3,4], b = [1,3,2,4]; d = [0,1,1,0]; rho = 1 - 6*2/(4*15) = 0.8
    # V2: ranks a [2,1,4,3], b [4,1,2,3]; d = [2,0,2,0]; rho = 1 - 6*8/60 = 0.2
    # V3: a [3,4,1,2], b [2,4,3,1]; d = [1,0,2,1]; rho = 1 - 6*6/60 = 0.4
    cols = {j: (np.array([A[p][j] for p in A]), np.array([B[p][j] for p in B])) for j in range(3)}
    assert [stats.spearmanr(*cols[j]).statistic for j in range(3)] == pytest.approx([0.8, 0.2, 0.4])
    # exported: the jackknife estimate; V1 without P1 .. P4: 0.5, 1, 1, 0.5 -> 4 * 0.8 - 3 * 0.75 = 0.95
    assert _jk(*cols[0]) == pytest.approx(0.95)
    jk = [_jk(*cols[j]) for j in range(3)]
    for j, v in enumerate(VALUES):
        assert _get(m, "rank_order", v, "a@3", "b@3")["value"] == pytest.approx(jk[j])
    # mean over values (the jackknife is linear in the averaged values; one pair, so "all" is the same)
    assert _get(m, "rank_order", "", "a@3", "b@3")["value"] == pytest.approx(np.mean(jk))
    assert _get(m, "rank_order")["value"] == pytest.approx(np.mean(jk))
    assert _get(m, "rank_order")["n"] == 4
    # Ipsative (n = 3 values: rho = 1 - sum d^2 / 4):
    # P1 ranks a [1,2,3] b [1,3,2] -> 0.5; P2 [2,1,3] vs [2,1,3] -> 1; P3 [2,3,1] vs [1,2,3]: d^2 = 6 -> -0.5;
    # P4 [3,2,1] vs [3,2,1] -> 1; mean = (0.5 + 1 - 0.5 + 1) / 4 = 0.5
    assert _get(m, "ipsative")["value"] == pytest.approx(0.5)
    assert _get(m, "ipsative", "", "a@3", "b@3")["value"] == pytest.approx(0.5)
    per = ipsative_by_persona(_scores())
    assert dict(zip(per["persona"], per["ipsative"], strict=True)) == pytest.approx(
        {"P1": 0.5, "P2": 1.0, "P3": -0.5, "P4": 1.0})


def test_rank_order_averages_over_pairs_then_values():
    # context c@3 repeats context a: pairs (a,b) and (b,c) give the jackknife values jk of the test above,
    # (a,c) gives 1 (also without any persona); per value (jk + 1 + jk) / 3, overall their mean
    m = compute_metrics(_responses(), _scores(("a@3", "b@3", "c@3")), n_boot=0)
    jk = [_jk(np.array([A[p][j] for p in A]), np.array([B[p][j] for p in B])) for j in range(3)]
    per = [(2 * x + 1) / 3 for x in jk]
    for j, v in enumerate(VALUES):
        assert _get(m, "rank_order", v)["value"] == pytest.approx(per[j])
    assert _get(m, "rank_order")["value"] == pytest.approx(np.mean(per))
    assert _get(m, "rank_order", "V1", "a@3", "c@3")["value"] == pytest.approx(1.0)
    # the full matrix has every pair x (3 values + their mean)
    mat = m[(m.metric == "rank_order") & (m.context_a != "all")]
    assert len(mat) == 3 * 4
    # n_boot = 0: values but no CI, and the note says so
    assert np.isnan(_get(m, "rank_order")["ci_low"]) and "no CI" in _get(m, "rank_order")["note"]


def test_distance_to_neutral_by_hand():
    m = compute_metrics(_responses(), _scores(), n_boot=50)
    # neutral = mean ranks of baseline repeats: ([1,2,3] + [2,1,3]) / 2 = [1.5, 1.5, 3]
    # rho(x, neutral) = Pearson of x's ranks with [1.5,1.5,3] (mean 2, deviations [-.5,-.5,1], ss 1.5):
    # context a: P1 ranks [1,2,3] -> sxy 1.5 / sqrt(2*1.5) = .866025; P2 [2,1,3] -> .866025;
    #            P3 [2,3,1] -> -.866025; P4 [3,2,1] -> -.866025; mean 0
    # context b: P1 [1,3,2] -> 0; P2 [2,1,3] -> .866025; P3 [1,2,3] -> .866025; P4 [3,2,1] -> -.866025
    #            mean = .866025 / 4 = .216506
    assert _get(m, "distance_to_neutral", "", "a@3", "none")["value"] == pytest.approx(0.0, abs=1e-12)
    row = _get(m, "distance_to_neutral", "", "b@3", "none")
    assert row["value"] == pytest.approx(np.sqrt(3) / 2 / 4)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]


def test_ipsative_baseline_units_are_repeats():
    # baseline repeats 0 and 1 in contexts none and x@1; repeat 0: [1,2,3] vs [1,3,2] -> rho 0.5;
    # repeat 1: [3,2,1] vs [3,2,1] -> 1; mean 0.75
    prof = {("baseline", "none", 0): [1, 2, 3], ("baseline", "x@1", 0): [1, 3, 2],
            ("baseline", "none", 1): [3, 2, 1], ("baseline", "x@1", 1): [3, 2, 1]}
    prof.update({(p, "none", 0): v for p, v in A.items()})
    m = compute_metrics(_responses(), hand_scores(prof, VALUES), n_boot=20)
    assert _get(m, "ipsative_baseline")["value"] == pytest.approx(0.75)
    assert _get(m, "ipsative_baseline")["n"] == 2


def test_donation_rank_order_per_race():
    races = ["elves", "dwarves", "orcs"]
    # donations (coins) per persona and race in two contexts; elves: same order -> 1;
    # dwarves: reversed -> -1; orcs: [1,2,3,4] vs [2,1,3,4]: d = [1,1,0,0] -> 1 - 12/60 = 0.8
    a = {"P1": [1, 4, 1], "P2": [2, 3, 2], "P3": [3, 2, 3], "P4": [4, 1, 4]}
    b = {"P1": [2, 1, 2], "P2": [3, 2, 1], "P3": [4, 3, 3], "P4": [5, 4, 4]}
    prof = {(p, "poem@3", 0): v for p, v in a.items()} | {(p, "joke@3", 0): v for p, v in b.items()}
    sc = hand_scores(prof, races, instrument="donation", level="dimension")
    m = compute_metrics(_responses(), sc, n_boot=20)
    don = m[(m.instrument == "donation") & (m.metric == "rank_order") & (m.context_a == "all")]
    got = dict(zip(don["dimension"], don["value"], strict=True))
    # exported: jackknife estimates (elves and dwarves stay +-1 without any persona; orcs as V1 above: 0.95)
    orcs = _jk(np.array([1, 2, 3, 4]), np.array([2, 1, 3, 4]))
    assert orcs == pytest.approx(0.95)
    assert got == pytest.approx({"elves": 1.0, "dwarves": -1.0, "orcs": orcs, "": orcs / 3})


def test_stability_by_conversation_length():
    # topics a, b at lengths 1 and 3: at length 1 both topics give profile A (rank-order 1);
    # at length 3 they give A and B (rank-order 0.466667 as above)
    prof = {}
    for pid in A:
        prof[(pid, "a@1", 0)] = A[pid]
        prof[(pid, "b@1", 0)] = A[pid]
        prof[(pid, "a@3", 0)] = A[pid]
        prof[(pid, "b@3", 0)] = B[pid]
    m = compute_metrics(_responses(), hand_scores(prof, VALUES), n_boot=0)
    assert _get(m, "rank_order", "", "*@1", "*@1")["value"] == pytest.approx(1.0)
    assert _get(m, "rank_order", "", "*@3", "*@3")["value"] == pytest.approx(_JK_MEAN)
    assert _get(m, "ipsative", "", "*@3", "*@3")["value"] == pytest.approx(0.5)


def test_stability_edge_cases_give_nan_with_note():
    # a single context
    m = compute_metrics(_responses(), _scores(("a@3",)), n_boot=10)
    r = _get(m, "rank_order")
    assert np.isnan(r["value"]) and "one context" in r["note"]
    # one persona: rank-order undefined (fewer than 3 personas), ipsative defined
    one = hand_scores({("P1", "a@3", 0): A["P1"], ("P1", "b@3", 0): B["P1"]}, VALUES)
    m = compute_metrics(_responses(), one, n_boot=10)
    r = _get(m, "rank_order", "V1")
    assert np.isnan(r["value"]) and "fewer than 3 personas" in r["note"]
    ip = _get(m, "ipsative")
    assert ip["value"] == pytest.approx(0.5) and "fewer than 2 units or n_boot=0: no CI" in ip["note"]
    # zero variance: every persona has the same score on V1 in context a
    flat = {(p, "a@3", 0): [5, *A[p][1:]] for p in A} | {(p, "b@3", 0): B[p] for p in B}
    m = compute_metrics(_responses(), hand_scores(flat, VALUES), n_boot=10)
    r = _get(m, "rank_order", "V1", "a@3", "b@3")
    assert np.isnan(r["value"]) and "no variance" in r["note"]
    # no baseline scores: distance to neutral carries a note
    m = compute_metrics(_responses(), _scores(baseline=False), n_boot=10)
    d = _get(m, "distance_to_neutral", "", "all", "none")
    assert np.isnan(d["value"]) and "no baseline" in d["note"]


def test_scores_without_dimension_are_ignored():
    sc = _scores()
    extra = sc.iloc[:1].assign(dimension=None, score=99.0)
    m = compute_metrics(_responses(), pd.concat([sc, extra], ignore_index=True), n_boot=0)
    assert "nan" not in set(m["dimension"]) and "None" not in set(m["dimension"])
    assert _get(m, "rank_order")["value"] == pytest.approx(_JK_MEAN)
