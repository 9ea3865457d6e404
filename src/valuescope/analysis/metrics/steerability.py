"""Steerability compared like for like: baseline and persona answers matched on item and option order.

Lee et al. (2024) define steerability as ``JSD(p_d^base, p_d^persona)`` between the distribution of
answers without and with a persona. When options are permuted, the letter a model favours lands on a
different option under each order, so a persona asked under one order and the baseline under another
differ even for a model that ignores the persona. The comparison is therefore made within *strata*
of identical (item, option order), the only units that are exchangeable under H0 ("the persona does
not change the answer"):

* a persona answer is compared only when the baseline answered the same item under the same option
  order (in the baseline's context); the others are left out, counted, and said so in the note;
* the baseline distribution is standardised to the persona answers' mix of strata:
  ``p_base = sum_s w_s * mean_base_s`` with ``w_s = n_persona_s / N_persona``, and
  ``p_persona = mean of the compared persona answers``; ``JSD(p_base, p_persona)`` in bits, in [0, 1].
  Under a persona-blind model ``E[p_persona] = p_base`` exactly, whatever the letter bias;
* the permutation test shuffles baseline/persona labels *within each stratum* (keeping each stratum's
  number of baseline answers) and recomputes both JSDs; ``p = (1 + #{JSD_perm >= JSD_obs}) / (1 + n_perm)``;
* both readings: *soft* (each answer's option distribution) and *hard* (one-hot on the chosen option,
  the paper's parsed answers); the same permutations serve both.

A table without an ``option_order`` column is treated as one order per item (noted by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import quiet, unit_ids
from valuescope.analysis.metrics.inertia import jsd, normalise, row_distributions


@dataclass
class Matched:
    """The compared answers of one (context, dimension): per-row soft/hard distributions, stratum codes
    and, for persona rows, the persona unit index; plus what was left out."""

    base_soft: np.ndarray
    base_hard: np.ndarray
    base_stratum: np.ndarray
    pers_soft: np.ndarray
    pers_hard: np.ndarray
    pers_stratum: np.ndarray
    pers_unit: np.ndarray
    units: list[str]
    n_strata: int
    dropped_answers: int
    dropped_personas: int
    total_personas: int


def _strata(rows: pd.DataFrame) -> np.ndarray:
    item = rows["item_id"].astype(str)
    if "option_order" in rows.columns:
        return (item + "|" + rows["option_order"].astype(str)).to_numpy()
    return item.to_numpy()


def match_strata(base_rows: pd.DataFrame, persona_rows: pd.DataFrame, k: int) -> Matched:
    """Keep the usable persona answers whose (item, option order) the baseline also answered, and the
    baseline answers of those strata."""
    bs, bh, bok = row_distributions(base_rows, k)
    ps, ph, pok = row_distributions(persona_rows, k)
    b_str = _strata(base_rows)[bok]
    p_str = _strata(persona_rows)[pok]
    p_units_all = unit_ids(persona_rows).to_numpy()[pok]
    shared = np.intersect1d(np.unique(b_str), np.unique(p_str))
    keep_p = np.isin(p_str, shared)
    keep_b = np.isin(b_str, shared)
    codes = {s: i for i, s in enumerate(shared)}
    units = sorted(set(p_units_all[keep_p]))
    all_units = set(p_units_all)
    upos = {u: i for i, u in enumerate(units)}
    return Matched(
        base_soft=bs[bok][keep_b], base_hard=bh[bok][keep_b],
        base_stratum=np.array([codes[s] for s in b_str[keep_b]], dtype=int),
        pers_soft=ps[pok][keep_p], pers_hard=ph[pok][keep_p],
        pers_stratum=np.array([codes[s] for s in p_str[keep_p]], dtype=int),
        pers_unit=np.array([upos[u] for u in p_units_all[keep_p]], dtype=int), units=units,
        n_strata=len(shared), dropped_answers=int((~keep_p).sum()),
        dropped_personas=len(all_units) - len(units), total_personas=len(all_units),
    )


def _stratum_means(rows: np.ndarray, stratum: np.ndarray, n_strata: int) -> np.ndarray:
    sums = np.zeros((n_strata, rows.shape[1]))
    np.add.at(sums, stratum, rows)
    cnt = np.bincount(stratum, minlength=n_strata)[:, None]
    with quiet(), np.errstate(all="ignore"):
        return sums / cnt


def matched_distributions(m: Matched, reading: str) -> tuple[np.ndarray, np.ndarray]:
    """``(p_base, p_persona)``: the standardised baseline and the pooled compared persona answers."""
    b = m.base_soft if reading == "soft" else m.base_hard
    p = m.pers_soft if reading == "soft" else m.pers_hard
    w = np.bincount(m.pers_stratum, minlength=m.n_strata) / len(p)
    return w @ _stratum_means(b, m.base_stratum, m.n_strata), p.mean(axis=0)


def matched_jsd(m: Matched, reading: str) -> float:
    """Steerability JSD of the matched answers (module docstring); NaN when nothing was compared."""
    if len(m.pers_soft) == 0:
        return float("nan")
    return float(jsd(*matched_distributions(m, reading)))


def bootstrap_matched_jsd(m: Matched, weights: np.ndarray, reading: str) -> np.ndarray:
    """JSD per bootstrap sample of persona units (``weights (B, U)``); the baseline stratum means are
    held fixed and re-standardised to each sample's mix of strata."""
    b = m.base_soft if reading == "soft" else m.base_hard
    p = m.pers_soft if reading == "soft" else m.pers_hard
    n_u = len(m.units)
    sums = np.zeros((n_u, p.shape[1]))
    np.add.at(sums, m.pers_unit, p)
    counts = np.zeros((n_u, m.n_strata))
    np.add.at(counts, (m.pers_unit, m.pers_stratum), 1.0)
    base_means = _stratum_means(b, m.base_stratum, m.n_strata)
    with quiet(), np.errstate(all="ignore"):
        sc = weights @ counts  # (B, S)
        p_base = (sc / sc.sum(axis=1, keepdims=True)) @ base_means
        p_pers = normalise(weights @ sums)
        return jsd(p_base, p_pers)


def permutation_test(m: Matched, rng: np.random.Generator, n_perm: int) -> tuple[float, float, int]:
    """Within-stratum label permutation test of the soft and the hard JSD: ``(p_soft, p_hard, n_perm)``.

    Each stratum keeps its number of baseline answers; the standardising weights depend only on the
    persona counts per stratum, which permutations keep, so every permuted statistic is the same
    function of the relabelled answers as the observed one.
    """
    n_b, n_p = len(m.base_soft), len(m.pers_soft)
    if n_b == 0 or n_p == 0 or n_perm <= 0:
        return float("nan"), float("nan"), 0
    strata = np.concatenate([m.base_stratum, m.pers_stratum])
    n_s = m.n_strata
    size = np.bincount(strata, minlength=n_s)
    n_base = np.bincount(m.base_stratum, minlength=n_s)
    w = (size - n_base) / n_p
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    slot_stratum = np.repeat(np.arange(n_s), n_base)
    slots = start[slot_stratum] + np.concatenate([np.arange(c) for c in n_base])
    slot_weight = (w / np.maximum(n_base, 1))[slot_stratum]
    keys = strata[None, :] + rng.random((n_perm, len(strata)))
    chosen = np.argsort(keys, axis=1)[:, slots]  # (n_perm, n_base): rows relabelled "baseline"
    out = []
    for reading in ("soft", "hard"):
        r_all = np.concatenate([m.base_soft, m.pers_soft] if reading == "soft" else [m.base_hard, m.pers_hard])
        picked = r_all[chosen]  # (n_perm, n_base, K)
        p_base = np.einsum("s,psk->pk", slot_weight, picked)
        p_pers = (r_all.sum(axis=0)[None, :] - picked.sum(axis=1)) / n_p
        perm = jsd(p_base, p_pers)
        obs = matched_jsd(m, reading)
        out.append(float((1.0 + np.sum(perm >= obs - 1e-12)) / (1.0 + n_perm)))
    return out[0], out[1], int(n_perm)


def steerability_permutation(
    base_rows: pd.DataFrame, persona_rows: pd.DataFrame, k: int, rng: np.random.Generator, n_perm: int,
) -> tuple[float, float, int]:
    """Soft steerability JSD of the matched answers and its within-stratum permutation p-value:
    ``(jsd_soft, p_soft, n_perm)`` (NaN, NaN, 0 when no persona answer can be compared)."""
    m = match_strata(base_rows, persona_rows, k)
    if len(m.pers_soft) == 0 or len(m.base_soft) == 0:
        return float("nan"), float("nan"), 0
    obs = matched_jsd(m, "soft")
    p_soft, _, n = permutation_test(m, rng, n_perm)
    return obs, p_soft, n
