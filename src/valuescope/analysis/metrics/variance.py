"""Where a persona's score varies: sampling, option order, conversation, personas; ICC; convergence.

For one dimension and context, ``x_ij`` is persona i's score in repeat j (``n_i`` repeats, ``N = sum n_i``,
P personas, ``m_i`` persona means, ``m`` the grand mean). A *repeat* changes exactly two things: the option
order (when options are permuted per persona, or per query) and the conversation's seed (when there is a
conversation); it does not re-sample the answers, which are read as whole distributions. So:

* ``var_repeat  = MSW = sum_i sum_j (x_ij - m_i)^2 / (N - P)``: the variance between repeats of a persona,
  i.e. what the option order and the conversation seed do to its score (0 by construction with a fixed
  order and no conversation);
* ``var_order`` = ``var_repeat`` when only the option order changes between repeats (no conversation),
  ``var_conversation`` = ``var_repeat`` when only the conversation changes (fixed order); the one that does
  not vary is 0; when both change together they cannot be told apart (NaN with a note; their sum is
  ``var_repeat``);
* ``var_sampling`` = the mean over scores of each score's exact sampling variance (``sampling_var`` of the
  scores table, in the scores' own scoring: for expected scores every answer drawn once from its own
  distribution, asking again at temperature 1; 0 for scores from the chosen option, ``score_from: answer``,
  which a greedy decoder gives at every asking);
* ``var_persona = max(0, (MSB - MSW) / n0)`` with ``MSB = sum_i n_i (m_i - m)^2 / (P - 1)`` and
  ``n0 = (N - sum_i n_i^2 / N) / (P - 1)``: the variance between personas (one-way random effects,
  ANOVA estimator); ``var_between = sum_i (m_i - mean(m))^2 / (P - 1)`` is the raw variance of the persona
  means (it still holds ``var_repeat / n``);
* ``icc = (MSB - MSW) / (MSB + (n0 - 1) MSW)`` = ``var_persona / (var_persona + var_repeat)`` before
  clipping (ICC(1), Shrout & Fleiss 1979): the share of a measured score's variance due to the persona;
* ``run_to_run_share = (var_repeat + var_sampling) / (var_persona + var_repeat + var_sampling)``: the
  share of the variance between two administrations (new order, new conversation, answers sampled) that
  is not the persona. Essay 004's claim "run-to-run variance can match or exceed variance across
  personas" holds for a dimension when this is >= 0.5.

CIs: percentile bootstrap over personas. Needs repeats (>= 2 per persona) for everything but
``var_between`` and ``var_sampling``.

* Convergence (Lee et al. 2024, fig. 5: variance of the dimension means against the number of
  personas): for N = 10, 20, 50, 100, 200, 500, ... and all P personas, ``n_draws`` samples of N
  personas drawn with replacement (seeded); ``convergence_var`` = the variance (ddof 1) of the sample
  means of the per-persona dimension means (``expected``, averaged over the persona's items/repeats),
  i.e. the bootstrap estimate of Var(mean of N personas) ~ sigma^2 / N.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import (
    bootstrap_index,
    bootstrap_weights,
    group_rng,
    metric_row,
    percentile_ci,
    quiet,
    unit_ids,
)

VARIANCE_METRICS = ("var_sampling", "var_order", "var_conversation", "var_repeat", "var_persona",
                    "var_between", "icc", "run_to_run_share")


def variance_components(values: np.ndarray, units: np.ndarray, sampling: np.ndarray | None = None) -> dict[str, float]:
    """``var_repeat``, ``var_persona``, ``var_between``, ``icc``, ``var_sampling``, ``run_to_run_share``,
    ``n_units`` and ``n_obs`` of observations ``values`` labelled by ``units`` (NaN values are dropped;
    ``sampling`` = each observation's sampling variance, optional). Undefined parts are NaN."""
    values = np.asarray(values, dtype=float)
    units = np.asarray(units)
    samp = np.full(values.shape, np.nan) if sampling is None else np.asarray(sampling, dtype=float)
    ok = np.isfinite(values)
    _, inv = np.unique(units[ok], return_inverse=True)
    stats = _unit_stats(values[ok], inv, samp[ok])
    out = _components(stats, np.ones((1, len(stats[0]))))
    return {k: float(v[0]) for k, v in out.items()}


def _unit_stats(values: np.ndarray, inv: np.ndarray, samp: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per unit: count, mean, within sum of squares, sum of sampling variances, their count."""
    n_u = np.bincount(inv).astype(float)
    m_u = np.bincount(inv, weights=values) / np.where(n_u > 0, n_u, 1)
    ss_u = np.bincount(inv, weights=(values - m_u[inv]) ** 2)
    s_ok = np.isfinite(samp)
    s_sum = np.bincount(inv, weights=np.where(s_ok, samp, 0.0), minlength=len(n_u))
    s_n = np.bincount(inv, weights=s_ok.astype(float), minlength=len(n_u))
    s_sum = np.where(s_n == n_u, s_sum, np.nan)  # a score without its sampling variance: none for the unit
    return n_u, m_u, ss_u, s_sum, n_u


def _components(stats: tuple[np.ndarray, ...], w: np.ndarray) -> dict[str, np.ndarray]:
    """The formulas of the module docstring, vectorised over bootstrap weight rows ``w`` (B, U)."""
    n_u, m_u, ss_u, s_sum, s_n = stats
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
        var_p = np.where((p >= 2) & (n - p > 0), np.maximum((msb - msw) / n0, 0.0), np.nan)
        var_b = np.where(p >= 2, np.maximum(var_b, 0.0), np.nan)
        samp = (w @ s_sum) / (w @ s_n)
        run = msw + samp
        tot = var_p + run
        share = np.where(tot > 1e-15, run / tot, np.nan)
    return {"var_repeat": msw, "var_persona": var_p, "var_between": var_b, "icc": icc, "var_sampling": samp,
            "run_to_run_share": share, "n_units": p, "n_obs": n}


def variance_rows(
    scores: pd.DataFrame, group: tuple[Any, Any, Any], *, level: str | None, n_boot: int, seed: int,
    design: Mapping[str, tuple[bool, bool]] | None = None,
) -> list[dict[str, Any]]:
    """Long-table rows ``VARIANCE_METRICS`` per dimension and context (persona scores of one level; CIs
    from the persona bootstrap). ``design[context] = (order_varies, conversation_varies)`` says what a
    repeat changes there (default: unknown, so var_order and var_conversation are NaN)."""
    from valuescope.analysis.metrics._common import choose_level

    rows: list[dict[str, Any]] = []
    lvl = choose_level(scores, level)
    sc = scores if lvl is None else scores[scores["level"].astype(str) == lvl]
    sc = sc[(sc["condition"] == "persona") & sc["score"].notna() & sc["dimension"].notna()]
    if sc.empty:
        rows.append(metric_row(group, "icc", context_a="all", note="no persona scores"))
        return rows
    sc = sc.assign(_unit=unit_ids(sc))
    has_samp = "sampling_var" in sc.columns
    for (ctx, dim), g in sc.groupby([sc["context"].astype(str), sc["dimension"].astype(str)], sort=True):
        codes, inv = np.unique(g["_unit"].to_numpy(), return_inverse=True)
        samp = g["sampling_var"].to_numpy(dtype=float) if has_samp else np.full(len(g), np.nan)
        stats = _unit_stats(g["score"].to_numpy(dtype=float), inv, samp)
        point = {k: float(v[0]) for k, v in _components(stats, np.ones((1, len(codes)))).items()}
        boot = None
        if len(codes) >= 2 and n_boot > 0:
            idx = bootstrap_index(group_rng(seed, *group, ctx, dim, "icc"), len(codes), n_boot)
            boot = _components(stats, bootstrap_weights(idx, len(codes)))
        reps = int(stats[0].max()) if len(stats[0]) else 0
        split = _split_repeat(point["var_repeat"], None if boot is None else boot["var_repeat"],
                              (design or {}).get(ctx))
        found = []
        for metric in VARIANCE_METRICS:
            if metric in ("var_order", "var_conversation") and reps < 2:
                val, bvals, note = np.nan, None, _why(metric, len(codes), reps, has_samp)
            elif metric in ("var_order", "var_conversation"):
                val, bvals, note = split[metric]
            else:
                val, bvals = point[metric], None if boot is None else boot[metric]
                note = "" if np.isfinite(val) else _why(metric, len(codes), reps, has_samp)
            if metric == "var_sampling" and val == 0.0 and not note:
                note = "scores from the chosen option (score_from: answer): no sampling term"
            found.append((metric, val, bvals, note))
        bounds = _intervals([b for _, _, b, _ in found])
        for (metric, val, _, note), (lo, hi) in zip(found, bounds, strict=True):
            rows.append(metric_row(group, metric, dimension=dim, context_a=ctx, value=val, ci_low=lo,
                                   ci_high=hi, n=len(codes), note=note))
    return rows


def _intervals(boots: list[np.ndarray | None]) -> list[tuple[float, float]]:
    """``percentile_ci`` of each metric's replicates (NaN without): one call for those with replicates, column
    by column the same numbers (a column's percentile reads only that column; the NaN-aware path is taken per
    column as a call of its own would take it)."""
    out: list[tuple[float, float]] = [(np.nan, np.nan)] * len(boots)
    with_boot = [i for i, b in enumerate(boots) if b is not None]
    for nan_free in (True, False):  # columns without NaN together, those with (nanpercentile) together
        cols = [i for i in with_boot if bool(np.isnan(boots[i]).any()) != nan_free]
        if cols:
            lo, hi = percentile_ci(np.stack([np.asarray(boots[i], dtype=float) for i in cols], axis=1))
            for j, i in enumerate(cols):
                out[i] = (float(lo[j]), float(hi[j]))
    return out


def _why(metric: str, n_units: int, reps: int, has_samp: bool) -> str:
    if metric == "var_sampling":
        return "no sampling_var in the scores table" if not has_samp else "an answer without a full distribution"
    if n_units < 2 and metric not in ("var_repeat",):
        return "fewer than 2 personas"
    if reps < 2 and metric != "var_between":
        return "no repeats: the variance between repeats needs a persona asked at least twice"
    if metric == "run_to_run_share" and not has_samp:
        return "no sampling_var in the scores table"
    return "zero variance: every score equal"


def _split_repeat(value: float, boot: np.ndarray | None,
                  design: tuple[bool, bool] | None) -> dict[str, tuple[float, np.ndarray | None, str]]:
    """var_order / var_conversation from var_repeat, by what a repeat changes in this context."""
    if design is None:
        note = "unknown what a repeat changes here: var_repeat holds option order and conversation together"
        return {m: (np.nan, None, note) for m in ("var_order", "var_conversation")}
    order, conv = design
    zero = np.zeros_like(boot) if boot is not None else None
    if order and conv:
        note = "option order and conversation change together in every repeat: their sum is var_repeat"
        return {m: (np.nan, None, note) for m in ("var_order", "var_conversation")}
    return {
        "var_order": (value, boot, "") if order else (0.0 if np.isfinite(value) else np.nan, zero,
                                                       "the option order is the same in every repeat"),
        "var_conversation": (value, boot, "") if conv else (0.0 if np.isfinite(value) else np.nan, zero,
                                                              "no conversation changes between repeats"),
    }


def repeat_design(responses: pd.DataFrame) -> dict[str, tuple[bool, bool]]:
    """Per context of one group's persona answers: (does the option order change between a persona's
    repeats, does the conversation change between them). A conversation changes with the repeat when
    the context has one (``n_messages`` > 0): each repeat has its own conversation seed."""
    df = responses[responses["condition"] == "persona"]
    out: dict[str, tuple[bool, bool]] = {}
    if df.empty or "repeat" not in df.columns:
        return out
    df = df.assign(_unit=unit_ids(df), _ctx=df["context"].astype(str))
    for ctx, g in df.groupby("_ctx", sort=True):
        if g["repeat"].nunique() < 2:
            continue
        order = False
        if "option_order" in g.columns:
            order = bool((g.groupby(["_unit", g["item_id"].astype(str)])["option_order"].nunique() > 1).any())
        if "n_messages" in g.columns:
            conv = bool((pd.to_numeric(g["n_messages"], errors="coerce").fillna(0) > 0).any())
        else:
            conv = ctx != "none"
        out[str(ctx)] = (order, conv)
    return out


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
