"""Variance decomposition (within vs between personas, ICC) and the convergence curve.

* Within/between (the question of essay 004: is run-to-run noise within one persona as large as the
  spread between personas?). For one dimension and context, x_ij is persona i's score in repeat j
  (n_i repeats, N = sum n_i, P personas, m_i persona means, m the grand mean):

  - ``var_within  = MSW = sum_i sum_j (x_ij - m_i)^2 / (N - P)``  (pooled run-to-run variance)
  - ``var_between = sum_i (m_i - mean(m))^2 / (P - 1)``             (variance of persona means)
  - ``MSB = sum_i n_i (m_i - m)^2 / (P - 1)``,  ``n0 = (N - sum_i n_i^2 / N) / (P - 1)``
  - ``ICC(1) = (MSB - MSW) / (MSB + (n0 - 1) MSW)``  (Shrout & Fleiss 1979, one-way random effects;
    the share of score variance due to the persona; n0 = the repeats per persona when balanced).

* Convergence (Lee et al. 2024, fig. 5: variance of the dimension means against the number of
  personas): for N = 10, 20, 50, 100, 200, 500, ... and all P personas, ``n_draws`` samples of N
  personas drawn with replacement (seeded); ``convergence_var`` = the variance (ddof 1) of the sample
  means of the per-persona dimension means (``expected``, averaged over the persona's items/repeats),
  i.e. the bootstrap estimate of Var(mean of N personas) ~ sigma^2 / N.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from valuescope.metrics._common import (
    bootstrap_index,
    bootstrap_weights,
    group_rng,
    metric_row,
    percentile_ci,
    quiet,
    unit_ids,
)


def variance_components(values: np.ndarray, units: np.ndarray) -> dict[str, float]:
    """``var_within``, ``var_between``, ``icc`` (ICC(1)), plus ``n_units`` and ``n_obs`` of one set of
    observations ``values`` labelled by ``units`` (NaN values are dropped). Undefined parts are NaN."""
    values = np.asarray(values, dtype=float)
    units = np.asarray(units)
    ok = np.isfinite(values)
    _, inv = np.unique(units[ok], return_inverse=True)
    stats = _unit_stats(values[ok], inv)
    out = _components(stats, np.ones((1, len(stats[0]))))
    return {k: float(v[0]) for k, v in out.items()}


def _unit_stats(values: np.ndarray, inv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit: count, mean and within sum of squares."""
    n_u = np.bincount(inv).astype(float)
    m_u = np.bincount(inv, weights=values) / np.where(n_u > 0, n_u, 1)
    ss_u = np.bincount(inv, weights=(values - m_u[inv]) ** 2)
    return n_u, m_u, ss_u


def _components(stats: tuple[np.ndarray, np.ndarray, np.ndarray], w: np.ndarray) -> dict[str, np.ndarray]:
    """The formulas of the module docstring, vectorised over bootstrap weight rows ``w`` (B, U)."""
    n_u, m_u, ss_u = stats
    with np.errstate(all="ignore"), quiet():
        p = w.sum(axis=1)
        n = w @ n_u
        gm = (w @ (n_u * m_u)) / n
        msb = (w @ (n_u * m_u**2) - n * gm**2) / (p - 1)
        msw = (w @ ss_u) / (n - p)
        n0 = (n - (w @ n_u**2) / n) / (p - 1)
        mm = (w @ m_u) / p
        var_b = (w @ m_u**2 - p * mm**2) / (p - 1)
        den = msb + (n0 - 1) * msw
        icc = np.where((p >= 2) & (n - p > 0) & (np.abs(den) > 1e-15), (msb - msw) / den, np.nan)
        msw = np.where(n - p > 0, np.maximum(msw, 0.0), np.nan)
        var_b = np.where(p >= 2, np.maximum(var_b, 0.0), np.nan)
    return {"var_within": msw, "var_between": var_b, "icc": icc, "n_units": p, "n_obs": n}


def variance_rows(
    scores: pd.DataFrame, group: tuple[Any, Any, Any], *, level: str | None, n_boot: int, seed: int,
) -> list[dict[str, Any]]:
    """Long-table rows ``var_within``, ``var_between``, ``icc`` per dimension and context (persona
    scores of one level; CIs from the persona bootstrap)."""
    from valuescope.metrics._common import choose_level

    rows: list[dict[str, Any]] = []
    lvl = choose_level(scores, level)
    sc = scores if lvl is None else scores[scores["level"].astype(str) == lvl]
    sc = sc[(sc["condition"] == "persona") & sc["score"].notna() & sc["dimension"].notna()]
    if sc.empty:
        rows.append(metric_row(group, "icc", context_a="all", note="no persona scores"))
        return rows
    sc = sc.assign(_unit=unit_ids(sc))
    for (ctx, dim), g in sc.groupby([sc["context"].astype(str), sc["dimension"].astype(str)], sort=True):
        codes, inv = np.unique(g["_unit"].to_numpy(), return_inverse=True)
        values = g["score"].to_numpy(dtype=float)
        stats = _unit_stats(values, inv)
        point = {k: float(v[0]) for k, v in _components(stats, np.ones((1, len(codes)))).items()}
        boot = None
        if len(codes) >= 2 and n_boot > 0:
            idx = bootstrap_index(group_rng(seed, *group, ctx, dim, "icc"), len(codes), n_boot)
            boot = _components(stats, bootstrap_weights(idx, len(codes)))
        reps = int(stats[0].max()) if len(stats[0]) else 0
        for metric in ("var_within", "var_between", "icc"):
            val = point[metric]
            note = ""
            if not np.isfinite(val):
                if len(codes) < 2 and metric != "var_within":
                    note = "fewer than 2 personas"
                elif reps < 2 and metric != "var_between":
                    note = "no repeats: within-persona variance needs a persona asked at least twice"
                else:
                    note = "zero variance: every score equal"
            lo, hi = percentile_ci(boot[metric]) if boot is not None else (np.nan, np.nan)
            rows.append(metric_row(group, metric, dimension=dim, context_a=ctx, value=val, ci_low=lo,
                                   ci_high=hi, n=len(codes), note=note))
    return rows


DEFAULT_SIZES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def persona_dimension_means(responses: pd.DataFrame, value_col: str = "expected") -> pd.DataFrame:
    """Per run, model, instrument, context, dimension and persona: the mean of ``value_col`` over the
    persona's valid answers (all items and repeats). Persona condition only."""
    df = responses[(responses["condition"] == "persona") & responses["dimension"].notna()
                   & responses["valid"].astype(bool)]
    df = df.assign(persona=unit_ids(df), context=df["context"].astype(str),
                   dimension=df["dimension"].astype(str))
    keys = ["run_id", "model", "instrument", "context", "dimension", "persona"]
    return df.groupby(keys, sort=True)[value_col].mean().rename("mean").reset_index()


def convergence_curve(
    responses: pd.DataFrame, *, sizes: Sequence[int] = DEFAULT_SIZES, n_draws: int = 200, seed: int = 0,
    value_col: str = "expected",
) -> pd.DataFrame:
    """Variance of a dimension mean against the number of personas N (module docstring).

    Columns: run_id, model, instrument, context, dimension, n_personas, var_mean, sd_mean, n_draws.
    Sizes above the number of personas are dropped; the full size P is always included.
    """
    pm = persona_dimension_means(responses, value_col)
    out = []
    for key, g in pm.groupby(["run_id", "model", "instrument", "context", "dimension"], sort=True):
        x = g["mean"].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        p = len(x)
        rng = group_rng(seed, *key, "convergence")
        for size in sorted({s for s in sizes if s < p} | ({p} if p else set())):
            if p < 1 or n_draws < 2:
                var = np.nan
            else:
                means = x[rng.integers(0, p, size=(n_draws, size))].mean(axis=1)
                var = float(np.var(means, ddof=1))
            out.append((*key, int(size), var, float(np.sqrt(var)) if np.isfinite(var) else np.nan, n_draws))
    return pd.DataFrame(out, columns=["run_id", "model", "instrument", "context", "dimension", "n_personas",
                                      "var_mean", "sd_mean", "n_draws"])
