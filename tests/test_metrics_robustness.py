"""Seed-to-seed, item-order and forced-vs-free correlations (Lee et al. 2024), by hand."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_synth import hand_rows

from valuescope.analysis.metrics import (
    compute_metrics,
    forced_free_correlation,
    item_order_correlation,
    paired_correlation,
    seed_correlation,
)


def onehot(v: int) -> list[float]:
    p = [0.0] * 6
    p[v - 1] = 1.0
    return p


def _two_seeds():
    # one persona per seed, one item per dimension; expected answers:
    #   seed 111: D1 = 1, D2 = 2, D3 = 3     seed 333: D1 = 1, D2 = 3, D3 = 2
    # Pearson([1,2,3], [1,3,2]): deviations [-1,0,1] and [-1,1,0]: sxy = 1, sxx = syy = 2 -> r = 0.5
    specs = []
    for seed, vals in ((111, (1, 2, 3)), (333, (1, 3, 2))):
        for d, v in zip(("D1", "D2", "D3"), vals, strict=True):
            specs.append(("persona", f"x{seed}", "none", f"{d}_1", d, onehot(v), {"set_seed": seed}))
    return hand_rows(specs)


def test_seed_correlation_by_hand():
    sc = seed_correlation(_two_seeds())
    dim = sc[sc.by == "dimension"].iloc[0]
    assert (dim["seed_a"], dim["seed_b"], dim["n"]) == (111, 333, 3)
    assert dim["r"] == pytest.approx(0.5)
    m = compute_metrics(_two_seeds(), None, n_boot=10)
    row = m[m.metric == "seed_corr_dimension"].iloc[0]
    assert row["value"] == pytest.approx(0.5) and row["n"] == 1
    assert m[m.metric == "seed_corr_item"].iloc[0]["value"] == pytest.approx(0.5)


def test_seed_correlation_one_seed_note():
    one = _two_seeds()
    one = one[one.set_seed == 111]
    m = compute_metrics(one, None, n_boot=10)
    row = m[m.metric == "seed_corr_dimension"].iloc[0]
    assert np.isnan(row["value"]) and "one persona-set seed" in row["note"]


def _run(vals):
    return hand_rows([("persona", "p", "none", f"i{j}", f"D{j % 2}", onehot(v)) for j, v in enumerate(vals)])


def test_item_order_pearson_by_hand():
    # per-item means fixed [1,2,3,4], shuffled [2,1,4,3]: deviations [-1.5,-.5,.5,1.5] and [-.5,-1.5,1.5,.5]
    # sxy = .75 + .75 + .75 + .75 = 3, sxx = syy = 5 -> r = 0.6
    out = item_order_correlation(_run([1, 2, 3, 4]), _run([2, 1, 4, 3]))
    assert out.iloc[0]["r"] == pytest.approx(0.6) and out.iloc[0]["n"] == 4


def test_forced_free_spearman_by_hand():
    # six items over three dimensions (item j scores D{j % 3})
    def run(vals):
        specs = [("persona", "p", "none", f"i{j}", f"D{j % 3}", onehot(v)) for j, v in enumerate(vals)]
        return hand_rows(specs)

    # forced means: D0 (1+4)/2 = 2.5, D1 (2+5)/2 = 3.5, D2 (3+6)/2 = 4.5 -> ranks 1,2,3
    # free means:   D0 (6+5)/2 = 5.5, D1 (1+1)/2 = 1,  D2 (2+3)/2 = 2.5 -> ranks 3,1,2
    # Spearman: d = [2,1,1] -> 1 - 6*6/(3*8) = -0.5
    out = forced_free_correlation(run([1, 2, 3, 4, 5, 6]), run([6, 1, 2, 5, 1, 3]))
    assert out.iloc[0]["r"] == pytest.approx(-0.5) and out.iloc[0]["method"] == "spearman"


def test_paired_correlation_too_few_entries_note():
    out = paired_correlation(_run([1, 2]), _run([2, 1]), by="item")
    assert np.isnan(out.iloc[0]["r"]) and "fewer than 3" in out.iloc[0]["note"]
    with pytest.raises(ValueError):
        paired_correlation(_run([1]), _run([1]), method="kendall")
