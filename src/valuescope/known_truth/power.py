"""Power analysis before a study is paid for: the study simulated with a synthetic model that plants the
effects a researcher expects, at several population sizes (``valuescope power``).

Procedure (:func:`power_analysis`):

1. A pool of WVS personas (``pool_factor`` x the largest size, so that subsets differ in composition; the
   study's WVS sources with more personas per set) is planned once with the study's design: contexts,
   repeats, option order, and the instruments that hold the effects' dimensions (all with ``all_instruments``).
2. Each effect ``attribute=level:dimension=d`` is a Cohen's d on the measured persona score
   (``raw_score`` of that dimension or score group), the level against its comparison group as the effects
   grid has it (the reference level, e.g. religion: not religious; the other level of a binary attribute;
   else all the rest). The latent shift that gives that d under the model is found by secant iteration on
   the model's true d (:mod:`valuescope.known_truth.truth`'s definition, on ``calib_personas`` personas: the pool with
   fresh draws); ``latent=True`` plants the numbers as latent shifts instead.
3. ``reps`` replications: fresh model draws for the whole pool (``salt``), then for every size N a random
   subset of N pool personas (without replacement, seeded). Per replication and size: the planned
   contrast's Cohen's d and the effects grid's two-sided Student t-test (detected = ``p < alpha`` with the
   planted sign),
   and the headline metrics (inertia, steerability, rank-order, ipsative, ICC, per dimension and context).
4. Reported per size: power (share of replications detecting the effect), and per metric the mean estimate,
   its SD over replications and its 95% range (2.5th to 97.5th percentile: the width a 95% CI has).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from valuescope.core.levels import ALPHA
from valuescope.known_truth.simulate import Simulation, fast_scores, prepare, score_index
from valuescope.known_truth.truth import entropy, jsd, spearman
from valuescope.study.spec import SpecError, Study, WVSSource
from valuescope.study.synthetic_spec import SyntheticSpec, check_spec_dimensions, with_effects

POWER_COLUMNS = ["n_personas", "kind", "metric", "instrument", "context", "dimension", "target", "latent", "power",
                 "mean", "sd", "ci_width", "reps"]


@dataclass
class Effect:
    level: str  # "attribute=level"
    dimension: str  # as given: "Tradition" or "pvq_rr/Tradition"
    target: float  # Cohen's d (or latent shift with latent=True)
    instrument: str = ""
    group: int = -1  # column of the score index
    latent: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.level}:{self.dimension}"


def effect_instruments(study: Study, effects: Sequence[tuple[str, str, float]]) -> Study:
    """The study restricted to the instruments holding the effects' dimensions (planning the others only
    adds time)."""
    from valuescope.design.instruments import load_instrument

    keep = []
    for ref in study.instruments:
        inst = load_instrument(name=ref.name, path=ref.path)
        groups = {g for lv in (inst.scoring.get("levels", {}) or {}).values() for g in lv}
        for _, dim, _ in effects:
            inst_id, sep, name = dim.rpartition("/")
            if (not sep or inst_id == inst.id) and (name in inst.dimensions or name in groups):
                keep.append(ref)
                break
    if not keep:
        names = ", ".join(sorted({d for _, d, _ in effects}))
        raise SpecError(f"--effect: no instrument of the study has the dimension(s) {names}")
    return study.model_copy(update={"instruments": keep})


def pool_study(study: Study, size: int) -> Study:
    """The study with its WVS sources grown so that they hold ``size`` personas in all."""
    sources = [s for s in study.population.sources if isinstance(s, WVSSource)]
    if not sources:
        raise SpecError("power: the study has no WVS persona source (power varies the number of WVS personas)")
    n_sets = sum(len(s.seeds) for s in sources)
    per_set = max(2, math.ceil(size / n_sets))
    new = [s.model_copy(update={"n": per_set}) if isinstance(s, WVSSource) else s for s in study.population.sources]
    return study.model_copy(update={"population": study.population.model_copy(update={"sources": new}),
                                    "models": study.models[:1]})


class _Pool:
    """A planned pool with its static indices."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.index = score_index(sim)
        resp = self.index.respondents
        persona = resp["condition"] == "persona"
        self.units = sorted(resp.loc[persona, "unit"].unique())
        self.resp_unit = np.where(persona, pd.Index(self.units).get_indexer(resp["unit"]), -1)
        st = sim.static
        from valuescope.core.units import unit_ids

        self.q_unit = np.where(st["condition"] == "persona", pd.Index(self.units).get_indexer(unit_ids(st)), -1)
        scored = st["dimension"].notna().to_numpy()
        keys = st["instrument"].astype(str) + "\x1f" + st["context"].astype(str) + "\x1f" + st["dimension"].astype(str)
        self.cell, cells = pd.factorize(keys.where(scored, None), sort=True)  # catch items: -1
        self.cells = [c.split("\x1f") for c in cells]
        self.scored = scored & (self.cell >= 0)

    def sums(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per (persona, cell) soft sums and hard counts (P, C, K); the baseline's (C, K)."""
        k = probs.shape[1]
        P, C = len(self.units), len(self.cells)
        p0 = np.nan_to_num(probs)
        hard = np.zeros_like(p0)
        hard[np.arange(len(p0)), np.argmax(np.where(np.isnan(probs), -1, probs), axis=1)] = 1.0
        pers = self.scored & (self.q_unit >= 0)
        base = self.scored & (self.q_unit < 0)
        s = np.zeros((P, C, k))
        h = np.zeros((P, C, k))
        np.add.at(s, (self.q_unit[pers], self.cell[pers]), p0[pers])
        np.add.at(h, (self.q_unit[pers], self.cell[pers]), hard[pers])
        bs = np.zeros((C, k))
        bh = np.zeros((C, k))
        np.add.at(bs, self.cell[base], p0[base])
        np.add.at(bh, self.cell[base], hard[base])
        return s, h, bs, bh


def _resolve_effects(effects: Sequence[tuple[str, str, float]], pool: _Pool) -> list[Effect]:
    groups = pool.index.groups
    out = []
    for level, dim, target in effects:
        inst_id, sep, name = dim.rpartition("/")
        hits = groups[(groups["dimension"] == name) & ((groups["instrument"] == inst_id) if sep else True)]
        if hits.empty:
            raise SpecError(f"--effect {level}:{dim}: no dimension or score group {name!r} in the study's instruments")
        # prefer the metrics' level (basic), then the item dimension
        hits = hits.assign(_rank=hits["level"].map({"basic": 0, "dimension": 1}).fillna(2)).sort_values("_rank")
        row = hits.iloc[0]
        attr = level.split("=", 1)[0]
        if f"attr_{attr}" not in pool.index.respondents.columns:
            raise SpecError(f"--effect {level}: the study's personas have no attribute {attr!r}")
        out.append(Effect(level, dim, target, str(row["instrument"]), int(hits.index[0])))
    return out


def _persona_values(pool: _Pool, raw: np.ndarray, eff: Effect, context: str) -> np.ndarray:
    """Per pool persona: the effect's score (``raw_score``, mean over repeats) in ``context``."""
    resp = pool.index.respondents
    sel = ((resp["instrument"] == eff.instrument) & (resp["context"].astype(str) == context)).to_numpy() & (
        pool.resp_unit >= 0)
    P = len(pool.units)
    tot = np.bincount(pool.resp_unit[sel], weights=raw[sel, eff.group], minlength=P)
    cnt = np.bincount(pool.resp_unit[sel], minlength=P)
    with np.errstate(all="ignore"):
        return tot / cnt


def _in_level(pool: _Pool, eff: Effect) -> tuple[np.ndarray, np.ndarray]:
    """Pool personas with the effect's level, and those it is compared with: the attribute's reference level
    (religion: not religious), the other level of a binary attribute, or all the rest, as the effects grid
    (``metrics.effects.attribute_design``) compares them."""
    from valuescope.analysis.metrics.effects import REFERENCE_LEVELS, attribute_design

    attr, lev = eff.level.split("=", 1)
    resp = pool.index.respondents
    first = resp[pool.resp_unit >= 0].drop_duplicates("unit").set_index("unit").reindex(pool.units)
    vals = first[f"attr_{attr}"]
    inl = vals.notna().to_numpy() & (vals.astype(str) == lev).to_numpy()
    design = attribute_design(attr, vals, REFERENCE_LEVELS)
    labels, pairs = design.labels, design.contrasts
    refs = {lv: ref for lv, ref in pairs} | {ref: lv for lv, ref in pairs if ref is not None and len(pairs) == 1}
    ref = refs.get(lev)
    if ref is not None:
        return inl, (labels == ref).to_numpy()
    return inl, labels.notna().to_numpy() & ~inl


def _d(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Cohen's d (pooled SD) and the two-sided p of x vs y, by the effects grid's own test (Student's t,
    ``metrics.effects``), so that power is the grid's chance of seeing the effect."""
    from valuescope.analysis.metrics.effects import cohens_d, student_t

    if len(x) < 2 or len(y) < 2:
        return np.nan, np.nan
    return cohens_d(x, y), student_t(x, y)[1]


def _context(pool: _Pool, eff: Effect) -> str:
    ctxs = sorted(pool.index.respondents.loc[pool.index.respondents["instrument"] == eff.instrument, "context"]
                  .astype(str).unique())
    return "none" if "none" in ctxs else ctxs[0]


def calibrate(pool: _Pool, spec: SyntheticSpec, effects: list[Effect], *, n_target: int = 10000) -> None:
    """Set each effect's latent shift so that its true d (over fresh draws of the pool, ``n_target`` personas in
    all, the same draws at every step) is the target."""
    reps = int(min(200, max(4, math.ceil(n_target / max(1, len(pool.units))))))
    for eff in effects:
        if eff.target == 0:
            eff.latent = 0.0
            continue
        inl, comp = _in_level(pool, eff)
        if inl.sum() < 2:
            raise SpecError(f"--effect {eff.level}: fewer than 2 personas of the pool have this level")
        ctx = _context(pool, eff)

        def true_d(shift: float, eff: Effect = eff, inl: np.ndarray = inl, comp: np.ndarray = comp,
                   ctx: str = ctx) -> float:
            others = [(e.level, e.dimension, e.latent) for e in effects if e is not eff]
            s = with_effects(spec, [*others, (eff.level, eff.dimension, shift)])
            xs, ys = [], []
            for r in range(reps):
                raw, _ = fast_scores(pool.index, pool.sim.expected(pool.sim.probs(s, salt=f"calib:{r}")))
                v = _persona_values(pool, raw, eff, ctx)
                xs.append(v[inl])
                ys.append(v[comp])
            return _d(np.concatenate(xs), np.concatenate(ys))[0]

        shift = eff.target
        for _ in range(4):
            got = true_d(shift)
            if not np.isfinite(got) or abs(got - eff.target) < 0.005 or got == 0:
                break
            shift *= eff.target / got
        eff.latent = shift


def power_analysis(study: Study, spec: SyntheticSpec, effects: Sequence[tuple[str, str, float]], *,
                   sizes: Sequence[int] = (50, 100, 200, 400, 800), reps: int = 50, alpha: float = ALPHA,
                   seed: int = 0, latent: bool = False, pool_factor: float = 2.0, all_instruments: bool = False,
                   calib_personas: int = 10000,
                   progress: Callable[[str, int, int], None] | None = None) -> pd.DataFrame:
    """The power table (``POWER_COLUMNS``): one row per size and effect or headline metric (docstring)."""
    sizes = sorted({int(n) for n in sizes})
    if not sizes or sizes[0] < 4:
        raise SpecError("--sizes: give population sizes of at least 4 personas")
    if reps < 2:
        raise SpecError("--reps: at least 2 replications")
    from valuescope.design.instruments import instrument_for_ref

    # the spec is checked against the study as given: a key naming a dimension of an instrument that is not
    # simulated (it holds no effect) is still right
    check_spec_dimensions(spec, {inst.id: inst for inst in map(instrument_for_ref, study.instruments)})
    if not all_instruments:
        study = effect_instruments(study, effects)
    sim = prepare(pool_study(study, math.ceil(sizes[-1] * pool_factor)))
    pool = _Pool(sim)
    if len(pool.units) < sizes[-1]:
        raise SpecError(f"--sizes: the pool has {len(pool.units)} personas, fewer than {sizes[-1]}")
    effs = _resolve_effects(effects, pool)
    if latent:
        for e in effs:
            e.latent = e.target
    else:
        calibrate(pool, spec, effs, n_target=calib_personas)
    planted = with_effects(spec, [(e.level, e.dimension, e.latent) for e in effs])
    levels = [(_in_level(pool, e), _context(pool, e)) for e in effs]
    records: dict[tuple, list[float]] = {}
    detect: dict[tuple, list[float]] = {}
    rng = np.random.default_rng(seed)
    for r in range(reps):
        probs = sim.probs(planted, salt=f"power:{seed}:{r}")
        raw, score = fast_scores(pool.index, sim.expected(probs))
        sums = pool.sums(probs)
        values = [_persona_values(pool, raw, e, ctx) for e, (_, ctx) in zip(effs, levels, strict=True)]
        for n in sizes:
            pick = np.zeros(len(pool.units), dtype=bool)
            pick[rng.choice(len(pool.units), size=n, replace=False)] = True
            for e, ((inl, comp), _), v in zip(effs, levels, values, strict=True):
                d, p = _d(v[pick & inl], v[pick & comp])
                records.setdefault((n, "effect", "cohens_d", e.instrument, e.label), []).append(d)
                same_sign = e.target == 0 or np.sign(d) == np.sign(e.target)  # a null effect: any sign
                hit = float(np.isfinite(p) and p < alpha and same_sign)
                detect.setdefault((n, e.label), []).append(hit)
            _metric_estimates(pool, sums, score, pick, n, records)
        if progress:
            progress("replications", r + 1, reps)
    return _table(records, detect, effs, reps)


def _metric_estimates(pool: _Pool, sums: tuple, score: np.ndarray, pick: np.ndarray, n: int,
                      records: dict[tuple, list[float]]) -> None:
    s, h, bs, bh = sums
    ps, ph = s[pick].sum(0), h[pick].sum(0)  # (C, K)
    for c, (inst, ctx, dim) in enumerate(pool.cells):
        k = int(pool.sim.design.k[pool.cell == c][0])
        if ps[c, :k].sum() <= 0:
            continue
        key = (inst, f"{ctx}|{dim}")
        records.setdefault((n, "metric", "inertia_soft", *key), []).append(
            float(1 - entropy(ps[c, :k]) / np.log2(k)))
        records.setdefault((n, "metric", "inertia_hard", *key), []).append(
            float(1 - entropy(ph[c, :k]) / np.log2(k)))
        if bs[c, :k].sum() > 0:
            records.setdefault((n, "metric", "steerability_jsd_soft", *key), []).append(jsd(bs[c, :k], ps[c, :k]))
    resp = pool.index.respondents
    g = pool.index.groups
    for inst in sorted(resp["instrument"].unique()):
        lv = "basic" if ((g["instrument"] == inst) & (g["level"] == "basic")).any() else "dimension"
        gsel = np.where((g["instrument"] == inst) & (g["level"] == lv))[0]
        rsel = (resp["instrument"] == inst).to_numpy() & (pool.resp_unit >= 0) & pick[np.maximum(pool.resp_unit, 0)]
        sub = resp[rsel]
        ctxs = sorted(sub["context"].astype(str).unique())
        reps_ = sorted(sub["repeat"].unique())
        units = np.unique(pool.resp_unit[rsel])
        S = np.full((len(reps_), len(ctxs), len(units), len(gsel)), np.nan)
        S[pd.Index(reps_).get_indexer(sub["repeat"]), pd.Index(ctxs).get_indexer(sub["context"].astype(str)),
          np.searchsorted(units, pool.resp_unit[rsel])] = score[np.ix_(np.where(rsel)[0], gsel)]
        if len(ctxs) >= 2:
            pairs = list(combinations(range(len(ctxs)), 2))
            ro = np.nanmean([[spearman(S[t, a].T, S[t, b].T) for t in range(len(reps_))] for a, b in pairs])
            ip = np.nanmean([np.nanmean(spearman(S[:, a], S[:, b]), axis=0) for a, b in pairs])
            records.setdefault((n, "metric", "rank_order", inst, "all|"), []).append(float(ro))
            records.setdefault((n, "metric", "ipsative", inst, "all|"), []).append(float(ip))
        if len(reps_) >= 2:
            m = len(reps_)
            var_w = np.nanmean(np.nanvar(S, axis=0, ddof=1), axis=1)  # (C, V)
            var_m = np.nanvar(np.nanmean(S, axis=0), axis=1, ddof=1)
            with np.errstate(all="ignore"):  # ICC(1), balanced: (m MSB' - MSW) / (m MSB' + (m - 1) MSW)
                icc = (m * var_m - var_w) / (m * var_m + (m - 1) * var_w)
            for c, ctx in enumerate(ctxs):
                for v, gi in enumerate(gsel):
                    records.setdefault((n, "metric", "icc", inst, f"{ctx}|{g['dimension'].iloc[gi]}"), []).append(
                        float(icc[c, v]))


def _table(records: dict[tuple, list[float]], detect: dict[tuple, list[float]], effs: list[Effect],
           reps: int) -> pd.DataFrame:
    by_label = {e.label: e for e in effs}
    rows = []
    for (n, kind, metric, inst, where), vals in records.items():
        x = np.asarray(vals, dtype=float)
        x = x[np.isfinite(x)]
        if kind == "effect":
            e = by_label[where]
            ctx, dim, target, power = "", e.dimension, e.target, float(np.mean(detect[(n, where)]))
            shift = e.latent
        else:
            ctx, _, dim = where.partition("|")
            target, power, shift = np.nan, np.nan, np.nan
        lo, hi = (np.percentile(x, [2.5, 97.5]) if len(x) else (np.nan, np.nan))
        rows.append({"n_personas": n, "kind": kind, "metric": metric if kind == "metric" else f"d {where}",
                     "instrument": inst, "context": ctx, "dimension": dim, "target": target, "latent": shift,
                     "power": power, "mean": float(x.mean()) if len(x) else np.nan,
                     "sd": float(x.std(ddof=1)) if len(x) > 1 else np.nan, "ci_width": float(hi - lo),
                     "reps": reps})
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


def personas_needed(table: pd.DataFrame, power: float = 0.8) -> dict[str, float]:
    """Per effect: the smallest N with at least ``power`` (linear interpolation between sizes; NaN if none)."""
    out = {}
    for metric, g in table[table["kind"] == "effect"].groupby("metric"):
        g = g.sort_values("n_personas")
        n, pw = g["n_personas"].to_numpy(float), g["power"].to_numpy(float)
        hit = np.where(pw >= power)[0]
        if not len(hit):
            out[str(metric)] = float("nan")
        elif hit[0] == 0:
            out[str(metric)] = float(n[0])
        else:
            i = hit[0]
            out[str(metric)] = float(n[i - 1] + (power - pw[i - 1]) * (n[i] - n[i - 1]) / (pw[i] - pw[i - 1]))
    return out
