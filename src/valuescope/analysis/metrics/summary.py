"""The one long metrics table (``metric_table``: every registered family, ``registry.py``; ``compute_metrics``: the
per-group family of both papers) and its compact per-dimension view (``headline``).

Long table columns (``METRIC_COLUMNS``; the contract read by ``valuescope show``, the export and the
HTML report):

* ``run_id, model, instrument`` — the group the metric belongs to (tables of several runs work);
* ``metric`` — lower_snake name (list in docs/metrics.md);
* ``dimension`` — the dimension / value / race, or "" for a metric over all dimensions;
* ``context_a`` — the context the metric is computed in, or the first context of a pair; "all" when
  averaged over all contexts / context pairs; "*@n" when averaged over the topic pairs at length n;
* ``context_b`` — the second context of a pair (rank_order, ipsative), the baseline's context
  (steerability, distance_to_neutral), else "";
* ``value, ci_low, ci_high`` — the estimate and its 95% percentile bootstrap interval over personas
  (NaN where no CI is computed);
* ``n`` — the number of units behind the value (answers, personas, seed pairs, permutations, or the N of
  the convergence curve; per metric in docs/metrics.md);
* ``note`` — why a value is NaN (or has no CI); empty when all is well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics import (  # noqa: F401 (register)
    evenhandedness,
    geometry,
    human,
    narrowing,
    steering,
    tension,
)
from valuescope.analysis.metrics._common import ALL, GROUP_KEYS, METRIC_COLUMNS, metric_row, metrics_frame
from valuescope.analysis.metrics.dimension_metrics import dimension_metric_rows
from valuescope.analysis.metrics.position import position_rows
from valuescope.analysis.metrics.registry import N_BOOT, MetricInputs, families, register
from valuescope.analysis.metrics.robustness import seed_rows
from valuescope.analysis.metrics.stability import stability_rows
from valuescope.analysis.metrics.variance import DEFAULT_SIZES, convergence_curve, repeat_design, variance_rows
from valuescope.study.spec import SpecError

RESPONSE_REQUIRED = ["run_id", "model", "condition", "persona_id", "context", "instrument", "item_id",
                     "dimension", "k", "argmax", "valid", "expected"]
SCORE_REQUIRED = ["run_id", "model", "condition", "persona_id", "context", "instrument", "dimension", "score"]


def _check(df: pd.DataFrame, required: list[str], name: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SpecError(f"{name} table: missing column(s) {', '.join(missing)}")


def compute_metrics(
    responses: pd.DataFrame, scores: pd.DataFrame | None, *, n_boot: int = N_BOOT, seed: int = 0,
    n_perm: int | None = None, level: str | None = None, convergence_sizes: tuple[int, ...] = DEFAULT_SIZES,
) -> pd.DataFrame:
    """Every metric of both papers for every (run_id, model, instrument), as ONE long table.

    ``responses`` is the tidy per-query table (``valuescope.analysis.tidy``); ``scores`` the per-persona dimension
    scores (``valuescope.analysis.scoring.score_personas``; may be None or empty: stability, variance rows then
    carry a note). ``n_boot`` bootstrap samples of personas give the CIs; ``n_perm`` (default
    ``n_boot``) label permutations give ``steerability_p``; ``seed`` makes both reproducible (each group
    draws from its own stream, so a group's numbers do not depend on the other groups present).
    ``level`` picks the score level for stability/variance (default: ``basic`` if present, else
    ``dimension``). Columns: ``METRIC_COLUMNS``.
    """
    _check(responses, RESPONSE_REQUIRED, "responses")
    n_perm = n_boot if n_perm is None else n_perm
    if scores is not None and len(scores):
        _check(scores, SCORE_REQUIRED, "scores")
        if "repeat" not in scores.columns:
            scores = scores.assign(repeat=0)
        score_groups = dict(iter(scores.groupby(GROUP_KEYS, sort=True)))
    else:
        score_groups = {}
    resp_groups = dict(iter(responses.groupby(GROUP_KEYS, sort=True)))
    rows: list[dict[str, Any]] = []
    for group in sorted(set(resp_groups) | set(score_groups), key=lambda t: tuple(str(x) for x in t)):
        g = resp_groups.get(group)
        if g is not None:
            rows.extend(position_rows(g, group, n_boot=n_boot, seed=seed))
            rows.extend(dimension_metric_rows(g, group, n_boot=n_boot, n_perm=n_perm, seed=seed))
            rows.extend(seed_rows(g, group))
            rows.extend(_convergence_rows(g, group, n_boot, seed, convergence_sizes))
        s = score_groups.get(group)
        if s is None:
            for metric in ("rank_order", "ipsative", "icc"):
                rows.append(metric_row(group, metric, context_a=ALL, context_b=ALL if metric != "icc" else "",
                                       note="no per-persona scores given"))
            continue
        rows.extend(stability_rows(s, group, n_boot=n_boot, seed=seed, level=level))
        design = repeat_design(g) if g is not None else None
        rows.extend(variance_rows(s, group, level=level, n_boot=n_boot, seed=seed, design=design))
    return metrics_frame(rows)


@register("per_group", 10)
def per_group_rows(inputs: MetricInputs) -> pd.DataFrame:
    """Both papers' metrics per (run, model, instrument): :func:`compute_metrics`."""
    return compute_metrics(inputs.responses, inputs.scores, n_boot=inputs.n_boot, seed=inputs.seed)


def mixed_reading_rows(scored: pd.DataFrame, apart: pd.DataFrame) -> pd.DataFrame:
    """One ``mixed_readings`` metric row per (run, model, instrument): how many answers were read
    another way and kept out of the metrics, with a note that says so."""
    rows = []
    for (run_id, model, instrument), g in apart.groupby(["run_id", "model", "instrument"], sort=True):
        used = int(((scored["run_id"] == run_id) & (scored["instrument"] == instrument)).sum())
        methods = ", ".join(f"{n} by {m}" for m, n in g["method"].value_counts().sort_index().items())
        rows.append({"run_id": run_id, "model": model, "instrument": instrument, "metric": "mixed_readings",
                     "dimension": "", "context_a": "", "context_b": "", "value": float(len(g)),
                     "ci_low": float("nan"), "ci_high": float("nan"), "n": used + len(g),
                     "note": f"{len(g)} answers read as one parsed option ({methods}) kept apart: the metrics "
                             f"use the {used} answers read as full letter distributions (logprobs)"})
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


@register("mixed_readings", 20)
def mixed_readings(inputs: MetricInputs) -> pd.DataFrame:
    if inputs.kept_apart.empty:
        return metrics_frame([])
    return mixed_reading_rows(inputs.responses, inputs.kept_apart)


def metric_table(inputs: MetricInputs) -> pd.DataFrame:
    """A run's one long metrics table: the rows of every registered family (``registry.families()``), in
    rank order. The only producer of the table that ``show``, the export, the API and the report read."""
    frames = [f for _, rows in families() if len(f := rows(inputs))]
    return pd.concat(frames, ignore_index=True) if frames else metrics_frame([])


def _convergence_rows(g: pd.DataFrame, group: tuple, n_boot: int, seed: int,
                      sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    curve = convergence_curve(g, sizes=sizes, n_draws=max(n_boot, 2), seed=seed)
    out = []
    for rec in curve.itertuples(index=False):
        note = "" if np.isfinite(rec.var_mean) else "no persona means"
        out.append(metric_row(group, "convergence_var", dimension=rec.dimension, context_a=rec.context,
                              value=rec.var_mean, n=rec.n_personas, note=note))
    return out


#: the headline's metrics, in column order; every column names its reading (hard = answers, soft = probabilities).
#: One rule for every one of them, rank_order included: value, ``_low`` and ``_high`` are the long table's value,
#: ci_low and ci_high (the rows the export writes), so every number the headline shows comes with its interval.
#: A permutation p has none (its long-table bounds are NaN): a test's result, not an estimate.
_HEADLINE_METRICS = ("inertia_hard", "inertia_soft", "steerability_jsd_hard", "steerability_p_hard",
                     "steerability_jsd_soft", "steerability_p_soft", "top1_share_hard", "top2_adjacent_hard")
_RANK_ORDER = "rank_order"  #: over all context pairs (context_a = context_b = "all"), per dimension
HEADLINE_COLUMNS = [
    "run_id", "model", "instrument", "context", "dimension",
    *[c for m in (*_HEADLINE_METRICS, _RANK_ORDER) for c in (m, f"{m}_low", f"{m}_high")],
    "n",
]


def headline(metrics: pd.DataFrame) -> pd.DataFrame:
    """The compact per-dimension table, like Lee et al.'s main table: the Inertia Index on the answers
    (``inertia_hard``, Lee et al.'s I(d), with CI) and on the probabilities (``inertia_soft``), the
    like-for-like Steerability JSD in both readings (with CI and within-stratum permutation p), the
    top-1 share and top-2 adjacent concentration of the answers, and the Rank-Order stability of the
    dimension averaged over context pairs (NaN with one context). Every metric ``m`` comes with ``m_low`` and
    ``m_high``: the long table's 95% interval of that row (NaN where it has none, e.g. a permutation p).

    One row per (run_id, model, instrument, context, dimension); ``n`` = usable persona answers.
    """
    m = metrics[metrics["dimension"] != ""]
    per_ctx = m[m["metric"].isin(list(_HEADLINE_METRICS))]
    keys = ["run_id", "model", "instrument", "context_a", "dimension"]
    if per_ctx.empty:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    wide = per_ctx.pivot_table(index=keys, columns="metric", values=["value", "ci_low", "ci_high"],
                               aggfunc="first", dropna=False)
    # dropna=False keeps all-NaN metrics but crosses the index levels: keep only the (instrument, dimension)
    # pairs that exist, so no instrument gets another instrument's dimensions
    wide = wide[wide.index.isin(pd.MultiIndex.from_frame(per_ctx[keys].drop_duplicates()))]

    def col(kind: str, metric: str) -> pd.Series:
        return wide[(kind, metric)] if (kind, metric) in wide.columns else pd.Series(np.nan, index=wide.index)

    data: dict[str, pd.Series] = {}
    for metric in _HEADLINE_METRICS:
        for kind, column in (("value", metric), ("ci_low", f"{metric}_low"), ("ci_high", f"{metric}_high")):
            data[column] = col(kind, metric)
    out = pd.DataFrame(data).reset_index().rename(columns={"context_a": "context"})
    n = m[m["metric"] == "inertia_hard"].drop_duplicates(keys).set_index(keys)["n"].rename("n")
    out = out.merge(n.reset_index().rename(columns={"context_a": "context"}), how="left",
                    on=["run_id", "model", "instrument", "context", "dimension"])
    ro = m[(m["metric"] == _RANK_ORDER) & (m["context_a"] == ALL) & (m["context_b"] == ALL)]
    ro = ro[["run_id", "model", "instrument", "dimension", "value", "ci_low", "ci_high"]].rename(columns={
        "value": _RANK_ORDER, "ci_low": f"{_RANK_ORDER}_low", "ci_high": f"{_RANK_ORDER}_high"})
    out = out.merge(ro, how="left", on=["run_id", "model", "instrument", "dimension"])
    out["n"] = out["n"].fillna(0).astype("int64")
    return out[HEADLINE_COLUMNS].sort_values(["run_id", "model", "instrument", "context", "dimension"],
                                             ignore_index=True)


__all__ = ["METRIC_COLUMNS", "HEADLINE_COLUMNS", "MetricInputs", "compute_metrics", "headline", "metric_table",
           "mixed_reading_rows"]
