"""Inertia and steerability of answer distributions (Lee, Cho & Lee 2024, arXiv 2408.09049).

For a dimension d (an MFQ foundation, a PVQ value, ...), ``p_d`` is the distribution of answers over
the K options, pooled over the dimension's items and over all personas:

* **soft**: the sum of every answer's full option distribution (each valid row renormalised to sum 1
  over the K options first, so each answer weighs the same), divided by the number of answers;
* **hard**: the share of answers whose most probable option (``argmax``) is option i — the paper's
  distribution of parsed answers.

Formulas (all entropies in bits):

* ``H(p) = -sum_i p_i log2 p_i`` (0 log 0 = 0)
* Inertia Index ``I(d) = 1 - H(p_d) / log2 K``  (1: every answer on one option; 0: uniform)
* Steerability ``JSD(p_d^base, p_d^persona) = H(m) - (H(p) + H(q)) / 2`` with ``m = (p + q) / 2``,
  base 2, so it lies in [0, 1] (0: identical, 1: disjoint supports)
* top-1 share ``max_i p_i``; top-2 adjacent concentration ``max_i (p_i + p_{i+1})``
  (Lee et al.: "~90% of responses fall within two adjacent Likert points" for Harm/Fairness).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import xlogy

from valuescope.analysis.metrics._common import prob_columns, quiet, unit_ids

_LN2 = np.log(2.0)


def normalise(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    with np.errstate(all="ignore"):
        tot = p.sum(axis=-1, keepdims=True)
        return np.where(tot > 0, p / tot, np.nan)


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits along the last axis, ``H(p) = -sum_i p_i log2 p_i``; ``p`` is normalised
    first (a zero vector gives NaN)."""
    q = normalise(p)
    return -xlogy(q, q).sum(axis=-1) / _LN2


def inertia_index(p: np.ndarray) -> np.ndarray:
    """Inertia Index ``I = 1 - H(p) / log2 K`` along the last axis, K = ``p.shape[-1]`` (Lee et al. 2024).

    Example: K = 6, p = [.5, .5, 0, 0, 0, 0] -> H = 1 bit -> I = 1 - 1 / log2 6 = 0.61315.
    """
    p = np.asarray(p, dtype=float)
    k = p.shape[-1]
    if k < 2:
        return np.full(p.shape[:-1], np.nan)
    return 1.0 - entropy_bits(p) / np.log2(k)


def jsd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence, base 2, along the last axis: ``H((p+q)/2) - (H(p) + H(q)) / 2``.

    Symmetric, 0 for identical distributions, 1 for disjoint supports (Lee et al.'s Steerability).
    """
    p = normalise(p)
    q = normalise(q)
    val = entropy_bits((p + q) / 2.0) - (entropy_bits(p) + entropy_bits(q)) / 2.0
    return np.clip(val, 0.0, 1.0)


def top1_share(p: np.ndarray) -> np.ndarray:
    """Share of the most frequent option, ``max_i p_i`` (Lee et al.: single-option concentration)."""
    return np.max(normalise(p), axis=-1)


def top2_adjacent(p: np.ndarray) -> np.ndarray:
    """Top-2 adjacent concentration ``max_i (p_i + p_{i+1})``: the largest mass on two neighbouring
    options of the scale (Lee et al. 2024, main table)."""
    q = normalise(p)
    if q.shape[-1] < 2:
        return np.full(q.shape[:-1], np.nan)
    return np.max(q[..., 1:] + q[..., :-1], axis=-1)


def row_distributions(rows: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-answer soft rows (renormalised over the K options), one-hot hard rows, and the usable mask.

    A row is usable when ``valid`` is true, its probabilities sum to more than 0 and ``argmax`` is set.
    """
    cols = prob_columns(rows)[:k]
    probs = rows[cols].to_numpy(dtype=float, na_value=np.nan) if cols else np.zeros((len(rows), 0))
    soft = normalise(probs) if k else probs
    arg = pd.to_numeric(rows["argmax"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    valid = rows["valid"].astype(bool).to_numpy() if "valid" in rows.columns else np.ones(len(rows), bool)
    ok = valid & np.isfinite(soft).all(axis=1) & np.isfinite(arg) & (arg >= 1) & (arg <= k)
    hard = np.zeros_like(soft)
    idx = np.where(ok)[0]
    hard[idx, arg[idx].astype(int) - 1] = 1.0
    return soft, hard, ok


def answer_distribution(
    responses: pd.DataFrame, *, kind: str = "soft",
    by: Sequence[str] = ("run_id", "model", "instrument", "condition", "context", "dimension"),
) -> pd.DataFrame:
    """The pooled answer distribution ``p_d`` per group (default: per run, model, instrument,
    condition, context and dimension), as columns ``p_1 .. p_K`` plus ``n`` (usable answers) and ``k``.

    ``kind="soft"`` sums the renormalised option distributions; ``kind="hard"`` counts argmax options.
    Catch items (dimension NA) are left out. Groups mixing different K get NaN probabilities.
    """
    if kind not in ("soft", "hard"):
        raise ValueError(f"kind must be 'soft' or 'hard', not {kind!r}")
    df = responses[responses["dimension"].notna()]
    out = []
    for key, sub in df.groupby(list(by), sort=True, dropna=False):
        ks = sub["k"].dropna().unique()
        rec = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        if len(ks) != 1:
            rec.update(k=np.nan, n=0)
            out.append(rec)
            continue
        k = int(ks[0])
        soft, hard, ok = row_distributions(sub, k)
        mat = soft if kind == "soft" else hard
        n = int(ok.sum())
        dist = mat[ok].sum(axis=0) / n if n else np.full(k, np.nan)
        rec.update({f"p_{i + 1}": dist[i] for i in range(k)}, k=k, n=n)
        out.append(rec)
    return pd.DataFrame.from_records(out)


def unit_sums(rows: pd.DataFrame, k: int, units: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-unit (persona) sums of soft rows and of hard one-hot rows, ``(n_units, K)`` each, aligned to
    ``units`` (a unit without usable rows gets zeros); also the number of usable rows."""
    soft, hard, ok = row_distributions(rows, k)
    return sums_by_unit(soft, hard, ok, unit_ids(rows).to_numpy(), units)


def sums_by_unit(soft: np.ndarray, hard: np.ndarray, ok: np.ndarray, ids: np.ndarray,
                 units: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`unit_sums` of rows already read: ``row_distributions``' arrays and each row's unit id."""
    ids = ids[ok]
    pos = pd.Index(units).get_indexer(ids)
    s = np.zeros((len(units), soft.shape[1]))
    h = np.zeros((len(units), soft.shape[1]))
    np.add.at(s, pos, soft[ok])
    np.add.at(h, pos, hard[ok])
    return s, h, int(ok.sum())


def bootstrap_distributions(sums: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pooled distributions of bootstrap samples: ``weights (B, U) @ sums (U, K)``, normalised; a
    replicate with no answers is NaN."""
    with quiet():
        return normalise(weights @ sums)
