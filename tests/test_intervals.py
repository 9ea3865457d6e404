"""The one interval method of biased plug-ins (metrics.intervals): the jackknife by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from valuescope.analysis.metrics.intervals import (
    jackknife,
    jackknife_index,
    jackknife_scalar,
    jackknife_weights,
    max_share_interval,
    wilson_bounds,
)


def test_jackknife_of_a_mean_and_of_the_plug_in_variance_by_hand():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    loo = np.array([x[jackknife_index(4)[i]].mean() for i in range(4)])  # [13/3, 4, 10/3, 7/3]
    est, lo, hi = jackknife_scalar(x.mean(), loo)
    # a mean has no bias; se^2 = 3/4 * sum (loo - 3.5)^2 = s^2 / n = 7 / 4
    half = stats.t.ppf(0.975, 3) * np.sqrt(7 / 4)
    assert est == pytest.approx(3.5) and (lo, hi) == pytest.approx((3.5 - half, 3.5 + half))
    # the plug-in variance (ddof 0, biased by -s^2/n) becomes the unbiased one (ddof 1): a classic identity
    var_loo = np.array([x[jackknife_index(4)[i]].var() for i in range(4)])
    est, lo, hi = jackknife_scalar(x.var(), var_loo, lower=0.0)
    assert est == pytest.approx(x.var(ddof=1)) and lo <= est <= hi and lo >= 0.0
    assert np.allclose(jackknife_weights(3), [[0, 1, 1], [1, 0, 1], [1, 1, 0]])


def test_clipping_keeps_the_estimate_in_its_interval_and_nan_stays_nan():
    est, lo, hi = jackknife_scalar(0.001, np.array([0.004, 0.003, 0.005]), lower=0.0, upper=1.0)
    assert est == 0.0 and lo == 0.0 <= est <= hi  # bias 2 * (0.004 - 0.001) = 0.006 > the estimate
    est, lo, hi = jackknife_scalar(float("nan"), np.array([0.1, 0.2]))
    assert np.isnan(est) and np.isnan(lo) and np.isnan(hi)
    est, lo, hi = jackknife_scalar(0.3, np.array([0.2, np.nan]))  # one defined leave-one-out value: no correction
    assert est == 0.3 and np.isnan(lo) and np.isnan(hi)
    est, lo, hi = jackknife_scalar(0.3, np.array([0.2, 0.4]), interval=False)
    assert est == pytest.approx(0.3) and np.isnan(lo)


def test_two_independent_groups_add_their_bias_and_variance():
    """Arvesen's two-sample jackknife: each group contributes (n_g - 1)(mean_g - theta) and its own variance."""
    a, b = np.array([1.0, 2.0, 3.0]), np.array([10.0, 14.0])
    theta = a.mean() - b.mean()
    loo = np.array([*(a[jackknife_index(3)[i]].mean() - b.mean() for i in range(3)),
                    *(a.mean() - b[jackknife_index(2)[i]].mean() for i in range(2))])
    est, lo, hi = jackknife(theta, loo, np.array([0, 0, 0, 1, 1]))
    se = np.sqrt(a.var(ddof=1) / 3 + b.var(ddof=1) / 2)  # the jackknife SE of a difference of means
    half = stats.t.ppf(0.975, 3) * se  # df = (3 - 1) + (2 - 1)
    assert float(est) == pytest.approx(theta) and (float(lo), float(hi)) == pytest.approx((theta - half, theta + half))


def test_wilson_bounds_by_hand_and_at_the_edge():
    # 240 of 240 answers agree, z = 2: lo = 1 / (1 + 4/240) = 0.983607, hi = 1; 0 of 240: [0, 4 / 244]
    lo, hi = wilson_bounds(np.array([1.0, 0.0]), np.array([240.0, 240.0]), 2.0)
    assert lo == pytest.approx([1 / (1 + 4 / 240), 0.0]) and hi == pytest.approx([1.0, 4 / 244])
    # p = .5, n = 100, z = 2: (.5 + .02 -/+ 2 sqrt(.0025 + .0001)) / 1.04
    lo, hi = wilson_bounds(np.array([0.5]), np.array([100.0]), 2.0)
    assert (lo[0], hi[0]) == pytest.approx(((0.52 - 2 * np.sqrt(0.0026)) / 1.04, (0.52 + 2 * np.sqrt(0.0026)) / 1.04))


def test_max_share_interval_at_a_tie_and_where_every_answer_agreed():
    """The maximum of shares: the plug-in value, projected bounds (upper at 1 - a/2, lower Bonferroni over M)."""
    # 40 units, 6 options, every unit all on one option, the options split 7,7,7,7,6,6 (a tie): the jackknife put
    # its leave-one-out maxima all at 7/39 > 7/40 and "corrected" the value to 0; here it stays 7/40 inside
    counts = np.repeat(np.eye(6), [7, 7, 7, 7, 6, 6], axis=0)
    shares = counts.mean(axis=0)
    loo = (counts.sum(axis=0) - counts) / 39
    est, lo, hi = max_share_interval(shares, loo, 40, lower=1 / 6)
    assert est == pytest.approx(7 / 40) and lo == pytest.approx(1 / 6) and 0.3 < hi < 0.4
    # every answer on one option: no spread, but a width (Wilson at n = 240 answers)
    one = np.array([1.0, 0, 0, 0, 0, 0])
    est, lo, hi = max_share_interval(one, np.tile(one, (40, 1)), 240, lower=1 / 6)
    z = stats.t.ppf(1 - 0.05 / 12, 39)
    assert est == 1.0 and hi == 1.0 and lo == pytest.approx(1 / (1 + z * z / 240))
