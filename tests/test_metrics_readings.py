"""Both readings named (answers vs probabilities), the exact sampling variance of a score, what a
repeat changes (option order, conversation), and score_from -- on hand-computed fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from metrics_synth import hand_rows, hand_scores

from valuescope.analysis.metrics import compute_metrics, repeat_design
from valuescope.analysis.scoring import SCORE_FROM, score_personas
from valuescope.analysis.tidy import build_responses
from valuescope.design.instruments import load_instrument


def _one(m, metric, dim="D"):
    sel = m[(m.metric == metric) & (m.dimension == dim)]
    assert len(sel) == 1, (metric, sel)
    return sel.iloc[0]


def test_hard_and_soft_inertia_differ_as_the_issue_says():
    # every answer puts 0.4 on option 1 and 0.2 on options 2-4: every chosen answer is option 1
    #   hard: p = [1, 0, ...] -> H = 0 -> I = 1
    #   soft: H([.4, .2, .2, .2]) = .4*1.321928 + 3*.2*2.321928 = 1.921928 bits -> I = 1 - 1.921928/log2(6)
    p = [0.4, 0.2, 0.2, 0.2, 0.0, 0.0]
    rows = [("persona", f"p{j}", "none", f"i{i}", "D", p) for j in range(6) for i in range(3)]
    m = compute_metrics(hand_rows(rows), None, n_boot=10)
    assert _one(m, "inertia_hard")["value"] == pytest.approx(1.0)
    assert _one(m, "inertia_soft")["value"] == pytest.approx(1 - 1.921928 / np.log2(6), abs=1e-6)  # 0.2565
    assert _one(m, "top1_share_hard")["value"] == 1.0
    assert _one(m, "top1_share_soft")["value"] == pytest.approx(0.4)
    assert _one(m, "top2_adjacent_hard")["value"] == 1.0
    assert _one(m, "top2_adjacent_soft")["value"] == pytest.approx(0.6)


def _pvq_rows(probs_by_item: dict[str, list[float]]) -> list[dict]:
    inst = load_instrument("pvq40")
    rows = []
    for n, item in enumerate(inst.items):
        probs = probs_by_item.get(item.id, [0, 0, 0, 1.0, 0, 0])
        rows.append({
            "run_id": "r", "model": "m", "seed": 0, "repeat": 0, "instrument": "pvq40", "item_id": item.id,
            "part": item.part, "dimension": item.dimension, "wording": "male", "position": n,
            "option_order": json.dumps([1, 2, 0, 4, 5, 3]),  # two 3-cycles: not its own inverse
            "probs": json.dumps(probs), "valid": 1, "outside_mass": 0.0, "method": "logprobs", "error": None,
            "raw": None, "key": f"k{n}",
            "persona_json": json.dumps({"id": "frodo", "kind": "named", "name": "Frodo", "gender": "male"}),
            "context_json": json.dumps({"topic": None, "n_messages": 0}),
        })
    return rows


def test_sampling_variance_of_an_mrat_score_by_hand():
    inst = load_instrument("pvq40")
    first = inst.items[0]
    # letters under order [1,2,0,4,5,3]: letter A shows option 1, B option 2, C option 0, ...
    # letter probs [.5, .5, 0, 0, 0, 0] -> option 1 (value 2) .5, option 2 (value 3) .5: variance 0.25
    resp = build_responses(_pvq_rows({first.id: [0.5, 0.5, 0, 0, 0, 0]}), {"pvq40": inst})
    row0 = resp[resp.item_id == first.id].iloc[0]
    assert [row0[f"p_{i}"] for i in range(1, 7)] == [0, 0.5, 0.5, 0, 0, 0]
    sc = score_personas(resp, {"pvq40": inst})
    dim = sc[(sc.level == "dimension") & (sc.dimension == first.dimension)].iloc[0]
    n_g, n_a = int(dim["n_items"]), 40
    # every other answer is one-hot (variance 0), so S_g = S_A = 0.25:
    #   sampling_var = (1/n_g - 1/n_A)^2 * 0.25 + (0.25 - 0.25) / n_A^2
    assert dim["sampling_var"] == pytest.approx((1 / n_g - 1 / n_a) ** 2 * 0.25)
    other = sc[(sc.level == "dimension") & (sc.dimension != first.dimension)].iloc[0]
    # an item outside the group enters through the MRAT only: 0.25 / n_A^2
    assert other["sampling_var"] == pytest.approx(0.25 / n_a**2)


def test_sampling_variance_of_a_raw_score_and_score_from_answer():
    inst = load_instrument("mfq30")
    items = [it for it in inst.items if it.dimension == "Harm"]
    rows = []
    for n, item in enumerate(items):
        rows.append({
            "run_id": "r", "model": "m", "seed": 0, "repeat": 0, "instrument": "mfq30", "item_id": item.id,
            "part": item.part, "dimension": item.dimension, "wording": None, "position": n,
            "option_order": json.dumps([2, 0, 1, 3, 4, 5]), "probs": json.dumps([0.6, 0.4, 0, 0, 0, 0]),
            "valid": 1, "outside_mass": 0.0, "method": "logprobs", "error": None, "raw": None, "key": f"k{n}",
            "persona_json": json.dumps({"id": "a", "kind": "wvs"}), "context_json": json.dumps({"topic": None}),
        })
    resp = build_responses(rows, {"mfq30": inst})
    # letter A (.6) shows option 2 (value 2), letter B (.4) option 0 (value 0): mean 1.2, variance 0.96
    assert resp["expected"].iloc[0] == pytest.approx(1.2)
    sc = score_personas(resp, {"mfq30": inst})
    harm = sc[(sc.level == "dimension") & (sc.dimension == "Harm")].iloc[0]
    assert harm["score"] == pytest.approx(1.2)
    assert harm["sampling_var"] == pytest.approx(0.96 / len(items))  # sum of n variances / n^2
    assert SCORE_FROM == {"expected": "expected", "answer": "argmax_value"}
    by_answer = score_personas(resp, {"mfq30": inst}, value=SCORE_FROM["answer"])
    row = by_answer[(by_answer.level == "dimension") & (by_answer.dimension == "Harm")].iloc[0]
    # the chosen option's value, which a greedy decoder gives at every asking: no sampling term
    assert row["score"] == 2.0 and row["sampling_var"] == 0.0


def test_run_to_run_share_uses_one_scoring_throughout():
    """score_from answer: the share has no sampling term (argmax scores with a temperature-1 sampling variance
    mixed two scorings); expected: the expected scores' own sampling variance. A persona-blind model with
    repeat noise: every bit of variance is run to run, so the share's CI reaches 1 in both scorings."""
    from valuescope.known_truth.simulate import prepare
    from valuescope.study.spec import study_from_dict
    from valuescope.study.synthetic_spec import SyntheticSpec

    study = study_from_dict({"name": "v", "report": False, "models": [{"name": "s", "backend": "synthetic"}],
                             "instruments": [{"name": "mfq30"}], "repeats": 3, "option_order": "fixed",
                             "population": {"baseline": False, "sources": [{"kind": "wvs", "n": 20, "seeds": [1]}]}})
    sim = prepare(study)
    for persona_sd in (2.0, 0.0):
        resp = sim.responses(SyntheticSpec(persona_sd=persona_sd, repeat_sd=0.5, temperature=1.0, seed=3))
        for value in ("expected", "argmax_value"):
            m = compute_metrics(resp, score_personas(resp, sim.instruments, value=value), n_boot=50,
                                convergence_sizes=())
            harm = m[(m.dimension == "Harm")].set_index("metric")
            samp, rep, pers = (harm.loc[k, "value"] for k in ("var_sampling", "var_repeat", "var_persona"))
            share = harm.loc["run_to_run_share"]
            if value == "argmax_value":
                assert samp == 0.0 and "no sampling term" in harm.loc["var_sampling", "note"]
            else:
                assert samp > 0.0
            assert share["value"] == pytest.approx((rep + samp) / (pers + rep + samp))
            if persona_sd == 0.0:
                assert share["ci_high"] > 0.99, (value, share)
            else:
                assert share["ci_high"] < 0.9, (value, share)  # the personas' variance is seen


def _design_rows(order_changes: bool, context: str):
    rows = []
    for pid in ("a", "b"):
        for rep in (0, 1):
            order = "1,2,0,3,4,5" if (order_changes and rep) else "0,1,2,3,4,5"
            rows.append(("persona", pid, context, "i1", "D", [1.0, 0, 0, 0, 0, 0],
                         {"repeat": rep, "option_order": order}))
    return hand_rows(rows)


def test_repeat_design_and_variance_attribution():
    assert repeat_design(_design_rows(True, "none")) == {"none": (True, False)}
    assert repeat_design(_design_rows(False, "joke@3")) == {"joke@3": (False, True)}
    assert repeat_design(_design_rows(True, "joke@3")) == {"joke@3": (True, True)}
    # scores: a = 1, 3 (mean 2); b = 5, 5; sampling variance 0.5 each -> var_repeat = MSW = 2/2 = 1
    prof = {("a", "none", 0): [1.0], ("a", "none", 1): [3.0], ("b", "none", 0): [5.0], ("b", "none", 1): [5.0]}
    sc = hand_scores(prof, ["D"], instrument="mfq30").assign(sampling_var=0.5)
    m = compute_metrics(_design_rows(True, "none"), sc, n_boot=10)
    assert _one(m, "var_repeat")["value"] == pytest.approx(1.0)
    assert _one(m, "var_order")["value"] == pytest.approx(1.0)  # no conversation: the repeats differ in order
    assert _one(m, "var_conversation")["value"] == 0.0 and "no conversation" in _one(m, "var_conversation")["note"]
    assert _one(m, "var_sampling")["value"] == pytest.approx(0.5)
    # MSB = 2 * ((2 - 3.5)^2 + (5 - 3.5)^2) / 1 = 9; n0 = 2; var_persona = (9 - 1) / 2 = 4
    assert _one(m, "var_persona")["value"] == pytest.approx(4.0)
    assert _one(m, "icc")["value"] == pytest.approx(4 / 5)
    assert _one(m, "run_to_run_share")["value"] == pytest.approx(1.5 / 5.5)
    both = compute_metrics(_design_rows(True, "joke@3"), sc.assign(context="joke@3"), n_boot=10)
    row = both[(both.metric == "var_order") & (both.dimension == "D")].iloc[0]
    assert np.isnan(row["value"]) and "change together" in row["note"]
