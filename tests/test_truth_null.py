"""The truth of steerability under a persona-blind synthetic model is 0 by definition (issue 25): its personas
answer from the distribution the baseline answers from in the same context, so the simulated truth's own
plug-in bias (two finite samples of one distribution, about 1e-4 bits on the answers reading) must not be
what an interval is asked to cover. A model with persona effects, or a baseline asked without the
conversation that moves every respondent, keeps a simulated, positive truth."""

from __future__ import annotations

import pytest

from valuescope.known_truth.simulate import prepare
from valuescope.known_truth.truth import truth_tables
from valuescope.study.spec import study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec

STEER = ["steerability_jsd_soft", "steerability_jsd_hard"]
# the study asks 4 items of 2 foundations: the truth of the other 3 is NaN (numpy says so while computing it)
pytestmark = pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                                        "ignore:Mean of empty slice:RuntimeWarning")


def _study(**over):
    data = {"name": "truth0", "report": False, "models": [{"name": "syn", "backend": "synthetic"}],
            "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED", "COMPASSION", "FAIRLY"]}],
            "option_order": "balanced",
            "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 8, "seeds": [111]}]}}
    data.update(over)
    return study_from_dict(data)


def _steer(spec: SyntheticSpec, study) -> dict[tuple[str, str, str, str], float]:
    t = truth_tables(prepare(study), spec, n_target=400).metrics
    t = t[t["metric"].isin(STEER)]
    return {(r.metric, r.dimension, r.context_a, r.context_b): r.truth for r in t.itertuples(index=False)}


def test_persona_blind_flags():
    assert SyntheticSpec(persona_sd=0.0).persona_blind
    assert not SyntheticSpec(persona_sd=0.5).persona_blind
    assert not SyntheticSpec(persona_sd=0.0, effects={"sex=Female": {"Harm": 0.8}}).persona_blind
    assert SyntheticSpec(persona_sd=0.0, effects={"sex=Female": {"Harm": 0.0}}).persona_blind


@pytest.mark.parametrize("letter", [False, True])
def test_persona_blind_truth_is_zero_in_the_same_context(letter):
    extra = {"letter_bias": [0.1, 0.12, 0.45, 0.13, 0.1, 0.1], "letter_weight": 0.5} if letter else {}
    got = _steer(SyntheticSpec(persona_sd=0.0, query_sd=0.5, temperature=0.7, drift_sd=0.5, **extra),
                 _study(contexts={"topics": ["joke"], "n_messages": [1]}))
    assert got and all(v == 0.0 for v in got.values()), got


def test_effects_keep_a_simulated_positive_truth():
    got = _steer(SyntheticSpec(persona_sd=2.0, query_sd=0.3, temperature=0.7), _study())
    assert got and all(v > 1e-3 for v in got.values()), got
