"""Ground truth of a synthetic model for a study: the value every metric estimates, under the model.

"True" means the population value for the study's design: the study's personas (their attributes, names,
contexts, repeats and option orders as planned) with the model's random effects (persona, drift, repeat)
integrated out by a large simulation: the persona set is replicated ``reps`` times with fresh draws
(at least ``n_target`` personas in all) and each metric's defining formula is applied to the pooled
population, written here independently of ``valuescope.analysis.metrics`` (own entropy, ranks, variances):

* ``inertia_soft`` / ``inertia_hard``: ``1 - H(p_d)/log2 K`` of the population's pooled soft (probabilities)
  or hard (argmax) answer distribution per (instrument, context, dimension); ``top1_share_hard``,
  ``top2_adjacent_hard`` of the hard one;
* ``steerability_jsd_soft`` / ``_hard``: base-2 JSD between the baseline's and the personas' pooled
  distributions compared like for like, as the measured metric: the personas' answers in (item, option order)
  strata the baseline answered, the baseline standardised to their mix of strata (before, the baseline pooled over
  its own strata: under ``balanced`` with 40 personas, not a multiple of the K orders, a persona-blind model's
  truth read 0.0009 where the metric's estimand is 0). The baseline is one respondent per replication, so a
  simulated null model's truth would carry a plug-in bias of its own of about 1e-4 bits (hard reading, 300
  replications): for a persona-blind model (``SyntheticSpec.persona_blind``) compared with a baseline in the same
  context (or with no drift, when the baseline is asked without the conversation) the truth is therefore 0 by
  definition, not simulated: its personas answer from the baseline's distribution in every stratum;
* ``rank_order``: Spearman rho over all personas between two contexts' scores, per repeat, averaged over
  repeats, per value and context pair; then over pairs (``all``) and values (dimension "");
* ``ipsative``: per persona Spearman rho over values between two contexts, averaged over repeats, pairs and
  personas;
* ``icc``, ``var_repeat``, ``var_between``: ``sigma_b^2 / (sigma_b^2 + sigma_w^2)`` from the population's
  within-persona (over repeats) and between-persona score variances;
* the effects grid (Hedges' g estimates it): ``(mean_level - mean_ref) / pooled within-group SD`` of the
  persona scores (``raw_score``, mean over repeats) for the grid's contrasts (``metrics.effects.attribute_design``:
  each level vs the attribute's reference level, the lowest level of a numeric one, the other level of a binary
  attribute, or the rest) (``effects_truth``).

Score levels follow the metrics (``basic`` where the instrument has it, else ``dimension``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from valuescope.core.types import Instrument
from valuescope.known_truth.simulate import Simulation, fast_scores, score_index
from valuescope.study.synthetic_spec import SyntheticSpec

TRUTH_COLUMNS = ["instrument", "metric", "dimension", "context_a", "context_b", "truth"]
EFFECT_TRUTH_COLUMNS = ["instrument", "context", "attribute", "level", "reference", "dimension", "d_true", "n_level",
                        "n_rest"]


@dataclass
class Truth:
    metrics: pd.DataFrame  # TRUTH_COLUMNS
    effects: pd.DataFrame  # EFFECT_TRUTH_COLUMNS
    reps: int
    n_personas: int


def entropy(p: np.ndarray) -> np.ndarray:
    p = p / p.sum(axis=-1, keepdims=True)
    with np.errstate(all="ignore"):
        return -np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)


def jsd(p: np.ndarray, q: np.ndarray) -> float:
    p, q = p / p.sum(), q / q.sum()
    return float(entropy((p + q) / 2) - (entropy(p) + entropy(q)) / 2)


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (NaN for a constant row)."""
    da = a - a.mean(axis=-1, keepdims=True)
    db = b - b.mean(axis=-1, keepdims=True)
    with np.errstate(all="ignore"):
        return (da * db).sum(-1) / np.sqrt((da * da).sum(-1) * (db * db).sum(-1))


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _row_corr(rankdata(a, axis=-1), rankdata(b, axis=-1))


def truth_tables(sim: Simulation, spec: SyntheticSpec, *, n_target: int = 4000, max_reps: int = 400) -> Truth:
    """Truth of every metric for the simulated study (module docstring)."""
    st = sim.static
    persona_units = st.loc[st["condition"] == "persona", "persona_id"].astype(str) + "|" + st.loc[
        st["condition"] == "persona", "set_seed"].astype(str)
    n_pers = max(1, persona_units.nunique())
    reps = int(min(max_reps, max(2, int(np.ceil(n_target / n_pers)))))
    scored = st["dimension"].notna().to_numpy()
    dist_keys = (st["condition"].astype(str) + "\x1f" + st["instrument"].astype(str) + "\x1f"
                 + st["context"].astype(str) + "\x1f" + st["dimension"].astype(str))
    dcode, dkeys = pd.factorize(dist_keys.where(scored, ""), sort=False)
    kmax = sim.design.kmax
    soft = np.zeros((len(dkeys), kmax))
    hard = np.zeros((len(dkeys), kmax))
    index = score_index(sim)
    # the personas' sums per (item, option order) stratum too: steerability compares like for like
    scode, skeys = pd.factorize((dist_keys + "\x1f" + _stratum(st))[scored], sort=False)
    s_soft = np.zeros((len(skeys), kmax))
    s_hard = np.zeros((len(skeys), kmax))
    raws, scores = [], []
    for r in range(reps):
        probs = sim.probs(spec, salt=f"truth:{r}")
        p0 = np.nan_to_num(probs)
        np.add.at(soft, dcode[scored], p0[scored])
        arg = np.argmax(np.where(np.isnan(probs), -1, probs), axis=1)
        np.add.at(hard, (dcode[scored], arg[scored]), 1.0)
        np.add.at(s_soft, scode, p0[scored])
        np.add.at(s_hard, (scode, arg[scored]), 1.0)
        raw, score = fast_scores(index, sim.expected(probs))
        raws.append(raw)
        scores.append(score)
    strata = _group_strata(list(skeys), s_soft, s_hard)
    rows = _distribution_rows(list(dkeys), soft, hard, sim, strata["baseline"], strata["persona"], spec)
    effects: list[dict[str, Any]] = []
    for inst_id, inst in sim.instruments.items():
        rows += _score_rows(inst_id, inst, index, np.stack(raws), np.stack(scores), effects)
    return Truth(pd.DataFrame(rows, columns=TRUTH_COLUMNS), pd.DataFrame(effects, columns=EFFECT_TRUTH_COLUMNS),
                 reps, reps * n_pers)


def _stratum(st: pd.DataFrame) -> pd.Series:
    return st["item_id"].astype(str) + "|" + st["option_order"].astype(str)


def _group_strata(keys: list[str], soft: np.ndarray, hard: np.ndarray) -> dict[str, dict[tuple[str, str, str], Any]]:
    """Per condition, ``{(instrument, context, dimension): (strata, soft sums (S, K), hard sums (S, K))}`` from
    per-stratum rows keyed ``condition, instrument, context, dimension, stratum``."""
    out: dict[str, dict[tuple[str, str, str], Any]] = {"baseline": {}, "persona": {}}
    for j, lab in enumerate(keys):
        cond, inst, ctx, dim, strat = lab.split("\x1f")
        got = out.setdefault(cond, {}).setdefault((inst, ctx, dim), ([], [], []))
        got[0].append(strat)
        got[1].append(soft[j])
        got[2].append(hard[j])
    return {cond: {key: (strata, np.array(sf), np.array(hd)) for key, (strata, sf, hd) in groups.items()}
            for cond, groups in out.items()}


def _matched(base: tuple[list[str], np.ndarray, np.ndarray], pers: tuple[list[str], np.ndarray, np.ndarray],
             k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Like for like, as the measured metric (``metrics.steerability``): the personas' answers in the (item, option
    order) strata the baseline answered, pooled, and the baseline standardised to their mix, ``sum_s w_s
    mean_base_s`` (``w_s``: the share of those persona answers in stratum s): ``(q_soft, q_hard, p_soft, p_hard)``;
    None when no stratum is shared."""
    b_strata, b_soft, b_hard = base
    p_strata, p_soft, p_hard = pers
    pos = {st: i for i, st in enumerate(b_strata)}
    keep = [j for j, st in enumerate(p_strata) if st in pos]
    if not keep:
        return None
    bi = [pos[p_strata[j]] for j in keep]
    n = p_hard[keep, :k].sum(axis=1)  # persona answers per stratum (x replications)
    w = n / n.sum()
    tot_b = b_hard[bi, :k].sum(axis=1, keepdims=True)
    q_soft = w @ (b_soft[bi, :k] / tot_b)
    q_hard = w @ (b_hard[bi, :k] / tot_b)
    return q_soft, q_hard, p_soft[keep, :k].sum(axis=0), p_hard[keep, :k].sum(axis=0)


def _distribution_rows(keys: list[str], soft: np.ndarray, hard: np.ndarray, sim: Simulation,
                       base_strata: dict[tuple[str, str, str], Any],
                       pers_strata: dict[tuple[str, str, str], Any], spec: SyntheticSpec) -> list[tuple]:
    k_of = sim.static.assign(_k=sim.design.k).groupby(["instrument", "dimension"])["_k"].first().to_dict()
    parts = [k.split("\x1f") if k else ["", "", "", ""] for k in keys]  # "": catch items
    base = {(i, c, d): j for j, (cond, i, c, d) in enumerate(parts) if cond == "baseline"}
    rows = []
    for j, (cond, inst, ctx, dim) in enumerate(parts):
        if cond != "persona":
            continue
        k = int(k_of[(inst, dim)])
        ps, ph = soft[j, :k] / soft[j, :k].sum(), hard[j, :k] / hard[j, :k].sum()
        rows += [(inst, "inertia_soft", dim, ctx, "", float(1 - entropy(ps) / np.log2(k))),
                 (inst, "inertia_hard", dim, ctx, "", float(1 - entropy(ph) / np.log2(k))),
                 (inst, "top1_share_hard", dim, ctx, "", float(ph.max())),
                 (inst, "top2_adjacent_hard", dim, ctx, "", float((ph[1:] + ph[:-1]).max()))]
        bctx = ctx if (inst, ctx, dim) in base else ("none" if (inst, "none", dim) in base else None)
        got = (_matched(base_strata[(inst, bctx, dim)], pers_strata[(inst, ctx, dim)], k)
               if bctx is not None and (inst, bctx, dim) in base_strata and (inst, ctx, dim) in pers_strata
               else None)
        if got is not None:
            q_soft, q_hard, p_soft, p_hard = got
            if spec.persona_blind and (bctx == ctx or spec.drift_sd == 0):  # the same distribution: 0 exactly
                rows += [(inst, "steerability_jsd_soft", dim, ctx, bctx, 0.0),
                         (inst, "steerability_jsd_hard", dim, ctx, bctx, 0.0)]
            else:
                rows += [(inst, "steerability_jsd_soft", dim, ctx, bctx, jsd(q_soft, p_soft)),
                         (inst, "steerability_jsd_hard", dim, ctx, bctx, jsd(q_hard, p_hard))]
    return rows


def _level(inst: Instrument) -> str:
    return "basic" if "basic" in (inst.scoring.get("levels", {}) or {}) else "dimension"


def _score_rows(inst_id: str, inst: Instrument, index: Any, raws: np.ndarray, scores: np.ndarray,
                effects: list[dict[str, Any]]) -> list[tuple]:
    """Stability, variance and effect-size truths of one instrument from (reps, respondents, groups) arrays."""
    level = _level(inst)
    g = index.groups
    gsel = np.where((g["instrument"] == inst_id) & (g["level"] == level))[0]
    values = g["dimension"].to_numpy()[gsel].tolist()
    resp = index.respondents
    rsel = np.where((resp["instrument"] == inst_id) & (resp["condition"] == "persona"))[0]
    if not len(gsel) or not len(rsel):
        return []
    sub = resp.iloc[rsel].reset_index(drop=True)
    units = sorted(sub["unit"].unique())
    ctxs = sorted(sub["context"].astype(str).unique())
    repeats = sorted(sub["repeat"].unique())
    R = raws.shape[0]
    # S[rep-of-study, context, unit x replication, value]
    S = np.full((len(repeats), len(ctxs), len(units) * R, len(values)), np.nan)
    raw_arr = np.full_like(S, np.nan)
    ui = pd.Index(units).get_indexer(sub["unit"])
    ci = pd.Index(ctxs).get_indexer(sub["context"].astype(str))
    ri = pd.Index(repeats).get_indexer(sub["repeat"])
    for r in range(R):
        S[ri, ci, ui + r * len(units)] = scores[r][np.ix_(rsel, gsel)]
        raw_arr[ri, ci, ui + r * len(units)] = raws[r][np.ix_(rsel, gsel)]
    rows: list[tuple] = []
    if len(ctxs) >= 2:
        pairs = list(combinations(range(len(ctxs)), 2))
        ro = np.array([[np.nanmean([spearman(S[t, a, :, v], S[t, b, :, v]) for t in range(len(repeats))])
                        for v in range(len(values))] for a, b in pairs])  # (P, V)
        ips = np.array([np.nanmean(spearman(S[:, a], S[:, b]), axis=0) for a, b in pairs])  # (P, U)
        for i, (a, b) in enumerate(pairs):
            for v, name in enumerate(values):
                rows.append((inst_id, "rank_order", name, ctxs[a], ctxs[b], float(ro[i, v])))
            rows.append((inst_id, "rank_order", "", ctxs[a], ctxs[b], float(np.nanmean(ro[i]))))
            rows.append((inst_id, "ipsative", "", ctxs[a], ctxs[b], float(np.nanmean(ips[i]))))
        for v, name in enumerate(values):
            rows.append((inst_id, "rank_order", name, "all", "all", float(np.nanmean(ro[:, v]))))
        rows.append((inst_id, "rank_order", "", "all", "all", float(np.nanmean(ro))))
        rows.append((inst_id, "ipsative", "", "all", "all", float(np.nanmean(np.nanmean(ips, axis=0)))))
    for c, ctx in enumerate(ctxs):
        for v, name in enumerate(values):
            x = S[:, c, :, v]  # (repeats, units)
            m = x.shape[0]
            var_w = float(np.nanmean(np.nanvar(x, axis=0, ddof=1))) if m >= 2 else np.nan
            var_means = float(np.nanvar(np.nanmean(x, axis=0), ddof=1))
            sb = var_means - (var_w / m if m >= 2 else 0.0)
            rows.append((inst_id, "var_repeat", name, ctx, "", var_w))
            rows.append((inst_id, "var_between", name, ctx, "", var_means))
            icc = sb / (sb + var_w) if m >= 2 and sb + var_w > 0 else np.nan
            rows.append((inst_id, "icc", name, ctx, "", float(icc)))
    _effect_truth(inst_id, sub, units, ctxs, values, raw_arr, R, effects)
    return rows


def _effect_truth(inst_id: str, sub: pd.DataFrame, units: list[str], ctxs: list[str], values: list[str],
                  raw_arr: np.ndarray, R: int, effects: list[dict[str, Any]]) -> None:
    from valuescope.analysis.metrics.effects import REFERENCE_LEVELS, attribute_design

    per = np.nanmean(raw_arr, axis=0)  # (contexts, units x R, values): mean over repeats
    first = sub.drop_duplicates("unit").set_index("unit").reindex(units)
    for attr in sorted(c for c in sub.columns if c.startswith("attr_")):
        # the grid's contrasts: levels vs the reference level, the lowest (numeric, binned), the other level, the rest
        design = attribute_design(attr[5:], first[attr], REFERENCE_LEVELS)
        lab = design.labels
        labels = np.tile(lab.to_numpy(dtype=object), R)
        known = np.tile(lab.notna().to_numpy(), R)
        for lev, ref in design.contrasts:
            inl = labels == lev
            rest = (labels == ref) if ref is not None else known & ~inl
            for c, ctx in enumerate(ctxs):
                for v, name in enumerate(values):
                    x, y = per[c, inl, v], per[c, rest, v]
                    if len(x) < 2 or len(y) < 2:
                        d = np.nan
                    else:
                        sp = np.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1))
                                     / (len(x) + len(y) - 2))
                        d = float((x.mean() - y.mean()) / sp) if sp > 0 else np.nan
                    effects.append({"instrument": inst_id, "context": ctx, "attribute": attr[5:], "level": lev,
                                    "reference": "rest" if ref is None else ref, "dimension": name, "d_true": d,
                                    "n_level": int(inl.sum()) // R, "n_rest": int(rest.sum()) // R})


def with_truth(metrics: pd.DataFrame, truth: Truth) -> pd.DataFrame:
    """The metrics table with a ``truth`` column (NaN where the model defines no truth for a row)."""
    keys = ["instrument", "metric", "dimension", "context_a", "context_b"]
    t = truth.metrics.drop_duplicates(keys)
    return metrics.merge(t, on=keys, how="left")


def run_truth(tables: Any, *, n_target: int = 4000) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """For a stored run of a synthetic model (``analysis.RunTables``): its metrics table with a ``truth``
    column, and the d grid's truth (``EFFECT_TRUTH_COLUMNS``). None for any other backend."""
    from valuescope.known_truth.simulate import prepare
    study = tables.info.spec()
    model = study.models[0]
    if model.backend != "synthetic":
        return None
    from valuescope.study.synthetic_norms import calibrated
    from valuescope.study.synthetic_spec import resolve_synthetic

    sim = prepare(study, model)
    spec = calibrated(resolve_synthetic(model.path, model.synthetic), sim.instruments)
    truth = truth_tables(sim, spec, n_target=n_target)
    return with_truth(tables.metrics, truth), truth.effects
