"""Steerability with a drifting baseline (issue 25, item 1): the baseline is one respondent, whose conversation
shifts all its answers; the test and the interval take whole respondents as units (metrics.steerability).

Known-truth replications on simulated tables (known_truth.simulate), not the runner: seconds each."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest

from valuescope.analysis.metrics._common import metrics_frame
from valuescope.analysis.metrics.dimension_metrics import dimension_metric_rows
from valuescope.backends.synthetic_model import design_from_metas, latent
from valuescope.known_truth.simulate import prepare
from valuescope.known_truth.truth import truth_tables, with_truth
from valuescope.study.spec import study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec


def _study(n: int = 40):
    return study_from_dict({
        "name": "drift", "report": False, "models": [{"name": "syn", "backend": "synthetic"}],
        "instruments": [{"name": "mfq30"}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": n, "seeds": [111]}]},
        "contexts": {"topics": ["joke", "chess"], "n_messages": [1]}})  # option_order: the default, balanced


def _steer_rows(resp: pd.DataFrame, seed: int, n_boot: int = 50, n_perm: int = 200) -> pd.DataFrame:
    rows = []
    for group, sub in resp.groupby(["run_id", "model", "instrument"]):
        rows += dimension_metric_rows(sub, group, n_boot=n_boot, n_perm=n_perm, seed=seed)
    m = metrics_frame(rows)
    return m[m["metric"].str.startswith("steerability")]


def _meta(context_seed: int, **over) -> dict:
    m = {"key": "k", "persona_id": "p1", "persona_kind": "wvs", "persona_name": None, "set_seed": 1,
         "attributes": {}, "instrument": "inst", "item_id": "q1", "dimension": "Harm", "groups": (),
         "reverse": False, "catch": False, "values": (1, 2, 3, 4), "option_order": (0, 1, 2, 3),
         "context": "joke@1", "context_seed": context_seed, "repeat": 0, "position": 0,
         "administration": "independent", "seed": 0}
    m.update(over)
    return m


def test_drift_is_keyed_by_conversation_and_the_old_key_stays_reachable():
    design = design_from_metas([_meta(0), _meta(7), _meta(0, item_id="q2")])
    spec = SyntheticSpec(persona_sd=0.0, drift_sd=1.0)
    eta = latent(spec, design)
    assert eta[0] == eta[2] and eta[0] != eta[1]  # another conversation (seed) of the respondent drifts apart
    old = latent(spec.model_copy(update={"drift_by": "context"}), design)
    assert old[0] == old[1] == old[2] == eta[0]  # by (respondent, context): seed 0 draws what it drew before


def test_persona_blind_drifting_model_small_run_is_null():
    """One replication of the issue's case in the default suite: at most 2 of its 20 steerability p-values below
    0.05 (16 of 20 with the answer-level test; a valid test: 1 expected), and both readings' intervals (the
    answers reading's too: its baseline's bias is removed, ``steerability.baseline_bias``) hold their estimates
    and reach the null truth 0."""
    sim = prepare(_study(20))
    resp = sim.responses(SyntheticSpec(persona_sd=0.0, drift_sd=0.5, seed=3))
    m = _steer_rows(resp, seed=0, n_perm=100)
    p = m[m["metric"].str.startswith("steerability_p")]
    assert len(p) == 20 and (p["value"] < 0.05).sum() <= 2, p
    jsd = m[m["metric"].str.startswith("steerability_jsd")]
    assert len(jsd) == 20 and ((jsd["ci_low"] <= jsd["value"]) & (jsd["value"] <= jsd["ci_high"])).all(), jsd
    assert (jsd["ci_low"] == 0.0).mean() >= 0.9, jsd


@pytest.mark.slow
def test_drifting_baseline_false_positive_rate():
    """The issue's case: persona-blind, drift_sd 0.5, 40 WVS personas x MFQ-30 x joke and chess: steerability
    p < 0.05 in about 1 in 20 cells (both readings). The ceiling was 0.07 over 20 replications (200 p-values a
    reading): the nominal 0.05 plus 1.30 binomial SDs (sqrt(0.05 * 0.95 / 200) = 0.0154); over the 10 run now
    (issue 28: time; 100 p-values, sd 0.0218) the same 1.30 SDs give 0.078."""
    sim = prepare(_study())
    pvals = {"steerability_p_soft": [], "steerability_p_hard": []}
    reps = 10
    for r in range(reps):
        m = _steer_rows(sim.responses(SyntheticSpec(persona_sd=0.0, drift_sd=0.5, seed=r + 1)), seed=r, n_boot=0)
        for name, vals in pvals.items():
            vals.extend(m.loc[m["metric"] == name, "value"].tolist())
    for name, vals in pvals.items():
        rate = float(np.mean(np.array(vals) < 0.05))
        assert len(vals) == 10 * reps and rate <= 0.05 + 1.30 * math.sqrt(0.05 * 0.95 / len(vals)), (name, rate)


#: replications of the coverage test: 10 x 5 values x 2 contexts = 100 cases (was 20: 200; issue 28, time)
COVERAGE_REPS = 10


@functools.cache
def _coverage() -> pd.DataFrame:
    spec = SyntheticSpec(persona_sd=0.8, drift_sd=0.5, repeat_sd=0.3, query_sd=0.3, baseline={"Harm": 1.0},
                         effects={"sex=Female": {"Harm": 0.6, "Purity": -0.5}})
    sim = prepare(_study())
    truth = truth_tables(sim, spec, n_target=6000)
    frames = [with_truth(_steer_rows(sim.responses(spec.model_copy(update={"seed": r + 1})), seed=r, n_perm=0),
                         truth) for r in range(COVERAGE_REPS)]
    m = pd.concat(frames)
    return m[m["metric"].str.startswith("steerability_jsd") & m["truth"].notna()]


@pytest.mark.slow
def test_steerability_interval_covers_with_drift_repeat_and_query_noise():
    """Planted persona effects, drifting conversations, repeat and query noise: each reading's interval covers the
    population truth (the baseline's drift integrated out; the answers reading had no interval before its
    baseline's bias was removed). The floor was 0.9 of 200 cases: the nominal 0.95 less 3.24 binomial SDs
    (sqrt(0.95 * 0.05 / 200) = 0.0154); the same 3.24 SDs over the 100 cases per reading now (0.0218): 0.879."""
    m = _coverage()
    covered = (m["ci_low"] <= m["truth"]) & (m["truth"] <= m["ci_high"])
    cov = covered.groupby(m["metric"]).mean()
    n = 10 * COVERAGE_REPS
    assert len(m) == 2 * n and len(cov) == 2 and (cov >= 0.95 - 3.24 * math.sqrt(0.95 * 0.05 / n)).all(), cov
    assert ((m["ci_low"] <= m["value"]) & (m["value"] <= m["ci_high"])).all()
