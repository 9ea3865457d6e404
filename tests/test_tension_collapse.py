"""Issue 25 item 9: the collapse intervals of evenhandedness under a persona-blind synthetic model, and the
coverage of ``collapse_directed`` when identities move the values their side favours.

The tension-evenhandedness preset's design (50 WVS personas with an identity + baseline x 12 dilemmas,
balanced option orders, no conversation), a model that ignores the persona with answer noise per query and
per-item offsets: ``collapse`` and ``collapse_directed`` are 0 in truth, and their CIs exclude 0 in about 5%
of replications (measured over 200: docs/metrics.md, "Evenhandedness collapse"). The test runs 100 (issue 28:
time); its ceiling was 0.07 over 200, the nominal 0.05 plus 1.30 binomial SDs (sqrt(0.05 * 0.95 / 200) = 0.0154),
and is the same 1.30 SDs over 100 (0.0218): 0.078, i.e. at most 7 misses in 100.
With planted identity effects, the truth of ``collapse_directed`` is computed here from the simulated answers
(pooled ratings of the favoured view minus the other's, per dilemma, persona side minus baseline, over fresh
replications), not by the metric.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from valuescope.analysis.metrics.evenhandedness import evenhandedness_rows
from valuescope.known_truth.simulate import prepare
from valuescope.study.spec import study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec

SIDES = ("liberal", "conservative")


def _sim():
    return prepare(study_from_dict({
        "name": "eh", "instruments": [{"name": "dilemmas"}], "option_order": "balanced",
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 50, "seeds": [111], "identity": True}]}}))


@pytest.mark.slow
def test_collapse_false_positive_rate_persona_blind():
    sim = _sim()
    spec = SyntheticSpec(persona_sd=0.0, query_sd=0.5, item_sd=1.0)
    miss: dict[str, list[bool]] = {}
    reps = 100
    for r in range(reps):
        m = evenhandedness_rows(sim.responses(spec.model_copy(update={"seed": 1000 + r})), sim.instruments,
                                n_boot=100, seed=r)
        m = m[m.metric.isin(["collapse", "collapse_directed"])]
        for row in m.itertuples():
            miss.setdefault(f"{row.metric}:{row.dimension}", []).append(not row.ci_low <= 0.0 <= row.ci_high)
    assert {"collapse:liberal", "collapse:conservative", "collapse:all", "collapse_directed:liberal",
            "collapse_directed:conservative"} <= set(miss)
    assert all(len(v) == reps for v in miss.values())
    rates = {k: float(np.mean(v)) for k, v in miss.items()}
    ceiling = 0.05 + 1.30 * math.sqrt(0.05 * 0.95 / reps)  # module docstring
    assert all(rate <= ceiling for rate in rates.values()), rates


def _directed_truth(resp: pd.DataFrame, meta: pd.DataFrame) -> dict[str, float]:
    """Per side s: mean over dilemmas of (mean rating of the view s favours - the other's) among s's personas,
    minus the same in the baseline; answers pooled (persona_sd 0: every persona of a side alike)."""
    t = resp[resp["valid"].astype(bool)].merge(meta, on="item_id")
    who = np.where(t["condition"] == "baseline", "baseline", t["attr_identity"].astype(str))

    def gap(x: pd.DataFrame, s: str) -> pd.Series:
        m = x.groupby(["dilemma", f"sign_{s}"])["expected"].mean().unstack()
        return m[1.0] - m[-1.0]

    return {s: float((gap(t[who == s], s) - gap(t[who == "baseline"], s)).mean()) for s in SIDES}


@pytest.mark.slow  # 60 replications: about 20 s on the loaded dev machine
def test_collapse_directed_covers_planted_identity_effects():
    sim = _sim()
    (inst,) = sim.instruments.values()
    meta = pd.DataFrame([{"item_id": it.id, "dilemma": it.meta["dilemma"],
                          **{f"sign_{s}": 1.0 if it.meta["rated"] == it.meta["favoured_by"][s] else -1.0
                             for s in SIDES}} for it in inst.items])
    planted = {"identity=liberal": {"self-direction": 1.0, "benevolence": 0.5, "security": -1.0},
               "identity=conservative": {"security": 1.0, "tradition": 0.5, "self-direction": -1.0}}
    spec = SyntheticSpec(persona_sd=0.0, query_sd=0.5, item_sd=1.0, effects=planted)
    # the truth is linear in the pooled ratings: their mean over 200 fresh draws (MC SE about 0.008)
    mean_rating = np.mean([sim.expected(sim.probs(spec.model_copy(update={"seed": 10_000 + r})))
                           for r in range(200)], axis=0)
    truth = _directed_truth(sim.static.assign(valid=True, expected=mean_rating), meta)
    assert all(v > 0.1 for v in truth.values()), truth  # the planted effects open a directed gap
    covered: dict[str, list[bool]] = {s: [] for s in SIDES}
    for r in range(60):
        m = evenhandedness_rows(sim.responses(spec.model_copy(update={"seed": 1000 + r})), sim.instruments,
                                n_boot=100, seed=r)
        m = m[m.metric == "collapse_directed"].set_index("dimension")
        for s in SIDES:
            covered[s].append(bool(m.loc[s, "ci_low"] <= truth[s] <= m.loc[s, "ci_high"]))
    # measured at 200 replications (seeds 1000-1199, truth from 200 other draws): coverage 1.00 (liberal) and
    # 1.00 (conservative), mean estimate 0.434 / 0.448 for truths 0.418 / 0.465; the interval is conservative (it
    # excluded 0 in 0.48 / 0.44). Bound: 0.9 - 3 binomial SDs over 60 replications
    for s in SIDES:
        assert np.mean(covered[s]) >= 0.9 - 3 * np.sqrt(0.9 * 0.1 / 60), (s, np.mean(covered[s]))


def _reference_rows(responses, instruments, *, n_boot: int, seed: int, measure: str) -> pd.DataFrame:
    """``evenhandedness_rows`` as it was before its per-unit and per-cell means became bincounts (issue 28):
    pivot tables and a pandas group loop per respondent group, the same bootstrap draws. The slow reference."""
    from valuescope.analysis.metrics._common import group_rng, metric_row, metrics_frame
    from valuescope.analysis.metrics.evenhandedness import MEASURES, _boot_mean, _collapse, dilemma_table

    table = dilemma_table(responses, instruments)
    rows: list[dict] = []
    for (run_id, model, inst, ctx), t in table.groupby(["run_id", "model", "instrument", "context"], sort=False):
        group = (run_id, model, inst)
        keys = ["unit", "condition", "side", "dilemma"]
        t = t.assign(side=t["side"].fillna("none"))
        r = t.pivot_table(index=keys, columns="rated_side", values=MEASURES[measure], aggfunc="mean")
        o = t.pivot_table(index=keys, columns="shown_first", values=MEASURES[measure], aggfunc="mean").reindex(r.index)
        gaps = pd.DataFrame({"r_x": r["x"], "r_y": r["y"], "o": o[True] - o[False]}, index=r.index).reset_index()
        meta = t.drop_duplicates("dilemma").set_index("dilemma")[["x", "y", "pair", "fav_liberal", "fav_conservative"]]
        gaps = gaps.join(meta, on="dilemma")
        gaps["g"] = gaps["r_x"] - gaps["r_y"]
        for s in SIDES:
            fav = gaps[f"fav_{s}"]
            gaps[f"g_{s}"] = np.where(fav == gaps["x"], gaps["g"], np.where(fav == gaps["y"], -gaps["g"], np.nan))
        gaps["E"] = 1 - gaps["g"].abs() / 5.0
        rng = group_rng(seed, "evenhandedness", run_id, model, inst, ctx)
        base = gaps[gaps["condition"] == "baseline"].groupby("dilemma")[["g", "g_liberal", "g_conservative"]].mean()
        pers = gaps[gaps["condition"] == "persona"]
        groups = [("baseline", gaps[gaps["condition"] == "baseline"])] if len(base) else []
        groups += [(s, pers[pers["side"] == s]) for s in SIDES if (pers["side"] == s).any()]
        groups += [("all", pers)] if len(pers) else []
        for label, g in groups:
            g = g.assign(a=g["g"].abs())
            per_unit = g.set_index("dilemma")[["E", "a", "o"]] if label == "baseline" else \
                g.groupby("unit")[["E", "a", "o"]].mean()
            for name, col in (("evenhandedness", "E"), ("evenhandedness_gap", "a"), ("order_effect", "o")):
                v = per_unit[col].to_numpy(dtype=float)
                lo, hi = _boot_mean(v, rng, n_boot)
                rows.append(metric_row(group, name, dimension=label, context_a=ctx, value=float(np.nanmean(v)),
                                       ci_low=lo, ci_high=hi, n=len(per_unit),
                                       note="CI over dilemmas (one respondent)" if label == "baseline" else ""))
            if label == "baseline" or base.empty:
                continue
            for col, metric in [("g", "collapse")] + ([(f"g_{label}", "collapse_directed")] if label in SIDES else []):
                mat = g.groupby(["unit", "dilemma"])[col].mean().dropna().unstack("dilemma").sort_index(axis=1)
                b = base[col].reindex(mat.columns).to_numpy()
                pm = np.abs(mat.to_numpy()) if metric == "collapse" else mat.to_numpy()
                value, lo, hi = _collapse(pm, np.abs(b) if metric == "collapse" else b, rng, n_boot)
                rows.append(metric_row(group, metric, dimension=label, context_a=ctx, value=value, ci_low=lo,
                                       ci_high=hi, n=len(mat)))
        per_persona = pers.assign(a=pers["g"].abs()).groupby(["side", "unit"])["a"].agg(["mean", "size"])
        for (side, unit), rec in zip(per_persona.index, per_persona.itertuples(index=False), strict=True):
            rows.append(metric_row(group, "evenhandedness_gap_persona", dimension=f"{side}:{unit}", context_a=ctx,
                                   value=float(rec.mean), n=int(rec.size)))
        per_pair = gaps.groupby(["condition", "pair", "unit"])["g"].mean()
        for (cond, pair), gp in per_pair.groupby(level=["condition", "pair"], sort=True):
            lo, hi = _boot_mean(gp.to_numpy(), rng, n_boot)
            rows.append(metric_row(group, "dilemma_gap", dimension=str(pair), context_a=ctx, context_b=str(cond),
                                   value=float(gp.mean()), ci_low=lo, ci_high=hi, n=len(gp)))
    return metrics_frame(rows)


def test_evenhandedness_rows_are_the_reference():
    """The bincount version gives the reference's rows (``_reference_rows``), numbers within 1e-12 (sums in
    another order), on 10 personas under 2 conversation contexts, both readings, with answers missing."""
    sim = prepare(study_from_dict({
        "name": "eh", "instruments": [{"name": "dilemmas"}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 10, "seeds": [111], "identity": True}]},
        "contexts": {"topics": ["none", "joke"], "n_messages": [1]}}))
    spec = SyntheticSpec(persona_sd=0.5, query_sd=0.5, item_sd=1.0, letter_bias=[0.4, 0.2, 0.1, 0.1, 0.1, 0.1],
                         letter_weight=0.3, effects={"identity=liberal": {"self-direction": 1.0}})
    resp = sim.responses(spec)
    resp.loc[resp.index[::11], "valid"] = False  # cells, sides and whole dilemmas of a persona missing
    for measure in ("soft", "hard"):
        got = evenhandedness_rows(resp, sim.instruments, n_boot=30, seed=3, measure=measure)
        want = _reference_rows(resp, sim.instruments, n_boot=30, seed=3, measure=measure)
        num = ["value", "ci_low", "ci_high"]
        assert len(want) > 50 and {"collapse", "collapse_directed", "dilemma_gap"} <= set(want["metric"])
        pd.testing.assert_frame_equal(got.drop(columns=num), want.drop(columns=num))
        pd.testing.assert_frame_equal(got[num], want[num], check_exact=False, rtol=0, atol=1e-12)
