"""Effect sizes of persona attributes: the standardised-difference grid (Lee et al. 2024, "selective
permeability"), reported as Hedges' g.

For every persona attribute a (the ``attr_*`` columns) and every dimension d, personas are compared on
their dimension score (averaged over repeats; one value per persona), each comparison once:

* an attribute with a **reference level** (``REFERENCE_LEVELS``; religion: "do not belong to a
  denomination", so Lee et al.'s d = 1.42 is Orthodox vs non-religious) gives every other level vs the
  reference; when no persona with the reference level was drawn, each level is compared with the rest and
  every cell's note says so;
* a **numeric** attribute (age, income decile) gives a trend: its values, cut into ``n_bins`` quantile bins
  when it has more than ``max_numeric`` distinct values, each bin (or value) vs the lowest one, labelled by
  the values it holds ("20–34");
* a **binary** attribute gives one contrast (the first level, sorted, vs the second), not two mirrored ones;
* any other attribute gives each level vs all other personas with a known value ("rest").

Per cell, from one model (two groups with a common SD, Student's t):

* Cohen's ``d = (mean_level - mean_ref) / s_pooled``, ``s_pooled = sqrt(((n_l-1) s_l^2 + (n_r-1) s_r^2) /
  (n_l+n_r-2))``, and Hedges' ``g = J d`` with ``J = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, ``m = n_l+n_r-2``
  (Hedges 1981: g is unbiased for the population delta; d is biased away from 0 by about 3/(4m));
* ``t = d sqrt(n_l n_r / (n_l + n_r))``, the two-sided Student p on m degrees of freedom;
* the 95% CI of delta by inverting the noncentral t distribution of ``t`` (Hedges & Olkin 1985, ch. 5;
  Steiger & Fouladi 1997), so that the CI excludes 0 exactly when p < 0.05;
* the Benjamini-Hochberg q-value over the cells of the grid of one (run, model, instrument, context) that
  were tested; ``significant = q < alpha``;
* a group smaller than ``min_group`` (default 5) personas gives NaN (g, CI, p) with a note, and is not
  tested.

The value ``n/a`` (an attribute the persona template hides, e.g. the occupation of someone not employed)
counts as unknown. The grid is a separate tidy frame (``effects_grid``), not part of the long metrics table:
its cells are keyed by attribute, level and reference as well as dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from valuescope.analysis.metrics._common import choose_level, quiet, unit_ids
from valuescope.core.levels import ALPHA

EFFECT_COLUMNS = [
    "run_id", "model", "instrument", "context", "attribute", "level", "reference", "dimension", "g", "g_low",
    "g_high", "mean_level", "mean_rest", "n_level", "n_rest", "t", "p", "q", "significant", "note",
]
#: attribute -> the level every other level is compared with (matched case-insensitively)
REFERENCE_LEVELS = {
    "religious_denomination": "do not belong to a denomination",
    "religion": "none",
}
MISSING_LEVELS = {"n/a"}
#: the fewest personas a group may have for an effect size (d, eta^2) to be estimated or shown
MIN_GROUP = 5


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


def hedges_j(m: float) -> float:
    """Hedges' exact small-sample correction ``J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))`` (m > 1)."""
    if not m > 1:
        return float("nan")
    return float(np.exp(special.gammaln(m / 2) - special.gammaln((m - 1) / 2)) / np.sqrt(m / 2))


def hedges_g(x: np.ndarray, y: np.ndarray) -> float:
    """Hedges' g = J (n_x + n_y - 2) * Cohen's d; NaN when d is undefined."""
    x, y = (np.asarray(a, dtype=float) for a in (x, y))
    m = np.isfinite(x).sum() + np.isfinite(y).sum() - 2
    return cohens_d(x, y) * hedges_j(m)


def cohens_d_ci(d: float, nx: int, ny: int, alpha: float = ALPHA) -> tuple[float, float]:
    """CI of the population delta from Cohen's d of groups of nx and ny: the noncentral-t interval (module
    docstring), which excludes 0 exactly when Student's two-sided p < alpha."""
    m = nx + ny - 2
    if not np.isfinite(d) or nx < 1 or ny < 1 or m < 1:
        return float("nan"), float("nan")
    scale = np.sqrt(nx * ny / (nx + ny))
    t = d * scale

    width = np.sqrt(1.0 + t * t / (2.0 * m))  # about the SD of t over the noncentrality near t

    def ncp_where(prob: float) -> float:  # the noncentrality at which P(T <= t) = prob
        def f(ncp: float) -> float:
            c = stats.nct.cdf(t, m, ncp)
            return float((1.0 - stats.nct.sf(t, m, ncp) if not np.isfinite(c) else c) - prob)

        lo, hi = t - 3.0 * width, t + 3.0 * width
        for _ in range(60):
            if f(lo) >= 0:
                break
            lo -= width
        for _ in range(60):
            if f(hi) <= 0:
                break
            hi += width
        return float(optimize.brentq(f, lo, hi, xtol=1e-10))

    return ncp_where(1 - alpha / 2) / scale, ncp_where(alpha / 2) / scale


def student_t(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Student's two-sided t-test with the pooled variance ``(t, p)``, the model of d, g and their CI; NaN
    when the pooled SD is 0 or a group is empty."""
    x, y = (np.asarray(a, dtype=float) for a in (x, y))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    d = cohens_d(x, y)
    if not np.isfinite(d) or len(x) < 1 or len(y) < 1:
        return float("nan"), float("nan")
    t = d * np.sqrt(len(x) * len(y) / (len(x) + len(y)))
    return float(t), float(2 * stats.t.sf(abs(t), len(x) + len(y) - 2))


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


def _numeric(values: pd.Series) -> pd.Series | None:
    num = pd.to_numeric(values, errors="coerce")
    return num if values.notna().sum() and num.notna().sum() == values.notna().sum() else None


def attribute_levels(values: pd.Series, *, max_numeric: int = 5, n_bins: int = 3) -> pd.Series:
    """Attribute values as level labels (strings; ``n/a`` and missing -> None); numeric attributes with
    more than ``max_numeric`` distinct values become ``n_bins`` quantile bins labelled by the values they
    hold (``"20–34"``)."""
    return attribute_design("", values, {}, max_numeric=max_numeric, n_bins=n_bins).labels


@dataclass
class AttributeDesign:
    """How one attribute enters the grid: a label per persona, the contrasts ``(level, reference or None =
    the rest)`` in order, and a note every cell of the attribute carries ("" when none)."""

    labels: pd.Series
    contrasts: list[tuple[str, str | None]]
    note: str


def attribute_design(attr: str, values: pd.Series, references: dict[str, str], *, max_numeric: int = 5,
                     n_bins: int = 3) -> AttributeDesign:
    """Labels and contrasts of attribute ``attr`` (module docstring: reference level, numeric trend, binary,
    rest)."""
    values = values.where(~values.astype(str).str.strip().str.lower().isin(MISSING_LEVELS))
    num = _numeric(values)
    if num is not None:
        if num.nunique() > max_numeric:
            codes = pd.qcut(num, q=n_bins, labels=False, duplicates="drop")
        else:
            codes = num.rank(method="dense") - 1
        names = {}
        for c in sorted(codes.dropna().unique()):
            inside = num[codes == c]
            lo, hi = inside.min(), inside.max()
            names[c] = f"{lo:g}" if lo == hi else f"{lo:g}–{hi:g}"
        labels = codes.map(lambda c: names.get(c) if pd.notna(c) else None).astype(object)
        order = [names[c] for c in sorted(names)]
        return AttributeDesign(labels, [(lv, order[0]) for lv in order[1:]],
                               "numeric attribute: each level vs the lowest (a trend)" if len(order) > 2 else "")
    labels = values.map(lambda v: None if pd.isna(v) else str(v)).astype(object)
    levels = sorted(labels.dropna().unique())
    ref = references.get(attr)
    note = ""
    if ref is not None:
        match = [lv for lv in levels if lv.strip().lower() == ref.strip().lower()]
        if match:
            return AttributeDesign(labels, [(lv, match[0]) for lv in levels if lv != match[0]], "")
        note = f"{attr}: reference level {ref!r} absent (no persona drawn with it): each level vs the rest"
    if len(levels) == 2:
        return AttributeDesign(labels, [(levels[0], levels[1])], note)
    return AttributeDesign(labels, [(lv, None) for lv in levels], note)


def effects_grid(
    scores: pd.DataFrame, *, value_col: str = "raw_score", level: str | None = None, alpha: float = ALPHA,
    min_group: int = MIN_GROUP, max_numeric: int = 5, n_bins: int = 3, references: dict[str, str] | None = None,
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
                design = attribute_design(attr[5:], first[attr], refs, max_numeric=max_numeric, n_bins=n_bins)
                labels = design.labels.reindex(per.index)
                known = labels.notna().to_numpy()
                for lev, ref in design.contrasts:
                    in_lev = (labels == lev).to_numpy()
                    in_ref = (labels == ref).to_numpy() if ref is not None else known & ~in_lev
                    for dim in per.columns:
                        v = per[dim].to_numpy(dtype=float)
                        cells.append(_cell(run_id, model, inst, ctx, attr[5:], lev, ref, dim, v[in_lev], v[in_ref],
                                           min_group, design.note))
            q = bh_qvalues(np.array([c["p"] for c in cells], dtype=float))
            for c, qi in zip(cells, q, strict=True):
                c["q"] = qi
                c["significant"] = bool(np.isfinite(qi) and qi < alpha)
            out.extend(cells)
    frame = pd.DataFrame.from_records(out, columns=EFFECT_COLUMNS)
    frame["significant"] = frame["significant"].astype(bool)
    return frame


def _cell(run_id: str, model: str, inst: str, ctx: str, attr: str, lev: str, ref: str | None, dim: str,
          x: np.ndarray, y: np.ndarray, min_group: int, design_note: str = "") -> dict:
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    note = ""
    if len(y) == 0:
        note = "every persona has this level: no comparison group"
    elif min(len(x), len(y)) < max(min_group, 2):
        note = f"fewer than {max(min_group, 2)} personas in a group (n = {len(x)} vs {len(y)})"
    d = cohens_d(x, y) if not note else float("nan")
    t, p = student_t(x, y) if not note else (float("nan"), float("nan"))
    if not note and not np.isfinite(d):
        note = "zero variance: pooled SD is 0"
    lo, hi = cohens_d_ci(d, len(x), len(y))
    g = d * hedges_j(len(x) + len(y) - 2) if np.isfinite(d) else float("nan")
    with quiet():
        return {
            "run_id": run_id, "model": model, "instrument": inst, "context": ctx, "attribute": attr,
            "level": lev, "reference": "rest" if ref is None else ref, "dimension": dim, "g": g, "g_low": lo,
            "g_high": hi, "mean_level": float(np.mean(x)) if len(x) else np.nan,
            "mean_rest": float(np.mean(y)) if len(y) else np.nan, "n_level": len(x), "n_rest": len(y),
            "t": t, "p": p, "q": np.nan, "significant": False,
            "note": "; ".join(n for n in (design_note, note) if n),
        }
