"""Narrowing over a conversation: does the answer distribution narrow as the dialogue goes on, and faster
under a persona? (paper 004: a model holds a distribution over characters that narrows as a conversation
proceeds; the conversation-length sweep of Kovač et al. 2024 gives the data.)

Computed for any run whose answers come at two or more conversation lengths ``n`` (``contexts.n_messages``
a list; "none" counts as n = 0). Per answer, the normalised entropy ``h = H(p) / log2 K`` (0 = all mass on
one option, 1 = uniform). Per (dimension, n):

* ``narrowing_entropy_persona`` / ``narrowing_entropy_baseline``: mean h over the answers; CI: the slopes'
  t interval over the independent units (personas; the baseline's conversations, one per topic and repeat) for
  that length alone (:func:`length_means`; the percentile bootstrap it replaced covered 0.49 with the baseline's
  2 conversations at n = 0);
* ``narrowing_spread``: how differently personas answer: for every (item, topic, repeat) the standard
  deviation over personas of the expected answer, averaged; CI: delete-one-persona jackknife, t on n - 1 df
  (the spread slope's rule);
* ``narrowing_slope_persona`` / ``..._baseline``: least-squares slope of the per-length means against n
  (change per message; < 0 = narrowing); CI: a t interval over the independent units (personas; the
  baseline's conversations) with a cluster-robust (CR2) variance and Welch-Satterthwaite df
  (:func:`slope_interval`; the percentile bootstrap it replaced held 0.82 of a zero baseline slope over 4
  conversations, docs/metrics.md "Narrowing slopes");
* ``narrowing_spread_slope``: the slope of ``narrowing_spread``; CI: delete-one-persona jackknife, t on n - 1 df;
* ``narrowing_slope_diff`` = slope(persona) - slope(baseline), CI: t with the two variances added and
  Welch-Satterthwaite df: < 0 = the persona narrows faster than the model on its own.

``context_a`` is ``*@n`` (all topics at length n) or ``all`` for slopes; ``dimension`` is the item
dimension, or "" pooled over all. A model whose answers do not depend on the conversation scores slopes 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from valuescope.analysis.metrics._common import (
    metric_row,
    metrics_frame,
    prob_columns,
    quiet,
    unit_ids,
)
from valuescope.analysis.metrics.registry import MetricInputs, register
from valuescope.core.levels import ALPHA


def answer_entropy(responses: pd.DataFrame) -> np.ndarray:
    """h = H(p) / log2 K per row (NaN for invalid answers or K < 2)."""
    cols = prob_columns(responses)
    p = responses[cols].to_numpy(dtype=float)
    k = responses["k"].to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        h = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=1) / np.log2(k)
    valid = responses["valid"].astype(bool).to_numpy() & (k >= 2)
    return np.where(valid, h, np.nan)


def _slope(ns: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Least-squares slope of ys (..., len(ns)) against ns along the last axis (NaN-aware)."""
    with np.errstate(all="ignore"), quiet():
        ok = ~np.isnan(ys)
        nm = np.where(ok, np.asarray(ns, dtype=float), np.nan)
        dx = nm - np.nanmean(nm, axis=-1, keepdims=True)
        dy = ys - np.nanmean(ys, axis=-1, keepdims=True)
        return np.nansum(dx * dy, axis=-1) / np.nansum(dx * dx, axis=-1)


def contrast_parts(mat: np.ndarray, w: np.ndarray) -> list[tuple[float, int]]:
    """The variance of ``sum_j w_j mean_j`` (``mean_j`` the mean over the units answering length j of ``mat``,
    units x lengths, NaN where a unit has no answer at that length) as components ``(S_t, df_t)``, one per pattern
    of lengths a unit answers (personas: one; the baseline: its context-none conversations, and its topic
    conversations). The one interval rule of every narrowing mean and slope (:func:`slope_interval`).

    The contrast is linear in the units, ``sum_u c_u`` with ``c_u = sum_j w_j y_uj / m_j`` (``m_j`` the units at
    length j), and units are independent, so its variance is a sum over units. Each unit's term is its
    CR2-adjusted residual ``g_u = sum_j w_j e_uj / sqrt(m_j (m_j - 1))`` squared (``e_uj = y_uj - mean_j``):
    unbiased for independent units; for one length (``w = e_j``) the exact ``s^2 / m_j``, and for a slope the
    ``s^2 / n`` of the per-unit slopes when every unit answers at every length. ``S_t`` sums the terms of a
    pattern's units, with ``df_t = n_t - 1`` (1 for a pattern of one unit). A length the contrast uses that fewer
    than 2 units answer has no variance estimate: NaN."""
    with np.errstate(all="ignore"), quiet():
        ok = ~np.isnan(mat)
        m = ok.sum(axis=0)
        if np.any((w != 0) & (m < 2)):
            return [(np.nan, 1)]
        e = np.where(ok, mat - np.nanmean(mat, axis=0), 0.0)
        # a length the contrast does not use (w_j = 0) may have fewer than 2 units: it weighs 0, not 0/0
        g = (e * np.where(w != 0, w / np.sqrt(np.maximum(m * (m - 1.0), 1.0)), 0.0)[None, :]).sum(axis=1)
    parts = []
    # the pattern of lengths each unit answers, as one bytes key per unit (np.unique(axis=0) is 20x slower)
    _, pattern = np.unique(np.array([row.tobytes() for row in ok]), return_inverse=True)
    for t in np.unique(pattern):
        sel = pattern.ravel() == t
        if np.any(ok[sel] & (w != 0)[None, :]):
            parts.append((float(np.sum(g[sel] ** 2)), max(1, int(sel.sum()) - 1)))
    return parts


def slope_parts(mat: np.ndarray, ns: np.ndarray) -> tuple[float, list[tuple[float, int]]]:
    """The least-squares slope of the per-length means of ``mat`` against ``ns`` and its variance components
    (:func:`contrast_parts` with the slope's weights ``w_j = dx_j / sum dx^2`` over the lengths answered)."""
    with np.errstate(all="ignore"), quiet():
        has = (~np.isnan(mat)).sum(axis=0) > 0
        slope = float(_slope(ns, np.nanmean(mat, axis=0)))
        x = np.asarray(ns, dtype=float)
        dx = np.where(has, x - x[has].mean(), 0.0)
        w = dx / np.sum(dx * dx)
    return slope, contrast_parts(mat, w)


def length_means(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per length: the mean over units of ``mat`` (units x lengths) and its 95% interval by the slopes' rule
    (:func:`contrast_parts` of that length alone, :func:`slope_interval`): with one pattern of units, the mean
    -/+ t_{m-1} s / sqrt(m). The percentile bootstrap it replaced covered the true mean entropy in 0.49 of
    replications with the baseline's 2 conversations at n = 0 and 0.82-0.86 with its 4 (docs/metrics.md)."""
    with np.errstate(all="ignore"), quiet():
        means = np.nanmean(mat, axis=0)
    lo, hi = np.full(len(means), np.nan), np.full(len(means), np.nan)
    for j in range(len(means)):
        lo[j], hi[j] = slope_interval(float(means[j]), contrast_parts(mat, np.eye(len(means))[j]))
    return means, lo, hi


def slope_interval(value: float, parts: list[tuple[float, int]], alpha: float = ALPHA) -> tuple[float, float]:
    """``value -/+ t_df sqrt(V)`` of a contrast (a slope, a length's mean): V the sum of the components'
    variances, df Welch-Satterthwaite's ``V^2 / sum(S_t^2 / df_t)`` (:func:`contrast_parts`)."""
    v = sum(s for s, _ in parts)
    if not parts or not np.isfinite(v) or not np.isfinite(value):
        return np.nan, np.nan
    if v <= 0:
        return value, value
    df = v * v / sum(s * s / d for s, d in parts)
    half = float(special.stdtrit(df, 1 - alpha / 2)) * float(np.sqrt(v))  # t quantile (stats.t.ppf, 50x faster)
    return value - half, value + half


def _unit_matrix(t: pd.DataFrame, value: str, ns: np.ndarray) -> np.ndarray:
    """units x lengths matrix of the unit's mean ``value`` at each length."""
    m = t.pivot_table(index="_unit", columns="n_messages", values=value, aggfunc="mean")
    return m.reindex(columns=ns).to_numpy(dtype=float)


def _spread_matrix(t: pd.DataFrame, ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cells x units) expected answers per (item, topic, repeat, n) cell, and each cell's n."""
    m = t.pivot_table(index=["item_id", "topic", "repeat", "n_messages"], columns="_unit", values="expected",
                      aggfunc="mean")
    return m.to_numpy(dtype=float), m.index.get_level_values("n_messages").to_numpy()


def _spread(cells: np.ndarray, cell_n: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """Per length: the mean over cells of the sd (ddof 1) over units (the last axis); ``cells`` (C, U) gives
    (len(ns),), (C, B, U) gives (B, len(ns))."""
    with np.errstate(all="ignore"), quiet():
        sd = np.nanstd(cells, axis=-1, ddof=1)
        return np.stack([np.nanmean(sd[cell_n == n], axis=0) for n in ns], axis=-1)


def _spread_boot(cells: np.ndarray, cell_n: np.ndarray, ns: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``_spread`` of every bootstrap sample of units (rows of ``idx``): (B, len(ns)), in blocks of about
    4 million values."""
    if not len(idx):
        return np.empty((0, len(ns)))
    block = max(1, 4_000_000 // max(1, cells.shape[0] * cells.shape[1]))
    return np.concatenate([_spread(cells[:, idx[i:i + block]], cell_n, ns) for i in range(0, len(idx), block)])


def _leave_one_out(n: int) -> np.ndarray:
    """(n, n - 1) unit indices: row i holds every unit but i."""
    full = np.tile(np.arange(n), (n, 1))
    return full[~np.eye(n, dtype=bool)].reshape(n, n - 1)


def _jackknife_interval(value: float, loo: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    """``value -/+ t_{n-1} SE_jack`` from the n delete-one estimates ``loo``."""
    loo = loo[np.isfinite(loo)]
    n = loo.size
    if n < 2 or not np.isfinite(value):
        return np.nan, np.nan
    se = float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * se
    return value - half, value + half


def narrowing_rows(responses: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Long-table rows (module docstring) for every (run_id, model, instrument) with >= 2 lengths. Every interval
    is analytic (t over units, or the jackknife): ``n_boot`` and ``seed`` draw nothing here (kept for the
    registry's call)."""
    rows: list[dict[str, Any]] = []
    if responses.empty or "n_messages" not in responses.columns:
        return metrics_frame(rows)
    df = responses.copy()
    df["_h"] = answer_entropy(df)
    df["_unit"] = unit_ids(df).to_numpy()
    base_mask = df["condition"] == "baseline"
    df.loc[base_mask, "_unit"] = "baseline|" + df.loc[base_mask, "topic"].astype(str) + "|" + \
        df.loc[base_mask, "repeat"].astype(str)
    for (run_id, model, inst), g in df.groupby(["run_id", "model", "instrument"], sort=False):
        ns = np.array(sorted(int(n) for n in g["n_messages"].dropna().unique()))
        if len(ns) < 2:
            continue
        group = (run_id, model, inst)
        dims = [("", g)] + [(str(d), gd) for d, gd in g.groupby("dimension", sort=True)]
        for dim, gd in dims:
            slopes: dict[str, tuple[float, np.ndarray]] = {}
            for cond in ("persona", "baseline"):
                t = gd[gd["condition"] == cond]
                if t.empty:
                    continue
                mat = _unit_matrix(t, "_h", ns)
                means, lo, hi = length_means(mat)
                for j, n in enumerate(ns):
                    rows.append(metric_row(group, f"narrowing_entropy_{cond}", dimension=dim, context_a=f"*@{int(n)}",
                                           value=means[j], ci_low=lo[j], ci_high=hi[j],
                                           n=int(np.sum(~np.isnan(mat[:, j])))))
                s, parts = slope_parts(mat, ns)
                slopes[cond] = (s, parts)
                slo, shi = slope_interval(s, parts)
                rows.append(metric_row(group, f"narrowing_slope_{cond}", dimension=dim, context_a="all", value=s,
                                       ci_low=slo, ci_high=shi, n=mat.shape[0]))
            if len(slopes) == 2:
                d = slopes["persona"][0] - slopes["baseline"][0]
                lo, hi = slope_interval(d, slopes["persona"][1] + slopes["baseline"][1])
                n_units = int(gd.loc[gd["condition"].isin(["persona", "baseline"]), "_unit"].nunique())
                rows.append(metric_row(group, "narrowing_slope_diff", dimension=dim, context_a="all", value=d,
                                       ci_low=lo, ci_high=hi, n=n_units))
            pers = gd[gd["condition"] == "persona"]
            if pers["_unit"].nunique() < 2:
                continue
            cells, cell_n = _spread_matrix(pers, ns)
            value = _spread(cells, cell_n, ns)
            loo = _spread_boot(cells, cell_n, ns, _leave_one_out(cells.shape[1]))
            for j, n in enumerate(ns):
                lo, hi = _jackknife_interval(float(value[j]), loo[:, j])
                rows.append(metric_row(group, "narrowing_spread", dimension=dim, context_a=f"*@{int(n)}",
                                       value=value[j], ci_low=lo, ci_high=hi, n=cells.shape[1]))
            s = float(_slope(ns, value))
            slo, shi = _jackknife_interval(s, _slope(ns, loo))
            rows.append(metric_row(group, "narrowing_spread_slope", dimension=dim, context_a="all", value=s,
                                   ci_low=slo, ci_high=shi, n=cells.shape[1]))
    return metrics_frame(rows)


@register("narrowing", 50)
def rows(inputs: MetricInputs) -> pd.DataFrame:
    return narrowing_rows(inputs.responses, n_boot=inputs.n_boot, seed=inputs.seed)
