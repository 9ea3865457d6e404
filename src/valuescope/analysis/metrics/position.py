"""Position bias: how much of the answer follows the letter shown rather than the option's content.

Estimable because options are permuted: the same option appears under different letters. Every answer
r gives K observations ``y_rj`` = the probability of letter j (soft reading; hard reading: 1 for the
chosen letter, else 0). Two crossed factors can explain them:

* **letter**: the letter position j (with K: a 4-option and a 6-option item have different letters);
* **content**: the option shown under letter j, ``(item, option_order_r[j])``.

An additive least-squares model ``y_rj = a_letter + b_content + e`` is fitted (normal equations; the
content factor is absorbed so only a K x K system is solved). With Type-II sums of squares

* ``SS_letter  = RSS(content only) - RSS(both)``  (what the letter explains beyond the content)
* ``SS_content = RSS(letter only) - RSS(both)``   (what the content explains beyond the letter)

the statistic is ``position_bias = SS_letter / (SS_letter + SS_content)`` in [0, 1]: the share of the
explained variation in the answers that follows the letter. Each SS is first reduced by what noise alone
gives a factor with its degrees of freedom (``df x RSS(both) / df_residual``, clipped at 0, as in omega
squared), so answers that scatter around a letter profile are not read as content (the content factor
has many more cells than the letter factor).

* A pure letter model (the same letter distribution whatever the options) scores **1**;
* a pure content model (the same option distribution whatever the letters) scores **0**;
* a mixture ``w * letter + (1 - w) * content`` scores ``w^2 V_l / (w^2 V_l + (1 - w)^2 V_c)``, V the
  variance of each profile: above 0.5 means the letter explains more than the content does.

Persona and context effects on the content are residual variation here (they are not shared by an
(item, option) across personas), so they do not move the statistic in expectation. Options never
permuted (``option_order: fixed``): letter and content coincide and the statistic is NaN with a note.
CI: ``value -/+ 1.96 SD`` (clipped to [0, 1]) with the SD taken over ``n_boot`` random halves of the
personas (delete-half jackknife: the variance of a statistic over half-samples drawn without replacement
estimates its variance on the full sample); the baseline is one unit. A with-replacement bootstrap is not
used: a duplicated persona repeats its noise in the same (item, option) cells, which this statistic would
read as content.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import (
    ALL,
    group_rng,
    metric_row,
    prob_columns,
    quiet,
    unit_ids,
)

POSITION_METRICS = ("position_bias_hard", "position_bias_soft")
#: above this share the report and ``valuescope show`` warn that most of the answer follows the letter
WARN_ABOVE = 0.5


def _observations(rows: pd.DataFrame, reading: str) -> tuple[np.ndarray, ...] | None:
    """Flattened observations: (y, letter code, content code, unit code, n_letters, n_contents, n_units)."""
    cols = prob_columns(rows)
    ok = rows["valid"].astype(bool).to_numpy() & rows["argmax"].notna().to_numpy()
    rows = rows[ok]
    if rows.empty:
        return None
    item_codes, _ = pd.factorize(rows["item_id"].astype(str))
    unit_codes, _ = pd.factorize(unit_ids(rows))
    k_max = int(rows["k"].max())
    ys, letters, contents, us = [], [], [], []
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
        contents.append(np.repeat(item_codes[idx][good], k) * k_max + order.ravel())
        us.append(np.repeat(unit_codes[idx][good], k))
    if not ys or sum(len(y) for y in ys) == 0:
        return None
    _, li = np.unique(np.concatenate(letters), return_inverse=True)
    _, ci = np.unique(np.concatenate(contents), return_inverse=True)
    _, ui = np.unique(np.concatenate(us), return_inverse=True)
    return np.concatenate(ys), li, ci, ui, int(li.max()) + 1, int(ci.max()) + 1, int(ui.max()) + 1


def _unit_sums(obs: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """Per-unit sufficient statistics of the additive model."""
    y, li, ci, ui, nl, nc, nu = obs
    out = {
        "yy": np.bincount(ui, weights=y * y, minlength=nu),
        "nL": np.zeros((nu, nl)), "sL": np.zeros((nu, nl)),
        "nC": np.zeros((nu, nc)), "sC": np.zeros((nu, nc)), "X": np.zeros((nu, nl, nc)),
    }
    np.add.at(out["nL"], (ui, li), 1.0)
    np.add.at(out["sL"], (ui, li), y)
    np.add.at(out["nC"], (ui, ci), 1.0)
    np.add.at(out["sC"], (ui, ci), y)
    np.add.at(out["X"], (ui, li, ci), 1.0)
    return out


def _share(yy: float, nL: np.ndarray, sL: np.ndarray, nC: np.ndarray, sC: np.ndarray,
           X: np.ndarray) -> float:
    """SS_letter / (SS_letter + SS_content) of one set of sufficient statistics (module docstring)."""
    with quiet(), np.errstate(all="ignore"):
        inv_c = np.where(nC > 0, 1.0 / np.where(nC > 0, nC, 1.0), 0.0)
        fit_c = float(np.sum(sC * sC * inv_c))
        fit_l = float(np.sum(np.where(nL > 0, sL * sL / np.where(nL > 0, nL, 1.0), 0.0)))
        schur = np.diag(nL) - (X * inv_c) @ X.T
        rhs = sL - X @ (sC * inv_c)
        beta = np.linalg.lstsq(schur, rhs, rcond=None)[0]
        fit_both = fit_c + float(beta @ rhs)
        rank_l = int(np.linalg.matrix_rank(schur, tol=1e-9 * max(1.0, float(np.abs(schur).max(initial=0.0)))))
    n_obs = float(nL.sum())
    n_cells_c, n_cells_l = int((nC > 0).sum()), int((nL > 0).sum())
    rank_full = n_cells_c + rank_l
    df_res = n_obs - rank_full
    ms_res = max(yy - fit_both, 0.0) / df_res if df_res > 0 else 0.0
    # each factor's unique SS, less what noise alone would give it (df x residual mean square)
    ss_l = max(fit_both - fit_c - rank_l * ms_res, 0.0)
    ss_c = max(fit_both - fit_l - (rank_full - n_cells_l) * ms_res, 0.0)
    if (ss_l + ss_c) <= 1e-10 * max(yy, 1e-300):
        return float("nan")
    return ss_l / (ss_l + ss_c)


def position_bias(rows: pd.DataFrame, reading: str = "soft") -> float:
    """The position-bias share of one set of answers (module docstring); NaN when undefined."""
    obs = _observations(rows, reading)
    if obs is None:
        return float("nan")
    s = _unit_sums(obs)
    return _share(float(s["yy"].sum()), s["nL"].sum(0), s["sL"].sum(0), s["nC"].sum(0), s["sC"].sum(0),
                  s["X"].sum(0))


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
    for metric in POSITION_METRICS:
        obs = _observations(usable, metric.rsplit("_", 1)[1])
        if obs is None:
            add(metric, note="no valid answers")
            continue
        s = _unit_sums(obs)
        point = _share(float(s["yy"].sum()), *(s[x].sum(0) for x in ("nL", "sL", "nC", "sC", "X")))
        n_units = obs[6]
        lo = hi = np.nan
        note = "" if np.isfinite(point) else "answers vary with neither the letter nor the option"
        if n_units >= 4 and n_boot > 0 and np.isfinite(point):
            rng = group_rng(seed, *group, metric)
            half = np.argsort(rng.random((n_boot, n_units)), axis=1) < n_units // 2  # random halves
            w = half.astype(float)
            nl, nc = s["X"].shape[1:]
            xb = (w @ s["X"].reshape(n_units, nl * nc)).reshape(n_boot, nl, nc)
            yy, nL, sL, nC, sC = (w @ s[x] for x in ("yy", "nL", "sL", "nC", "sC"))
            boot = np.array([_share(float(yy[b]), nL[b], sL[b], nC[b], sC[b], xb[b]) for b in range(n_boot)])
            with quiet():
                sd = float(np.nanstd(boot, ddof=1))
            lo, hi = max(point - 1.959964 * sd, 0.0), min(point + 1.959964 * sd, 1.0)
        elif not note:
            note = "fewer than 4 personas or n_boot=0: no CI"
        add(metric, value=point, ci_low=lo, ci_high=hi, n=int(usable.shape[0]), note=note)
    return out
