"""Position bias: the least share of an answer that follows the letter shown, whatever the option says.

Estimable only where one respondent answers the same item under several option orders: the baseline under
``option_order: balanced`` (it answers every item under every order of the set) and any respondent asked
with repeats under different orders (``permute-persona`` / ``permute-query`` with repeats). Within one
respondent, item and context the option's content is the same whatever the order, so what changes with the
order is the letter. Across personas it is not: a persona answers an item under one order only, and how
personas differ would be read as letter or content (the persona-disagreement confound), so a persona
answering each item once is left out.

Every used answer r gives K observations ``y_rj`` = the probability of letter j (soft reading; hard
reading: 1 for the chosen letter, else 0). An additive least-squares model

    y_rj = content(respondent, context, item, option shown under j) + letter(K, j) + e

is fitted (the content factor absorbed, so only a small letter system is solved). Each answer's letters sum
to 1, and a constant moved between the letters and the contents changes nothing, so only the letter
*profile* is identified: ``letter_j - min_l letter_l``. A uniform part of a letter habit looks exactly like
flatter content (an indifferent model), so the letter's share of the probability is not identified, but
its lower bound is::

    position_bias = sum_j (letter_j - min_l letter_l)        (per K; weighted by answers over K)

the least share of the probability (soft) or of the answers (hard) that follows the letter shown. For an
answer ``w * letter_bias + (1 - w) * content`` (the synthetic model) the soft reading is ``w (1 - K min
letter_bias)``; a model that always picks the same letter scores 1 on both readings (its letter profile
has a zero), one that picks an option whatever its letter scores 0. Persona effects cannot enter: the
fit compares each respondent only with itself.

Options never permuted (``option_order: fixed``), or no respondent asked an item under two orders: NaN
with a note saying what to change. CI: ``value -/+ 1.96 SD*`` clipped to [0, 1], SD* over ``n_boot``
bootstrap resamples of the (respondent, context, item) groups. Noise in the answers raises the reading a
little (the minimum of noisy letter effects is biased down): a content-only model with noisy answers reads
slightly above 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import (
    ALL,
    bootstrap_weights,
    group_rng,
    metric_row,
    prob_columns,
    quiet,
    unit_ids,
)

POSITION_METRICS = ("position_bias_hard", "position_bias_soft")
#: the report and ``valuescope show`` warn when at least this share of the probability follows the letter
WARN_AT_LEAST = 0.25
NO_REPEATED_ORDERS = ("no respondent answered an item under two or more option orders, so letter and content "
                      "cannot be told apart without persona differences entering: use option_order: balanced "
                      "(the baseline answers every order) or repeats under permuted orders")


def warning_text(value: float) -> str | None:
    """The position-bias warning for a soft reading (None below :data:`WARN_AT_LEAST` or NaN)."""
    if not np.isfinite(value) or value < WARN_AT_LEAST:
        return None
    return (f"at least {value:.0%} of the probability follows the letter shown, whatever the option says "
            f"(position bias: 0 = content only, 1 = letter only)")


def repeated_orders(rows: pd.DataFrame) -> pd.DataFrame:
    """The answers of (respondent, context, item) groups asked under two or more option orders."""
    if rows.empty or "option_order" not in rows.columns:
        return rows.iloc[0:0]
    key = unit_ids(rows) + "\x1f" + rows["context"].astype(str) + "\x1f" + rows["item_id"].astype(str)
    n_orders = rows["option_order"].astype(str).groupby(key).transform("nunique")
    return rows[(n_orders >= 2).to_numpy()]


def _observations(rows: pd.DataFrame, reading: str) -> tuple[np.ndarray, ...] | None:
    """Flattened observations (y, letter code, content code, group code) and the K of each letter code."""
    cols = prob_columns(rows)
    group = unit_ids(rows) + "\x1f" + rows["context"].astype(str) + "\x1f" + rows["item_id"].astype(str)
    group_codes, _ = pd.factorize(group)
    k_max = int(rows["k"].max())
    ys, letters, contents, gs = [], [], [], []
    for k, idx in rows.groupby(rows["k"].astype(int), sort=True).indices.items():
        g = rows.iloc[idx]
        orders = g["option_order"].astype(str).str.split(",", expand=True)
        if orders.shape[1] != k or orders.isna().any(axis=None):
            continue
        order = orders.to_numpy(dtype=int)  # (n, k): letter j shows option order[:, j]
        p = g[cols[:k]].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(all="ignore"):
            p = p / p.sum(axis=1, keepdims=True)
        good = np.isfinite(p).all(axis=1)
        if reading == "hard":
            arg = g["argmax"].to_numpy(dtype=float, na_value=np.nan)
            good &= np.isfinite(arg)
            p = (np.arange(k)[None, :] == (np.nan_to_num(arg) - 1)[:, None]).astype(float)
        order, p = order[good], p[good]
        ys.append(np.take_along_axis(p, order, axis=1).ravel())  # y[r, j] = p_scale[r, order[r, j]]
        letters.append(np.tile(k * k_max + np.arange(k), len(order)))
        contents.append(np.repeat(group_codes[idx][good], k) * k_max + order.ravel())
        gs.append(np.repeat(group_codes[idx][good], k))
    if not ys or sum(len(y) for y in ys) == 0:
        return None
    lu, li = np.unique(np.concatenate(letters), return_inverse=True)
    _, ci = np.unique(np.concatenate(contents), return_inverse=True)
    _, gi = np.unique(np.concatenate(gs), return_inverse=True)
    return np.concatenate(ys), li, ci, gi, lu // k_max


def _group_parts(obs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (respondent, context, item) group: its additive contribution to the letter system after the
    content factor is absorbed (``S_g`` (G, L, L), ``r_g`` (G, L)) and its answer count per letter."""
    y, li, ci, gi, letter_k = obs
    n_l, n_g = len(letter_k), int(gi.max()) + 1
    c_codes, c_inv = np.unique(ci, return_inverse=True)
    n_c = len(c_codes)
    c_group = np.zeros(n_c, dtype=np.int64)
    c_group[c_inv] = gi
    n_c_obs = np.bincount(c_inv, minlength=n_c).astype(float)
    s_c = np.bincount(c_inv, weights=y, minlength=n_c)
    x = np.zeros((n_c, n_l))  # content cell x letter counts
    np.add.at(x, (c_inv, li), 1.0)
    n_gl = np.zeros((n_g, n_l))
    np.add.at(n_gl, (gi, li), 1.0)
    s_gl = np.zeros((n_g, n_l))
    np.add.at(s_gl, (gi, li), y)
    outer = x[:, :, None] * x[:, None, :] / n_c_obs[:, None, None]  # (C, L, L)
    s = np.zeros((n_g, n_l, n_l))
    np.add.at(s, c_group, -outer)
    s[:, np.arange(n_l), np.arange(n_l)] += n_gl
    r = s_gl.copy()
    np.add.at(r, c_group, -x * (s_c / n_c_obs)[:, None])
    return s, r, n_gl


def _bound(s: np.ndarray, r: np.ndarray, n_l: np.ndarray, letter_k: np.ndarray) -> float:
    """``sum_j (letter_j - min letter)`` per K from the letter system, weighted by answers over K."""
    with quiet(), np.errstate(all="ignore"):
        beta = np.linalg.lstsq(s, r, rcond=None)[0]
    total, weight = 0.0, 0.0
    for k in np.unique(letter_k):
        sel = letter_k == k
        if n_l[sel].min() <= 0:
            continue
        b = beta[sel]
        w = float(n_l[sel].sum()) / int(k)  # answers with K options
        total += w * float(np.sum(b - b.min()))
        weight += w
    return float(np.clip(total / weight, 0.0, 1.0)) if weight > 0 else float("nan")


def _estimate(rows: pd.DataFrame, reading: str, rng: np.random.Generator | None = None,
              n_boot: int = 0) -> tuple[float, np.ndarray, int]:
    """(point value, bootstrap replicates, groups) of the bound on ``rows`` (already restricted)."""
    obs = _observations(rows, reading)
    if obs is None:
        return float("nan"), np.empty(0), 0
    s_g, r_g, n_gl = _group_parts(obs)
    letter_k = obs[4]
    point = _bound(s_g.sum(0), r_g.sum(0), n_gl.sum(0), letter_k)
    n_g = s_g.shape[0]
    if rng is None or n_boot <= 0 or n_g < 2:
        return point, np.empty(0), n_g
    w = bootstrap_weights(rng.integers(0, n_g, size=(n_boot, n_g)), n_g)
    s_b = np.einsum("bg,gij->bij", w, s_g)
    r_b, n_b = w @ r_g, w @ n_gl
    reps = np.array([_bound(s_b[b], r_b[b], n_b[b], letter_k) for b in range(n_boot)])
    return point, reps, n_g


def position_bias(rows: pd.DataFrame, reading: str = "soft") -> float:
    """The position-bias bound of one set of answers (module docstring); NaN when undefined."""
    usable = rows[rows["valid"].astype(bool) & rows["argmax"].notna()] if len(rows) else rows
    return _estimate(repeated_orders(usable), reading)[0]


def never_permuted(rows: pd.DataFrame) -> bool:
    """True when every item was shown under one option order only (letter and content coincide)."""
    if "option_order" not in rows.columns or rows.empty:
        return True
    return bool((rows.groupby(rows["item_id"].astype(str))["option_order"].nunique() <= 1).all())


def position_rows(
    rows: pd.DataFrame, group: tuple[Any, Any, Any], *, n_boot: int, seed: int,
) -> list[dict[str, Any]]:
    """Long-table rows ``position_bias_hard`` / ``position_bias_soft`` for one group's answers (all
    conditions and contexts; ``dimension`` "" and ``context_a`` "all"); ``n`` = answers used."""
    out: list[dict[str, Any]] = []

    def add(metric: str, **kw: Any) -> None:
        out.append(metric_row(group, metric, context_a=ALL, **kw))

    if "option_order" not in rows.columns:
        for m in POSITION_METRICS:
            add(m, note="no option_order column: position bias needs the order the options were shown in")
        return out
    usable = rows[rows["valid"].astype(bool) & rows["argmax"].notna()]
    if usable.empty:
        for m in POSITION_METRICS:
            add(m, note="no valid answers")
        return out
    if never_permuted(usable):
        for m in POSITION_METRICS:
            add(m, n=len(usable), note="options were never permuted (one option order per item): the letter and "
                "the option's content cannot be told apart")
        return out
    used = repeated_orders(usable)
    if used.empty:
        for m in POSITION_METRICS:
            add(m, n=0, note=NO_REPEATED_ORDERS)
        return out
    who = "the baseline" if set(used["condition"].astype(str)) == {"baseline"} else \
        f"{unit_ids(used).nunique()} respondents"
    for metric in POSITION_METRICS:
        rng = group_rng(seed, *group, metric)
        point, reps, n_groups = _estimate(used, metric.rsplit("_", 1)[1], rng, n_boot)
        lo = hi = np.nan
        note = f"from the answers of {who} under several option orders"
        if not np.isfinite(point):
            note = "answers vary with neither the letter nor the option"
        elif np.isfinite(reps).sum() >= 2:
            with quiet():
                sd = float(np.nanstd(reps, ddof=1))
            lo, hi = max(point - 1.959964 * sd, 0.0), min(point + 1.959964 * sd, 1.0)
        else:
            note += "; no CI (n_boot=0 or one item)"
        add(metric, value=point, ci_low=lo, ci_high=hi, n=int(used.shape[0]), note=note)
    return out
