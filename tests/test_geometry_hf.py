"""Persona states and steering hooks on the real embedded SmolLM2, read through transformers (``hf``).

One small steered study (6 personas + baseline, 4 MFQ-30 items: two foundations, two items each, so that each
persona's per-dimension steerability has a jackknife) runs once per module: its unsteered
twin first (recording states), then the same study with the projection on the assistant axis capped
at the no-persona median at the answer position. That capping at the no-persona level moves a persona's
answer toward the baseline's is tested on the hook itself (one item, the axis at the answer position).
A 135M model is a demonstration of the machinery, not a finding.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import SharedBackend, block

from valuescope.core.types import Message, ScoreRequest

NEEDED = ("torch", "transformers", "gguf", "accelerate")
pytestmark = [
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in NEEDED),
                       reason="the hf extra is not installed (torch, transformers, gguf, accelerate)"),
    pytest.mark.slow,
]

ITEMS = ["EMOTIONALLY", "LOVECOUNTRY", "COMPASSION", "HISTORY"]  # issue 28: Harm and Ingroup x 2 (was 6 items)
LAYER = 15
PERSONAS = """id,description,kind
consultant,"You are a careful management consultant who gives balanced, factual advice.",assistant-like
reviewer,"You are a meticulous peer reviewer who evaluates claims on the evidence.",assistant-like
tutor,"You are a patient maths tutor who explains each step clearly.",assistant-like
ghost,"You are a restless ghost haunting a ruined castle, speaking in riddles and sorrow.",fantastical
bard,"You are a wandering bard who sings of dragons, love and ancient wars.",fantastical
leviathan,"You are Leviathan, an ancient sea monster older than the gods, contemptuous of mortals.",fantastical
"""


@pytest.fixture(scope="module")
def hf_backend(hf_embedded_backend):
    """The session's transformers model (tests/conftest.py; issue 28: was a module model of its own, ~10 CPU-s
    to load), batch size 8 here. Every hook these tests attach is removed on exit (a ``with``, ``finally``, the
    runner's detach: asserted in test_states_recorded_once_and_resumed), the scheduler and batch size are
    restored after the module."""
    backend = hf_embedded_backend
    saved = backend.batch_size, backend.scheduler
    backend.batch_size = 8
    yield backend
    backend.batch_size, backend.scheduler = saved
    assert backend.score_hooks == []


def docs_settings() -> dict:
    """docs/geometry.md's settings block as written (models, geometry, steer): the steered study runs it."""
    return yaml.safe_load(block("docs/geometry.md", 1))


def study_dict(out: Path, personas: Path, steer: dict | None) -> dict:
    docs = docs_settings()
    d = {"name": "geo", "output": str(out), "models": [{**m, "batch_size": 8} for m in docs["models"]],
         "instruments": [{"name": "mfq30", "items": ITEMS}],
         "population": {"baseline": True, "sources": [{"kind": "file", "path": str(personas)}]},
         "option_order": "fixed", "report": False, "geometry": docs["geometry"]}
    if steer is not None:
        d["steer"] = steer
    return d


@pytest.fixture(scope="module")
def steered(tmp_path_factory, hf_backend):
    from valuescope.execution.runner import run_study
    from valuescope.study.spec import study_from_dict

    root = tmp_path_factory.mktemp("geo")
    personas = root / "personas.csv"
    personas.write_text(PERSONAS, encoding="utf-8")
    built = []

    def factory(model):
        built.append(model.name)
        return SharedBackend(hf_backend)

    docs = docs_settings()
    assert docs["geometry"]["layers"] == [8, LAYER] and docs["steer"]["layer"] == LAYER  # what the tests read
    study = study_from_dict(study_dict(root / "out", personas, docs["steer"]))
    results = run_study(study, backend_factory=factory)
    return {"root": root, "study": study, "results": results, "factory": factory, "built": built,
            "personas": personas}


def requests() -> list[ScoreRequest]:
    labels = ("Never", "Rarely", "Sometimes", "Often", "Always", "Very often")
    out = []
    for persona in (None, "You are a restless ghost haunting a ruined castle."):
        for item in ("whether someone was cruel", "whether someone showed a lack of respect for authority"):
            user = ("When you decide whether something is right or wrong, how relevant is this?\n"
                    + "\n".join(f"({c}) {t}" for c, t in zip("ABCDEF", labels, strict=True)) + f"\n\n{item}")
            msgs = ((Message("system", persona),) if persona else ()) + (Message("user", user),)
            out.append(ScoreRequest(msgs, tuple("ABCDEF"), "Answer: (", labels, group=persona or "b"))
    return out


def test_zero_steering_changes_nothing_bit_for_bit(hf_backend):
    from valuescope.backends.hf_geometry import Steering

    reqs = requests()[::2]  # one item, the baseline and the ghost (issue 28: was both items, 4 prompts)
    # with hooks every prompt is evaluated whole (the naive path); the prefix cache's packed passes
    # round differently (< 1e-5), so the unsteered reference is taken on the same path
    scheduler, hf_backend.scheduler = hf_backend.scheduler, "naive"
    try:
        plain = hf_backend.score(reqs)
    finally:
        hf_backend.scheduler = scheduler
    cached = hf_backend.score(reqs)
    assert np.abs(np.array([r.probs for r in cached]) - np.array([r.probs for r in plain])).max() < 1e-5
    contrast = np.random.default_rng(0).normal(size=hf_backend.model.config.hidden_size)
    for kw in ({"add": 0.0}, {"add": 0.0, "cap": -1e30}, {"add": 0.0, "positions": "answer"}):  # live, no move
        hook = Steering(hf_backend, LAYER, contrast, **kw)
        hf_backend.score_hooks.append(hook)
        try:
            again = hf_backend.score(reqs)
        finally:
            hf_backend.score_hooks.remove(hook)
        assert hook.calls > 0 and hook.tokens > 0 and hook.capped_tokens == 0
        assert [r.probs for r in again] == [r.probs for r in plain]
        assert [r.outside_mass for r in again] == [r.outside_mass for r in plain]
    hook = Steering(hf_backend, LAYER, contrast, add=1.0)  # the same hook with a non-zero dose is live
    with hook():
        moved = hf_backend.score(reqs)
    diff = np.abs(np.array([r.probs for r in moved]) - np.array([r.probs for r in plain]))
    assert diff.max() > 1e-3
    after = hf_backend.score(reqs)[0].probs  # removed on exit: the prefix-cache path again
    assert after == cached[0].probs


def test_capping_at_the_no_persona_level_moves_a_persona_toward_it(hf_backend):
    """The hook's mechanism on one item: the axis from the persona's to the baseline's state at the
    answer position (layer 15), the persona's projection capped at the baseline's."""
    from valuescope.analysis.metrics.inertia import jsd
    from valuescope.backends.hf_geometry import Steering, record_states

    base, _, pers, _ = requests()
    states, _ = record_states(hf_backend, [hf_backend.render(base), hf_backend.render(pers)], [LAYER])
    hb, hp = states[0, 0].astype(np.float64), states[1, 0].astype(np.float64)
    c = hb - hp
    tau = float(hb @ (c / np.linalg.norm(c)))
    plain_b, plain_p = (np.array(r.probs) for r in hf_backend.score([base, pers]))
    hook = Steering(hf_backend, LAYER, c, add=None, cap=tau, positions="answer")
    with hook():
        [capped] = hf_backend.score([pers])
    assert hook.capped_tokens == 1
    before, after = float(jsd(plain_b, plain_p)), float(jsd(plain_b, np.array(capped.probs)))
    assert after < before, (before, after)
    assert capped.valid and capped.outside_mass < 0.5


def test_prefix_is_the_start_of_every_scoring_prompt(hf_backend):
    from valuescope.backends.hf_geometry import prefix_text

    for req in requests():
        prefix = prefix_text(hf_backend, req.messages[:-1])
        assert hf_backend.render(req).startswith(prefix) and prefix.rstrip().endswith("user")


def test_states_recorded_once_and_resumed(steered, hf_backend):
    from valuescope.execution.runner import run_study
    from valuescope.store.geometry import load_states
    from valuescope.store.sqlite import Store

    twin, main = steered["results"]
    assert twin.geometry["states"] == 7 * 2 and twin.geometry["layers"] == [8, LAYER]
    assert twin.geometry["bytes"] == 7 * 2 * hf_backend.model.config.hidden_size * 4
    assert main.geometry["steer"]["reference"] == twin.run_id and main.run_id != twin.run_id
    assert main.geometry["steer"]["hook"].calls > 0 and hf_backend.score_hooks == []  # detached after the run
    with Store(steered["root"] / "out") as store:
        st = load_states(store, twin.run_id)
        assert len(st) == 14 and st["vector"].map(len).eq(hf_backend.model.config.hidden_size).all()
        assert st["vector"].map(lambda v: v.dtype == np.float32 and np.isfinite(v).all()).all()
        assert len(store.responses(twin.run_id)) == len(store.responses(main.run_id)) == 7 * len(ITEMS)
    again = run_study(steered["study"], backend_factory=steered["factory"])
    assert [r.new for r in again] == [0, 0] and again[0].geometry.get("states", 0) == 0
    with Store(steered["root"] / "out") as store:
        assert len(load_states(store, twin.run_id)) == 14  # nothing duplicated


def test_steered_study_reports_its_effect_with_intervals(steered):
    from valuescope.analysis.tables import load_run
    from valuescope.store.sqlite import Store

    twin, main = steered["results"]
    with Store(steered["root"] / "out") as store:
        m = load_run(store, main.run_id, n_boot=100).metrics
        g = load_run(store, twin.run_id, n_boot=100).metrics
    rows = m[m["metric"].str.startswith("steer_") & (m["dimension"] == "")].set_index("metric")
    toward = rows.loc["steer_delta_to_reference"]
    # measured (docs/geometry.md): about -0.000003 bits, 2% of this model's tiny steerability; its sign is a
    # property of the model, so the test recomputes it from the two runs' answers, independently of
    # metrics.steering: JSD(q^r, p^s) - JSD(q^r, p^r) per dimension (q: baseline, p: pooled personas, soft;
    # r: the unsteered twin, s: steered), averaged over dimensions
    assert toward["context_b"] == twin.run_id, toward
    with Store(steered["root"] / "out") as store:
        r_resp = load_run(store, twin.run_id, with_metrics=False).responses
        s_resp = load_run(store, main.run_id, with_metrics=False).responses

    def pooled(resp, condition, dim):
        rows = resp[(resp["condition"] == condition) & (resp["dimension"] == dim) & resp["valid"]]
        p = rows[["p_1", "p_2", "p_3", "p_4", "p_5", "p_6"]].to_numpy(float)
        p = p / p.sum(axis=1, keepdims=True)
        return p.mean(axis=0)

    def js(p, q):
        m = (p + q) / 2
        h = lambda x: -np.sum(np.where(x > 0, x * np.log2(np.where(x > 0, x, 1)), 0))  # noqa: E731
        return h(m) - (h(p) + h(q)) / 2

    dims = sorted(r_resp["dimension"].dropna().unique())
    expected = np.mean([js(pooled(r_resp, "baseline", d), pooled(s_resp, "persona", d))
                        - js(pooled(r_resp, "baseline", d), pooled(r_resp, "persona", d)) for d in dims])
    assert toward["value"] == pytest.approx(expected, abs=1e-9)
    assert np.isfinite(toward["ci_low"]) and toward["ci_low"] <= toward["value"] <= toward["ci_high"]
    assert np.isfinite(rows.loc["steer_delta_steerability", ["value", "ci_low", "ci_high"]].astype(float)).all()
    # capability check: answers still readable, letters still take the mass
    assert rows.loc["steer_valid_share", "value"] == 1.0
    assert rows.loc["steer_outside_mass", "value"] < 0.5
    geo = g[g["metric"].str.startswith("geometry_")]
    pc1 = geo[(geo["metric"] == "geometry_var_pc1") & (geo["dimension"] == f"layer={LAYER}")].iloc[0]
    # a resample that repeats personas has fewer distinct directions: the bootstrap of a PC share is biased
    # upward, and with 6 personas its percentile interval can sit just above the estimate (docs/geometry.md)
    assert 0 < pc1["value"] < 1 and 0 < pc1["ci_low"] <= pc1["ci_high"] <= 1 and pc1["n"] == 6
    r = geo[(geo["metric"] == "geometry_axis_steer_r") & (geo["dimension"] == f"layer={LAYER}")].iloc[0]
    assert r["instrument"] == "mfq30" and np.isfinite(r["value"]) and r["ci_low"] <= r["value"] <= r["ci_high"]


def test_cli_show_prints_and_report_draws_geometry(steered):
    from typer.testing import CliRunner

    from valuescope.cli import app

    twin, main = steered["results"]
    out = steered["root"] / "out"
    res = CliRunner().invoke(app, ["show", main.run_id, "--dir", str(out)])
    assert res.exit_code == 0, res.output
    assert "persona space and steering" in res.output and "steer_delta" in res.output
    res = CliRunner().invoke(app, ["show", twin.run_id, "--dir", str(out)])
    assert "geometry_var_pc1" in res.output and "geometry_axis_st" in res.output
    res = CliRunner().invoke(app, ["report", twin.run_id, main.run_id, "--dir", str(out), "-o", str(out / "rep")])
    assert res.exit_code == 0, res.output
    html = next((out / "rep").glob("*.html")).read_text(encoding="utf-8")
    section = re.search(r'<section id="geometry".*?</section>', html, flags=re.S)
    assert section and "<img" in section.group(0)
