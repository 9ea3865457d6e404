"""Null models for the metric families (issue 25, item 9): a persona-blind synthetic model (and a letter-biased
one), answered many times on simulated tables (``simulate``: the same tables as a run), with the real metric
functions. Each family must be null within its CI (coverage of the null truth >= 0.9) and each p-value must
reject a true null at most 7% of the time at 0.05. Replications: ``slow``."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from replications import family_metrics

from valuescope.analysis.scoring import score_personas
from valuescope.known_truth.simulate import prepare
from valuescope.known_truth.truth import truth_tables, with_truth
from valuescope.study.spec import study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec

pytestmark = pytest.mark.slow
REPS = 50
BIAS = [0.10, 0.12, 0.45, 0.13, 0.10, 0.10]
BLIND = {"persona_sd": 0.0, "query_sd": 0.5, "item_sd": 0.5, "temperature": 0.7,
         "baseline": {"Harm": 1.0, "Fairness": 0.6, "Purity": -0.8}}
SPECS = {"persona-blind": SyntheticSpec(**BLIND),
         "letter-biased": SyntheticSpec(**BLIND, letter_bias=BIAS, letter_weight=0.5)}


def _study(**over):
    data = {"name": "null", "report": False, "models": [{"name": "syn", "backend": "synthetic"}],
            "instruments": [{"name": "mfq30"}], "option_order": "fixed",
            "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 40, "seeds": [111]}]}}
    data.update(over)
    return study_from_dict(data)


@functools.cache
def _distribution_runs(kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics of REPS replications with their truth, the baseline's own concentration)."""
    spec = SPECS[kind]
    sim = prepare(_study())
    truth = truth_tables(sim, spec, n_target=12000)
    frames = [with_truth(family_metrics(sim.responses(spec.model_copy(update={"seed": r + 1})), families=("dimension",),
                                        n_boot=50, n_perm=100, seed=r), truth).assign(rep=r)
              for r in range(REPS)]
    # the baseline asked 400 times (100 repeats, 4 draws), read as 400 personas: its concentration per dimension
    many = prepare(_study(repeats=100, population={"baseline": True,
                                                   "sources": [{"kind": "wvs", "n": 2, "seeds": [111]}]}))
    b = pd.concat([many.responses(spec, salt=f"base:{i}").assign(_draw=i) for i in range(4)], ignore_index=True)
    b = b[b["condition"] == "baseline"]
    b = b.assign(condition="persona", persona_id="b" + b["_draw"].astype(str) + "-" + b["repeat"].astype(str),
                 repeat=0).drop(columns="_draw")
    pooled = family_metrics(b, families=("dimension",), n_boot=0)
    return pd.concat(frames, ignore_index=True), pooled


def _concentration_coverage(kind: str, names: list[str]) -> pd.Series:
    runs, pooled = _distribution_runs(kind)
    m = runs[runs["metric"].isin(names)]
    base = pooled[pooled["metric"].isin(names)].set_index(["metric", "dimension"])["value"]
    truth = m.groupby(["metric", "dimension"])["truth"].first()
    # the truth module's persona value is the baseline's own (2400 baseline answers per dimension: +-0.02)
    assert (truth - base.reindex(truth.index)).abs().max() < 0.03, pd.concat([truth, base], axis=1)
    covered = (m["ci_low"] <= m["truth"]) & (m["truth"] <= m["ci_high"])
    return covered.groupby(m["metric"]).mean()


@pytest.mark.parametrize("kind", list(SPECS))
def test_concentration_of_a_persona_blind_model_is_the_baselines(kind):
    """Inertia (both readings), top-1 and top-2: a persona-blind model's personas answer as its baseline does,
    so each equals the baseline's concentration, and its CI covers that value (250 cells each; at a true 0.95 the
    binomial SD is 0.014, so 0.9 is 3.5 SDs below; measured 0.93-0.99). The letter-biased model's hard inertia
    is the test below.
    Top-1 and top-2 under the letter habit covered in 0.82 with the jackknife (its symmetric interval had no width
    where all answers fell on the letter's option); their projected Wilson intervals (intervals.max_share_interval)
    cover."""
    names = ["inertia_soft", "inertia_hard", "top1_share_hard", "top2_adjacent_hard"]
    if kind == "letter-biased":
        names.remove("inertia_hard")
    cov = _concentration_coverage(kind, names)
    assert len(cov) == len(names) and (cov >= 0.9).all(), cov


@pytest.mark.xfail(strict=True, reason="documented limitation (measured, 50 replications, 250 cells): under one fixed "
                   "order with half of every answer on the letter, hard inertia's jackknife interval covers the "
                   "baseline's concentration in 0.86 of cells: where every persona's answers fell on the letter's "
                   "option the entropy is 0 with no spread, and the interval has no width (docs/metrics.md); "
                   "inertia_soft covers (0.93), top-1 and top-2 too (0.98, were 0.82)")
def test_hard_inertia_of_a_letter_biased_model_covers_the_baselines():
    cov = _concentration_coverage("letter-biased", ["inertia_hard"])
    assert (cov >= 0.9).all(), cov


@pytest.mark.parametrize("kind", list(SPECS))
def test_steerability_p_values_of_a_persona_blind_model(kind):
    """Both readings' permutation p (like for like: a fixed order) reject a true null at most 7% of the time.
    (Steerability's interval with a baseline answered once per item holds that baseline's noise fixed: the
    baseline as a resampling unit is issue 25's item 1, tested with it.)"""
    runs, _ = _distribution_runs(kind)
    for reading in ("soft", "hard"):
        p = runs.loc[runs["metric"] == f"steerability_p_{reading}", "value"].to_numpy(float)
        assert len(p) == 5 * REPS and np.mean(p < 0.05) <= 0.07, (reading, np.mean(p < 0.05))


@functools.cache
def _score_runs() -> pd.DataFrame:
    spec = SyntheticSpec(persona_sd=0.0, repeat_sd=0.4, query_sd=0.3, temperature=0.8, item_sd=0.5)
    study = _study(instruments=[{"name": "pvq40"}], repeats=3,
                   population={"baseline": False, "sources": [{"kind": "wvs", "n": 40, "seeds": [111]}]},
                   contexts={"topics": ["joke", "chess"], "n_messages": [1]})
    sim = prepare(study)
    truth = truth_tables(sim, spec, n_target=4000)
    frames = []
    for r in range(REPS):
        resp = sim.responses(spec.model_copy(update={"seed": r + 1}))
        m = family_metrics(resp, score_personas(resp, sim.instruments), families=("stability", "variance"),
                           n_boot=100, seed=r)
        frames.append(with_truth(m, truth))
    return pd.concat(frames, ignore_index=True)


def test_icc_and_variance_split_of_a_persona_blind_model():
    """ICC: persona_sd 0 -> about 0, covered; the variance split: every bit of variance is run to run, so the
    share's interval reaches 1 and the personas' variance interval reaches 0."""
    m = _score_runs()
    icc = m[m["metric"] == "icc"]
    assert icc["truth"].abs().max() < 0.05
    assert np.mean((icc["ci_low"] <= icc["truth"]) & (icc["truth"] <= icc["ci_high"])) >= 0.9
    share = m[m["metric"] == "run_to_run_share"]
    assert len(share) and np.mean(share["ci_high"] >= 1.0 - 1e-12) >= 0.9
    var_p = m[m["metric"] == "var_persona"]
    assert np.mean(var_p["ci_low"] <= 1e-12) >= 0.9


def test_rank_order_of_a_persona_blind_model_is_null():
    """No persona effect: no stable order of personas across contexts; the truth is 0 and covered."""
    m = _score_runs()
    ro = m[(m["metric"] == "rank_order") & (m["context_a"] == "all")]
    assert ro["truth"].abs().max() < 0.05
    assert np.mean((ro["ci_low"] <= ro["truth"]) & (ro["truth"] <= ro["ci_high"])) >= 0.9
