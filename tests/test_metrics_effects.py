"""The effects grid: Hedges' g, its noncentral-t CI and Student p from one model, Benjamini-Hochberg q-values,
numeric attributes as a trend, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_synth import hand_scores
from scipy import stats

from valuescope.analysis.metrics import (
    EFFECT_COLUMNS,
    bh_qvalues,
    cohens_d,
    cohens_d_ci,
    effects_grid,
    hedges_g,
    student_t,
    welch_t,
)


def test_cohens_d_by_hand():
    # x = [2,4,6]: mean 4, SS 8; y = [1,2,3,4,5]: mean 3, SS 10
    # s_pooled = sqrt((8 + 10) / (3 + 5 - 2)) = sqrt(3) = 1.732051;  d = (4 - 3) / 1.732051 = 0.577350
    assert cohens_d([2, 4, 6], [1, 2, 3, 4, 5]) == pytest.approx(1 / np.sqrt(3))
    assert cohens_d([1, 2, 3, 4, 5], [2, 4, 6]) == pytest.approx(-1 / np.sqrt(3))
    assert np.isnan(cohens_d([2, 2], [2, 2, 2]))  # zero pooled SD
    assert np.isnan(cohens_d([1], [2]))  # n_x + n_y - 2 = 0


def test_hedges_g_student_t_and_the_noncentral_ci_by_hand():
    # d = 1/sqrt(3) with m = 3 + 5 - 2 = 6: J(6) = Gamma(3) / (sqrt(3) Gamma(2.5)) = 2 / (1.732051 * 1.329340)
    #   = 0.868627 (the approximation 1 - 3/(4m - 1) = 0.869565); g = 0.501502
    assert hedges_g([2, 4, 6], [1, 2, 3, 4, 5]) == pytest.approx(0.8686270 / np.sqrt(3), abs=1e-6)
    # t = d sqrt(15/8) = 0.790569; Student p on 6 df
    t, p = student_t([2, 4, 6], [1, 2, 3, 4, 5])
    assert t == pytest.approx(np.sqrt(15 / 8) / np.sqrt(3)) and p == pytest.approx(2 * stats.t.sf(t, 6))
    assert p == pytest.approx(stats.ttest_ind([2, 4, 6], [1, 2, 3, 4, 5]).pvalue)
    # the CI's ends are the noncentralities (over sqrt(15/8)) that put t at the 97.5% and 2.5% points
    lo, hi = cohens_d_ci(1 / np.sqrt(3), 3, 5)
    scale = np.sqrt(15 / 8)
    assert stats.nct.cdf(t, 6, lo * scale) == pytest.approx(0.975, abs=1e-7)
    assert stats.nct.cdf(t, 6, hi * scale) == pytest.approx(0.025, abs=1e-7)
    # one model: the CI excludes 0 exactly when p < 0.05 (t on either side of the critical value)
    crit = stats.t.ppf(0.975, 6) / scale
    for d in (crit - 1e-4, crit + 1e-4, -crit - 1e-4):
        lo, hi = cohens_d_ci(d, 3, 5)
        p = 2 * stats.t.sf(abs(d) * scale, 6)
        assert (lo > 0 or hi < 0) == (p < 0.05)


def test_welch_by_hand():
    # s_x^2 = 4, s_y^2 = 2.5; se = sqrt(4/3 + 2.5/5) = sqrt(1.833333) = 1.354006; t = 1 / se = 0.738549
    # df = 1.833333^2 / ((4/3)^2/2 + (2.5/5)^2/4) = 3.361111 / 0.951389 = 3.532847
    t, p = welch_t([2, 4, 6], [1, 2, 3, 4, 5])
    assert t == pytest.approx(0.7385489, abs=1e-6)
    assert p == pytest.approx(2 * stats.t.sf(0.7385489, 3.532847), abs=1e-5)
    assert np.isnan(welch_t([1], [1, 2, 3])[1])


def test_bh_by_hand():
    # sorted p .01 .03 .04 .5 -> p*m/rank = .04 .06 .0533 .5 -> running min from the top: .04 .0533 .0533 .5
    q = bh_qvalues(np.array([0.01, 0.04, 0.03, 0.5, np.nan]))
    assert q[:4] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert np.isnan(q[4])


def test_effects_grid_by_hand():
    # attribute member: P1, P2, P3 "yes" with Tradition 2, 4, 6; P4..P8 "no" with 1..5
    trad = {"P1": 2, "P2": 4, "P3": 6, "P4": 1, "P5": 2, "P6": 3, "P7": 4, "P8": 5}
    mem = {p: ("yes" if p in ("P1", "P2", "P3") else "no") for p in trad}
    # two repeats each: repeat 1 equals repeat 0, so the per-persona mean is the value above
    prof = {(p, "none", r): [v, 1.0] for p, v in trad.items() for r in (0, 1)}
    sc = hand_scores(prof, ["Tradition", "Flat"], attrs={"member": mem})
    grid = effects_grid(sc, min_group=3)
    assert list(grid.columns) == EFFECT_COLUMNS
    # a binary attribute gives ONE contrast (first level sorted vs the second), not two mirrored ones
    assert len(grid[grid.dimension == "Tradition"]) == 1
    cell = grid[grid.dimension == "Tradition"].iloc[0]
    assert (cell["level"], cell["reference"]) == ("no", "yes")
    assert cell["g"] == pytest.approx(-hedges_g([2, 4, 6], [1, 2, 3, 4, 5]))
    assert (cell["mean_level"], cell["mean_rest"], cell["n_level"], cell["n_rest"]) == (3, 4, 5, 3)
    # the CI is the noncentral-t interval of d (checked above), mirrored; p is Student's
    lo, hi = cohens_d_ci(1 / np.sqrt(3), 3, 5)
    assert (cell["g_low"], cell["g_high"]) == pytest.approx((-hi, -lo), abs=1e-7)
    assert cell["g_low"] <= cell["g"] <= cell["g_high"]
    assert cell["p"] == pytest.approx(stats.ttest_ind([1, 2, 3, 4, 5], [2, 4, 6]).pvalue)
    assert cell["attribute"] == "member" and cell["context"] == "none"
    flat = grid[grid.dimension == "Flat"]
    assert flat["g"].isna().all() and (flat["note"].str.contains("zero variance")).all()
    assert not grid["significant"].any()
    # the default minimum group size (5) leaves the 3-persona group out: NaN with a note, not tested
    small = effects_grid(sc)
    assert small["g"].isna().all() and small["p"].isna().all() and small["q"].isna().all()
    assert small["note"].str.contains("fewer than 5 personas in a group").all()


def test_effects_grid_reference_levels_and_income_bins():
    # WVS religion: every denomination against "do not belong to a denomination" (Lee et al.: Orthodox vs
    # non-religious); income deciles 1-10 are binned (3 quantile bins), each bin vs the lowest (a trend)
    rng = np.random.default_rng(1)
    dens = ["do not belong to a denomination", "Orthodox", "Muslim"]
    prof, den, inc = {}, {}, {}
    for j in range(30):
        p = f"p{j}"
        den[p] = dens[j % 3]
        inc[p] = str(1 + j % 10)
        prof[(p, "none", 0)] = [(4.0 if den[p] == "Orthodox" else 2.0) + rng.normal(scale=0.3)]
    grid = effects_grid(hand_scores(prof, ["Tradition"], attrs={"religious_denomination": den, "income_level": inc}))
    rel = grid[grid.attribute == "religious_denomination"]
    assert sorted(rel["level"]) == ["Muslim", "Orthodox"]
    assert (rel["reference"] == "do not belong to a denomination").all()
    orth = rel[rel.level == "Orthodox"].iloc[0]
    assert orth["n_level"] == 10 and orth["n_rest"] == 10 and orth["g"] > 3 and orth["significant"]
    assert orth["g_low"] < orth["g"] < orth["g_high"] and orth["note"] == ""
    inc_rows = grid[grid.attribute == "income_level"]
    # deciles 1..10, three per decile: bins 1-4 (12 personas), 5-7 (9), 8-10 (9), labelled by their values
    assert list(inc_rows["level"]) == ["5–7", "8–10"] and (inc_rows["reference"] == "1–4").all()
    assert list(inc_rows["n_level"]) == [9, 9] and (inc_rows["n_rest"] == 12).all()
    assert inc_rows["note"].str.contains("each level vs the lowest").all()
    # the reference level not drawn: each level vs the rest, and every cell says so
    no_ref = {p: v for p, v in den.items() if v != "do not belong to a denomination"}
    prof2 = {k: v for k, v in prof.items() if k[0] in no_ref}
    g3 = effects_grid(hand_scores(prof2, ["Tradition"], attrs={"religious_denomination": no_ref}))
    assert len(g3) == 1 and g3["reference"].iloc[0] == "Orthodox"  # two levels left: one binary contrast
    assert "reference level 'do not belong to a denomination' absent" in g3["note"].iloc[0]
    # hidden attributes ("n/a") are unknown, not a level
    occ = {f"p{j}": ("n/a" if j < 10 else ["Clerical", "Sales"][j % 2]) for j in range(30)}
    g2 = effects_grid(hand_scores(prof, ["Tradition"], attrs={"occupation": occ}))
    assert sorted(g2["level"]) == ["Clerical"] and g2["n_level"].iloc[0] + g2["n_rest"].iloc[0] == 20


def test_effects_grid_strong_effect_is_significant_and_numeric_attrs_binned():
    rng = np.random.default_rng(0)
    prof, rel, age = {}, {}, {}
    for j in range(40):
        p = f"p{j}"
        rel[p] = "orthodox" if j < 20 else "none"
        age[p] = 20 + j
        prof[(p, "none", 0)] = [(4.3 if j < 20 else 2.5) + rng.normal(scale=0.3)]
    grid = effects_grid(hand_scores(prof, ["Tradition"], attrs={"religion": rel, "age": age}))
    rel_rows = grid[grid.attribute == "religion"]
    assert len(rel_rows) == 1  # orthodox vs the reference level "none", once
    cell = rel_rows.iloc[0]
    assert (cell["level"], cell["reference"]) == ("orthodox", "none")
    assert cell["g"] > 3 and cell["significant"] and cell["q"] < 1e-6
    ages = grid[grid.attribute == "age"]
    # 40 distinct ages 20..59 -> 3 quantile bins, the two upper ones vs the lowest, labelled by their ages
    assert list(ages["level"]) == ["34–46", "47–59"] and (ages["reference"] == "20–33").all()
    assert list(ages["n_level"]) == [13, 13] and (ages["n_rest"] == 14).all()


def test_effects_grid_edge_cases():
    # one persona: no comparison group
    sc = hand_scores({("P1", "none", 0): [3.0]}, ["V"], attrs={"g": {"P1": "f"}})
    grid = effects_grid(sc)
    assert len(grid) == 1 and np.isnan(grid["g"].iloc[0]) and "no comparison group" in grid["note"].iloc[0]
