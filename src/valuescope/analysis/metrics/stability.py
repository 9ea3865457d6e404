"""Value stability across contexts (Kovač et al. 2024, "Stick to your Role!", arXiv 2402.14846).

Input: per-persona value scores (``valuescope.analysis.scoring.score_personas``: one row per persona x context x
repeat x value; MRAT-centred for the PVQ). A "context" is a simulated conversation (``topic@n``) or
``none``. Scores are arranged as an array ``S[repeat, context, persona, value]``.

* **Rank-Order stability** of value v between contexts a and b: Spearman's rho over personas between
  ``S[r, a, :, v]`` and ``S[r, b, :, v]`` ("does Jack always value Tradition more than Jane?"). Computed
  per repeat (the paper's seeds) and averaged over repeats; then averaged over context pairs (the
  per-value stability), then over values (the headline). The full context-pair matrix is kept.
* **Ipsative stability** of persona p between a and b: Spearman's rho over values between
  ``S[r, a, p, :]`` and ``S[r, b, p, :]`` ("does Jack always value Tradition more than Benevolence?");
  averaged over repeats and context pairs per persona, then over personas. For the no-persona baseline
  the units are its repeats (the paper's 50 option-order permutations).
* **Distance to the neutral profile** (appendix B.2): Spearman's rho over values between a persona's
  profile in a context and the neutral profile = the baseline (no persona, context ``none``) value
  ranks averaged over its repeats. Higher = closer to the model's default.
* **Donation** (appendix A.6): the same Rank-Order stability with the donation instrument's
  dimensions (races, mean coins given) in place of values: one value per race, then their mean.
* **Conversation length**: when contexts differ in ``n_messages``, Rank-Order and Ipsative stability
  are also averaged over the pairs of topics at each length n (``context_a = context_b = "*@n"``).

Spearman's rho is the Pearson correlation of average ranks over the pairwise-complete entries; it is
NaN (with a note) for fewer than 3 entries or zero variance. Rank-Order stability is biased toward 0 in small
samples (Spearman's rho: about -0.014 at 40 personas for a true 0.68), and averaging over values shrinks the
variance but not the bias, so its value is the jackknife bias-corrected estimate over personas and its CI the
jackknife t interval (``metrics.intervals``); the Ipsative and neutral-distance means over personas have no
such bias: the t interval of a mean over personas (``intervals.mean_t_interval``; baseline: over repeats).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import (
    ALL,
    NO_CONTEXT,
    average_ranks,
    choose_level,
    metric_row,
    quiet,
    spearman_last,
    unit_ids,
)
from valuescope.analysis.metrics.intervals import jackknife_index, jackknife_scalar, mean_t_interval


def profile_array(
    scores: pd.DataFrame, *, condition: str = "persona", units_are_repeats: bool = False,
) -> tuple[np.ndarray, list[int], list[str], list[str], list[str]]:
    """``S[repeat, context, unit, value]`` (NaN where missing) and its axis labels.

    ``scores`` must already be one level of one (run, model, instrument). With ``units_are_repeats``
    (the baseline) each repeat is its own unit and the repeat axis has length 1.
    """
    df = scores[(scores["condition"] == condition) & scores["score"].notna() & scores["dimension"].notna()]
    df = df.assign(_unit=unit_ids(df), _ctx=df["context"].astype(str), _val=df["dimension"].astype(str))
    if units_are_repeats:
        df = df.assign(_unit=df["repeat"].astype(str), repeat=0)
    reps = sorted(df["repeat"].unique().tolist())
    ctxs = sorted(df["_ctx"].unique().tolist())
    units = sorted(df["_unit"].unique().tolist())
    vals = sorted(df["_val"].unique().tolist())
    arr = np.full((len(reps), len(ctxs), len(units), len(vals)), np.nan)
    g = df.groupby(["repeat", "_ctx", "_unit", "_val"], sort=False)["score"].mean().reset_index()
    where = (pd.Index(reps).get_indexer(g["repeat"]), pd.Index(ctxs).get_indexer(g["_ctx"]),
             pd.Index(units).get_indexer(g["_unit"]), pd.Index(vals).get_indexer(g["_val"]))
    arr[where] = g["score"].to_numpy()
    return arr, reps, ctxs, units, vals


def rank_order_pairs(arr: np.ndarray, pairs: list[tuple[int, int]], idx: np.ndarray) -> np.ndarray:
    """Rank-Order rho per (pair, value, bootstrap sample), averaged over repeats: ``(P, V, B)``.

    ``idx`` (B, U) picks the personas of each sample (``np.arange(U)[None]`` for the point estimate).
    """
    out = np.full((len(pairs), arr.shape[3], idx.shape[0]), np.nan)
    for i, (a, b) in enumerate(pairs):
        x = np.moveaxis(arr[:, a], 1, 2)[..., idx]  # (R, V, B, U)
        y = np.moveaxis(arr[:, b], 1, 2)[..., idx]
        rho, _ = spearman_last(x, y)
        with quiet():
            out[i] = np.nanmean(rho, axis=0)
    return out


def ipsative_units(arr: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Ipsative rho per (pair, unit), averaged over repeats: ``(P, U)``."""
    out = np.full((len(pairs), arr.shape[2]), np.nan)
    for i, (a, b) in enumerate(pairs):
        rho, _ = spearman_last(arr[:, a], arr[:, b])  # (R, U)
        with quiet():
            out[i] = np.nanmean(rho, axis=0)
    return out


def neutral_profile(baseline_arr: np.ndarray) -> np.ndarray:
    """Neutral value profile (Kovač et al. B.2): value ranks of each baseline repeat, averaged.

    ``baseline_arr`` is ``(repeats, V)``; returns ``(V,)`` mean ranks (NaN-aware).
    """
    with quiet():
        return np.nanmean(average_ranks(baseline_arr), axis=0)


def _nanmean(a: np.ndarray, axis: Any) -> np.ndarray:
    with quiet():
        return np.nanmean(a, axis=axis)


def _has_ci(n_units: int, n_boot: int) -> bool:
    """Intervals are given with at least 2 units and ``n_boot > 0`` (n_boot = 0 asks for none)."""
    return n_units >= 2 and n_boot > 0


def _emit_mean(rows: list[dict[str, Any]], group: tuple, metric: str, unit: np.ndarray, ci: bool,
               undefined: str, **kw: Any) -> None:
    """A row whose value is a mean over units (personas; the baseline's repeats) of a rho: a t interval over
    them (``intervals.mean_t_interval``)."""
    point, lo, hi = mean_t_interval(unit, lower=-1.0, upper=1.0)
    if not ci:
        lo = hi = float("nan")
    note = "" if np.isfinite(point) else undefined
    if np.isfinite(point) and not np.isfinite(lo):
        note = "fewer than 2 units or n_boot=0: no CI"  # n_boot is the switch for intervals
    rows.append(metric_row(group, metric, value=point, ci_low=lo, ci_high=hi, n=int(np.isfinite(unit).sum()),
                           note=note, **kw))


_RO_UNDEF = "undefined: fewer than 3 personas scored in both contexts, or no variance across personas"
_IP_UNDEF = "undefined: fewer than 3 values scored in both contexts, or a constant profile"


def _emit_jk(rows: list[dict[str, Any]], group: tuple, metric: str, point: float, loo: np.ndarray, ci: bool,
             n: int, undefined: str, **kw: Any) -> None:
    """A Rank-Order row: the jackknife estimate and interval over personas (``loo``: one value per persona)."""
    value, lo, hi = jackknife_scalar(point, loo, lower=-1.0, upper=1.0, interval=ci)
    note = "" if np.isfinite(point) else undefined
    if np.isfinite(point) and not np.isfinite(lo):
        note = "fewer than 2 units or n_boot=0: no CI"
    rows.append(metric_row(group, metric, value=value, ci_low=lo, ci_high=hi, n=n, note=note, **kw))


def _rank_order_rows(rows: list, group: tuple, arr: np.ndarray, ctxs: list[str], vals: list[str],
                     pairs: list[tuple[int, int]], ci: bool, label: tuple[str, str] | None,
                     metric: str = "rank_order") -> None:
    n_units = arr.shape[2]
    point = rank_order_pairs(arr, pairs, np.arange(n_units)[None, :])[..., 0]  # (P, V)
    loo = rank_order_pairs(arr, pairs, jackknife_index(n_units))  # (P, V, U): without each persona
    both = ~np.isnan(arr)
    if label is None:  # full matrix
        for i, (a, b) in enumerate(pairs):
            n_pair = int((both[:, a] & both[:, b]).any(axis=(0, 2)).sum())
            for j, v in enumerate(vals):
                _emit_jk(rows, group, metric, point[i, j], loo[i, j], ci, n_pair, _RO_UNDEF, dimension=v,
                         context_a=ctxs[a], context_b=ctxs[b])
            _emit_jk(rows, group, metric, _nanmean(point[i], 0), _nanmean(loo[i], 0), ci, n_pair, _RO_UNDEF,
                     context_a=ctxs[a], context_b=ctxs[b])
    ca, cb = label or (ALL, ALL)
    per_val = _nanmean(point, 0)
    per_val_loo = _nanmean(loo, 0)  # (V, U)
    for j, v in enumerate(vals):
        _emit_jk(rows, group, metric, per_val[j], per_val_loo[j], ci, n_units, _RO_UNDEF, dimension=v,
                 context_a=ca, context_b=cb)
    _emit_jk(rows, group, metric, _nanmean(per_val, 0), _nanmean(per_val_loo, 0), ci, n_units, _RO_UNDEF,
             context_a=ca, context_b=cb)


def _ipsative_rows(rows: list, group: tuple, metric: str, arr: np.ndarray, ctxs: list[str],
                   pairs: list[tuple[int, int]], ci: bool,
                   label: tuple[str, str] | None) -> None:
    per = ipsative_units(arr, pairs)  # (P, U)
    if label is None:
        for i, (a, b) in enumerate(pairs):
            _emit_mean(rows, group, metric, per[i], ci, _IP_UNDEF, context_a=ctxs[a],
                       context_b=ctxs[b])
    unit = _nanmean(per, 0)  # (U,)
    ca, cb = label or (ALL, ALL)
    _emit_mean(rows, group, metric, unit, ci, _IP_UNDEF, context_a=ca, context_b=cb)


def _length_groups(scores: pd.DataFrame, ctxs: list[str]) -> dict[int, list[int]]:
    """Context indices grouped by conversation length (only when there are at least two lengths)."""
    if "n_messages" not in scores.columns:
        return {}
    lengths = scores.groupby(scores["context"].astype(str))["n_messages"].first()
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(ctxs):
        if c != NO_CONTEXT and c in lengths.index and pd.notna(lengths[c]):
            groups.setdefault(int(lengths[c]), []).append(i)
    return groups if len(groups) > 1 else {}


def stability_rows(
    scores: pd.DataFrame, group: tuple[Any, Any, Any], *, n_boot: int, seed: int, level: str | None = None,
) -> list[dict[str, Any]]:
    """Long-table rows for rank_order, ipsative, ipsative_baseline and distance_to_neutral of one
    (run_id, model, instrument) slice of the scores table."""
    rows: list[dict[str, Any]] = []
    lvl = choose_level(scores, level)
    sc = scores if lvl is None else scores[scores["level"].astype(str) == lvl]
    arr, _, ctxs, units, vals = profile_array(sc)
    if arr.size == 0:
        for m in ("rank_order", "ipsative"):
            rows.append(metric_row(group, m, context_a=ALL, context_b=ALL, note="no persona scores"))
    elif len(ctxs) < 2:
        for m in ("rank_order", "ipsative"):
            rows.append(metric_row(group, m, context_a=ALL, context_b=ALL, n=len(units),
                                   note=f"one context ({ctxs[0]}): stability needs at least two"))
    else:
        pairs = list(combinations(range(len(ctxs)), 2))
        ci = _has_ci(len(units), n_boot)
        _rank_order_rows(rows, group, arr, ctxs, vals, pairs, ci, None)
        _ipsative_rows(rows, group, "ipsative", arr, ctxs, pairs, ci, None)
        for n_msg, members in sorted(_length_groups(sc, ctxs).items()):
            lab = (f"*@{n_msg}", f"*@{n_msg}")
            sub_pairs = list(combinations(members, 2))
            if not sub_pairs:
                continue
            _rank_order_rows(rows, group, arr, ctxs, vals, sub_pairs, ci, lab)
            _ipsative_rows(rows, group, "ipsative", arr, ctxs, sub_pairs, ci, lab)
    rows.extend(_baseline_rows(sc, group, arr, ctxs, units, vals, n_boot))
    return rows


def _baseline_rows(sc: pd.DataFrame, group: tuple, arr: np.ndarray, ctxs: list[str], units: list[str],
                   pvals: list[str], n_boot: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    barr, _, bctxs, bunits, bvals = profile_array(sc, condition="baseline", units_are_repeats=True)
    if barr.size and len(bctxs) >= 2:
        pairs = list(combinations(range(len(bctxs)), 2))
        _ipsative_rows(rows, group, "ipsative_baseline", barr, bctxs, pairs, _has_ci(len(bunits), n_boot), None)
    if arr.size == 0:
        return rows
    if NO_CONTEXT not in bctxs:
        note = "no baseline scores" if barr.size == 0 else "no baseline scores in context 'none'"
        rows.append(metric_row(group, "distance_to_neutral", context_a=ALL, context_b=NO_CONTEXT, note=note))
        return rows
    b = barr[0, bctxs.index(NO_CONTEXT)]  # (repeats-as-units, V_b)
    b = b[:, pd.Index(bvals).get_indexer(pvals)] if set(pvals) <= set(bvals) else None
    if b is None:
        rows.append(metric_row(group, "distance_to_neutral", context_a=ALL, context_b=NO_CONTEXT,
                               note="baseline lacks some of the persona values"))
        return rows
    neutral = neutral_profile(b)
    ci = _has_ci(len(units), n_boot)
    for c, ctx in enumerate(ctxs):
        rho, _ = spearman_last(arr[:, c], neutral)  # (R, U)
        unit = _nanmean(rho, 0)
        _emit_mean(rows, group, "distance_to_neutral", unit, ci, _IP_UNDEF, context_a=ctx,
                   context_b=NO_CONTEXT)
    return rows


def ipsative_by_persona(scores: pd.DataFrame, *, level: str | None = None) -> pd.DataFrame:
    """Per persona and context pair: Ipsative rho (averaged over repeats), for plots and exports.

    Columns: run_id, model, instrument, persona, context_a, context_b, ipsative.
    """
    out = []
    for group, g in scores.groupby(["run_id", "model", "instrument"], sort=True):
        lvl = choose_level(g, level)
        sc = g if lvl is None else g[g["level"].astype(str) == lvl]
        arr, _, ctxs, units, _ = profile_array(sc)
        pairs = list(combinations(range(len(ctxs)), 2))
        per = ipsative_units(arr, pairs) if pairs else np.zeros((0, len(units)))
        for i, (a, b) in enumerate(pairs):
            for u, unit in enumerate(units):
                out.append((*group, unit, ctxs[a], ctxs[b], per[i, u]))
    return pd.DataFrame(out, columns=["run_id", "model", "instrument", "persona", "context_a", "context_b",
                                      "ipsative"])
