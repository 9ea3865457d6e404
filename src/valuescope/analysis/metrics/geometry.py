"""Persona space: PCA of recorded residual-stream states, the assistant axis, and how a persona's place
on that axis relates to what it answers. Pure functions of arrays and tables.

Sources: Lu, Gallagher, Michala et al. (2026), "The Assistant Axis: Situating and Stabilizing the
Default Persona of Language Models", arXiv 2601.10387 (persona vectors, PCA of persona space, the
contrast vector as the practical axis, its cosine with PC1); Horn (1965), "A rationale and test for the
number of factors in factor analysis", Psychometrika 30 (parallel analysis: the PC1 share expected
without shared structure). See docs/geometry.md and ../shared/reference/seed004_sources.md.

Notation, per (context, layer): ``P`` = the ``n x d`` persona states (one row per persona, the mean over
its repeats), ``b`` = the no-persona (baseline) state, ``m`` = the mean of ``P``'s rows.

* variance explained: ``lambda_j / sum_i lambda_i`` where ``lambda`` are the eigenvalues of the
  covariance of ``P`` (squared singular values of ``P - m``); PCA is over personas only;
* contrast vector ``c = b - m`` (the paper's practical "assistant axis": default assistant minus the
  role mean); axis ``u = c / |c|``; PC1 is compared by ``|cos(c, PC1)|`` (PC1's sign is arbitrary);
* a persona's axis position ``a_p = (b - P_p) . u``: its distance from the assistant along the axis
  (0 = where the baseline is; larger = further away; the mean over personas is ``|c|``);
* per-persona steerability ``s_p = mean_d JSD_jk(q_{p,d}, p_{p,d})``: the soft Jensen-Shannon divergence
  (bits) between the persona's pooled answers ``p_{p,d}`` and the baseline compared like for like as in
  ``metrics.steerability`` (only the persona's answers whose (item, option order) the baseline also answered;
  ``q_{p,d}`` = the baseline's stratum means weighted by the persona's mix of strata), averaged over the
  dimensions with answers from both (Lee et al. 2024's steerability, per persona instead of pooled). A
  persona's JSD from its few answers is biased upward, more for a persona with fewer or noisier answers,
  which would correlate with anything that tracks answer noise: ``JSD_jk`` is the jackknife bias-corrected
  value over the persona's answers (``metrics.intervals``; the baseline held fixed), not clipped at 0, so
  that a persona-blind model's ``s_p`` are 0 on average;
* value shift ``v_p = || S_p - S_b ||_2``: the Euclidean distance between the persona's dimension scores
  (``valuescope.analysis.scoring``; mean over repeats) and the baseline's, at the run's score level;
* ``axis_steer_r`` / ``axis_shift_r``: Pearson r across personas between ``a_p`` and ``s_p`` / ``v_p``.

CIs are 95% percentile intervals over bootstrap samples of personas. What a model with no such effect
scores: persona states with no shared direction give a PC1 share near the parallel-analysis null
(``geometry_var_pc1_null``: each coordinate permuted across personas independently); a persona-blind
model (same answers whatever the persona) has ``s_p`` = 0 everywhere, so r is NaN with a note.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import (
    group_rng,
    metric_row,
    metrics_frame,
    pearson_last,
    percentile_ci,
    quiet,
    unit_ids,
)
from valuescope.analysis.metrics.intervals import jackknife_scalar, jackknife_weights
from valuescope.analysis.metrics.registry import N_BOOT, MetricInputs, register
from valuescope.analysis.metrics.steerability import Matched, bootstrap_matched_jsd, match_strata, matched_jsd
from valuescope.store.geometry import persona_units

N_PCS = 3
MIN_PERSONAS = 3


def explained_variance(P: np.ndarray) -> np.ndarray:
    """Share of the variance across rows carried by each principal component, largest first
    (``min(n-1, d)`` values; all NaN when the rows do not vary)."""
    X = np.asarray(P, dtype=np.float64)
    Xc = X - X.mean(axis=0, keepdims=True)
    s = np.linalg.svd(Xc, compute_uv=False)
    var = s**2
    k = max(min(X.shape[0] - 1, X.shape[1]), 0)
    total = var.sum()
    if total <= 0 or not np.isfinite(total):
        return np.full(k, np.nan)
    return (var / total)[:k]


def principal_axes(P: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """First ``k`` principal directions (``k x d``, unit rows) and the rows' scores on them (``n x k``)."""
    X = np.asarray(P, dtype=np.float64)
    Xc = X - X.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    comps = vt[:k]
    return comps, Xc @ comps.T


def contrast_vector(P: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``c = b - mean(P)``: from the persona mean to the no-persona state."""
    return np.asarray(b, dtype=np.float64) - np.asarray(P, dtype=np.float64).mean(axis=0)


def axis_positions(P: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a_p = (b - P_p) . c/|c|``: each persona's distance from the baseline along the axis."""
    u = np.asarray(c, dtype=np.float64) / np.linalg.norm(c)
    return (np.asarray(b, dtype=np.float64)[None, :] - np.asarray(P, dtype=np.float64)) @ u


def abs_cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(abs(np.dot(a, b)) / (na * nb))


def parallel_null(P: np.ndarray, rng: np.random.Generator, n_perm: int = 50) -> np.ndarray:
    """PC1 shares of ``n_perm`` copies of ``P`` with each column permuted independently across rows
    (Horn's parallel analysis: the same per-coordinate variances, no shared direction)."""
    X = np.asarray(P, dtype=np.float64)
    out = np.empty(n_perm)
    for i in range(n_perm):
        Y = np.take_along_axis(X, rng.random(X.shape).argsort(axis=0), axis=0)
        ev = explained_variance(Y)
        out[i] = ev[0] if len(ev) else np.nan
    return out


def correlation_ci(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                   n_boot: int) -> tuple[float, float, float, int]:
    """Pearson r with a percentile bootstrap CI over pairs: ``(r, low, high, n)``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    r, n = pearson_last(x, y)
    if not np.isfinite(r) or n_boot <= 0:
        return float(r), np.nan, np.nan, int(n)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    rb, _ = pearson_last(x[idx], y[idx])
    lo, hi = percentile_ci(rb[:, None])
    return float(r), float(lo[0]), float(hi[0]), int(n)


# --------------------------------------------------------------------------- tables


def state_matrices(states: pd.DataFrame) -> dict[tuple[str, int], tuple[list[str], np.ndarray, np.ndarray | None]]:
    """``(context, layer) -> (persona units, P, b)``: persona states averaged over repeats (rows sorted
    by unit) and the baseline state (mean over its repeats; None when the baseline was not recorded)."""
    if states.empty:
        return {}
    df = states.assign(_unit=persona_units(states))
    out = {}
    for (ctx, layer), g in df.groupby(["context", "layer"], sort=True):
        pers = g[g["condition"] == "persona"]
        units = sorted(pers["_unit"].unique())
        P = np.stack([np.mean(np.stack(pers.loc[pers["_unit"] == u, "vector"].to_list()), axis=0) for u in units]) \
            if units else np.zeros((0, len(g["vector"].iloc[0])))
        base = g[g["condition"] == "baseline"]
        b = np.mean(np.stack(base["vector"].to_list()), axis=0) if len(base) else None
        out[(str(ctx), int(layer))] = (units, P.astype(np.float64), None if b is None else b.astype(np.float64))
    return out


def persona_steerability(responses: pd.DataFrame) -> pd.DataFrame:
    """Per persona: ``s_p`` (module docstring) for each (instrument, context); columns unit, instrument,
    context, steerability, n_dims. Baseline answers of the same context are used, else context "none"."""
    cols = ["unit", "instrument", "context", "steerability", "n_dims"]
    df = responses[responses["dimension"].notna()]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.assign(_unit=unit_ids(df), _dim=df["dimension"].astype(str), _ctx=df["context"].astype(str))
    recs = []
    for inst, g in df.groupby("instrument", sort=True):
        base = g[g["condition"] == "baseline"]
        pers = g[g["condition"] == "persona"]
        for ctx, pc in pers.groupby("_ctx", sort=True):
            bctx = ctx if (base["_ctx"] == ctx).any() else "none"
            bdims = dict(iter(base[base["_ctx"] == bctx].groupby("_dim")))
            per_unit: dict[str, list[float]] = {}
            for dim, pdim in pc.groupby("_dim", sort=True):
                bd = bdims.get(dim)
                if pdim["k"].nunique(dropna=False) == 1:  # one K: all personas matched at once
                    k = int(pdim["k"].iloc[0])
                    if bd is not None and int(bd["k"].iloc[0]) == k:
                        for unit, value in _unit_values(match_strata(bd, pdim, k)):
                            per_unit.setdefault(unit, []).append(value)
                    continue
                for _, pd_ in pdim.groupby("_unit", sort=True):
                    k = int(pd_["k"].iloc[0])
                    if bd is not None and int(bd["k"].iloc[0]) == k:
                        for u, value in _unit_values(match_strata(bd, pd_, k)):
                            per_unit.setdefault(u, []).append(value)
            for unit in sorted(pc["_unit"].unique()):
                vals = per_unit.get(unit, [])
                recs.append({"unit": unit, "instrument": str(inst), "context": ctx,
                             "steerability": float(np.mean(vals)) if vals else np.nan, "n_dims": len(vals)})
    return pd.DataFrame.from_records(recs, columns=cols)


def _unit_values(m: Matched) -> list[tuple[str, float]]:
    """Per persona unit of ``m`` (the matched answers of one dimension): the bias-corrected JSD of its answers
    against the baseline's answers of the strata it answered, each answer its own jackknife unit. The same
    ``Matched`` as ``match_strata(baseline rows, that persona's rows)`` gives, cut out of all personas' match."""
    out = []
    for i, unit in enumerate(m.units):
        sel = m.pers_unit == i
        n = int(sel.sum())
        strata, pers_stratum = np.unique(m.pers_stratum[sel], return_inverse=True)
        keep_b = np.isin(m.base_stratum, strata)
        one = Matched(base_soft=m.base_soft[keep_b], base_hard=m.base_hard[keep_b],
                      base_stratum=np.searchsorted(strata, m.base_stratum[keep_b]),
                      base_cluster=m.base_cluster[keep_b], pers_soft=m.pers_soft[sel], pers_hard=m.pers_hard[sel],
                      pers_stratum=pers_stratum.astype(int), pers_unit=np.zeros(n, dtype=int), units=[unit],
                      n_strata=len(strata), dropped_answers=0, dropped_personas=0, total_personas=1)
        value = matched_jsd(one, "soft")
        loo = None
        if n >= 2:  # each compared answer its own jackknife unit
            per_answer = replace(one, pers_unit=np.arange(n), units=[str(j) for j in range(n)])
            loo = bootstrap_matched_jsd(per_answer, jackknife_weights(n), "soft")
        out.append((unit, jackknife_scalar(value, loo, interval=False)[0]))
    return out


def profile_shift(scores: pd.DataFrame, level: str | None = None) -> pd.DataFrame:
    """Per persona: ``v_p`` (module docstring) for each (instrument, context); columns unit, instrument,
    context, shift. The score level is ``level``, else "basic" where present, else "dimension"."""
    from valuescope.analysis.metrics._common import choose_level

    cols = ["unit", "instrument", "context", "shift"]
    if scores is None or scores.empty:
        return pd.DataFrame(columns=cols)
    lv = choose_level(scores, level)
    s = scores[scores["level"] == lv] if lv is not None else scores
    s = s.assign(_unit=unit_ids(s), _ctx=s["context"].astype(str))
    recs = []
    for inst, g in s.groupby("instrument", sort=True):
        wide = g.pivot_table(index=["_ctx", "condition", "_unit"], columns="dimension", values="score",
                             aggfunc="mean")
        for ctx in sorted(g["_ctx"].unique()):
            bctx = ctx if (ctx, "baseline") in {(a, c) for a, c, _ in wide.index} else "none"
            try:
                b = wide.loc[(bctx, "baseline")].mean(axis=0).to_numpy()
                pers = wide.loc[(ctx, "persona")]
            except KeyError:
                continue
            for unit, row in pers.iterrows():
                d = row.to_numpy() - b
                recs.append({"unit": unit, "instrument": str(inst), "context": ctx,
                             "shift": float(np.sqrt(np.nansum(d**2))) if np.isfinite(d).any() else np.nan})
    return pd.DataFrame.from_records(recs, columns=cols)


def persona_positions(states: pd.DataFrame) -> pd.DataFrame:
    """One row per (context, layer, persona): axis position, PC1 and PC2 scores (PC1 oriented to point
    along the axis), for the report's figures. The baseline is placed on the same PCs."""
    recs = []
    for (ctx, layer), (units, P, b) in state_matrices(states).items():
        if len(units) < 2 or b is None:
            continue
        c = contrast_vector(P, b)
        comps, sc = principal_axes(P, 2)
        if np.dot(comps[0], c) < 0:
            comps[0], sc[:, 0] = -comps[0], -sc[:, 0]
        pos = axis_positions(P, b, c)
        b_sc = (b - P.mean(axis=0)) @ comps.T
        for i, u in enumerate(units):
            recs.append({"context": ctx, "layer": layer, "unit": u, "condition": "persona",
                         "axis_position": pos[i], "pc1": sc[i, 0], "pc2": sc[i, 1] if sc.shape[1] > 1 else 0.0})
        recs.append({"context": ctx, "layer": layer, "unit": "baseline", "condition": "baseline",
                     "axis_position": 0.0, "pc1": b_sc[0], "pc2": b_sc[1] if len(b_sc) > 1 else 0.0})
    return pd.DataFrame.from_records(recs, columns=["context", "layer", "unit", "condition", "axis_position",
                                                    "pc1", "pc2"])


def geometry_rows(states: pd.DataFrame, responses: pd.DataFrame, scores: pd.DataFrame | None, *,
                  run_id: str, model: str, n_boot: int = N_BOOT, seed: int = 0) -> list[dict[str, Any]]:
    """Rows of the long metrics table for a run's recorded states (``dimension`` = "layer=L"; the
    persona-space rows have ``instrument`` ""; the correlations carry their instrument)."""
    rows: list[dict[str, Any]] = []
    steer = persona_steerability(responses) if len(responses) else pd.DataFrame()
    shift = profile_shift(scores) if scores is not None and len(scores) else pd.DataFrame()
    for (ctx, layer), (units, P, b) in state_matrices(states).items():
        dim = f"layer={layer}"
        g0 = (run_id, model, "")
        rng = group_rng(seed, run_id, ctx, layer, "geometry")
        n = len(units)
        if n < MIN_PERSONAS:
            rows.append(metric_row(g0, "geometry_var_pc1", dimension=dim, context_a=ctx, n=n,
                                   note=f"fewer than {MIN_PERSONAS} personas with recorded states"))
            continue
        ev = explained_variance(P)
        idx = rng.integers(0, n, size=(n_boot, n)) if n_boot > 0 else np.zeros((0, n), int)
        with quiet():
            boot = np.array([np.pad(explained_variance(P[i])[:N_PCS], (0, N_PCS), constant_values=np.nan)[:N_PCS]
                             for i in idx]).reshape(len(idx), N_PCS)
        for j in range(N_PCS):
            val = ev[j] if j < len(ev) else np.nan
            lo, hi = percentile_ci(boot[:, j:j + 1]) if len(idx) else ([np.nan], [np.nan])
            rows.append(metric_row(g0, f"geometry_var_pc{j + 1}", dimension=dim, context_a=ctx, value=val,
                                   ci_low=lo[0], ci_high=hi[0], n=n,
                                   note="" if np.isfinite(val) else "fewer personas than components"))
        null = parallel_null(P, group_rng(seed, run_id, ctx, layer, "null"))
        lo, hi = percentile_ci(null[:, None])
        rows.append(metric_row(g0, "geometry_var_pc1_null", dimension=dim, context_a=ctx,
                               value=float(np.nanmean(null)), ci_low=lo[0], ci_high=hi[0], n=len(null)))
        if b is None:
            for m in ("geometry_axis_norm", "geometry_axis_pc1_cos"):
                rows.append(metric_row(g0, m, dimension=dim, context_a=ctx, n=n,
                                       note="no baseline (no-persona) state recorded"))
            continue
        rows.extend(_axis_rows(g0, dim, ctx, P, b, idx))
        pos = pd.Series(axis_positions(P, b, contrast_vector(P, b)), index=units)
        for name, table, col in (("geometry_axis_steer_r", steer, "steerability"),
                                 ("geometry_axis_shift_r", shift, "shift")):
            rows.extend(_corr_rows(name, table, col, pos, run_id, model, dim, ctx, n_boot, seed, layer))
    return rows


def _axis_rows(g0: tuple, dim: str, ctx: str, P: np.ndarray, b: np.ndarray, idx: np.ndarray) -> list[dict]:
    c = contrast_vector(P, b)
    comps, _ = principal_axes(P, 1)
    norms, coss = [], []
    for i in idx:
        ci = contrast_vector(P[i], b)
        norms.append(np.linalg.norm(ci))
        coss.append(abs_cosine(ci, principal_axes(P[i], 1)[0][0]))
    out = []
    for metric, val, boot in (("geometry_axis_norm", float(np.linalg.norm(c)), norms),
                              ("geometry_axis_pc1_cos", abs_cosine(c, comps[0]), coss)):
        lo, hi = percentile_ci(np.asarray(boot, dtype=float)[:, None]) if len(boot) else ([np.nan], [np.nan])
        out.append(metric_row(g0, metric, dimension=dim, context_a=ctx, value=val, ci_low=lo[0], ci_high=hi[0],
                              n=P.shape[0]))
    return out


def _corr_rows(name: str, table: pd.DataFrame, col: str, pos: pd.Series, run_id: str, model: str, dim: str,
               ctx: str, n_boot: int, seed: int, layer: int) -> list[dict]:
    out = []
    if table.empty:
        what = "answers" if col == "steerability" else "per-persona scores"
        return [metric_row((run_id, model, ""), name, dimension=dim, context_a=ctx, note=f"no {what} in this run")]
    for inst, t in table[table["context"] == ctx].groupby("instrument", sort=True):
        y = t.set_index("unit")[col].reindex(pos.index).to_numpy(dtype=float)
        r, lo, hi, n = correlation_ci(pos.to_numpy(), y, group_rng(seed, run_id, inst, ctx, layer, name), n_boot)
        note = "" if np.isfinite(r) else ("fewer than 3 personas with both" if n < 3 else
                                          f"no variation in {col} or axis position across personas")
        out.append(metric_row((run_id, model, str(inst)), name, dimension=dim, context_a=ctx, value=r,
                              ci_low=lo, ci_high=hi, n=n, note=note))
    return out


@register("geometry", 60)
def rows(inputs: MetricInputs) -> pd.DataFrame:
    """The persona-space rows of a run with recorded states (docs/geometry.md)."""
    if inputs.states.empty:
        return metrics_frame([])
    return metrics_frame(geometry_rows(inputs.states, inputs.responses, inputs.scores, run_id=inputs.run_id,
                                       model=inputs.model, n_boot=inputs.n_boot, seed=inputs.seed))
