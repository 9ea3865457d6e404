"""backend: synthetic — spec validation, hand-computed answers, and runs through the real runner and store."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from valuescope.analysis.tables import load_run
from valuescope.backends.base import create_backend
from valuescope.backends.synthetic_model import design_from_metas, latent, letter_probs, ordinal_probs
from valuescope.core.types import Message, ScoreRequest
from valuescope.design.plan import query_meta
from valuescope.execution.runner import run_study
from valuescope.known_truth.simulate import prepare
from valuescope.store.sqlite import Store
from valuescope.study.spec import SpecError, load_study, study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec, parse_effect, synthetic_from_dict


def _study(tmp_path: Path, synthetic: dict | None = None, **over) -> dict:
    data = {
        "name": "syn", "output": str(tmp_path / "out"), "report": False,
        "models": [{"name": "truth", "backend": "synthetic", "synthetic": synthetic or {}}],
        "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "WEAK", "TREATED", "MATH",
                                                    "CRUEL", "RIGHTS"]}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 6, "seeds": [111]}]},
        "option_order": "permute-persona",
    }
    data.update(over)
    return data


def test_ordered_logit_hand_computed():
    spec = SyntheticSpec(temperature=1.0, step=1.0)
    p = ordinal_probs(np.array([0.0]), 3, spec)[0]  # cut points -0.5, 0.5
    s = 1 / (1 + math.exp(0.5))
    assert p == pytest.approx([s, 1 - 2 * s, s])
    p2 = ordinal_probs(np.array([0.0, 3.0]), 2, spec)  # one cut point at 0
    assert p2[0] == pytest.approx([0.5, 0.5])
    assert p2[1] == pytest.approx([1 / (1 + math.exp(3)), 1 - 1 / (1 + math.exp(3))])
    probit = ordinal_probs(np.array([0.0]), 2, SyntheticSpec(link="probit"))[0]
    assert probit == pytest.approx([0.5, 0.5])


def _meta(**over) -> dict:
    m = {"key": "k", "persona_id": "p1", "persona_kind": "wvs", "persona_name": None, "set_seed": 1,
         "attributes": {"religion": "Orthodox"}, "instrument": "inst", "item_id": "q1", "dimension": "Tradition",
         "groups": ("Conservation",), "reverse": False, "catch": False, "values": (1, 2, 3, 4),
         "option_order": (0, 1, 2, 3), "context": "none", "context_seed": 0, "repeat": 0, "position": 0,
         "administration": "independent", "seed": 0}
    m.update(over)
    return m


def test_effects_letters_reverse_and_bias():
    spec = SyntheticSpec(persona_sd=0.0, baseline={"Tradition": 0.5}, effects={"religion=Orthodox": {"Tradition": 1.0}},
                         personas={"p2": {"inst/Conservation": -2.0}})
    metas = [_meta(), _meta(persona_id="p3", attributes={"religion": "none"}), _meta(persona_id="p2"),
             _meta(persona_id="p4", reverse=True),
             _meta(option_order=(3, 2, 1, 0)), _meta(persona_kind="baseline", persona_id="baseline", set_seed=None)]
    d = design_from_metas(metas)
    eta = latent(spec, d)
    assert eta == pytest.approx([1.5, 0.5, 1.5 - 2.0, -1.5, 1.5, 0.5])
    q = letter_probs(spec, d, eta)
    assert q[4] == pytest.approx(q[0][::-1])  # letter A shows the highest option
    assert q[0] == pytest.approx(ordinal_probs(np.array([1.5]), 4, spec)[0])
    biased = spec.model_copy(update={"letter_bias": [0.1, 0.2, 0.6, 0.1], "letter_weight": 0.25})
    qb = letter_probs(biased, d, eta)
    assert qb[4] == pytest.approx(0.75 * q[4] + 0.25 * np.array([0.1, 0.2, 0.6, 0.1]))
    # descending scale values: option 0 is the highest value
    desc = design_from_metas([_meta(values=(4, 3, 2, 1))])
    assert letter_probs(spec, desc, np.array([1.5]))[0] == pytest.approx(q[0][::-1])


def test_sequential_position_and_random_effects_are_deterministic():
    spec = SyntheticSpec(persona_sd=1.0, drift_sd=0.5, repeat_sd=0.2, item_sd=0.3, position_slope=0.1, seed=4)
    metas = [_meta(position=3), _meta(position=3, administration="sequential"), _meta(context="joke@1")]
    a = latent(spec, design_from_metas(metas))
    b = latent(spec, design_from_metas(list(reversed(metas))))[::-1]
    assert a == pytest.approx(b)  # an answer depends on its own query only
    assert a[1] - a[0] == pytest.approx(0.3)
    assert a[2] != pytest.approx(a[0])  # drift: another context moves the persona
    assert latent(spec.model_copy(update={"seed": 5}), design_from_metas(metas))[0] != pytest.approx(a[0])


def test_spec_errors_are_one_line(tmp_path: Path):
    for bad, needle in [({"persona_sd": -1}, "persona_sd"), ({"tempreature": 1}, "unknown key"),
                        ({"effects": {"Orthodox": {"TR": 1}}}, "attribute=level"),
                        ({"letter_bias": [1]}, "letter_bias")]:
        with pytest.raises(SpecError) as e:
            synthetic_from_dict(bad)
        assert needle in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SpecError, match="backend: synthetic"):
        study_from_dict({"models": [{"backend": "llamacpp", "synthetic": {}}]})
    with pytest.raises(SpecError, match="models.0.synthetic.drift_sd"):
        study_from_dict({"models": [{"backend": "synthetic", "synthetic": {"drift_sd": "x"}}]})
    assert parse_effect("religious_denomination=Orthodox:pvq_rr/Tradition=0.5") == (
        "religious_denomination=Orthodox", "pvq_rr/Tradition", 0.5)
    for bad in ("Orthodox:Tradition=0.5", "a=b:Tradition", "a=b:Tradition=x"):
        with pytest.raises(SpecError, match="--effect"):
            parse_effect(bad)


def test_meta_only_for_backends_that_ask(tmp_path: Path):
    study = study_from_dict(_study(tmp_path))
    sim = prepare(study)
    q = sim.queries[3]
    meta = query_meta(q, sim.instruments["mfq30"])
    assert meta["option_order"] == q.option_order and meta["dimension"] == q.dimension
    assert meta["groups"] == () and meta["values"] == (0, 1, 2, 3, 4, 5)
    # a request without meta: other backends are unaffected; the synthetic one refuses it
    req = ScoreRequest(messages=(Message("user", "hi"),), letters=("A", "B"))
    assert req.meta is None and req == ScoreRequest(messages=(Message("user", "hi"),), letters=("A", "B"), meta={})
    backend = create_backend("synthetic")
    from valuescope.backends.base import BackendError

    with pytest.raises(BackendError, match="meta"):
        backend.score([req])


def test_run_through_runner_and_store_equals_simulation(tmp_path: Path):
    spec = {"persona_sd": 1.0, "drift_sd": 0.3, "item_sd": 0.4, "letter_bias": [0.1, 0.1, 0.5, 0.1, 0.1, 0.1],
            "letter_weight": 0.2, "effects": {"sex=Female": {"Harm": 0.8}}}
    study = study_from_dict(_study(tmp_path, spec, contexts={"topics": ["none", "joke"], "n_messages": [1]}))
    res = run_study(study)[0]
    assert res.new == res.planned and res.failed == 0 and res.invalid == 0 and res.conversations > 0
    with Store(study.output) as store:
        tables = load_run(store, res.run_id, n_boot=20)
        convs = store.conversations(res.run_id)
    assert all(m["content"] for c in convs for m in __import__("json").loads(c["messages_json"]))
    sim = prepare(study, study.models[0])
    simulated = sim.responses(SyntheticSpec(**spec))
    stored = tables.responses.set_index("key").loc[simulated["key"]].reset_index()[tables.responses.columns]
    assert list(stored.columns) == list(simulated.columns)
    for col in ["persona_id", "condition", "context", "repeat", "item_id", "dimension", "option_order", "set_seed",
                "attr_sex", "position", "k"]:
        a, b = (t[col].astype(object).fillna("").astype(str) for t in (stored, simulated))
        assert (a == b).all(), col
    pcols = [c for c in simulated.columns if c.startswith("p_")]
    assert np.abs(stored[pcols].to_numpy(float) - simulated[pcols].to_numpy(float)).max() < 1e-12
    assert (stored["argmax"] == simulated["argmax"]).all()
    assert np.allclose(stored["expected"], simulated["expected"])
    assert {"inertia_soft", "steerability_jsd_soft"} <= set(tables.metrics["metric"])
    # a second run resumes: nothing new
    assert run_study(study)[0].new == 0


def test_spec_file_path_identity_and_unknown_dimension(tmp_path: Path):
    spec_file = tmp_path / "model.yaml"
    spec_file.write_text(yaml.safe_dump({"persona_sd": 0.5, "baseline": {"Harm": 1.0}}))
    study_file = tmp_path / "study.yaml"
    data = _study(tmp_path)
    data["models"] = [{"name": "truth", "backend": "synthetic", "path": "model.yaml"}]
    study_file.write_text(yaml.safe_dump(data))
    study = load_study(study_file)
    from valuescope.design.plan import run_id_for

    first = run_id_for(study, study.models[0])
    spec_file.write_text(yaml.safe_dump({"persona_sd": 0.5, "baseline": {"Harm": 1.5}}))
    assert run_id_for(study, study.models[0]) != first  # an edited spec is a new run
    spec_file.write_text(yaml.safe_dump({"effects": {"sex=Female": {"Tradition": 1.0}}}))
    with pytest.raises(SpecError, match="Tradition"):
        run_study(study)
    assert not (Path(study.output) / "valuescope.sqlite").exists() or not Store(study.output).runs()


def test_persona_blind_letter_biased_fixed_order_answers_are_the_bias(tmp_path: Path):
    spec = SyntheticSpec(persona_sd=0.0, letter_bias=[0.1, 0.12, 0.45, 0.13, 0.1, 0.1], letter_weight=1.0)
    study = study_from_dict(_study(tmp_path, option_order="permute-query"))
    sim = prepare(study)
    resp = sim.responses(spec)
    for _, row in resp.head(20).iterrows():
        order = [int(i) for i in row["option_order"].split(",")]
        assert [row[f"p_{order[j] + 1}"] for j in range(6)] == pytest.approx(spec.letter_bias)


def test_generate_is_deterministic():
    b = create_backend("synthetic", name="s")
    from valuescope.core.types import GenerateRequest

    reqs = [GenerateRequest(messages=(Message("user", f"hello {i}"),), seed=i) for i in range(6)]
    texts = b.generate(reqs)
    assert texts == b.generate(reqs) and all(t.strip() for t in texts)
    assert texts == [b.generate([r])[0] for r in reqs]  # independent of the batch


def test_export_writes_truth_beside_the_metrics(tmp_path: Path):
    import subprocess
    import sys

    import pandas as pd

    data = _study(tmp_path, {"persona_sd": 1.0, "effects": {"sex=Female": {"Harm": 1.0}}})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(data))
    run = subprocess.run([sys.executable, "-m", "valuescope", "run", "study.yaml", "-q", "--no-report"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stderr
    run_id = Store(tmp_path / "out").runs()[0].run_id
    exp = subprocess.run([sys.executable, "-m", "valuescope", "export", run_id, "--dir", "out", "--out", "x"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert exp.returncode == 0, exp.stderr
    m = pd.read_csv(tmp_path / "x" / "metrics_truth.csv")
    inertia = m[(m["metric"] == "inertia_soft") & (m["dimension"] == "Harm")].iloc[0]
    assert 0 < inertia["truth"] < 1 and "value" in m.columns
    eff = pd.read_csv(tmp_path / "x" / "effects_truth.csv")
    cell = eff[(eff["attribute"] == "sex") & (eff["level"] == "Female") & (eff["dimension"] == "Harm")]
    assert cell["d_true"].iloc[0] > 0.5
