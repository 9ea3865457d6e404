"""Cohen's d grid with Welch p-values and Benjamini-Hochberg q-values, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_synth import hand_scores
from scipy import stats

from valuescope.analysis.metrics import EFFECT_COLUMNS, bh_qvalues, cohens_d, effects_grid, welch_t


def test_cohens_d_by_hand():
    # x = [2,4,6]: mean 4, SS 8; y = [1,2,3,4,5]: mean 3, SS 10
    # s_pooled = sqrt((8 + 10) / (3 + 5 - 2)) = sqrt(3) = 1.732051;  d = (4 - 3) / 1.732051 = 0.577350
    assert cohens_d([2, 4, 6], [1, 2, 3, 4, 5]) == pytest.approx(1 / np.sqrt(3))
    assert cohens_d([1, 2, 3, 4, 5], [2, 4, 6]) == pytest.approx(-1 / np.sqrt(3))
    assert np.isnan(cohens_d([2, 2], [2, 2, 2]))  # zero pooled SD
    assert np.isnan(cohens_d([1], [2]))  # n_x + n_y - 2 = 0


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
    assert cell["d"] == pytest.approx(-1 / np.sqrt(3))
    assert (cell["mean_level"], cell["mean_rest"], cell["n_level"], cell["n_rest"]) == (3, 4, 5, 3)
    # CI: se = sqrt((5+3)/(5*3) + d^2/(2*8)) = sqrt(0.533333 + 0.020833) = 0.744424
    se = np.sqrt(8 / 15 + (1 / 3) / 16)
    assert (cell["d_low"], cell["d_high"]) == pytest.approx((-1 / np.sqrt(3) - 1.959964 * se,
                                                             -1 / np.sqrt(3) + 1.959964 * se), abs=1e-5)
    assert cell["attribute"] == "member" and cell["context"] == "none"
    flat = grid[grid.dimension == "Flat"]
    assert flat["d"].isna().all() and (flat["note"].str.contains("zero variance")).all()
    assert not grid["significant"].any()
    # the default minimum group size (5) leaves the 3-persona group out: NaN with a note, not tested
    small = effects_grid(sc)
    assert small["d"].isna().all() and small["p"].isna().all() and small["q"].isna().all()
    assert small["note"].str.contains("fewer than 5 personas in a group").all()


def test_effects_grid_reference_levels_and_income_bins():
    # WVS religion: every denomination against "do not belong to a denomination" (Lee et al.: Orthodox vs
    # non-religious); income deciles 1-10 are binned (3 quantile bins), as documented
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
    assert orth["n_level"] == 10 and orth["n_rest"] == 10 and orth["d"] > 3 and orth["significant"]
    assert orth["d_low"] < orth["d"] < orth["d_high"]
    inc_rows = grid[grid.attribute == "income_level"]
    assert len(inc_rows) == 3 and (inc_rows["reference"] == "rest").all()
    assert inc_rows["n_level"].sum() == 30 and all("-" in lv for lv in inc_rows["level"])
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
    assert cell["d"] > 3 and cell["significant"] and cell["q"] < 1e-6
    ages = grid[grid.attribute == "age"]
    assert len(ages) == 3 and ages["n_level"].sum() == 40  # 40 distinct ages -> 3 quantile bins


def test_effects_grid_edge_cases():
    # one persona: no comparison group
    sc = hand_scores({("P1", "none", 0): [3.0]}, ["V"], attrs={"g": {"P1": "f"}})
    grid = effects_grid(sc)
    assert len(grid) == 1 and np.isnan(grid["d"].iloc[0]) and "no comparison group" in grid["note"].iloc[0]
