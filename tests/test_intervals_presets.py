"""Every exported row with a CI lies inside it (issue 25): every shipped preset, at reduced scale, answered by a
noisy, letter-biased synthetic model (simulate: the same tables as a run), every metric family the run exports
(the long metrics table, the tension probes, the effects grid)."""

from __future__ import annotations

import pandas as pd
import pytest

from valuescope.analysis.metrics import compute_metrics, effects_grid
from valuescope.analysis.metrics.tension import tension_metrics
from valuescope.analysis.scoring import score_personas
from valuescope.known_truth.simulate import prepare
from valuescope.study.presets import adapt, list_presets, load_preset
from valuescope.study.spec import ModelSpec
from valuescope.study.synthetic_spec import SyntheticSpec

SPEC = SyntheticSpec(persona_sd=1.0, drift_sd=0.3, repeat_sd=0.3, query_sd=0.3, temperature=0.8, item_sd=0.3,
                     letter_bias=[0.1, 0.12, 0.45, 0.13, 0.1, 0.1], letter_weight=0.25,
                     effects={"sex=Female": {"Harm": 0.5}})
# under 5 CPU-s each here (2026-12-05); the others (stability, its real-world and length presets, the tension
# presets) 7-11 CPU-s each: slow
FAST = {"demo", "fidelity-political", "inertia", "inertia-free-choice", "inertia-item-order", "stability-neutral"}


def _params():
    for name, _ in list_presets():
        yield pytest.param(name, marks=() if name in FAST else pytest.mark.slow, id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_every_exported_row_lies_in_its_own_interval(name):
    study = adapt(load_preset(name), model=ModelSpec(name="syn", backend="synthetic"), scale=0.05)
    if name == "stability-length":  # 2 of its 5 topics, every length: 8 persona contexts instead of 20 (8 CPU-s
        # instead of 20 here; the intervals do not depend on how many topics were asked)
        study = study.model_copy(update={"contexts": study.contexts.model_copy(
            update={"topics": study.contexts.topics[:2]})})
    sim = prepare(study)
    resp = sim.responses(SPEC)
    scores = score_personas(resp, sim.instruments)
    m = compute_metrics(resp, scores, n_boot=30, n_perm=30, seed=1, convergence_sizes=())
    extra = tension_metrics(resp, sim.instruments, n_boot=30, seed=1)
    m = pd.concat([m, extra], ignore_index=True) if len(extra) else m
    with_ci = m[m["ci_low"].notna() & m["ci_high"].notna() & m["value"].notna()]
    assert len(with_ci) > 10, name
    tol = 1e-12 * (1.0 + with_ci["value"].abs())  # rounding: a CI of identical replicates equals its value
    outside = with_ci[(with_ci["value"] < with_ci["ci_low"] - tol) | (with_ci["value"] > with_ci["ci_high"] + tol)]
    assert outside.empty, outside[["metric", "dimension", "context_a", "value", "ci_low", "ci_high"]].to_string()
    grid = effects_grid(scores)
    g = grid[grid["g"].notna()]
    assert ((g["g_low"] <= g["g"]) & (g["g"] <= g["g_high"])).all(), g[["attribute", "level", "g", "g_low", "g_high"]]
