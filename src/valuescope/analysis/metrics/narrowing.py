"""Narrowing over a conversation: does the answer distribution narrow as the dialogue goes on, and faster
under a persona? (paper 004: a model holds a distribution over characters that narrows as a conversation
proceeds; the conversation-length sweep of Kovač et al. 2024 gives the data.)

Computed for any run whose answers come at two or more conversation lengths ``n`` (``contexts.n_messages``
a list; "none" counts as n = 0). Per answer, the normalised entropy ``h = H(p) / log2 K`` (0 = all mass on
one option, 1 = uniform). Per (dimension, n):

* ``narrowing_entropy_persona`` / ``narrowing_entropy_baseline``: mean h over the answers; CI: bootstrap
  over personas (baseline: over its conversations, one per topic and repeat);
* ``narrowing_spread``: how differently personas answer: for every (item, topic, repeat) the standard
  deviation over personas of the expected answer, averaged; CI: bootstrap over personas;
* ``narrowing_slope_persona`` / ``..._baseline`` / ``narrowing_spread_slope``: least-squares slope of the
  per-length means against n (change per message; < 0 = narrowing), CI by the same bootstraps;
* ``narrowing_slope_diff`` = slope(persona) - slope(baseline), CI from independent bootstraps of the two:
  < 0 = the persona narrows faster than the model on its own.

``context_a`` is ``*@n`` (all topics at length n) or ``all`` for slopes; ``dimension`` is the item
dimension, or "" pooled over all. A model whose answers do not depend on the conversation scores slopes 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import (
    group_rng,
    metric_row,
    metrics_frame,
    percentile_ci,
    prob_columns,
    quiet,
    unit_ids,
)
from valuescope.analysis.metrics.registry import MetricInputs, register


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


def _unit_matrix(t: pd.DataFrame, value: str, ns: np.ndarray) -> np.ndarray:
    """units x lengths matrix of the unit's mean ``value`` at each length."""
    m = t.pivot_table(index="_unit", columns="n_messages", values=value, aggfunc="mean")
    return m.reindex(columns=ns).to_numpy(dtype=float)


def _curve(mat: np.ndarray, rng: np.random.Generator, n_boot: int) -> dict[str, Any]:
    """Means per length, slope, and their bootstrap replicates over rows (units)."""
    with np.errstate(all="ignore"), quiet():
        means = np.nanmean(mat, axis=0)
        idx = rng.integers(0, mat.shape[0], size=(n_boot, mat.shape[0]))
        reps = np.nanmean(mat[idx], axis=1) if n_boot else np.empty((0, mat.shape[1]))
    return {"means": means, "reps": reps}


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


def narrowing_rows(responses: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Long-table rows (module docstring) for every (run_id, model, instrument) with >= 2 lengths."""
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
            rng = group_rng(seed, "narrowing", run_id, model, inst, dim)
            slopes: dict[str, tuple[float, np.ndarray]] = {}
            for cond in ("persona", "baseline"):
                t = gd[gd["condition"] == cond]
                if t.empty:
                    continue
                mat = _unit_matrix(t, "_h", ns)
                c = _curve(mat, rng, n_boot)
                lo, hi = percentile_ci(c["reps"])
                for j, n in enumerate(ns):
                    rows.append(metric_row(group, f"narrowing_entropy_{cond}", dimension=dim, context_a=f"*@{int(n)}",
                                           value=c["means"][j], ci_low=lo[j], ci_high=hi[j],
                                           n=int(np.sum(~np.isnan(mat[:, j])))))
                s, s_reps = float(_slope(ns, c["means"])), _slope(ns, c["reps"])
                slopes[cond] = (s, s_reps)
                slo, shi = percentile_ci(s_reps[:, None]) if n_boot else (np.array([np.nan]), np.array([np.nan]))
                rows.append(metric_row(group, f"narrowing_slope_{cond}", dimension=dim, context_a="all", value=s,
                                       ci_low=slo[0], ci_high=shi[0], n=mat.shape[0]))
            if len(slopes) == 2 and n_boot:
                d = slopes["persona"][0] - slopes["baseline"][0]
                lo, hi = percentile_ci((slopes["persona"][1] - slopes["baseline"][1])[:, None])
                rows.append(metric_row(group, "narrowing_slope_diff", dimension=dim, context_a="all", value=d,
                                       ci_low=lo[0], ci_high=hi[0], n=n_boot))
            pers = gd[gd["condition"] == "persona"]
            if pers["_unit"].nunique() < 2:
                continue
            cells, cell_n = _spread_matrix(pers, ns)
            value = _spread(cells, cell_n, ns)
            idx = rng.integers(0, cells.shape[1], size=(n_boot, cells.shape[1]))
            reps = _spread_boot(cells, cell_n, ns, idx)
            lo, hi = percentile_ci(reps)
            for j, n in enumerate(ns):
                rows.append(metric_row(group, "narrowing_spread", dimension=dim, context_a=f"*@{int(n)}",
                                       value=value[j], ci_low=lo[j], ci_high=hi[j], n=cells.shape[1]))
            s = float(_slope(ns, value))
            slo, shi = percentile_ci(_slope(ns, reps)[:, None]) if n_boot else (np.array([np.nan]), np.array([np.nan]))
            rows.append(metric_row(group, "narrowing_spread_slope", dimension=dim, context_a="all", value=s,
                                   ci_low=slo[0], ci_high=shi[0], n=cells.shape[1]))
    return metrics_frame(rows)


@register("narrowing", 50)
def rows(inputs: MetricInputs) -> pd.DataFrame:
    return narrowing_rows(inputs.responses, n_boot=inputs.n_boot, seed=inputs.seed)
