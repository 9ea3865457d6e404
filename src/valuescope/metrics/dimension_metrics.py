"""Per-dimension distribution metrics of one (run, model, instrument): the rows of the long table for
inertia, concentration and steerability, with persona-bootstrap CIs and the permutation p-value.

Rows emitted (``context_a`` = the persona context; ``context_b`` = the baseline's context for
steerability, else ""):

=====================  ======================================================  =====================
metric                 value                                                   n
=====================  ======================================================  =====================
valid_share            share of persona queries in the dimension that could    persona queries
                       be read (``valid``)
inertia_soft           ``1 - H(p_d)/log2 K`` of the soft persona distribution  usable persona answers
inertia_hard           same on argmax counts                                   usable persona answers
top1_share             ``max_i p_i`` of the hard distribution                  usable persona answers
top2_adjacent          ``max_i (p_i + p_{i+1})`` of the hard distribution      usable persona answers
steerability_jsd       ``JSD(p_d^base, p_d^persona)``, soft                    usable persona answers
steerability_jsd_hard  same on argmax counts                                   usable persona answers
steerability_p         permutation p-value of steerability_jsd > 0             permutations
=====================  ======================================================  =====================

CIs: percentile intervals over ``n_boot`` bootstrap samples of *personas* (all of a persona's answers
move together); the baseline distribution is held fixed. Fewer than two personas: no CI (noted).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.metrics._common import (
    NO_CONTEXT,
    bootstrap_index,
    bootstrap_weights,
    group_rng,
    metric_row,
    percentile_ci,
    quiet,
    unit_ids,
)
from valuescope.metrics.inertia import (
    bootstrap_distributions,
    inertia_index,
    jsd,
    steerability_permutation,
    top1_share,
    top2_adjacent,
    unit_sums,
)


def _baseline_context(baseline: pd.DataFrame, context: str) -> str | None:
    """The baseline used for a persona context: the same context if it has baseline rows, else
    ``none`` (no conversation) if that exists, else no baseline."""
    present = set(baseline["context"].astype(str))
    if context in present:
        return context
    if NO_CONTEXT in present:
        return NO_CONTEXT
    return None


def dimension_metric_rows(
    df: pd.DataFrame, group: tuple[Any, Any, Any], *, n_boot: int, n_perm: int, seed: int,
) -> list[dict[str, Any]]:
    """All per-dimension distribution rows for one (run_id, model, instrument) slice of responses."""
    rows: list[dict[str, Any]] = []
    scored = df[df["dimension"].notna()]
    persona = scored[scored["condition"] == "persona"]
    baseline = scored[scored["condition"] == "baseline"]
    if persona.empty:
        rows.append(metric_row(group, "inertia_soft", context_a=NO_CONTEXT,
                               note="no persona answers for this instrument"))
        return rows
    for context in sorted(persona["context"].astype(str).unique()):
        pc = persona[persona["context"].astype(str) == context]
        units = sorted(unit_ids(pc).unique())
        rng = group_rng(seed, *group, context)
        idx = bootstrap_index(rng, len(units), n_boot) if len(units) >= 2 and n_boot > 0 else None
        weights = bootstrap_weights(idx, len(units)) if idx is not None else None
        bctx = _baseline_context(baseline, context) if not baseline.empty else None
        for dim in sorted(pc["dimension"].astype(str).unique()):
            sub = pc[pc["dimension"].astype(str) == dim]
            rows.extend(_one_dimension(group, context, dim, sub, units, weights, baseline, bctx,
                                       n_perm, group_rng(seed, *group, context, dim, "perm")))
    return rows


def _one_dimension(
    group: tuple[Any, Any, Any], context: str, dim: str, sub: pd.DataFrame, units: list[str],
    weights: np.ndarray | None, baseline: pd.DataFrame, bctx: str | None, n_perm: int,
    perm_rng: np.random.Generator,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(metric: str, **kw: Any) -> None:
        out.append(metric_row(group, metric, dimension=dim, context_a=context, **kw))

    n_q = len(sub)
    add("valid_share", value=float(sub["valid"].astype(bool).mean()) if n_q else np.nan, n=n_q)
    ks = sub["k"].dropna().unique()
    if len(ks) != 1:
        note = f"items of this dimension have different numbers of options ({sorted(ks.tolist())})"
        for m in ("inertia_soft", "inertia_hard", "top1_share", "top2_adjacent", "steerability_jsd"):
            add(m, note=note)
        return out
    k = int(ks[0])
    s, h, n = unit_sums(sub, k, units)
    if n == 0:
        for m in ("inertia_soft", "inertia_hard", "top1_share", "top2_adjacent", "steerability_jsd"):
            add(m, note="no valid answers in this dimension")
        return out
    ci_note = "" if weights is not None else "fewer than 2 personas or n_boot=0: no bootstrap CI"
    p_soft = s.sum(0) / s.sum()
    p_hard = h.sum(0) / h.sum()
    with quiet():
        b_soft = bootstrap_distributions(s, weights) if weights is not None else None
        b_hard = bootstrap_distributions(h, weights) if weights is not None else None
    for metric, func, point, boot in (
        ("inertia_soft", inertia_index, p_soft, b_soft),
        ("inertia_hard", inertia_index, p_hard, b_hard),
        ("top1_share", top1_share, p_hard, b_hard),
        ("top2_adjacent", top2_adjacent, p_hard, b_hard),
    ):
        value = float(func(point))
        lo, hi = percentile_ci(func(boot)) if boot is not None else (np.nan, np.nan)
        note = "" if boot is not None else ci_note
        if k < 2 and metric != "top1_share":
            note = "fewer than 2 options: undefined"
        add(metric, value=value, ci_low=lo, ci_high=hi, n=n, note=note)
    out.extend(_steerability(group, context, dim, sub, k, p_soft, p_hard, b_soft, b_hard, n, baseline,
                             bctx, n_perm, perm_rng, ci_note))
    return out


def _steerability(
    group: tuple[Any, Any, Any], context: str, dim: str, sub: pd.DataFrame, k: int, p_soft: np.ndarray,
    p_hard: np.ndarray, b_soft: np.ndarray | None, b_hard: np.ndarray | None, n: int,
    baseline: pd.DataFrame, bctx: str | None, n_perm: int, perm_rng: np.random.Generator, ci_note: str,
) -> list[dict[str, Any]]:
    def row(metric: str, **kw: Any) -> dict[str, Any]:
        return metric_row(group, metric, dimension=dim, context_a=context, context_b=bctx or "", **kw)

    names = ("steerability_jsd", "steerability_jsd_hard", "steerability_p")
    if bctx is None:
        note = "no baseline (no-persona) answers in this run" if baseline.empty else (
            f"no baseline answers in context {context!r} or {NO_CONTEXT!r}")
        return [row(m, note=note) for m in names]
    base = baseline[(baseline["context"].astype(str) == bctx) & (baseline["dimension"].astype(str) == dim)]
    if base.empty or set(base["k"].dropna().unique()) != {k}:
        note = "no baseline answers for this dimension" if base.empty else "baseline has a different K"
        return [row(m, note=note) for m in names]
    bs, bh, bn = unit_sums(base, k, sorted(unit_ids(base).unique()))
    if bn == 0:
        return [row(m, note="no valid baseline answers for this dimension") for m in names]
    q_soft = bs.sum(0) / bs.sum()
    q_hard = bh.sum(0) / bh.sum()
    out = []
    for metric, q, p, boot in (("steerability_jsd", q_soft, p_soft, b_soft),
                               ("steerability_jsd_hard", q_hard, p_hard, b_hard)):
        value = float(jsd(q, p))
        lo, hi = percentile_ci(jsd(q[None, :], boot)) if boot is not None else (np.nan, np.nan)
        out.append(row(metric, value=value, ci_low=lo, ci_high=hi, n=n,
                       note="" if boot is not None else ci_note))
    _, pval, n_done = steerability_permutation(base, sub, k, perm_rng, n_perm)
    out.append(row("steerability_p", value=pval, n=n_done,
                   note="" if n_done else "n_perm=0: no permutation test"))
    return out
