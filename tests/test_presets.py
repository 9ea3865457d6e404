"""Issue 10: the paper presets. Full-scale query counts are checked on the plan (no model run); reduced
versions run end to end (planner, conversations, runner, store, metrics) on the synthetic backend: what
a preset plans and stores does not depend on the model that answers (the embedded model runs a preset in
test_sequential.py and test_design_nulls.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from valuescope.execution.runner import plan_model, resolve, run_study
from valuescope.study.presets import adapt, list_presets, load_preset, preset_text
from valuescope.study.spec import ModelSpec, SpecError

SYNTHETIC = [ModelSpec(name="truth", backend="synthetic")]


def _planned(study) -> int:
    resolved = resolve(study)
    return len(plan_model(resolved, study.models[0]))


def test_presets_listed_and_printable():
    names = [n for n, _ in list_presets()]
    for expected in ("demo", "inertia", "inertia-item-order", "inertia-free-choice", "stability",
                     "stability-real-world", "stability-neutral", "stability-length"):
        assert expected in names
    assert preset_text("inertia").startswith("# Lee et al. 2024")
    with pytest.raises(SpecError, match="unknown preset"):
        preset_text("nope")
    res = subprocess.run([sys.executable, "-m", "valuescope", "presets", "show", "stability"], capture_output=True,
                         text=True)
    assert res.returncode == 0 and "tolkien" in res.stdout


@pytest.mark.slow  # plans 54k queries: 8 CPU-seconds here (2026-12-05)
def test_inertia_full_scale_matches_lee_et_al():
    # paper: (200 personas x 3 persona-set seeds + 1 baseline) x (MFQ-30's 32 items + PVQ-RR's 57 items) = 53,489;
    # the balanced option order asks the baseline under all 6 orders of its Latin square (every scale has 6
    # options): (600 + 6) x 89 = 53,934
    assert _planned(load_preset("inertia")) == (200 * 3 + 6) * (32 + 57)
    assert _planned(load_preset("inertia-free-choice")) == (200 * 3 + 6) * (32 + 57)
    # item-order ablation: 60 personas + the baseline under 6 orders, x MFQ-30
    assert _planned(load_preset("inertia-item-order")) == (60 + 6) * 32


@pytest.mark.slow  # plans 95k queries: 21 CPU-seconds here (2026-12-05)
def test_stability_full_scale_matches_kovac_et_al():
    # paper: 5 seeds x 5 topics x 60 characters x 40 PVQ items = 60k, plus the donation task's 100 items;
    # the baseline (no persona) in the same contexts, under the 6 balanced orders, adds 5 x 5 x 6 x (40 + 100),
    # and once more without a conversation (the neutral profile of distance_to_neutral): 6 x 5 x (40 + 100)
    assert _planned(load_preset("stability")) == 5 * 5 * 60 * (40 + 100) + 6 * (5 + 1) * 5 * (40 + 100)
    # paper: 50k for the real-world personas; baseline 6 orders x (5 topics + no conversation) x 5 seeds x 40
    assert _planned(load_preset("stability-real-world")) == 5 * 5 * 50 * 40 + 6 * (5 + 1) * 5 * 40
    # paper: 5 topics x 50 permutations x 40 items (no persona) = 10,000; here 5 topics x 9 seeds x the 6
    # balanced orders x 40 items = 10,800 (54 order samples per topic, each order equally often), plus the
    # same 54 without a conversation for the neutral profile (Kovač et al. B.2): 9 x 6 x 40
    assert _planned(load_preset("stability-neutral")) == 5 * 9 * 6 * 40 + 9 * 6 * 40


def test_presets_use_like_for_like_designs():
    for name in ("demo", "inertia", "inertia-item-order", "inertia-free-choice", "stability", "stability-real-world",
                 "stability-neutral", "stability-length"):
        study = load_preset(name)
        assert study.option_order == "balanced", name
        assert "docs/design.md" in preset_text(name), name
    assert load_preset("inertia-item-order").administration == "sequential"


def test_scale_reduces_and_is_recorded():
    small = adapt(load_preset("inertia"), scale=0.05)
    (wvs,) = small.population.sources
    assert wvs.n == 10 and wvs.seeds == [111]
    assert "WVS personas 200->10" in small.reduced
    st = adapt(load_preset("stability"), scale=0.05)
    assert st.population.sources[0].limit == 3 and st.repeats == 1 and "tolkien" in st.reduced
    with pytest.raises(SpecError):
        adapt(load_preset("inertia"), scale=0)


def test_unknown_item_ids_are_an_error():
    study = load_preset("demo")
    study = study.model_copy(update={"instruments": [study.instruments[0].model_copy(update={"items": ["NOPE"]})]})
    with pytest.raises(SpecError, match="instruments.0.items': mfq30 has no item 'NOPE'"):
        resolve(study)


def test_repeats_resample_the_conversation():
    study = adapt(load_preset("stability"), scale=0.05)
    study = study.model_copy(update={"repeats": 2})
    qs = plan_model(resolve(study), study.models[0])
    seeds = {(q.persona.id, q.context.topic, q.repeat): q.context.seed for q in qs}
    assert seeds[("tolkien-gandalf", "joke", 0)] != seeds[("tolkien-gandalf", "joke", 1)]


def test_inertia_reduced_runs_end_to_end(tmp_path):
    study = adapt(load_preset("inertia"), scale=0.01, output=str(tmp_path / "inertia"))
    # keep the test short: the same preset, restricted to a few items per instrument
    study = study.model_copy(update={"instruments": [
        study.instruments[0].model_copy(update={"items": ["EMOTIONALLY", "TREATED", "RESPECT", "DECENCY",
                                                          "LOVECOUNTRY", "MATH"]}),
        study.instruments[1].model_copy(update={"items": [f"Q{i:02d}" for i in range(1, 9)]}),
    ], "report": False, "models": SYNTHETIC})
    (res,) = run_study(study)
    # (2 personas + the baseline under 6 balanced orders) x (6 + 8) items
    assert res.planned == res.new == (2 + 6) * (6 + 8) and res.failed == 0


def test_stability_reduced_runs_end_to_end(tmp_path):
    study = adapt(load_preset("stability"), scale=0.03, output=str(tmp_path / "stability"))
    contexts = study.contexts.model_copy(update={"topics": ["joke", "chess"], "n_messages": [1], "max_tokens": 16})
    study = study.model_copy(update={
        "contexts": contexts, "report": False, "models": SYNTHETIC,
        "instruments": [study.instruments[0].model_copy(update={"items": [f"Q{i:02d}" for i in range(1, 11)]}),
                        study.instruments[1].model_copy(update={"items": ["elf_01", "orc_01", "hobbit_01"]})],
    })
    (res,) = run_study(study)
    # 2 characters x 2 topics + the baseline under 6 balanced orders x (2 topics + no conversation), x (10 PVQ-40
    # items + 3 donation items)
    assert res.planned == res.new == (2 * 2 + 6 * 3) * (10 + 3)
    assert res.conversations == 3 * 2
    # the neutral profile exists, so distance_to_neutral is computed per persona context
    from valuescope.analysis.tables import load_run
    from valuescope.store.sqlite import Store

    with Store(tmp_path / "stability", create=False) as store:
        m = load_run(store, res.run_id, n_boot=10).metrics
    dist = m[(m.metric == "distance_to_neutral") & (m.instrument == "pvq40")]
    assert set(dist["context_a"]) == {"joke@1", "chess@1"} and (dist["context_b"] == "none").all()
    assert not dist["note"].str.contains("no baseline").any()
