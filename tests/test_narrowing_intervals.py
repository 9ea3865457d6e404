"""Per-length narrowing intervals on known truth (issue 25 leftover): the mean over units at one conversation length
takes the slopes' t interval over independent units (``narrowing.length_means``, ``contrast_parts``), not a
percentile bootstrap, which covered the true mean in 0.49 of replications with the baseline's 2 conversations at
n = 0 and 0.82-0.86 with its 4 (measured on ``test_nulls_more.flat_conversation_responses``, 100 replications;
the t interval 0.94-0.96, docs/metrics.md "Narrowing slopes")."""

from __future__ import annotations

import numpy as np

from valuescope.analysis.metrics.narrowing import length_means


def _baseline_like(rng: np.random.Generator, mu: np.ndarray, reps: int) -> np.ndarray:
    """``reps`` units x lengths matrices shaped like a baseline's conversations: 2 at n = 0 (context none, one per
    repeat) and 4 at each later length (2 topics x 2 repeats, answering every later length); a unit's value is the
    length's true mean ``mu`` plus a unit effect shared over its lengths plus noise."""
    mat = np.full((reps, 6, len(mu)), np.nan)
    effect = rng.normal(0.0, 0.05, size=(reps, 6, 1))
    values = mu[None, None, :] + effect + rng.normal(0.0, 0.03, size=(reps, 6, len(mu)))
    mat[:, :2, 0] = values[:, :2, 0]
    mat[:, 2:, 1:] = values[:, 2:, 1:]
    return mat


def test_length_means_cover_the_true_mean_with_few_units():
    """Known truth: normal unit means around ``mu`` (t is exact there). 500 replications: the binomial sd of a
    coverage of 0.95 is sqrt(0.95 * 0.05 / 500) = 0.0097; 3.5 sd = 0.034 keeps a miss by noise alone, over the 3
    lengths, under 0.2% (Bonferroni). The percentile bootstrap's 0.49 and 0.82-0.86 lie outside [0.916, 0.984]."""
    rng = np.random.default_rng(11)
    mu = np.array([0.40, 0.37, 0.33])
    reps, tol = 500, 3.5 * np.sqrt(0.95 * 0.05 / 500)
    cover = np.zeros(len(mu))
    for mat in _baseline_like(rng, mu, reps):
        means, lo, hi = length_means(mat)
        assert np.allclose(means, np.nanmean(mat, axis=0))
        cover += (lo <= mu) & (mu <= hi)
    assert np.all(np.abs(cover / reps - 0.95) <= tol), cover / reps


def test_one_unit_at_a_length_gives_no_interval():
    """One conversation at a length: no variance to estimate, so no interval (NaN), never a zero-width one (a
    bootstrap of one unit returns it every time)."""
    mat = np.array([[0.5, 0.4], [np.nan, 0.3], [np.nan, 0.35]])
    means, lo, hi = length_means(mat)
    assert means[0] == 0.5 and np.isnan(lo[0]) and np.isnan(hi[0])
    # three units at the second length: mean 0.35 -/+ t_{2, 0.975} s / sqrt(3), by hand
    s = np.std([0.4, 0.3, 0.35], ddof=1)
    half = 4.302653 * s / np.sqrt(3)  # t_{2, 0.975}
    assert np.isclose(lo[1], 0.35 - half) and np.isclose(hi[1], 0.35 + half)
