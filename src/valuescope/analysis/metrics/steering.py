"""What an intervention on the residual stream did to the answers: a steered run against its unsteered
reference (the same study, personas and items; docs/geometry.md). Pure functions of the two runs'
tidy responses and per-persona scores.

Rows (``run_id`` = the steered run, ``context_b`` = the reference run id, CIs = 95% percentile intervals
over bootstrap samples of personas drawn *jointly* in both runs, i.e. paired):

========================  ==================================================================  ===========
metric                    value                                                               dimension
========================  ==================================================================  ===========
steer_delta_steerability  ``JSD(q^s_d, p^s_d) - JSD(q^r_d, p^r_d)``: steerability (Lee et al.   each, and ""
                          2024: pooled persona distribution against the run's own baseline)  = mean over
                          with steering minus without                                         dimensions
steer_delta_to_reference  ``JSD(q^r_d, p^s_d) - JSD(q^r_d, p^r_d)``: the same, but both against   same
                          the *unsteered* baseline (negative: persona answers moved toward
                          what the model answers with no persona)
steer_delta_inertia       ``I(p^s_d) - I(p^r_d)``, ``I(p) = 1 - H(p)/log2 K``                    each
steer_delta_score         mean over personas of ``S^s_{p,d} - S^r_{p,d}`` (per-persona scores)  each
steer_outside_mass        mean outside-letter mass: ``value`` with steering, ``ci_low`` ..      ""
                          no CI; ``steer_outside_mass_ref`` the same without
steer_valid_share         share of readable answers with steering (``_ref``: without)         ""
========================  ==================================================================  ===========

``p_d`` is the pooled soft persona distribution of dimension ``d``, ``q_d`` the baseline's (same context,
else context "none"); superscripts ``s``/``r`` = steered / reference run. A steering that does nothing
scores 0 on every delta (tested bit for bit on the real model with ``add: 0``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import (
    NO_CONTEXT,
    bootstrap_index,
    bootstrap_weights,
    choose_level,
    group_rng,
    metric_row,
    metrics_frame,
    percentile_ci,
    quiet,
    unit_ids,
)
from valuescope.analysis.metrics.inertia import bootstrap_distributions, inertia_index, jsd, unit_sums
from valuescope.analysis.metrics.registry import N_BOOT, MetricInputs, register


def _pooled(s: np.ndarray) -> np.ndarray:
    tot = s.sum()
    return s.sum(0) / tot if tot > 0 else np.full(s.shape[1], np.nan)


def _base(df: pd.DataFrame, ctx: str) -> pd.DataFrame:
    b = df[df["condition"] == "baseline"]
    c = ctx if (b["context"].astype(str) == ctx).any() else NO_CONTEXT
    return b[b["context"].astype(str) == c]


def steering_rows(ref: pd.DataFrame, steered: pd.DataFrame, ref_scores: pd.DataFrame | None,
                  steered_scores: pd.DataFrame | None, *, run_id: str, ref_run_id: str, model: str,
                  n_boot: int = N_BOOT, seed: int = 0) -> list[dict[str, Any]]:
    """All comparison rows for one steered run (tidy responses of both runs)."""
    rows: list[dict[str, Any]] = []
    for inst in sorted(set(steered["instrument"].astype(str)) & set(ref["instrument"].astype(str))):
        group = (run_id, model, inst)
        r_all = ref[ref["instrument"].astype(str) == inst]
        s_all = steered[steered["instrument"].astype(str) == inst]
        for ctx in sorted(s_all.loc[s_all["condition"] == "persona", "context"].astype(str).unique()):
            rows.extend(_context_rows(group, ref_run_id, ctx, r_all, s_all, n_boot, seed))
        for name, col in (("steer_outside_mass", "outside_mass"), ("steer_valid_share", "valid")):
            for suffix, df in (("", s_all), ("_ref", r_all)):
                v = pd.to_numeric(df[col], errors="coerce").astype(float)
                rows.append(metric_row(group, name + suffix, context_a="all", context_b=ref_run_id,
                                       value=float(v.mean()) if v.notna().any() else np.nan, n=int(v.notna().sum()),
                                       note="" if v.notna().any() else f"no {col} recorded"))
        rows.extend(_score_rows(group, ref_run_id, ref_scores, steered_scores, inst, n_boot, seed))
    return rows


def _context_rows(group: tuple, ref_run_id: str, ctx: str, r_all: pd.DataFrame, s_all: pd.DataFrame,
                  n_boot: int, seed: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pr = r_all[(r_all["condition"] == "persona") & (r_all["context"].astype(str) == ctx)]
    ps = s_all[(s_all["condition"] == "persona") & (s_all["context"].astype(str) == ctx)]
    units = sorted(set(unit_ids(pr)) & set(unit_ids(ps)))
    if not units:
        return [metric_row(group, "steer_delta_steerability", context_a=ctx, context_b=ref_run_id,
                           note="no persona answered in both runs")]
    rng = group_rng(seed, *group, ctx, "steer")
    w = bootstrap_weights(bootstrap_index(rng, len(units), n_boot), len(units)) if len(units) >= 2 and n_boot else None
    br, bs = _base(r_all, ctx), _base(s_all, ctx)
    per_dim: dict[str, list[tuple[float, np.ndarray | None]]] = {"steer_delta_steerability": [],
                                                                  "steer_delta_to_reference": []}
    for dim in sorted(set(pr["dimension"].dropna().astype(str)) & set(ps["dimension"].dropna().astype(str))):
        sr_rows = pr[pr["dimension"].astype(str) == dim]
        ss_rows = ps[ps["dimension"].astype(str) == dim]
        k = int(sr_rows["k"].iloc[0])
        sr, _, nr = unit_sums(sr_rows, k, units)
        ss, _, ns = unit_sums(ss_rows, k, units)
        qr_rows, qs_rows = br[br["dimension"].astype(str) == dim], bs[bs["dimension"].astype(str) == dim]
        qr = _pooled(unit_sums(qr_rows, k, sorted(unit_ids(qr_rows).unique()))[0]) if len(qr_rows) else None
        qs = _pooled(unit_sums(qs_rows, k, sorted(unit_ids(qs_rows).unique()))[0]) if len(qs_rows) else None
        with quiet():
            bsr = bootstrap_distributions(sr, w) if w is not None else None
            bss = bootstrap_distributions(ss, w) if w is not None else None
        n = min(nr, ns)

        def add(metric: str, value: float, boot: np.ndarray | None, dim: str = dim, n: int = n) -> None:
            lo, hi = percentile_ci(boot[:, None]) if boot is not None else ([np.nan], [np.nan])
            note = "" if np.isfinite(value) else "no usable answers"
            if boot is None and not note:
                note = "fewer than 2 personas or n_boot=0: no bootstrap CI"
            out.append(metric_row(group, metric, dimension=dim, context_a=ctx, context_b=ref_run_id, value=value,
                                  ci_low=lo[0], ci_high=hi[0], n=n, note=note))

        with quiet():
            add("steer_delta_inertia", float(inertia_index(_pooled(ss)) - inertia_index(_pooled(sr))),
                inertia_index(bss) - inertia_index(bsr) if bss is not None else None)
            if qr is None or qs is None:
                out.append(metric_row(group, "steer_delta_steerability", dimension=dim, context_a=ctx,
                                      context_b=ref_run_id, note="no baseline answers in one of the runs"))
                continue
            for metric, q_s in (("steer_delta_steerability", qs), ("steer_delta_to_reference", qr)):
                val = float(jsd(q_s, _pooled(ss)) - jsd(qr, _pooled(sr)))
                boot = jsd(q_s[None, :], bss) - jsd(qr[None, :], bsr) if bss is not None else None
                add(metric, val, boot)
                per_dim[metric].append((val, boot))
    for metric, vals in per_dim.items():
        if not vals:
            continue
        value = float(np.mean([v for v, _ in vals]))
        boots = [b for _, b in vals]
        with quiet():
            boot = np.nanmean(np.stack(boots), axis=0) if all(b is not None for b in boots) else None
        lo, hi = percentile_ci(boot[:, None]) if boot is not None else ([np.nan], [np.nan])
        out.append(metric_row(group, metric, dimension="", context_a=ctx, context_b=ref_run_id, value=value,
                              ci_low=lo[0], ci_high=hi[0], n=len(units),
                              note="" if boot is not None else "fewer than 2 personas: no bootstrap CI"))
    return out


def _score_rows(group: tuple, ref_run_id: str, ref_scores: pd.DataFrame | None, st_scores: pd.DataFrame | None,
                inst: str, n_boot: int, seed: int) -> list[dict[str, Any]]:
    if ref_scores is None or st_scores is None or ref_scores.empty or st_scores.empty:
        return [metric_row(group, "steer_delta_score", context_a="all", context_b=ref_run_id,
                           note="no per-persona scores")]
    level = choose_level(st_scores)
    out = []
    keys = ["_unit", "context", "repeat", "dimension"]

    def prep(s: pd.DataFrame) -> pd.DataFrame:
        s = s[(s["instrument"].astype(str) == inst) & (s["condition"] == "persona")]
        if level is not None:
            s = s[s["level"] == level]
        return s.assign(_unit=unit_ids(s), context=s["context"].astype(str))[[*keys, "score"]]

    both = prep(ref_scores).merge(prep(st_scores), on=keys, suffixes=("_r", "_s"))
    both["delta"] = both["score_s"] - both["score_r"]
    for (ctx, dim), g in both.groupby(["context", "dimension"], sort=True):
        per_unit = g.groupby("_unit")["delta"].mean().dropna()
        n = len(per_unit)
        vals = per_unit.to_numpy()
        lo, hi = np.nan, np.nan
        if n >= 2 and n_boot:
            idx = bootstrap_index(group_rng(seed, *group, ctx, dim, "score"), n, n_boot)
            lo_a, hi_a = percentile_ci(vals[idx].mean(axis=1)[:, None])
            lo, hi = lo_a[0], hi_a[0]
        out.append(metric_row(group, "steer_delta_score", dimension=str(dim), context_a=str(ctx),
                              context_b=ref_run_id, value=float(vals.mean()) if n else np.nan, ci_low=lo,
                              ci_high=hi, n=n, note="" if n >= 2 else "fewer than 2 personas: no bootstrap CI"))
    return out


@register("steering", 70)
def rows(inputs: MetricInputs) -> pd.DataFrame:
    """A steered run against its unsteered reference; one row with a note when the reference is not stored."""
    if not inputs.steered:
        return metrics_frame([])
    ref = inputs.reference
    if ref is None:
        return metrics_frame([{"run_id": inputs.run_id, "model": inputs.model, "instrument": "",
                               "metric": "steer_delta_steerability", "dimension": "", "context_a": "all",
                               "context_b": "", "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0,
                               "note": f"no reference run: {inputs.reference_note}"}])
    return metrics_frame(steering_rows(ref.responses, inputs.responses, ref.scores, inputs.scores,
                                       run_id=inputs.run_id, ref_run_id=inputs.reference_id, model=inputs.model,
                                       n_boot=inputs.n_boot, seed=inputs.seed))
