"""Robustness checks of Lee et al. 2024: seed-to-seed, item-order and forced-vs-free correlations.

All of them correlate *mean answers* (``expected`` = probability-weighted scale value by default;
``argmax_value`` gives the hard answer) between two sets of personas or two runs:

* **seed-to-seed**: persona sets drawn with different ``set_seed`` (111/333/555 in the paper); Pearson r
  over the per-dimension means and over the per-item means, for every pair of seeds (the paper reports
  mean r > 0.99);
* **item order**: the same study run with fixed and with shuffled item order; Pearson r over per-item
  means (paper: r = 0.77);
* **forced vs free choice**: the same study with and without the forced-choice sentence; Spearman rho
  over per-dimension means (paper: rho = 0.90-0.98), per condition.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import metric_row, pearson_last, spearman_last

SEED_COLUMNS = ["run_id", "model", "instrument", "context", "by", "seed_a", "seed_b", "r", "n"]
PAIRED_COLUMNS = ["model", "instrument", "condition", "context", "by", "method", "r", "n", "note"]


def _valid(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["valid"].astype(bool) & df["dimension"].notna()]


def _key(by: str) -> str:
    if by not in ("item", "dimension"):
        raise ValueError(f"by must be 'item' or 'dimension', not {by!r}")
    return "item_id" if by == "item" else "dimension"


def seed_correlation(responses: pd.DataFrame, *, value_col: str = "expected") -> pd.DataFrame:
    """Pearson r between persona-set seeds of per-dimension and per-item mean answers.

    One row per (run, model, instrument, context, by in {dimension, item}, seed pair); columns
    ``SEED_COLUMNS``. Persona condition only; tables without two seeds give no rows.
    """
    df = _valid(responses[responses["condition"] == "persona"])
    df = df[df["set_seed"].notna()] if "set_seed" in df.columns else df.iloc[0:0]
    out = []
    for key, g in df.groupby(["run_id", "model", "instrument", _ctx(df)], sort=True):
        for by in ("dimension", "item"):
            col = _key(by)
            means = g.groupby([g[col].astype(str), "set_seed"])[value_col].mean().unstack("set_seed")
            for sa, sb in combinations(sorted(means.columns), 2):
                r, n = pearson_last(means[sa].to_numpy(float), means[sb].to_numpy(float))
                out.append((*key, by, int(sa), int(sb), float(r), int(n)))
    return pd.DataFrame(out, columns=SEED_COLUMNS)


def _ctx(df: pd.DataFrame) -> pd.Series:
    return df["context"].astype(str).rename("context")


def seed_rows(responses: pd.DataFrame, group: tuple[Any, Any, Any]) -> list[dict[str, Any]]:
    """Long-table rows ``seed_corr_dimension`` / ``seed_corr_item``: mean r over seed pairs per context
    (n = number of seed pairs with a defined r; per-pair values: ``seed_correlation``)."""
    persona = responses[responses["condition"] == "persona"]
    if "set_seed" not in persona.columns or persona["set_seed"].notna().sum() == 0:
        return []
    rows = []
    seeds = persona["set_seed"].dropna().unique()
    corr = seed_correlation(responses)
    for ctx in sorted(persona["context"].astype(str).unique()):
        for by in ("dimension", "item"):
            metric = f"seed_corr_{by}"
            if len(seeds) < 2:
                rows.append(metric_row(group, metric, context_a=ctx,
                                       note="one persona-set seed: no seed-to-seed correlation"))
                continue
            sub = corr[(corr["context"] == ctx) & (corr["by"] == by)]
            vals = sub["r"].to_numpy(float)
            ok = np.isfinite(vals)
            value = float(vals[ok].mean()) if ok.any() else np.nan
            note = "" if ok.any() else "undefined: fewer than 3 shared means or zero variance"
            rows.append(metric_row(group, metric, context_a=ctx, value=value, n=int(ok.sum()), note=note))
    return rows


def paired_correlation(
    a: pd.DataFrame, b: pd.DataFrame, *, by: str = "item", method: str = "pearson",
    value_col: str = "expected",
) -> pd.DataFrame:
    """Correlation of mean answers between two responses tables of the same study design.

    Means are taken per (model, instrument, condition, context) and item (``by="item"``) or dimension
    (``by="dimension"``) over all valid answers; entries present in both tables are correlated with
    ``method`` "pearson" or "spearman". Columns ``PAIRED_COLUMNS``.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', not {method!r}")
    col = _key(by)
    keys = ["model", "instrument", "condition", "context"]

    def means(df: pd.DataFrame) -> pd.Series:
        v = _valid(df)
        v = v.assign(context=v["context"].astype(str), _k=v[col].astype(str))
        return v.groupby([*keys, "_k"])[value_col].mean()

    joined = pd.concat([means(a).rename("a"), means(b).rename("b")], axis=1, join="inner")
    out = []
    corr = pearson_last if method == "pearson" else spearman_last
    for key, g in joined.groupby(level=keys, sort=True):
        r, n = corr(g["a"].to_numpy(float), g["b"].to_numpy(float))
        note = "" if np.isfinite(r) else "undefined: fewer than 3 shared entries or zero variance"
        out.append((*key, by, method, float(r), int(n), note))
    return pd.DataFrame(out, columns=PAIRED_COLUMNS)


def item_order_correlation(fixed: pd.DataFrame, shuffled: pd.DataFrame, *,
                           value_col: str = "expected") -> pd.DataFrame:
    """Item-order randomisation check (Lee et al.): Pearson r of per-item means, fixed vs shuffled."""
    return paired_correlation(fixed, shuffled, by="item", method="pearson", value_col=value_col)


def forced_free_correlation(forced: pd.DataFrame, free: pd.DataFrame, *,
                            value_col: str = "expected") -> pd.DataFrame:
    """Forced vs free choice (Lee et al.): Spearman rho of per-dimension means, per condition."""
    return paired_correlation(forced, free, by="dimension", method="spearman", value_col=value_col)
