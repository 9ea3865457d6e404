"""Per-dimension distribution metrics of one (run, model, instrument): the rows of the long table for
inertia, concentration and steerability, each in both readings, with persona-bootstrap CIs and the
permutation p-values.

Readings (named in every metric): ``_hard`` = the distribution of *answers* (the chosen option, i.e.
the argmax; Lee et al.'s definition); ``_soft`` = the mean of the answers' *probability* distributions.

Rows emitted (``context_a`` = the persona context; ``context_b`` = the baseline's context for
steerability, else ""):

=========================  ==================================================  =====================
metric                     value                                               n
=========================  ==================================================  =====================
valid_share                share of persona queries of the dimension that      persona queries
                           could be read (``valid``)
inertia_hard / _soft       ``1 - H(p_d)/log2 K``                               usable persona answers
top1_share_hard / _soft    ``max_i p_i``                                       usable persona answers
top2_adjacent_hard / _soft ``max_i (p_i + p_{i+1})``                           usable persona answers
steerability_jsd_hard /    ``JSD(p_d^base, p_d^persona)`` on answers matched   compared persona answers
steerability_jsd_soft      on (item, option order) (metrics.steerability)
steerability_p_hard /      respondent-level test (metrics.steerability)         replicates
steerability_p_soft
=========================  ==================================================  =====================

Values and CIs: every one of these is a biased plug-in, so the value is the jackknife bias-corrected
estimate and the CI its jackknife t interval over *personas* (all of a persona's answers move together;
``metrics.intervals``); top-1 and top-2, maxima of shares, keep the plug-in value with an interval projected from
each share's (``intervals.max_share_interval``).
Steerability's baseline is one respondent: the variance of its borrowed spread
(``metrics.steerability.baseline_spread``) is added to the jackknife's, and the JSD's upward bias from the
baseline's own noise (``metrics.steerability.baseline_bias``) is subtracted with the personas'. ``n_boot = 0``
asks for no CIs; fewer than two personas: no CI (noted).
The p-values test the plug-in JSD's null with whole respondents as units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import NO_CONTEXT, group_rng, metric_row, quiet
from valuescope.analysis.metrics.answer_rows import AnswerRows, Answers
from valuescope.analysis.metrics.inertia import (
    bootstrap_distributions,
    inertia_index,
    sums_by_unit,
    top1_share,
    top2_adjacent,
)
from valuescope.analysis.metrics.intervals import jackknife_scalar, jackknife_weights, max_share_interval
from valuescope.analysis.metrics.steerability import (
    ContextRows,
    baseline_bias,
    baseline_spread,
    bootstrap_matched_jsd,
    match_strata,
    matched_jsd,
    respondent_replicates,
    respondent_test,
)

#: the distribution metrics of a dimension, per reading: (name, function)
DISTRIBUTION_METRICS = (("inertia", inertia_index), ("top1_share", top1_share), ("top2_adjacent", top2_adjacent))
STEER_METRICS = ("steerability_jsd_hard", "steerability_jsd_soft", "steerability_p_hard", "steerability_p_soft")
#: the range of each distribution metric for K options (its estimate and CI are clipped to it)
_RANGE = {"inertia": lambda k: (0.0, 1.0), "top1_share": lambda k: (1.0 / max(k, 1), 1.0),
          "top2_adjacent": lambda k: (min(2.0 / max(k, 1), 1.0), 1.0)}
_DIST_NAMES = tuple(f"{n}_{r}" for n, _ in DISTRIBUTION_METRICS for r in ("hard", "soft"))


def _shares(name: str, p: np.ndarray) -> np.ndarray:
    """The shares whose maximum is ``name``: each option's (top-1), each two adjacent options' (top-2)."""
    return p if name == "top1_share" else p[..., 1:] + p[..., :-1]


def _baseline_context(present: set[str], context: str) -> str | None:
    """The baseline used for a persona context (``present``: the baseline's contexts): the same context if it
    has baseline rows, else ``none`` (no conversation) if that exists, else no baseline."""
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
    # the columns are read once for the whole table; each (context, dimension) is a row index into them
    answers = Answers(scored)
    condition = answers.column("condition")
    if not (condition == "persona").any():
        rows.append(metric_row(group, "inertia_hard", context_a=NO_CONTEXT,
                               note="no persona answers for this instrument"))
        return rows
    ctx_of, dim_of, unit_of = answers.column("context"), answers.column("dimension"), answers.unit
    persona = np.flatnonzero(condition == "persona")
    baseline = answers.rows(np.flatnonzero(condition == "baseline"))
    present = set(ctx_of[baseline.idx])
    by_dim: dict[str, dict[str, ContextRows]] = {}  # each context's rows of a dimension, deviations computed once
    for context in sorted(set(ctx_of[persona])):
        here = ctx_of[persona] == context
        pc = persona[here]
        units = sorted(set(unit_of[pc]))
        ci = len(units) >= 2 and n_boot > 0  # n_boot = 0 asks for no CIs
        bctx = _baseline_context(present, context) if not baseline.empty else None
        for dim in sorted(set(dim_of[pc])):
            sub = answers.rows(pc[dim_of[pc] == dim])
            if dim not in by_dim:
                of_dim = persona[dim_of[persona] == dim]
                by_dim[dim] = {c: ContextRows(answers.rows(of_dim[ctx_of[of_dim] == c]))
                               for c in sorted(set(ctx_of[of_dim]))}
            others = [g for c, g in by_dim[dim].items() if c != context]
            base = baseline.where((ctx_of[baseline.idx] == bctx) & (dim_of[baseline.idx] == dim))
            rows.extend(_one_dimension(group, context, dim, sub, units, ci, baseline.empty, base, bctx, n_perm,
                                       group_rng(seed, *group, context, dim, "perm"), others))
    return rows


def _one_dimension(
    group: tuple[Any, Any, Any], context: str, dim: str, sub: AnswerRows, units: list[str],
    ci: bool, no_baseline: bool, base: AnswerRows, bctx: str | None, n_perm: int,
    perm_rng: np.random.Generator, others: list[ContextRows],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(metric: str, **kw: Any) -> None:
        out.append(metric_row(group, metric, dimension=dim, context_a=context, **kw))

    n_q = len(sub)
    add("valid_share", value=float(sub.valid.mean()) if n_q else np.nan, n=n_q)
    k = sub.single_k()
    if k is None:
        note = f"items of this dimension have different numbers of options ({sorted(sub.k_values().tolist())})"
        for m in (*_DIST_NAMES, *STEER_METRICS):
            add(m, note=note)
        return out
    soft_rows, hard_rows, ok = sub.distributions(k)
    s, h, n = sums_by_unit(soft_rows, hard_rows, ok, sub.unit, units)
    if n == 0:
        for m in (*_DIST_NAMES, *STEER_METRICS):
            add(m, note="no valid answers in this dimension")
        return out
    ci_note = "" if ci else "fewer than 2 personas or n_boot=0: no CI"
    answered = h.sum(axis=1) > 0  # the jackknife's units: personas with answers in this dimension
    loo_w = jackknife_weights(int(answered.sum())) if answered.sum() >= 2 else None
    for reading, sums in (("hard", h), ("soft", s)):
        point = sums.sum(0) / sums.sum()
        with quiet():
            loo = bootstrap_distributions(sums[answered], loo_w) if loo_w is not None else None
        for name, func in DISTRIBUTION_METRICS:
            low, high = _RANGE[name](k)
            if name == "inertia":
                value, lo, hi = jackknife_scalar(float(func(point)), None if loo is None else func(loo),
                                                 lower=low, upper=high, interval=ci)
            else:  # a maximum of shares: projected from each share's interval (intervals.max_share_interval)
                value, lo, hi = max_share_interval(_shares(name, point), None if loo is None else _shares(name, loo),
                                                   n, lower=low, upper=high, interval=ci)
            note = ci_note
            if k < 2 and name != "top1_share":
                note = "fewer than 2 options: undefined"
            add(f"{name}_{reading}", value=value, ci_low=lo, ci_high=hi, n=n, note=note)
    out.extend(_steerability(group, context, dim, sub, k, ci, no_baseline, base, bctx, n_perm, perm_rng, others))
    return out


def _steerability(
    group: tuple[Any, Any, Any], context: str, dim: str, sub: AnswerRows, k: int, ci: bool,
    no_baseline: bool, base: AnswerRows, bctx: str | None, n_perm: int, perm_rng: np.random.Generator,
    others: list[ContextRows],
) -> list[dict[str, Any]]:
    def row(metric: str, **kw: Any) -> dict[str, Any]:
        return metric_row(group, metric, dimension=dim, context_a=context, context_b=bctx or "", **kw)

    if bctx is None:
        note = "no baseline (no-persona) answers in this run" if no_baseline else (
            f"no baseline answers in context {context!r} or {NO_CONTEXT!r}")
        return [row(m, note=note) for m in STEER_METRICS]
    if base.empty or set(base.k_values()) != {k}:
        note = "no baseline answers for this dimension" if base.empty else "baseline has a different K"
        return [row(m, note=note) for m in STEER_METRICS]
    m = match_strata(base, sub, k)
    if len(m.pers_soft) == 0:
        note = ("no persona answer shares an (item, option order) with a baseline answer: steerability is "
                "compared only like for like (ask the baseline under the personas' option orders, e.g. "
                "option_order: balanced)")
        return [row(x, note=note) for x in STEER_METRICS]
    notes = []
    if not sub.has_option_order:
        notes.append("no option_order column: one option order per item assumed")
    if m.dropped_answers:
        notes.append(f"{m.dropped_answers} persona answers ({m.dropped_personas} of {m.total_personas} "
                     "personas wholly) left out: no baseline answer under the same item and option order")
    ci = ci and len(m.units) >= 2
    loo_w = jackknife_weights(len(m.units)) if len(m.units) >= 2 else None
    # the baseline is one respondent: its spread over draws of it is borrowed from the personas
    # (metrics.steerability.baseline_spread) and added to the jackknife's variance over personas
    conversation = bctx != NO_CONTEXT
    spreads = {r: baseline_spread(m, r, others, k, conversation) for r in ("hard", "soft")}
    if spreads["soft"].source == "personas":
        notes.append(SPREAD_NOTE)
    draw_rng = group_rng(0, *group, context, dim, "baseline")
    out = []
    n_cmp = len(m.pers_soft)
    for reading in ("hard", "soft"):
        # the JSD is biased upward by the personas' noise (jackknife) and by the baseline's own (its borrowed
        # spread, second order: metrics.steerability.baseline_bias); interval: metrics.intervals
        loo = bootstrap_matched_jsd(m, loo_w, reading) if loo_w is not None else None
        extra = 0.0
        if ci:
            d = spreads[reading].draw(draw_rng, BASE_DRAWS, k)
            extra = float(np.var(respondent_replicates(m, np.ones((BASE_DRAWS, len(m.units))), d, reading)))
        b_base = baseline_bias(m, reading, spreads[reading])
        value, lo, hi = jackknife_scalar(matched_jsd(m, reading) - b_base, None if loo is None else loo - b_base,
                                         lower=0.0, upper=1.0, interval=ci, extra_var=extra)
        why = [] if ci else ["fewer than 2 personas or n_boot=0: no CI"]
        out.append(row(f"steerability_jsd_{reading}", value=value, ci_low=lo, ci_high=hi, n=n_cmp,
                       note="; ".join(notes + why)))
    test = respondent_test(m, perm_rng, n_perm, spreads) if len(m.units) >= 2 and n_perm > 0 else None
    n_done = n_perm if test is not None else 0
    for reading in ("hard", "soft"):
        p = test[reading] if test is not None else np.nan
        why = [] if n_done else ["fewer than 2 personas or n_perm=0: no test"]
        if n_done and np.isnan(p):
            why = [SINGLE_STRATA_NOTE]
        out.append(row(f"steerability_p_{reading}", value=p, n=n_done if not np.isnan(p) else 0,
                       note="; ".join(notes + why)))
    return out


#: why steerability has no p when every (item, option order) was answered by one persona only
SINGLE_STRATA_NOTE = ("no test: no (item, option order) was answered by two or more personas, and a respondent's "
                      "deviation is read against the others who answered the same item under the same order "
                      "(ask at least twice as many personas as option orders)")
#: draws of the baseline's borrowed spread behind the variance added to steerability's interval
BASE_DRAWS = 200
#: said when the baseline's conversation spread could only be borrowed from whole persona deviations
SPREAD_NOTE = ("the baseline's spread over conversations is borrowed from whole persona deviations (personas "
               "answered in this context only): conservative where personas differ")
