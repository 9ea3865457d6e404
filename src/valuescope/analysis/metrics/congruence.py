"""Motivated reasoning as a Kahan-style design estimates it: identity x conclusion, against the model's own lean.

Every evidence table is asked in two versions with the correct conclusion flipped (one *pair* q): in one the
truth suits liberals, in the other conservatives. For a respondent u (a persona, or the baseline) and pair q
let ``xL_uq`` / ``xC_uq`` be its accuracy (soft: probability on the correct option; hard: 1 if the argmax is
correct) on the member whose truth suits liberals / conservatives, and ``c_uq = xL_uq - xC_uq`` (the
*liberal-coded contrast*). Only complete pairs (both members valid) count; ``cbar_u`` = mean over u's pairs.

For side s with sign ``sigma_s`` (+1 liberal, -1 conservative) and personas P_s:

* ``D_s = sigma_s mean_{u in P_s} cbar_u`` = acc(congruent) - acc(incongruent) of the side. A model that
  believes what suits one side (its own lean lambda) scores ``D_lib = +lambda``, ``D_con = -lambda`` without
  any identity effect, so D_s alone does not identify motivated reasoning;
* ``interaction = (D_lib + D_con) / 2 = (mean_{P_lib} cbar - mean_{P_con} cbar) / 2``: the identity x
  conclusion interaction with equal weight per side (half the 2x2 interaction contrast); the model's own lean
  and every table's difficulty, shared by both sides, cancel;
* ``vs_baseline_s = D_s - D_baseline,s = sigma_s (mean_{P_s} cbar_u - cbar_baseline)``: the side's D minus the
  baseline's D coded the same way (as ``collapse_directed`` does for dilemmas). Persona noise that is
  symmetric (a persona-specific lean u on a topic) attenuates the model's lean (E sigma(lambda + u) differs
  from sigma(lambda)) and shows here: it is a real difference from the model without a persona, not an
  identity effect (the interaction is not moved by it).

Inference (docs/metrics.md gives the measured false-positive rates and coverage):

* interaction p: identity labels permuted across the personas that have a side (``n_perm`` permutations,
  side sizes kept); under "identity changes nothing" the personas' contrasts are exchangeable whatever the
  tables and the model's lean. ``p = (1 + #{|I*| >= |I|}) / (1 + n_perm)``.
* interaction CI: bootstrap over personas resampled within each side (the tables cancel, and the permutation
  test is conditional on them too), read as ``value -/+ t_{m-1} sqrt(m/(m-1)) SD*`` with m the smaller side's
  persona count (the percentile interval missed 0 in 0.076 of null replications);
* vs-baseline CI and p: conditional on the tables (table effects are shared by every respondent and cancel
  in ``cbar_u - cbar_baseline`` table by table), the estimate is a mean over the side's personas minus the
  baseline's mean over tables, so ``Var = var_u(cbar_u) / n_s + sum_q v_q / Q^2`` with ``v_q`` the variance
  of one respondent's contrast on pair q. The baseline is one respondent, so ``v_q`` is borrowed from the
  side's personas on that pair (under the null they answer as the baseline does; a persona-specific lean
  only makes it larger, and the baseline averaging over several orders or repeats makes its true variance
  smaller: conservative). CI ``value -/+ t_{n_s-1} SE``, p the matching t test. Why not the bootstrap over
  tables: under the hard reading one respondent's contrast on a pair is 0/1-valued and skewed (a model
  that leans is right on nearly every pair), so among 8 pairs the baseline often scores the same on all and
  the tables' spread reads as ~0 (false-positive rate 0.40 with a persona-blind own-lean model); the
  borrowed per-pair variance does not depend on the baseline's own draws.
* every other CI: a two-way bootstrap that resamples personas within each side and tables (pairs)
  together (table effects are shared, and tables carry the baseline's noise). Accuracies, D_s, ratio and
  odds ratio keep the percentile interval of the two-way replicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import bootstrap_weights, percentile_ci, quiet
from valuescope.analysis.metrics.intervals import t_bounds, t_interval
from valuescope.core.types import SIDES

SIGN = {"liberal": 1.0, "conservative": -1.0}


@dataclass
class Contrasts:
    """Per-persona and baseline accuracies on the two members of every pair (NaN = incomplete pair)."""

    units: np.ndarray  # (U,) persona units with a side
    side: np.ndarray  # (U,) "liberal" / "conservative"
    xl: np.ndarray  # (U, Q) accuracy on the member whose truth suits liberals
    xc: np.ndarray  # (U, Q) ... conservatives
    base_l: np.ndarray  # (Q,) the baseline's (all its answers averaged; NaN without one)
    base_c: np.ndarray
    pairs: list[str]
    dropped: int  # persona (unit, pair) cells with one member missing or invalid

    @property
    def has_baseline(self) -> bool:
        return bool(np.isfinite(self.base_l - self.base_c).any())


def _cell_means(codes: np.ndarray, n: int, suits: np.ndarray, pair: np.ndarray, q: int,
                y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, Q) mean of ``y`` per (code, pair) on the liberal-suiting and the conservative-suiting member."""
    out = []
    for s in SIDES:
        m = suits == s
        flat = codes[m] * q + pair[m]
        tot = np.bincount(flat, weights=y[m], minlength=n * q)
        cnt = np.bincount(flat, minlength=n * q)
        with np.errstate(all="ignore"):
            out.append(np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan).reshape(n, q))
    return out[0], out[1]


@dataclass
class ContrastLayout:
    """Where each row of one group of ``tension.evidence_table`` rows falls in :class:`Contrasts`: its pair,
    the member its truth suits, its persona unit or the baseline. Built once for a table whose answers change
    (known-truth replications: a new draw of the same queries), then :meth:`contrasts` per set of answers."""

    pairs: list[str]
    rows: np.ndarray  # (R,) the rows whose truth suits a side (the others are in no contrast)
    pair: np.ndarray  # (R,) pair index
    suits: np.ndarray  # (R,) "liberal" / "conservative" / other
    pers: np.ndarray  # (R,) a persona with a side
    base: np.ndarray  # (R,) the baseline
    codes: np.ndarray  # (R,) index into ``units`` (-1: not a persona with a side)
    units: np.ndarray  # sorted persona units
    side: np.ndarray  # (len(units),) each unit's side

    def contrasts(self, y: np.ndarray) -> Contrasts:
        """:class:`Contrasts` of answers ``y`` (one per row of the table, NaN = none)."""
        y = np.asarray(y, dtype=float)[self.rows]
        ok = ~np.isnan(y)
        q, n = len(self.pairs), len(self.units)
        pers, base = self.pers & ok, self.base & ok
        xl, xc = _cell_means(self.codes[pers], n, self.suits[pers], self.pair[pers], q, y[pers])
        half = np.isnan(xl) != np.isnan(xc)
        bad = np.isnan(xl) | np.isnan(xc)
        xl, xc = np.where(bad, np.nan, xl), np.where(bad, np.nan, xc)
        keep = (~bad).any(axis=1)
        bl, bc = _cell_means(np.zeros(int(base.sum()), dtype=np.int64), 1, self.suits[base], self.pair[base], q,
                             y[base])
        bbad = np.isnan(bl[0]) | np.isnan(bc[0])
        return Contrasts(self.units[keep], self.side[keep], xl[keep], xc[keep], np.where(bbad, np.nan, bl[0]),
                         np.where(bbad, np.nan, bc[0]), self.pairs, int(half.sum()))


def contrast_layout(table: pd.DataFrame) -> ContrastLayout:
    """:class:`ContrastLayout` of one group of ``tension.evidence_table`` rows (one kind of topic)."""
    pairs = sorted(table["pair"].dropna().astype(str).unique())
    rows = table["suits"].isin(SIDES).to_numpy()
    t = table[rows]
    pers = ((t["condition"] == "persona") & t["side"].isin(SIDES)).to_numpy()
    codes, units = pd.factorize(t["unit"].where(pers), sort=True)
    side = pd.Series(t["side"].to_numpy()[pers]).groupby(codes[pers]).first().reindex(range(len(units))).to_numpy()
    return ContrastLayout(pairs, rows, pd.Index(pairs).get_indexer(t["pair"].astype(str)), t["suits"].to_numpy(),
                          pers, (t["condition"] == "baseline").to_numpy(), codes, np.asarray(units), side)


def contrasts(table: pd.DataFrame, measure: str) -> Contrasts:
    """:class:`Contrasts` of one group of ``tension.evidence_table`` rows (one kind of topic)."""
    return contrast_layout(table).contrasts(table[measure].to_numpy(dtype=float, na_value=np.nan))


def _unit_means(x: np.ndarray, wq: np.ndarray) -> np.ndarray:
    """(B, U) mean over each unit's complete pairs, pairs weighted by ``wq`` (B, Q)."""
    ok = ~np.isnan(x)
    with np.errstate(all="ignore"):
        return (wq @ np.where(ok, x, 0.0).T) / (wq @ ok.T.astype(float))


def _mean_units(m: np.ndarray, wu: np.ndarray) -> np.ndarray:
    """(B,) weighted mean over units of (B, U) values (NaN units left out)."""
    ok = ~np.isnan(m)
    with np.errstate(all="ignore"):
        return (wu * np.where(ok, m, 0.0)).sum(axis=1) / (wu * ok).sum(axis=1)


def _base_mean(b: np.ndarray, wq: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(b)
    with np.errstate(all="ignore"):
        return (wq @ np.where(ok, b, 0.0)) / (wq @ ok.astype(float))


def _statistics(c: Contrasts, wu: np.ndarray, wq: np.ndarray) -> dict[str, np.ndarray]:
    """Every statistic of the module docstring for unit weights ``wu`` (B, U) and pair weights ``wq`` (B, Q)."""
    ml, mc = _unit_means(c.xl, wq), _unit_means(c.xc, wq)
    out: dict[str, np.ndarray] = {}
    base = _base_mean(c.base_l, wq) - _base_mean(c.base_c, wq)
    out["baseline"] = base
    for s in SIDES:
        w = wu * (c.side == s)[None, :]
        al, ac = _mean_units(ml, w), _mean_units(mc, w)
        cong, inc = (al, ac) if s == "liberal" else (ac, al)
        out[f"{s}:acc_c"], out[f"{s}:acc_i"] = cong, inc
        out[f"{s}:diff"] = cong - inc
        out[f"{s}:vs_baseline"] = SIGN[s] * (al - ac - base)
    out["all:acc_c"] = (out["liberal:acc_c"] + out["conservative:acc_c"]) / 2
    out["all:acc_i"] = (out["liberal:acc_i"] + out["conservative:acc_i"]) / 2
    out["all:diff"] = out["all:acc_c"] - out["all:acc_i"]
    return out


def _ratio_odds(acc_c: Any, acc_i: Any, n: float) -> tuple[Any, Any]:
    """Bias ratio acc_c / acc_i and the odds ratio with a 0.5 continuity correction (n = answers per cell)."""
    with np.errstate(all="ignore"), quiet():
        ratio = np.where(acc_i > 0, acc_c / np.where(acc_i > 0, acc_i, 1.0), np.nan)
        cc, ci = (acc_c * n + 0.5) / (n + 1), (acc_i * n + 0.5) / (n + 1)
        odds = (cc / (1 - cc)) / (ci / (1 - ci))
    return ratio, odds


def _side_weights(c: Contrasts, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """(n_boot, U) count weights: personas resampled with replacement within each side."""
    w = np.zeros((n_boot, len(c.units)))
    for s in SIDES:
        idx = np.where(c.side == s)[0]
        if len(idx):
            draw = rng.integers(0, len(idx), size=(n_boot, len(idx)))
            w[:, idx] = bootstrap_weights(draw, len(idx))
    return w


def interaction_p(c: Contrasts, rng: np.random.Generator, n_perm: int) -> float:
    """Permutation p of the interaction: side labels shuffled across personas (module docstring)."""
    cbar = np.nanmean(c.xl - c.xc, axis=1) if len(c.units) else np.zeros(0)
    lib = c.side == "liberal"
    n_lib = int(lib.sum())
    if n_perm <= 0 or n_lib == 0 or n_lib == len(cbar):
        return float("nan")
    observed = abs(cbar[lib].mean() - cbar[~lib].mean())
    perm = np.argsort(rng.random((n_perm, len(cbar))), axis=1) < n_lib  # a random liberal set per row
    null = np.abs((perm * cbar).sum(1) / n_lib - (~perm * cbar).sum(1) / (len(cbar) - n_lib))
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm))


def vs_baseline_interval(c: Contrasts, side: str) -> tuple[float, float, float, float]:
    """(value, lo, hi, p) of ``side``'s D minus the baseline's D with the conditional-on-tables variance of
    the module docstring (the baseline's per-pair variance borrowed from the side's personas)."""
    nan = (float("nan"),) * 4
    d = (c.xl - c.xc)[c.side == side]
    b = c.base_l - c.base_c
    okq = np.isfinite(b)
    with np.errstate(all="ignore"), quiet():
        cbar = np.nanmean(d, axis=1) if d.size else np.zeros(0)
        cbar = cbar[np.isfinite(cbar)]
        n, q = len(cbar), int(okq.sum())
        if n < 2 or q < 1:
            return nan
        value = SIGN[side] * (float(cbar.mean()) - float(b[okq].mean()))
        cnt = np.isfinite(d[:, okq]).sum(axis=0)
        v_q = np.where(cnt >= 2, np.nanvar(d[:, okq], axis=0, ddof=1), np.nan)
    if not np.isfinite(v_q).any():
        return nan
    v_q = np.where(np.isfinite(v_q), v_q, np.nanmean(v_q))  # a pair with < 2 personas: the others' mean
    se = float(np.sqrt(np.var(cbar, ddof=1) / n + v_q.sum() / q**2))
    lo, hi, p = t_bounds(value, se, n - 1)
    return value, lo, hi, p


def kahan_stats(c: Contrasts, rng: np.random.Generator, *, n_boot: int, n_perm: int) -> dict[str, Any]:
    """Point values, CIs and p-values of every statistic (keys ``side:stat``, ``_lo``/``_hi``; ``all:p``,
    ``{side}:vs_baseline_p``; ``{side}:n`` personas; ``n_pairs``; ``dropped``)."""
    q = len(c.pairs)
    one_u, one_q = np.ones((1, len(c.units))), np.ones((1, q))
    point = {k: float(v[0]) for k, v in _statistics(c, one_u, one_q).items()}
    out: dict[str, Any] = dict(point)
    n_answers = {s: float((~np.isnan(c.xl[c.side == s])).sum()) for s in SIDES}
    n_answers["all"] = n_answers["liberal"] + n_answers["conservative"]
    for s in (*SIDES, "all"):
        out[f"{s}:n"] = int((c.side == s).sum()) if s != "all" else len(c.units)
        out[f"{s}:ratio"], out[f"{s}:odds"] = (float(x) for x in _ratio_odds(
            point[f"{s}:acc_c"], point[f"{s}:acc_i"], n_answers[s]))
    out["n_pairs"], out["dropped"] = int((~np.isnan(c.xl)).sum()), c.dropped
    out["all:p"] = interaction_p(c, rng, n_perm)
    for s in SIDES:  # analytic (module docstring): computed with or without the bootstrap
        _, out[f"{s}:vs_baseline_lo"], out[f"{s}:vs_baseline_hi"], out[f"{s}:vs_baseline_p"] = \
            vs_baseline_interval(c, s)
    if n_boot <= 0 or not len(c.units):
        return out
    wu = _side_weights(c, rng, n_boot)
    wq = bootstrap_weights(rng.integers(0, q, size=(n_boot, q)), q)
    boot = _statistics(c, wu, wq)
    for s in (*SIDES, "all"):
        boot[f"{s}:ratio"], boot[f"{s}:odds"] = _ratio_odds(boot[f"{s}:acc_c"], boot[f"{s}:acc_i"], n_answers[s])
    # the interaction: personas only (the tables are shared by both sides and cancel; the permutation
    # test is conditional on them too)
    boot["all:diff"] = _statistics(c, wu, np.ones((n_boot, q)))["all:diff"]
    n_small = int(min((c.side == s).sum() for s in SIDES))
    # the percentile intervals, the keys with and without NaN replicates each in one call (column by column
    # the same numbers as one call per key); the interaction's t interval
    keys = [k for k in boot if not k.endswith(":vs_baseline") and k != "all:diff"]
    reps = np.column_stack([np.asarray(boot[k], dtype=float) for k in keys])
    nan = np.isnan(reps).any(axis=0)
    bounds: dict[str, tuple[float, float]] = {}
    for cols in (np.flatnonzero(~nan), np.flatnonzero(nan)):
        if len(cols):
            lo_a, hi_a = percentile_ci(reps[:, cols])
            bounds.update({keys[col]: (float(lo_a[j]), float(hi_a[j])) for j, col in enumerate(cols)})
    lo, hi, _ = t_interval(out["all:diff"], np.asarray(boot["all:diff"], dtype=float), n_small)
    bounds["all:diff"] = (lo, hi)
    for key in boot:
        if key in bounds:
            out[f"{key}_lo"], out[f"{key}_hi"] = bounds[key]
    return out


def per_unit_congruence(c: Contrasts) -> pd.Series:
    """Each persona's congruence contrast ``sigma_side cbar_u`` (for the debiasing change)."""
    cbar = np.nanmean(c.xl - c.xc, axis=1) if len(c.units) else np.zeros(0)
    sign = np.array([SIGN[s] for s in c.side])
    return pd.Series(sign * cbar, index=c.units)
