"""One interval method for every bounded, biased plug-in estimate: the jackknife (Tukey 1958) over the
resampling units, a bias-corrected estimate with a t interval from the jackknife standard error.

Used by inertia, the steerability JSD and Rank-Order stability (the top-1 / top-2 concentrations, maxima of
shares, have :func:`max_share_interval`, whose reason is there): each is a
non-linear function of pooled answers (an entropy, a maximum, a divergence, a Spearman rho), so its plug-in
value is biased in small samples (the entropy of a pooled distribution downward, hence inertia upward; a
JSD upward, away from 0; Spearman's rho toward 0), and bootstrap replicates carry that bias a second time:
the percentile interval of hard inertia covered the truth in 0.82 of replications at 40 personas, and at a
boundary it could lie wholly on one side of its own estimate (a persona-blind model's JSD 0.00007 with an
interval [0.0007, 0.018]). With ``theta`` the plug-in estimate over all units (personas; or respondents of
several independent groups, e.g. baseline conversations and personas) and ``theta_(i)`` the estimate
without unit i, per group g of ``n_g`` units with mean leave-one-out value ``tbar_g``:

* bias: ``b = sum_g (n_g - 1) (tbar_g - theta)`` (Quenouille 1956; several samples: Arvesen 1969);
* estimate: ``theta_jk = theta - b``;
* standard error: ``se^2 = sum_g (n_g - 1) / n_g * sum_{i in g} (theta_(i) - tbar_g)^2`` (Efron & Tibshirani
  1993, ch. 11); by the Efron-Stein inequality (1981) its expectation is at least the true variance, so the
  interval errs on the wide side;
* interval: ``theta_jk -/+ t_{1-a/2, n - G} se`` (n units in G groups), clipped with the estimate to the
  statistic's range ``[lower, upper]``.

The estimate always lies in its own interval (a symmetric interval around it; clipping is monotone). The
jackknife removes the O(1/n) bias of these statistics where the bootstrap does not (the bootstrap's own
estimate of Spearman's bias at 40 personas is -0.003 for a true -0.014: resampled duplicates are tied in
both variables). A NaN leave-one-out value (the statistic undefined without that unit) is left out, and with
fewer than 2 defined ones per group nothing is corrected and no interval is given. Measured coverage:
docs/metrics.md ("Intervals").

The other interval here, :func:`t_interval`, is for means over a few units (tables, dilemmas) whose bootstrap
SD is given: a t interval and the matching t test (motivated reasoning, evenhandedness).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from valuescope.analysis.metrics._common import quiet
from valuescope.core.levels import ALPHA


def jackknife_weights(n_units: int) -> np.ndarray:
    """``(U, U)`` unit weights of the U leave-one-out samples (row i leaves unit i out), for statistics written
    as functions of weighted unit sums (as with the bootstrap's ``bootstrap_weights``)."""
    return 1.0 - np.eye(n_units)


def jackknife_index(n_units: int) -> np.ndarray:
    """``(U, U - 1)`` unit indices of the U leave-one-out samples, for statistics written on index samples."""
    if n_units < 2:
        return np.zeros((0, max(n_units - 1, 0)), dtype=int)
    full = np.arange(n_units)
    return np.stack([np.delete(full, i) for i in range(n_units)])


def jackknife(
    value: np.ndarray | float, loo: np.ndarray | None, groups: np.ndarray | None = None, *,
    lower: float = -np.inf, upper: float = np.inf, alpha: float = ALPHA, interval: bool = True,
    extra_var: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(estimate, ci_low, ci_high)``, elementwise over the trailing axes (module docstring).

    ``value`` is the plug-in estimate (shape S), ``loo`` the leave-one-out values ``(U, *S)`` (None or fewer
    than 2 defined per group: the plug-in estimate, no interval), ``groups`` a label per unit for independent
    samples (None: one sample). ``interval=False`` gives the corrected estimate with a NaN interval.
    ``extra_var``: the variance of an independent part the units do not resample (e.g. a baseline asked in one
    conversation, whose spread is borrowed: ``metrics.steerability``), added to the jackknife's.
    """
    value = np.asarray(value, dtype=float)
    nan = np.full(value.shape, np.nan)
    if loo is None or len(loo) == 0:
        return np.where(np.isfinite(value), np.clip(value, lower, upper), np.nan), nan, nan
    loo = np.asarray(loo, dtype=float)
    labels = np.zeros(len(loo), dtype=int) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    bias = np.zeros(value.shape)
    var = np.zeros(value.shape)
    df = np.zeros(value.shape)
    ok = np.isfinite(value)
    with quiet(), np.errstate(all="ignore"):
        for g in np.unique(labels):
            x = loo[labels == g]
            n = np.isfinite(x).sum(axis=0)
            mean = np.nanmean(x, axis=0)
            bias = bias + (n - 1) * (mean - value)
            var = var + (n - 1) / n * np.nansum((x - mean) ** 2, axis=0)
            df = df + n - 1
            ok = ok & (n >= 2)
        est = np.where(ok, np.clip(value - bias, lower, upper), np.clip(value, lower, upper))
        est = np.where(np.isfinite(value), est, np.nan)
        if not interval:
            return est, nan, nan
        half = stats.t.ppf(1 - alpha / 2, np.maximum(df, 1)) * np.sqrt(var + extra_var)
        lo = np.where(ok, np.clip(est - half, lower, upper), np.nan)
        hi = np.where(ok, np.clip(est + half, lower, upper), np.nan)
    return est, lo, hi


def jackknife_scalar(value: float, loo: np.ndarray | None, groups: np.ndarray | None = None, *,
                     lower: float = -np.inf, upper: float = np.inf, alpha: float = ALPHA,
                     interval: bool = True, extra_var: float = 0.0) -> tuple[float, float, float]:
    """:func:`jackknife` of one statistic, as floats (``loo``: one value per unit)."""
    est, lo, hi = jackknife(value, None if loo is None else np.asarray(loo, float).reshape(-1), groups,
                            lower=lower, upper=upper, alpha=alpha, interval=interval, extra_var=extra_var)
    return float(est), float(lo), float(hi)


def t_interval(value: float, boot: np.ndarray, n_tables: int) -> tuple[float, float, float]:
    """(lo, hi, p): ``value -/+ t_{Q-1} sqrt(Q/(Q-1)) SD*`` and the matching two-sided t test of 0, for a
    mean over Q units (tables; or the personas of the smaller side) whose bootstrap SD is SD*."""
    boot = boot[np.isfinite(boot)]
    if n_tables < 2 or boot.size < 2 or not np.isfinite(value):
        return float("nan"), float("nan"), float("nan")
    df = n_tables - 1
    return t_bounds(value, float(np.std(boot, ddof=1)) * np.sqrt(n_tables / df), df)


#: a standard error at or below this is no spread at all (a deterministic model): rounding noise is not evidence
NO_SPREAD = 1e-12


def t_bounds(value: float, se: float, df: int) -> tuple[float, float, float]:
    """(lo, hi, p): ``value -/+ t_{df, 1 - ALPHA/2} se`` and the two-sided t test of 0. With no spread
    (``se <= NO_SPREAD``) the interval is the point itself and p is 1 at 0, else 0."""
    if se <= NO_SPREAD:
        return value, value, (1.0 if abs(value) <= NO_SPREAD else 0.0)
    # scipy.special's Student t functions, which stats.t.ppf / stats.t.sf call (the same numbers), without the
    # distribution object's argument checks: known-truth replications call this thousands of times
    half = float(special.stdtrit(df, 1 - ALPHA / 2)) * se
    return value - half, value + half, float(2 * special.stdtr(df, -abs(value) / se))


def mean_t_interval(values: np.ndarray, *, lower: float = -np.inf, upper: float = np.inf,
                    alpha: float = ALPHA) -> tuple[float, float, float]:
    """(mean, lo, hi) of the finite ``values`` (one per unit): ``mean -/+ t_{n-1} sd / sqrt(n)``, clipped to
    ``[lower, upper]``; no interval (NaN) with fewer than 2 units. For means over personas of a per-persona
    statistic (Ipsative, distance to neutral), where a percentile bootstrap is too narrow by about
    ``sqrt((n-1)/n)`` and its tails are ragged at 30 units."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if x.size < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(1 - alpha / 2, x.size - 1)) * float(x.std(ddof=1)) / np.sqrt(x.size)
    return m, float(max(lower, m - half)), float(min(upper, m + half))


def wilson_bounds(p: np.ndarray, n: np.ndarray, z: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval ``(lo, hi)`` of a share ``p`` from ``n`` (effective) answers at normal or t quantile
    ``z``, elementwise: ``(p + z^2/2n -/+ z sqrt(p (1 - p)/n + z^2/4n^2)) / (1 + z^2/n)``. Unlike the Wald interval it
    keeps a width where every answer agreed (p = 0 or 1: ``[0, z^2/(n + z^2)]``)."""
    p = np.asarray(p, dtype=float)
    n = np.maximum(np.asarray(n, dtype=float), 1e-12)
    z2 = np.asarray(z, dtype=float) ** 2
    centre = p + z2 / (2 * n)
    half = np.sqrt(z2) * np.sqrt(np.clip(p * (1 - p), 0.0, None) / n + z2 / (4 * n * n))
    return np.clip((centre - half) / (1 + z2 / n), 0.0, 1.0), np.clip((centre + half) / (1 + z2 / n), 0.0, 1.0)


def max_share_interval(shares: np.ndarray, loo: np.ndarray | None, n_answers: int, *, lower: float = 0.0,
                       upper: float = 1.0, alpha: float = ALPHA, interval: bool = True) -> tuple[float, float, float]:
    """``(estimate, ci_low, ci_high)`` of ``max_j s_j``, the largest of M shares ``shares`` (an option's, or two
    adjacent options' share of the answers), from their leave-one-unit-out values ``loo (U, M)``.

    A maximum is not smooth where two shares tie, nor bounded away from the edge where every answer agreed, so
    neither the jackknife's bias nor its symmetric interval holds there (a persona-blind model with half of every
    answer on one letter: top-1 coverage 0.70 under ``balanced``, where the leave-one-out maxima all rose and the
    "bias-corrected" value fell to 1/K; 0.65 under a fixed order, where all answers on one option gave a zero-width
    interval). The interval is instead projected from one interval per share, since the maximum is increasing in
    every share: each share's Wilson score interval (:func:`wilson_bounds`) at its effective number of answers
    ``s (1 - s) / se^2`` (``se``: the jackknife's over units; the number of answers where the share is 0 or 1 or
    has no spread; Korn & Graubard 1998); the upper bound ``max_j hi_j`` at ``1 - alpha/2`` (it fails only if the
    true maximum's own share exceeds its bound), the lower bound ``max_j lo_j`` at ``1 - alpha/(2M)`` (the share
    that sets it is chosen by the data: Bonferroni over the M). The estimate is the plug-in maximum, which lies
    inside by construction."""
    shares = np.asarray(shares, dtype=float)
    est = float(np.clip(np.max(shares), lower, upper)) if shares.size and np.isfinite(shares).all() else float("nan")
    if not interval or loo is None or len(loo) < 2 or not np.isfinite(est):
        return est, float("nan"), float("nan")
    loo = np.asarray(loo, dtype=float)
    n_u, m = loo.shape
    with np.errstate(all="ignore"):
        var = (n_u - 1) / n_u * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0)
        inner = (shares > 0) & (shares < 1) & (var > NO_SPREAD ** 2)
        n_eff = np.where(inner, shares * (1 - shares) / np.where(inner, var, 1.0), float(n_answers))
    n_eff = np.minimum(n_eff, float(n_answers))
    z_hi = float(stats.t.ppf(1 - alpha / 2, n_u - 1))
    z_lo = float(stats.t.ppf(1 - alpha / (2 * m), n_u - 1))
    lo_j, _ = wilson_bounds(shares, n_eff, z_lo)
    _, hi_j = wilson_bounds(shares, n_eff, z_hi)
    lo = float(np.clip(np.max(lo_j), lower, upper))
    hi = float(np.clip(np.max(hi_j), lower, upper))
    return est, min(lo, est), max(hi, est)
