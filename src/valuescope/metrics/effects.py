"""Effect sizes of persona attributes: the Cohen's d grid (Lee et al. 2024, "selective permeability").

For every persona attribute a (the ``attr_*`` columns), every level l of a, and every dimension d, the
personas with ``a == l`` are compared with all other personas (with a known a) on their dimension score
(averaged over repeats; one value per persona):

* ``d = (mean_l - mean_rest) / s_pooled``, ``s_pooled = sqrt(((n_l-1) s_l^2 + (n_r-1) s_r^2) / (n_l+n_r-2))``
  (Cohen 1988; Lee et al. report e.g. d = 1.42 for religion on Tradition);
* a two-sided Welch t-test p-value (unequal variances), and the Benjamini-Hochberg q-value over all
  cells of the grid of one (run, model, instrument, context); ``significant = q < alpha``.

The grid is a separate tidy frame (``effects_grid``), not part of the long metrics table: its cells are
keyed by attribute and level as well as dimension, which the long table's columns cannot hold cleanly.

Numeric attributes with more than ``max_levels`` distinct values (age, income) are cut into
``n_bins`` quantile bins labelled ``"lo-hi"`` first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from valuescope.metrics._common import choose_level, quiet, unit_ids

EFFECT_COLUMNS = [
    "run_id", "model", "instrument", "context", "attribute", "level", "dimension", "d", "mean_level",
    "mean_rest", "n_level", "n_rest", "t", "p", "q", "significant", "note",
]


def cohens_d(x: np.ndarray, y: np.ndarray) -> float:
    """Cohen's d with the pooled standard deviation; NaN when undefined (n_x + n_y < 3 or zero SD)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    nx, ny = len(x), len(y)
    if nx < 1 or ny < 1 or nx + ny < 3:
        return float("nan")
    ssx = ((x - x.mean()) ** 2).sum()
    ssy = ((y - y.mean()) ** 2).sum()
    sp = np.sqrt((ssx + ssy) / (nx + ny - 2))
    if sp <= 1e-12 * max(1.0, abs(x.mean()), abs(y.mean())):
        return float("nan")
    return float((x.mean() - y.mean()) / sp)


def welch_t(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Welch's two-sided t-test ``(t, p)``; NaN when either group has fewer than 2 values or both are
    constant."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) < 2 or len(y) < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return float("nan"), float("nan")
    with quiet():
        res = stats.ttest_ind(x, y, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN p-values are left out and stay NaN)."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    q[ok] = out
    return q


def attribute_levels(values: pd.Series, *, max_levels: int = 12, n_bins: int = 3) -> pd.Series:
    """Attribute values as level labels (strings); many-valued numeric attributes become quantile bins."""
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().sum() == values.notna().sum() and num.nunique() > max_levels:
        bins = pd.qcut(num, q=n_bins, duplicates="drop")
        labels = bins.map(lambda iv: f"{iv.left:g}-{iv.right:g}" if pd.notna(iv) else None)
        return labels.astype(object)
    return values.map(lambda v: None if pd.isna(v) else str(v)).astype(object)


def effects_grid(
    scores: pd.DataFrame, *, value_col: str = "raw_score", level: str | None = None, alpha: float = 0.05,
    max_levels: int = 12, n_bins: int = 3,
) -> pd.DataFrame:
    """The Cohen's d grid (module docstring) for every (run, model, instrument, context).

    ``value_col`` defaults to ``raw_score`` (the scale means Lee et al. compare; ``score`` gives the
    MRAT-centred PVQ scores). Persona condition only; one value per persona (mean over repeats).
    Columns: ``EFFECT_COLUMNS``.
    """
    attrs = sorted(c for c in scores.columns if str(c).startswith("attr_"))
    df = scores[(scores["condition"] == "persona") & scores[value_col].notna() & scores["dimension"].notna()]
    out: list[dict] = []
    for (run_id, model, inst), g in df.groupby(["run_id", "model", "instrument"], sort=True):
        lvl = choose_level(g, level)
        g = g if lvl is None else g[g["level"].astype(str) == lvl]
        g = g.assign(_unit=unit_ids(g), _ctx=g["context"].astype(str), _dim=g["dimension"].astype(str))
        for ctx, gc in g.groupby("_ctx", sort=True):
            per = gc.groupby(["_unit", "_dim"], sort=True)[value_col].mean().unstack("_dim")
            first = gc.drop_duplicates("_unit").set_index("_unit")
            cells: list[dict] = []
            for attr in attrs:
                labels = attribute_levels(first[attr], max_levels=max_levels, n_bins=n_bins)
                labels = labels.reindex(per.index)
                known = labels.notna().to_numpy()
                for lev in sorted(labels.dropna().unique()):
                    in_lev = (labels == lev).to_numpy()
                    for dim in per.columns:
                        v = per[dim].to_numpy(dtype=float)
                        x, y = v[in_lev], v[known & ~in_lev]
                        cells.append(_cell(run_id, model, inst, ctx, attr[5:], lev, dim, x, y))
            q = bh_qvalues(np.array([c["p"] for c in cells], dtype=float))
            for c, qi in zip(cells, q, strict=True):
                c["q"] = qi
                c["significant"] = bool(np.isfinite(qi) and qi < alpha)
            out.extend(cells)
    frame = pd.DataFrame.from_records(out, columns=EFFECT_COLUMNS)
    frame["significant"] = frame["significant"].astype(bool)
    return frame


def _cell(run_id: str, model: str, inst: str, ctx: str, attr: str, lev: str, dim: str,
          x: np.ndarray, y: np.ndarray) -> dict:
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    d = cohens_d(x, y)
    t, p = welch_t(x, y)
    note = ""
    if len(y) == 0:
        note = "every persona has this level: no comparison group"
    elif len(x) + len(y) < 3:
        note = "fewer than 3 personas"
    elif not np.isfinite(d):
        note = "zero variance: pooled SD is 0"
    elif not np.isfinite(p):
        note = "fewer than 2 personas in a group: no Welch test"
    with quiet():
        return {
            "run_id": run_id, "model": model, "instrument": inst, "context": ctx, "attribute": attr,
            "level": lev, "dimension": dim, "d": d, "mean_level": float(np.mean(x)) if len(x) else np.nan,
            "mean_rest": float(np.mean(y)) if len(y) else np.nan, "n_level": len(x), "n_rest": len(y),
            "t": t, "p": p, "q": np.nan, "significant": False, "note": note,
        }
