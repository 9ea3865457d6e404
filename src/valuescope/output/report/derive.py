"""Small computations the report needs and the metrics table may not carry.

Pure functions of the tidy tables: persona profiles (persona x dimension) for the figures that show
the answers themselves, a PCA by SVD, and helpers that pick rows out of the long metrics table. Every
number the report states as a metric is read from the metrics table; nothing here re-estimates one.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from valuescope.core.levels import ALPHA

PAIR_METRICS = ("rank_order", "ipsative")
_OVERALL = {"", "all", "overall", "mean", "*"}


class Skip(Exception):
    """A figure that cannot be drawn from the data given; the message says why, in one line."""


def is_overall(dim: object) -> bool:
    """True for a metrics row about no single dimension (NA, "all", "overall", ...)."""
    return dim is None or (not isinstance(dim, str) and pd.isna(dim)) or str(dim).strip().lower() in _OVERALL


def overall_mask(values: pd.Series) -> np.ndarray:
    """Boolean array: which rows are about no single dimension (see :func:`is_overall`)."""
    return np.array([is_overall(x) for x in values], dtype=bool)


def base_context(frame: pd.DataFrame) -> str | None:
    """The context a single-context view uses: "none" when present, else the most frequent one."""
    if frame.empty or "context" not in frame:
        return None
    ctx = frame["context"].astype(str)
    return "none" if (ctx == "none").any() else str(ctx.value_counts().index[0])


def finest_level(scores: pd.DataFrame) -> str | None:
    """The scoring level with the most dimensions (e.g. 19 PVQ-RR values rather than 4 higher-order)."""
    if scores.empty or "level" not in scores or scores["level"].isna().all():
        return None
    n = scores.dropna(subset=["level"]).groupby("level")["dimension"].nunique()
    return str(n.sort_values(ascending=False, kind="stable").index[0])


def attribute_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if str(c).startswith("attr_")]


def persona_scores(
    run_scores: pd.DataFrame, responses: pd.DataFrame, instrument: str, condition: str = "persona"
) -> pd.DataFrame:
    """Long persona-condition (or baseline) scores (persona_id, context, repeat, dimension, score) of
    one instrument, from the run's scores table (``analysis.scoring``: reverse keys, centring and the
    study's ``score_from`` applied there); empty when the run has none. The report never scores answers
    itself."""
    if run_scores.empty or "instrument" not in run_scores:
        return pd.DataFrame()
    s = run_scores[(run_scores["instrument"] == instrument) & (run_scores["condition"] == condition)]
    level = finest_level(s)
    if level is not None:
        s = s[s["level"] == level]
    return s.dropna(subset=["score", "dimension"])


def persona_profiles(
    scores: pd.DataFrame, responses: pd.DataFrame, instrument: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Persona x dimension matrix of mean scores in the base context (averaged over repeats), and
    one row of persona attributes per persona (gender, population, attr_*)."""
    long = persona_scores(scores, responses, instrument)
    if long.empty:
        return pd.DataFrame(), pd.DataFrame()
    ctx = base_context(long)
    long = long[long["context"].astype(str) == ctx] if ctx is not None else long
    matrix = long.pivot_table(index="persona_id", columns="dimension", values="score", aggfunc="mean")
    attrs = [c for c in ["gender", "population", *attribute_columns(long)] if c in long]
    info = long.groupby("persona_id")[attrs].first() if attrs else pd.DataFrame(index=matrix.index)
    return matrix, info.reindex(matrix.index)


def baseline_profile(scores: pd.DataFrame, responses: pd.DataFrame, instrument: str) -> pd.Series | None:
    """The no-persona profile (dimension -> mean score) in the base context, or None."""
    long = persona_scores(scores, responses, instrument, condition="baseline")
    if long.empty:
        return None
    ctx = base_context(long)
    long = long[long["context"].astype(str) == ctx] if ctx is not None else long
    return long.groupby("dimension")["score"].mean()


def context_labels(values: pd.Series) -> pd.Series:
    """A metrics frame's ``context_a`` as strings, "" where missing."""
    return values.map(lambda c: "" if c is None or (not isinstance(c, str) and pd.isna(c)) else str(c))


def metric_context(rows: pd.DataFrame) -> str:
    """The context a one-context figure of metric rows shows: "none" when present, else the first."""
    ctx = sorted(set(context_labels(rows["context_a"])), key=lambda c: (c != "none", c == "all", c))
    return ctx[0] if ctx else "none"


def pca(matrix: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA by SVD of the column-centred persona x dimension matrix (rows with NaN dropped by caller).
    Returns (scores n x 2, explained variance ratio of the first two components, loadings dims x 2)."""
    x = matrix.to_numpy(dtype=float)
    xc = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    total = float((s**2).sum())
    ratio = (s**2) / total if total > 0 else np.zeros_like(s)
    k = min(2, len(s))
    coords = u[:, :k] * s[:k]
    if k < 2:
        coords = np.column_stack([coords, np.zeros(len(x))])
        ratio = np.append(ratio, 0.0)
        vt = np.vstack([vt, np.zeros(vt.shape[1])])
    return coords, ratio[:2], vt[:2].T


def eta_squared(values: np.ndarray, groups: pd.Series) -> float:
    """Share of the variance of ``values`` explained by the group means (one-way ANOVA eta^2)."""
    v = pd.Series(values, index=groups.index)
    total = float(((v - v.mean()) ** 2).sum())
    if total <= 0:
        return 0.0
    between = float(sum(len(g) * (g.mean() - v.mean()) ** 2 for _, g in v.groupby(groups.astype(str))))
    return between / total


def pick_metric(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    """Rows of one metric, one per (run_id, instrument, dimension): where a metric appears for several
    conditions, the row whose context_a is empty / "none" / "persona" wins."""
    if metrics.empty or "metric" not in metrics:
        return pd.DataFrame()
    rows = metrics[metrics["metric"] == name].copy()
    if rows.empty:
        return rows
    ca = rows["context_a"].astype(object) if "context_a" in rows else pd.Series(None, index=rows.index)
    rows["_rank"] = [
        0 if (c is None or (not isinstance(c, str) and pd.isna(c)) or str(c) in ("none", "persona")) else 1
        for c in ca
    ]
    rows["_dim"] = rows["dimension"].astype(object).where(~rows["dimension"].isna(), "(all)")
    rows = rows.sort_values("_rank", kind="stable").drop_duplicates(["run_id", "instrument", "_dim"])
    return rows.drop(columns=["_rank", "_dim"])


_CTX = re.compile(r"^(?P<topic>.+)@(?P<n>\d+)$")


def context_length(context: object) -> int | None:
    """n_messages of a "<topic>@<n>" context; 0 for "none"; None when unknown."""
    s = str(context)
    if s == "none":
        return 0
    m = _CTX.match(s)
    return int(m.group("n")) if m else None


def pair_table(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    """Context-pair rows of a metric averaged over dimensions: run_id, model, instrument, context_a,
    context_b, value, ci_low, ci_high (CIs kept only where the pair had a single row)."""
    if metrics.empty or "metric" not in metrics:
        return pd.DataFrame()
    rows = metrics[(metrics["metric"] == name)].dropna(subset=["context_a", "context_b", "value"])
    if rows.empty:
        return pd.DataFrame()
    keys = ["run_id", "model", "instrument", "context_a", "context_b"]
    out = rows.groupby(keys, dropna=False).agg(
        value=("value", "mean"),
        ci_low=("ci_low", "first"),
        ci_high=("ci_high", "first"),
        rows=("value", "size"),
    )
    out.loc[out["rows"] > 1, ["ci_low", "ci_high"]] = np.nan
    return out.reset_index().drop(columns="rows")


def effect_family(effects: pd.DataFrame) -> list[str]:
    """The columns that name one Benjamini-Hochberg family of the d grid (one grid)."""
    return [c for c in ("run_id", "model", "instrument", "context") if c in effects]


def fcr_intervals(effects: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """``effects`` with ``g_low_adj`` / ``g_high_adj`` and ``shown``.

    Benjamini & Yekutieli (2005): when Benjamini-Hochberg selects R of the m tested cells of a grid (one
    (run, model, instrument, context)), the false-coverage-rate adjusted interval of each selected cell has
    level 1 - R alpha / m. The grid's g interval and p come from one Student-t model (excluding 0 exactly
    when p < 0.05), and every BH-selected cell has p <= R alpha / m, so its adjusted interval excludes 0:
    ``shown`` (the cells a figure may colour as an effect) is exactly q < alpha. The adjusted bounds are the
    cell's 95% interval with each side widened by the ratio of the normal quantiles (an approximation of
    the noncentral-t bounds, for display). Cells not selected get NaN bounds and ``shown`` False."""
    from scipy import stats

    e = effects.copy()
    e["g_low_adj"] = np.nan
    e["g_high_adj"] = np.nan
    e["shown"] = False
    if e.empty:
        return e
    z95 = float(stats.norm.ppf(1 - ALPHA / 2))  # the stored intervals' level
    g = pd.to_numeric(e["g"], errors="coerce")
    q = pd.to_numeric(e["q"], errors="coerce")
    below = g - pd.to_numeric(e["g_low"], errors="coerce")
    above = pd.to_numeric(e["g_high"], errors="coerce") - g
    keys = effect_family(e)
    groups = e.groupby(keys, dropna=False, sort=False).groups.values() if keys else [e.index]
    for idx in groups:
        tested = q.loc[idx].notna()
        m = int(tested.sum())
        selected = tested & (q.loc[idx] < alpha) & g.loc[idx].notna()
        r = int(selected.sum())
        if m == 0 or r == 0:
            continue
        ratio = float(stats.norm.ppf(1 - r * alpha / (2 * m))) / z95
        sel = selected[selected].index
        e.loc[sel, "g_low_adj"] = g.loc[sel] - below.loc[sel] * ratio
        e.loc[sel, "g_high_adj"] = g.loc[sel] + above.loc[sel] * ratio
        e.loc[sel, "shown"] = True
    e["shown"] = e["shown"].astype(bool)
    return e


def contrast_label(attribute: object, level: object, reference: object) -> str:
    """``sex = Female vs rest`` (the attribute without its ``attr_`` prefix)."""
    return f"{str(attribute).removeprefix('attr_')} = {level} vs {reference}"


def grid_context(effects: pd.DataFrame) -> str | None:
    """The context whose d grid is shown: "none" (no conversation) when present, else the first."""
    if effects is None or effects.empty or "context" not in effects:
        return None
    return sorted(effects["context"].astype(str).unique(), key=lambda c: (c != "none", c))[0]
