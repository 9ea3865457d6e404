"""Effect sizes of persona attributes: the Cohen's d grid (Lee et al. 2024, "selective permeability").

For every persona attribute a (the ``attr_*`` columns) and every dimension d, personas are compared on
their dimension score (averaged over repeats; one value per persona), each comparison once:

* an attribute with a **reference level** (``REFERENCE_LEVELS``; religion: "do not belong to a
  denomination", so Lee et al.'s d = 1.42 is Orthodox vs non-religious) gives every other level vs the
  reference;
* a **binary** attribute gives one contrast (the first level, sorted, vs the second), not two mirrored ones;
* any other attribute gives each level vs all other personas with a known value ("rest").

Per cell:

* ``d = (mean_level - mean_ref) / s_pooled``, ``s_pooled = sqrt(((n_l-1) s_l^2 + (n_r-1) s_r^2) / (n_l+n_r-2))``
  (Cohen 1988), and its 95% CI ``d -/+ 1.96 sqrt((n_l+n_r)/(n_l n_r) + d^2 / (2 (n_l+n_r)))`` (Hedges &
  Olkin 1985, large-sample SE);
* a two-sided Welch t-test p-value, and the Benjamini-Hochberg q-value over the cells of the grid of one
  (run, model, instrument, context) that were tested; ``significant = q < alpha``;
* a group smaller than ``min_group`` (default 5) personas gives NaN (d, CI, p) with a note, and is not
  tested.

Numeric attributes with more than ``max_numeric`` distinct values (age 20-80, income decile 1-10) are cut
into ``n_bins`` quantile bins labelled ``"lo-hi"`` first. The value ``n/a`` (an attribute the persona
template hides, e.g. the occupation of someone not employed) counts as unknown.

The grid is a separate tidy frame (``effects_grid``), not part of the long metrics table: its cells are
keyed by attribute, level and reference as well as dimension.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from valuescope.analysis.metrics._common import choose_level, quiet, unit_ids

EFFECT_COLUMNS = [
    "run_id", "model", "instrument", "context", "attribute", "level", "reference", "dimension", "d", "d_low",
    "d_high", "mean_level", "mean_rest", "n_level", "n_rest", "t", "p", "q", "significant", "note",
]
#: attribute -> the level every other level is compared with (matched case-insensitively)
REFERENCE_LEVELS = {
    "religious_denomination": "do not belong to a denomination",
    "religion": "none",
}
MISSING_LEVELS = {"n/a"}


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


def cohens_d_ci(d: float, nx: int, ny: int, z: float = 1.959964) -> tuple[float, float]:
    """Large-sample 95% CI of Cohen's d: ``d -/+ z * sqrt((nx+ny)/(nx*ny) + d^2/(2(nx+ny)))``."""
    if not np.isfinite(d) or nx < 1 or ny < 1:
        return float("nan"), float("nan")
    se = float(np.sqrt((nx + ny) / (nx * ny) + d * d / (2 * (nx + ny))))
    return d - z * se, d + z * se


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


def attribute_levels(values: pd.Series, *, max_numeric: int = 5, n_bins: int = 3) -> pd.Series:
    """Attribute values as level labels (strings; ``n/a`` and missing -> None); numeric attributes with
    more than ``max_numeric`` distinct values become ``n_bins`` quantile bins."""
    values = values.where(~values.astype(str).str.strip().str.lower().isin(MISSING_LEVELS))
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().sum() == values.notna().sum() and num.nunique() > max_numeric:
        bins = pd.qcut(num, q=n_bins, duplicates="drop")
        labels = bins.map(lambda iv: f"{iv.left:g}-{iv.right:g}" if pd.notna(iv) else None)
        return labels.astype(object)
    return values.map(lambda v: None if pd.isna(v) else str(v)).astype(object)


def contrasts(attr: str, levels: list[str], references: dict[str, str]) -> list[tuple[str, str | None]]:
    """The comparisons of one attribute: ``(level, reference level)``, reference None = all the rest."""
    ref = references.get(attr)
    if ref is not None:
        match = [lv for lv in levels if lv.strip().lower() == ref.strip().lower()]
        if match:
            return [(lv, match[0]) for lv in levels if lv != match[0]]
    if len(levels) == 2:
        return [(levels[0], levels[1])]
    return [(lv, None) for lv in levels]


def effects_grid(
    scores: pd.DataFrame, *, value_col: str = "raw_score", level: str | None = None, alpha: float = 0.05,
    min_group: int = 5, max_numeric: int = 5, n_bins: int = 3, references: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The Cohen's d grid (module docstring) for every (run, model, instrument, context).

    ``value_col`` defaults to ``raw_score`` (the scale means Lee et al. compare; ``score`` gives the
    MRAT-centred PVQ scores). Persona condition only; one value per persona (mean over repeats).
    ``references`` overrides ``REFERENCE_LEVELS`` (attribute names without ``attr_``).
    Columns: ``EFFECT_COLUMNS`` (``mean_rest`` / ``n_rest`` describe the comparison group).
    """
    refs = {**REFERENCE_LEVELS, **(references or {})}
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
                labels = attribute_levels(first[attr], max_numeric=max_numeric, n_bins=n_bins).reindex(per.index)
                known = labels.notna().to_numpy()
                for lev, ref in contrasts(attr[5:], sorted(labels.dropna().unique()), refs):
                    in_lev = (labels == lev).to_numpy()
                    in_ref = (labels == ref).to_numpy() if ref is not None else known & ~in_lev
                    for dim in per.columns:
                        v = per[dim].to_numpy(dtype=float)
                        cells.append(_cell(run_id, model, inst, ctx, attr[5:], lev, ref, dim, v[in_lev], v[in_ref],
                                           min_group))
            q = bh_qvalues(np.array([c["p"] for c in cells], dtype=float))
            for c, qi in zip(cells, q, strict=True):
                c["q"] = qi
                c["significant"] = bool(np.isfinite(qi) and qi < alpha)
            out.extend(cells)
    frame = pd.DataFrame.from_records(out, columns=EFFECT_COLUMNS)
    frame["significant"] = frame["significant"].astype(bool)
    return frame


def _cell(run_id: str, model: str, inst: str, ctx: str, attr: str, lev: str, ref: str | None, dim: str,
          x: np.ndarray, y: np.ndarray, min_group: int) -> dict:
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    note = ""
    if len(y) == 0:
        note = "every persona has this level: no comparison group"
    elif min(len(x), len(y)) < max(min_group, 2):
        note = f"fewer than {max(min_group, 2)} personas in a group (n = {len(x)} vs {len(y)})"
    d = cohens_d(x, y) if not note else float("nan")
    t, p = welch_t(x, y) if not note else (float("nan"), float("nan"))
    if not note and not np.isfinite(d):
        note = "zero variance: pooled SD is 0"
    elif not note and not np.isfinite(p):
        note = "no Welch test: both groups constant"
    lo, hi = cohens_d_ci(d, len(x), len(y))
    with quiet():
        return {
            "run_id": run_id, "model": model, "instrument": inst, "context": ctx, "attribute": attr,
            "level": lev, "reference": "rest" if ref is None else ref, "dimension": dim, "d": d, "d_low": lo,
            "d_high": hi, "mean_level": float(np.mean(x)) if len(x) else np.nan,
            "mean_rest": float(np.mean(y)) if len(y) else np.nan, "n_level": len(x), "n_rest": len(y),
            "t": t, "p": p, "q": np.nan, "significant": False, "note": note,
        }
