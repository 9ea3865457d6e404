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
* the unit of the test and of the interval is the *respondent*, not the answer: one baseline conversation is
  one respondent, whose answers share its drift. The baseline is asked once per context, so its spread over
  conversations is borrowed from the personas under an exchangeability assumption (:func:`baseline_spread`);
  the test (:func:`respondent_test`) resamples whole personas and redraws the baseline, all deviations centred
  within (item, order) strata, so the balanced design's strata are kept (docs/metrics.md, "Steerability's unit");
* both readings: *soft* (each answer's option distribution) and *hard* (one-hot on the chosen option,
  the paper's parsed answers); the same resamples serve both.

A table without an ``option_order`` column is treated as one order per item (noted by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import bootstrap_index, bootstrap_weights, quiet
from valuescope.analysis.metrics.answer_rows import AnswerRows, as_rows
from valuescope.analysis.metrics.inertia import jsd, normalise


@dataclass
class Matched:
    """The compared answers of one (context, dimension): per-row soft/hard distributions, stratum codes,
    for baseline rows the query they repeat under another option order (``answer_rows.query_codes``), and for persona
    rows the persona unit index; plus what was left out."""

    base_soft: np.ndarray
    base_hard: np.ndarray
    base_stratum: np.ndarray
    base_cluster: np.ndarray
    pers_soft: np.ndarray
    pers_hard: np.ndarray
    pers_stratum: np.ndarray
    pers_unit: np.ndarray
    units: list[str]
    n_strata: int
    dropped_answers: int
    dropped_personas: int
    total_personas: int


def match_strata(base_rows: pd.DataFrame | AnswerRows, persona_rows: pd.DataFrame | AnswerRows, k: int) -> Matched:
    """Keep the usable persona answers whose (item, option order) the baseline also answered, and the
    baseline answers of those strata."""
    base_rows, persona_rows = as_rows(base_rows), as_rows(persona_rows)
    bs, bh, bok = base_rows.distributions(k)
    ps, ph, pok = persona_rows.distributions(k)
    b_str = base_rows.stratum[bok]
    b_query = base_rows.query[bok]
    p_str = persona_rows.stratum[pok]
    p_units_all = persona_rows.unit[pok]
    shared = np.intersect1d(np.unique(b_str), np.unique(p_str))
    keep_p = np.isin(p_str, shared)
    keep_b = np.isin(b_str, shared)
    codes = {s: i for i, s in enumerate(shared)}
    units = sorted(set(p_units_all[keep_p]))
    all_units = set(p_units_all)
    upos = {u: i for i, u in enumerate(units)}
    return Matched(
        base_soft=bs[bok][keep_b], base_hard=bh[bok][keep_b],
        base_stratum=np.array([codes[s] for s in b_str[keep_b]], dtype=int), base_cluster=b_query[keep_b],
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


def _deviations(x: np.ndarray, stratum: np.ndarray, unit: np.ndarray, n_units: int,
                n_strata: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Each respondent's deviation from the (item, order) stratum means of its group: ``(G (U, K), n_r (U,),
    S (K, K), df)``. ``G[r]`` is the mean over r's answers of ``(x - mean of its stratum) * sqrt(n_s / (n_s -
    1))``: the scaling gives the deviations the variance of a respondent's own (centring on a mean that holds
    the answer shrinks it by ``(n_s - 1) / n_s``; leave-one-out means would inflate it by ``n_s / (n_s - 1)``);
    strata with one answer carry no information and count 0. ``S`` is the answer-level covariance within a
    respondent (around its own ``G``), ``df`` its degrees of freedom."""
    k = x.shape[1]
    mu = _stratum_means(x, stratum, n_strata)
    n_s = np.bincount(stratum, minlength=n_strata)
    scale = np.sqrt(np.where(n_s > 1, n_s / np.maximum(n_s - 1, 1), 0.0))[stratum]
    use = n_s[stratum] > 1
    resid = np.where(use[:, None], (x - mu[stratum]) * scale[:, None], 0.0)
    n_r = np.bincount(unit, weights=use.astype(float), minlength=n_units)
    sums = np.zeros((n_units, k))
    np.add.at(sums, unit, resid)
    with np.errstate(all="ignore"):
        g = np.where(n_r[:, None] > 0, sums / np.maximum(n_r, 1)[:, None], np.nan)
    e = np.where(use[:, None], resid - np.nan_to_num(g)[unit], 0.0)
    df = float(np.sum(np.maximum(n_r - 1, 0)))
    s = (e.T @ e) / df if df > 0 else np.zeros((k, k))
    return g, n_r, s, df


def _group_deviations(rows: pd.DataFrame | AnswerRows, k: int) -> dict[str, dict[str, tuple[np.ndarray, float]]]:
    """Per reading, per persona unit of one context's rows: its deviation ``G`` and number of answers
    (:func:`_deviations`)."""
    rows = as_rows(rows)
    soft, hard, ok = rows.distributions(k)
    if not ok.any():
        return {"soft": {}, "hard": {}}
    s_codes, _ = pd.factorize(pd.Series(rows.stratum[ok]), sort=False)
    u_codes, u_names = pd.factorize(pd.Series(rows.unit[ok]), sort=False)
    out = {}
    for reading, x in (("soft", soft[ok]), ("hard", hard[ok])):
        g, n_r, _, _ = _deviations(x, s_codes, u_codes, len(u_names), int(s_codes.max()) + 1)
        out[reading] = {str(u): (g[i], float(n_r[i])) for i, u in enumerate(u_names) if n_r[i] > 0}
    return out


class ContextRows:
    """One context's persona rows of a dimension, with their deviations (:func:`_group_deviations`) computed once
    per K: the spread of every other context of the dimension reads them (recomputed per reader and reading, the
    metrics of a run with C contexts cost O(C^2) of it: 80% of a 20-context run's metrics time)."""

    def __init__(self, rows: pd.DataFrame | AnswerRows) -> None:
        self.rows = rows
        self._deviations: dict[int, dict[str, dict[str, tuple[np.ndarray, float]]]] = {}

    def deviations(self, k: int, reading: str) -> dict[str, tuple[np.ndarray, float]]:
        if k not in self._deviations:
            self._deviations[k] = _group_deviations(self.rows, k)
        return self._deviations[k][reading]


@dataclass
class BaselineSpread:
    """How the baseline's standardised distribution moves between draws of it, borrowed from the personas
    (:func:`baseline_spread`): deviations ``dev (n, K)`` to draw from (``contexts``: half-differences of one
    persona's deviations in two contexts, either sign; ``personas``: whole persona deviations), or a covariance
    ``cov (K, K)`` for normal draws (``answers``: no conversation, only the answers' own noise)."""

    source: str  # "contexts" | "personas" | "answers"
    dev: np.ndarray | None = None
    cov: np.ndarray | None = None

    def draw(self, rng: np.random.Generator, n: int, k: int) -> np.ndarray:
        """``n`` draws of the baseline's deviation, ``(n, K)``."""
        if self.dev is not None and len(self.dev):
            d = self.dev[rng.integers(0, len(self.dev), size=n)]
            return d * rng.choice([-1.0, 1.0], size=(n, 1)) if self.source == "contexts" else d
        if self.cov is not None:
            val, vec = np.linalg.eigh(self.cov)
            return rng.standard_normal((n, k)) @ (vec * np.sqrt(np.clip(val, 0.0, None))).T
        return np.zeros((n, k))


def baseline_spread(m: Matched, reading: str, others: list[ContextRows], k: int,
                    conversation: bool) -> BaselineSpread:
    """The exchangeability assumption (docs/metrics.md, "Steerability's unit"): the baseline is one respondent.
    With a conversation (``conversation``), the conversation moves the baseline's answers as much as it moves a
    persona's: the deviations are the personas' half-differences between two contexts (``(G_c - G_c') / sqrt 2``
    per persona and context pair: persona effects cancel), or, when the personas answered in this context only,
    their whole deviations (persona effects included: conservative). Without one (context ``none``) nothing
    drifts: the baseline varies only by its answers' own noise, the personas' within-respondent answer covariance
    ``S`` scaled to the baseline's answers: ``cov = sum_q (sum_{a in q} w_s(a) / n_b,s(a))^2 * S`` over the
    baseline's queries ``q`` (``answer_rows.QUERY_COLUMNS``: its answers to one item under several option orders are one
    query asked again, whose noise they share; the synthetic model keys its query noise so). Counting them as
    independent (``sum_s w_s^2 / n_b,s``) understated the variance K-fold under ``balanced`` (a persona-blind model
    with a 70% letter habit, MFQ-30, 30 personas: p = 0.0025 for Authority on 8 of 8 persona seeds; false-positive
    rate 0.455 at 0.05 over 40 model seeds). Full correlation is the upper bound (conservative where an order adds
    noise of its own). Measured on that model over 120 model and persona seeds: 0.052 at 0.05 (600 p-values; 0.005
    at 0.01), tested (slow) in ``tests/test_design_nulls.py``."""
    x = m.pers_soft if reading == "soft" else m.pers_hard
    n_u = len(m.units)
    g, n_r, s_ans, _ = _deviations(x, m.pers_stratum, m.pers_unit, n_u, m.n_strata)
    ok = n_r > 0
    if not conversation:
        w = np.bincount(m.pers_stratum, minlength=m.n_strata) / max(len(x), 1)
        n_b = np.bincount(m.base_stratum, minlength=m.n_strata)
        a = w[m.base_stratum] / n_b[m.base_stratum]  # each baseline answer's weight in p_base
        own = float(np.sum(np.bincount(m.base_cluster, weights=a) ** 2))
        return BaselineSpread("answers", cov=own * s_ans)
    diffs = []
    here = dict(zip(m.units, range(n_u), strict=True))
    for rows in others:
        for u, (g_other, _) in rows.deviations(k, reading).items():
            i = here.get(u)
            if i is not None and ok[i]:
                diffs.append(g[i] - g_other)
    if len(diffs) >= 2:
        return BaselineSpread("contexts", dev=np.asarray(diffs) / np.sqrt(2.0))
    return BaselineSpread("personas", dev=g[ok])


def spread_variance(spread: BaselineSpread) -> np.ndarray | None:
    """Per option, the variance of the baseline's standardised distribution over draws of it (the diagonal of
    the borrowed spread's covariance); None when the spread is empty."""
    if spread.dev is not None and len(spread.dev):
        return np.mean(spread.dev ** 2, axis=0)  # contexts: signs flipped at random (mean 0); personas: centred
    if spread.cov is not None:
        return np.clip(np.diag(spread.cov), 0.0, None)
    return None


def baseline_bias(m: Matched, reading: str, spread: BaselineSpread) -> float:
    """The plug-in JSD's upward bias from the baseline's own noise (bits), which the jackknife over personas does
    not see: to second order ``sum_k var(q_k) / (8 ln 2 m_k)``, half the curvature in the baseline's distribution
    ``q`` of the JSD's quadratic (chi-square) form ``sum_k (q_k - p_k)^2 / (8 m_k)`` (nats; ``m = (q + p) / 2``
    observed, exact at the null where ``m = p``) times the variance of ``q_k`` over draws of the baseline
    (:func:`spread_variance`); the personas' own noise (``p``) is the jackknife's part. Measured against the
    curvature at ``p`` alone: it left +0.08 of bias in the answers reading where the baseline is more concentrated
    than the personas (planted persona effects with drift: coverage 0.885; with ``m``: 0.975, bias +0.02, 200
    cells). An option nobody chose has no borrowed variance and adds 0."""
    var = spread_variance(spread)
    if var is None or len(m.pers_soft) == 0:
        return 0.0
    q, p = matched_distributions(m, reading)
    mid = (q + p) / 2.0
    with np.errstate(all="ignore"):
        terms = np.where(mid > 0, var / np.where(mid > 0, mid, 1.0), 0.0)
    return float(np.sum(terms) / (8.0 * np.log(2.0)))


def _clip_normalise(p: np.ndarray) -> np.ndarray:
    return normalise(np.clip(p, 0.0, None))


def respondent_replicates(m: Matched, weights: np.ndarray, d: np.ndarray, reading: str) -> np.ndarray:
    """Respondent-level bootstrap of the matched JSD for persona resamples ``weights (B, U)`` (whole personas)
    and baseline deviations ``d (B, K)`` (:meth:`BaselineSpread.draw`): ``JSD(q_b + d_b, p_b)``, where ``p_b``
    is the resample's pooled distribution and ``q_b`` the baseline re-standardised to its mix of (item, order)
    strata (negative entries clipped, renormalised)."""
    b = m.base_soft if reading == "soft" else m.base_hard
    x = m.pers_soft if reading == "soft" else m.pers_hard
    n_u = len(m.units)
    sums = np.zeros((n_u, x.shape[1]))
    np.add.at(sums, m.pers_unit, x)
    counts = np.zeros((n_u, m.n_strata))
    np.add.at(counts, (m.pers_unit, m.pers_stratum), 1.0)
    base_means = _stratum_means(b, m.base_stratum, m.n_strata)
    with quiet(), np.errstate(all="ignore"):
        sc = weights @ counts  # (B, S)
        q_b = (sc / sc.sum(axis=1, keepdims=True)) @ base_means
        return jsd(_clip_normalise(q_b + d), normalise(weights @ sums))


def pearson_distance(q: np.ndarray, p: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``sum_k (q_k - p_k)^2 * weight_k`` along the last axis (with ``weight = 1 / ((q + p) / 2)`` the
    chi-square distance, twice ``8 ln 2`` times the JSD to second order)."""
    return np.sum((q - p) ** 2 * weight, axis=-1)


def respondent_test(m: Matched, rng: np.random.Generator, n_rep: int,
                    spreads: dict[str, BaselineSpread]) -> dict[str, float]:
    """Respondent-level test of both readings: ``{reading: p}`` (docs/metrics.md, "Steerability's unit").

    Statistic: the chi-square distance between the standardised baseline ``q`` and the personas' ``p``
    (weights ``1 / m``, ``m = (q + p) / 2`` observed), the JSD's quadratic approximation: a quadratic form of
    the linear difference ``q - p`` needs no clipping onto the simplex, so its null is unbiased. Null draws:
    ``d_b - Gbar_b``, where ``d_b`` is a draw of the baseline's deviation (``spreads[reading]``,
    :func:`baseline_spread`) and ``Gbar_b`` the answer-weighted mean deviation from the (item, order) strata
    (leave-one-out means) of a resample of whole personas, standing for the personas' sampling. Both are centred
    within strata, so the design's fixed mix of orders adds no variance. A persona answers its items under one
    order and the baseline under all, so a borrowed persona deviation carries more answer noise than the
    baseline's own: conservative (measured: docs/metrics.md)."""
    n_u = len(m.units)
    if len(m.base_soft) == 0 or n_u < 2 or n_rep <= 0:
        return {r: float("nan") for r in ("soft", "hard")}
    weights = bootstrap_weights(bootstrap_index(rng, n_u, n_rep), n_u)
    out = {}
    for reading in ("soft", "hard"):
        x = m.pers_soft if reading == "soft" else m.pers_hard
        g, n_r, _, _ = _deviations(x, m.pers_stratum, m.pers_unit, n_u, m.n_strata)
        ok = np.where(n_r > 0)[0]
        if len(ok) < 2:
            out[reading] = float("nan")
            continue
        q, p = matched_distributions(m, reading)
        mid = (q + p) / 2.0
        weight = np.where(mid > 0, 1.0 / np.where(mid > 0, mid, 1.0), 0.0)
        obs = pearson_distance(q, p, weight)
        g0 = np.nan_to_num(g)
        wn = weights * n_r[None, :]
        with np.errstate(all="ignore"):
            gbar = (wn @ g0) / wn.sum(axis=1, keepdims=True)
        null = pearson_distance(spreads[reading].draw(rng, n_rep, x.shape[1]) - gbar, 0.0, weight)
        out[reading] = float((1.0 + np.sum(null >= obs * (1 - 1e-9) - 1e-15)) / (1.0 + n_rep))
    return out


def steerability_test(
    base_rows: pd.DataFrame, persona_rows: pd.DataFrame, k: int, rng: np.random.Generator, n_rep: int,
    conversation: bool = False,
) -> tuple[float, float, int]:
    """Soft steerability JSD of the matched answers and its respondent-level p-value: ``(jsd_soft, p_soft,
    n_rep)`` (p NaN and 0 replicates when no persona answer can be compared or fewer than two personas are).
    ``conversation``: the baseline answered after a conversation (its spread borrowed from whole persona
    deviations), else with none (its answers' own noise)."""
    m = match_strata(base_rows, persona_rows, k)
    if len(m.pers_soft) == 0 or len(m.base_soft) == 0 or len(m.units) < 2 or n_rep <= 0:
        return float(matched_jsd(m, "soft")), float("nan"), 0
    spreads = {r: baseline_spread(m, r, [], k, conversation) for r in ("soft", "hard")}
    return matched_jsd(m, "soft"), respondent_test(m, rng, n_rep, spreads)["soft"], int(n_rep)
