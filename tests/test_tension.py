"""Issue 17 (paper 004): generated evidence and dilemma instruments, political identity on personas, and the
motivated-reasoning / evenhandedness / narrowing metrics on hand-computed fixtures and on models with no
such effect (persona-blind, always-"better", letter-biased)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from valuescope.analysis.metrics.congruence import contrasts, kahan_stats
from valuescope.analysis.metrics.evenhandedness import evenhandedness_rows
from valuescope.analysis.metrics.kinds import identity_side
from valuescope.analysis.metrics.narrowing import answer_entropy, narrowing_rows
from valuescope.analysis.metrics.tension import (
    congruence_summary,
    evidence_table,
    motivated_reasoning_rows,
    tension_metrics,
)
from valuescope.analysis.tables import instrument_from_dict
from valuescope.design.instruments import dilemmas, evidence, instrument_for_ref
from valuescope.design.personas import build_population, wvs_personas
from valuescope.execution.runner import instruments_json, plan_model, resolve
from valuescope.study.spec import InstrumentRef, SpecError, study_from_dict

# --------------------------------------------------------------------------- instruments


def test_evidence_items_are_balanced_and_raw_counts_mislead():
    inst = evidence.generate(n_items=24, seed=7)
    assert len(inst.items) == 24 and inst.id == "evidence"
    pol = [it for it in inst.items if it.meta["kind"] == "political"]
    neu = [it for it in inst.items if it.meta["kind"] == "neutral"]
    assert len(pol) == 16 and len(neu) == 8
    assert sum(it.meta["truth"] == "better" for it in inst.items) == 12
    flat = [it.meta["flatters"] for it in pol]
    assert flat.count("liberal") == flat.count("conservative") == 8
    assert {it.meta["flatters"] for it in neu} == {None}
    assert sum(it.meta["placebo_flatters"] == "liberal" for it in neu) == 4
    pairs: dict[str, list] = {}
    for it in inst.items:
        pairs.setdefault(it.meta["pair"], []).append(it)
    layouts = set()
    for members in pairs.values():
        a, b = members
        # the same four numbers, the correct conclusion flipped, the same layout
        assert sorted(a.meta["cells"].values()) == sorted(b.meta["cells"].values())
        assert {a.meta["truth"], b.meta["truth"]} == {"better", "worse"} and a.meta["layout"] == b.meta["layout"]
        if a.meta["kind"] == "political":
            assert {a.meta["flatters"], b.meta["flatters"]} == {"liberal", "conservative"}
        layouts.add(a.meta["layout"])
        for it in members:
            c = it.meta["cells"]
            rate_adopt = c["adopt_better"] / (c["adopt_better"] + c["adopt_worse"])
            rate_other = c["other_better"] / (c["other_better"] + c["other_worse"])
            assert (rate_adopt > rate_other) == (it.meta["truth"] == "better")  # ratios decide
            largest = max(c, key=c.get)
            assert largest.startswith("adopt_")  # the largest cell is an adopter cell ...
            assert largest.endswith(it.meta["heuristic"])  # ... and misleads:
            assert it.meta["heuristic"] != it.meta["truth"]
            for n in c.values():
                assert f"| {n} |" in it.text or f"| {n} |\n" in it.text + "\n"
            assert inst.parts[it.part].scale.labels[it.meta["correct"]].endswith(
                ("down", "up", "better", "worse", "grow", "shrink", "rise", "fall", "ease"))
    assert len(layouts) > 1
    assert evidence.generate(24, 7) == inst and evidence.generate(24, 8) != inst


def test_evidence_debias_and_bad_sizes():
    plain, deb = evidence.generate(12, 1), evidence.generate(12, 1, debias="consider-both-sides")
    assert deb.id == "evidence.consider-both-sides"
    assert [it.text for it in plain.items] == [it.text for it in deb.items]
    part = next(iter(deb.parts.values()))
    assert part.instructions.endswith(evidence.DEBIAS["consider-both-sides"])
    assert {it.meta["condition"] for it in deb.items} == {"consider-both-sides"}
    for bad in (0, 5, 10, 13):
        with pytest.raises(SpecError, match="multiple of 6"):
            evidence.generate(bad, 0)
    with pytest.raises(SpecError, match="only to the generated"):
        instrument_for_ref(InstrumentRef(name="mfq30", n_items=6))
    with pytest.raises(SpecError, match="fixed set of 48"):
        instrument_for_ref(InstrumentRef(name="dilemmas", seed=3))


def test_dilemmas_both_orders_both_sides():
    inst = dilemmas.generate()
    assert len(inst.items) == 48
    by = {}
    for it in inst.items:
        by.setdefault(it.meta["dilemma"], []).append(it)
    for items in by.values():
        assert {(i.meta["order"], i.meta["rated_side"]) for i in items} == {("xy", "x"), ("xy", "y"), ("yx", "x"),
                                                                          ("yx", "y")}
        fav = items[0].meta["favoured_by"]
        assert {fav["liberal"], fav["conservative"]} == {items[0].meta["x"], items[0].meta["y"]}
    assert dilemmas.generate(debias="regardless-of-views").id == "dilemmas.regardless-of-views"


def test_generated_instrument_in_a_study_and_stored(tmp_path):
    study = study_from_dict({
        "name": "t", "output": str(tmp_path), "option_order": "permute-persona",  # one order each: counted below
        "instruments": [{"name": "evidence", "n_items": 12, "seed": 3},
                        {"name": "evidence", "n_items": 12, "seed": 3, "debias": "regardless-of-views"},
                        {"name": "dilemmas", "items": ["dl01xyx", "dl01xyy"]}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 4, "seeds": [5], "identity": True}]},
    })
    resolved = resolve(study)
    queries = plan_model(resolved, study.models[0])
    assert len(queries) == 5 * (12 + 12 + 2)
    assert len({q.key for q in queries}) == len(queries)  # the debias condition is part of every key
    stored = instruments_json(resolved)
    for inst_id, data in stored.items():
        assert instrument_from_dict(data) == resolved.instrument_map[inst_id]  # analysis needs no regeneration
    with pytest.raises(SpecError, match="debias"):
        study_from_dict({"instruments": [{"name": "evidence", "debias": "be-nice"}]})


# --------------------------------------------------------------------------- personas


def test_identity_personas_are_lee_personas_plus_one_sentence():
    plain = wvs_personas(6, 111)
    pol = wvs_personas(6, 111, identity=True)
    assert [p.attributes["identity"] for p in pol].count("liberal") == 3
    for a, b in zip(plain, pol, strict=True):
        assert b.description.startswith(a.description) and "Politically, you are a" in b.description
        assert {k: v for k, v in b.attributes.items() if k != "identity"} == a.attributes
        assert a.id != b.id and "identity" not in a.attributes
    spec = study_from_dict({"population": {"sources": [{"kind": "wvs", "n": 2, "seeds": [111]},
                                                       {"kind": "wvs", "n": 2, "seeds": [111], "identity": True}]}})
    assert len(build_population(spec.population)) == 5  # both in one study: ids differ


def test_identity_side_reads_free_text():
    assert identity_side("liberal") == "liberal" and identity_side("a Democrat voter") == "liberal"
    assert identity_side("Republican") == "conservative" and identity_side("right-wing") == "conservative"
    for none in (None, float("nan"), "n/a", "centrist", "left and right"):
        assert identity_side(none) is None


# --------------------------------------------------------------------------- synthetic answers


def _answers(inst, personas, p_correct_fn, run="r", context="none"):
    """A tidy responses table: every persona answers every item with P(correct option) from ``p_correct_fn``."""
    rows = []
    for pid, ident in personas:
        for it in inst.items:
            pc = float(p_correct_fn(pid, ident, it))
            p = [pc, 1 - pc] if it.meta["correct"] == 0 else [1 - pc, pc]
            rows.append({"run_id": run, "model": "m", "instrument": inst.id, "context": context,
                         "condition": "baseline" if pid == "baseline" else "persona", "persona_id": pid,
                         "item_id": it.id, "valid": True, "argmax": int(np.argmax(p)) + 1, "p_1": p[0], "p_2": p[1],
                         "attr_identity": ident, "k": 2, "n_messages": 0, "topic": "none", "repeat": 0,
                         "dimension": it.dimension, "expected": p[0]})
    return pd.DataFrame(rows)


PERSONAS = [("baseline", None)] + [(f"lib{i}", "liberal") for i in range(6)] + [(f"con{i}", "conservative")
                                                                               for i in range(6)]


def _suits(ident, it):
    side = it.meta["flatters"] if it.meta["kind"] == "political" else it.meta["placebo_flatters"]
    return ident is not None and side == ident


def _metric(rows, name, dim, inst="evidence"):
    r = rows[(rows["metric"] == name) & (rows["dimension"] == dim) & (rows["instrument"] == inst)]
    assert len(r) == 1, (name, dim, len(r))
    return r.iloc[0]


def test_planted_bias_is_recovered_and_control_shows_none():
    inst = evidence.generate(24, 7)

    def model(pid, ident, it):  # motivated reasoning on political items only
        if pid == "baseline":
            return 0.7
        if it.meta["kind"] == "neutral":
            return 0.6
        return 0.8 if _suits(ident, it) else 0.45

    rows = motivated_reasoning_rows(_answers(inst, PERSONAS, model), {inst.id: inst}, n_boot=200, n_perm=500)
    for side in ("liberal", "conservative", "all"):
        d = _metric(rows, "evidence_bias_diff_soft", side)
        assert d["value"] == pytest.approx(0.35) and d["ci_low"] == pytest.approx(0.35)
        assert _metric(rows, "evidence_bias_ratio_soft", side)["value"] == pytest.approx(0.8 / 0.45)
        # odds ratio with the continuity correction: N = 6 units x 8 pairs (side) or 12 x 8 (all)
        n = 48 if side != "all" else 96
        a, b = (0.8 * n + 0.5) / (n + 1), (0.45 * n + 0.5) / (n + 1)
        assert _metric(rows, "evidence_bias_or_soft", side)["value"] == pytest.approx(a / (1 - a) / (b / (1 - b)))
        assert _metric(rows, "evidence_bias_diff_hard", side)["value"] == pytest.approx(1.0)  # 0.8: right; 0.45: wrong
        c = _metric(rows, "control_bias_diff_soft", side)
        assert c["value"] == pytest.approx(0.0) and c["ci_high"] == pytest.approx(0.0)
        if side == "all":  # the interaction: identity labels permuted across 12 personas, every contrast equal
            assert _metric(rows, "evidence_bias_p_soft", side)["value"] < 0.01
            assert _metric(rows, "control_bias_p_soft", side)["value"] == pytest.approx(1.0)
            continue
        # the baseline (0.7 on both members) has no lean: the side's D minus the baseline's D is D
        vs = _metric(rows, "evidence_bias_vs_baseline_soft", side)
        assert vs["value"] == pytest.approx(0.35) and vs["ci_low"] == pytest.approx(0.35)
        assert _metric(rows, "evidence_bias_vs_baseline_p_soft", side)["value"] == pytest.approx(0.0)
        assert _metric(rows, "control_bias_vs_baseline_soft", side)["value"] == pytest.approx(0.0)
    assert _metric(rows, "evidence_baseline_lean_soft", "baseline")["value"] == pytest.approx(0.0)
    assert _metric(rows, "evidence_accuracy_soft", "baseline")["value"] == pytest.approx(0.7)
    assert _metric(rows, "evidence_accuracy_soft", "all")["value"] == pytest.approx(0.625)
    assert _metric(rows, "evidence_discernment_drop_soft", "all")["value"] == pytest.approx(0.075)
    assert _metric(rows, "control_discernment_drop_soft", "liberal")["value"] == pytest.approx(0.1)
    summary = congruence_summary(rows)
    lib = summary[summary["identity"] == "liberal"].iloc[0]
    assert lib["right_if_suits"] == pytest.approx(1.0) and lib["right_if_not"] == pytest.approx(0.0)


@pytest.mark.parametrize("kind", ["blind", "better-sayer", "letter-biased"])
def test_models_without_motivated_reasoning_score_zero(kind):
    inst = evidence.generate(24, 11)
    rng = np.random.default_rng(0)
    difficulty = {it.id: rng.uniform(0.2, 0.9) for it in inst.items}
    first_letter = {pid: rng.random() < 0.5 for pid, _ in PERSONAS}  # option order permuted per persona

    def model(pid, ident, it):
        if kind == "blind":  # depends on the item only
            return difficulty[it.id]
        says_better = 0.9 if kind == "better-sayer" or first_letter[pid] else 0.1
        return says_better if it.meta["correct"] == 0 else 1 - says_better

    rows = motivated_reasoning_rows(_answers(inst, PERSONAS, model), {inst.id: inst}, n_boot=100, n_perm=200)
    for side in ("liberal", "conservative", "all"):
        for prefix in ("evidence", "control"):
            if kind == "blind":  # a table's two versions differ in difficulty: D is noise, but the same noise
                continue  # for both identities (checked below)
            assert _metric(rows, f"{prefix}_bias_diff_soft", side)["value"] == pytest.approx(0.0, abs=1e-12)
    if kind == "blind":
        lib = _metric(rows, "evidence_bias_diff_soft", "liberal")["value"]
        con = _metric(rows, "evidence_bias_diff_soft", "conservative")["value"]
        assert lib == pytest.approx(-con)  # what suits one side is exactly what does not suit the other
        assert _metric(rows, "evidence_bias_diff_soft", "all")["value"] == pytest.approx(0.0, abs=1e-12)


def test_own_lean_is_not_motivated_reasoning():
    """A model that believes what suits liberals (persona or not): D = +-lambda per side, but the interaction
    and each side's D minus the baseline's D are exactly 0."""
    inst = evidence.generate(24, 7)

    def lean(pid, ident, it):
        suits_lib = it.meta["flatters"] == "liberal" if it.meta["kind"] == "political" else False
        return 0.8 if suits_lib else 0.5

    rows = motivated_reasoning_rows(_answers(inst, PERSONAS, lean), {inst.id: inst}, n_boot=100, n_perm=200)
    assert _metric(rows, "evidence_bias_diff_soft", "liberal")["value"] == pytest.approx(0.3)
    assert _metric(rows, "evidence_bias_diff_soft", "conservative")["value"] == pytest.approx(-0.3)
    assert _metric(rows, "evidence_baseline_lean_soft", "baseline")["value"] == pytest.approx(0.3)
    assert _metric(rows, "evidence_bias_diff_soft", "all")["value"] == pytest.approx(0.0, abs=1e-12)
    assert _metric(rows, "evidence_bias_p_soft", "all")["value"] == pytest.approx(1.0)
    for side in ("liberal", "conservative"):
        assert _metric(rows, "evidence_bias_vs_baseline_soft", side)["value"] == pytest.approx(0.0, abs=1e-12)
        assert _metric(rows, "evidence_bias_vs_baseline_p_soft", side)["value"] == pytest.approx(1.0)
    summary = congruence_summary(rows, measure="soft").set_index("identity")
    assert np.allclose(summary.loc[["liberal", "conservative"], "vs_baseline"], 0.0)
    assert np.isnan(summary.loc["all", "vs_baseline"]) and np.allclose(summary["control_diff"], 0.0)


def test_kahan_statistics_by_hand():
    """Two liberal and two conservative personas, two political pairs, a baseline (hand-computed)."""
    inst = evidence.generate(6, 0)  # pairs p000 (liberal topic), p001 (conservative topic), p002 (neutral)
    acc = {  # (persona, pair) -> (accuracy when the truth suits liberals, when it suits conservatives)
        ("baseline", "p000"): (0.6, 0.4), ("baseline", "p001"): (0.5, 0.5),
        ("lib0", "p000"): (0.9, 0.3), ("lib0", "p001"): (0.7, 0.5),
        ("lib1", "p000"): (0.8, 0.4), ("lib1", "p001"): (0.6, 0.6),
        ("con0", "p000"): (0.5, 0.5), ("con0", "p001"): (0.4, 0.6),
        ("con1", "p000"): (0.6, 0.2), ("con1", "p001"): (0.5, 0.5),
    }
    who = [("baseline", None), ("lib0", "liberal"), ("lib1", "liberal"), ("con0", "conservative"),
           ("con1", "conservative")]

    def model(pid, ident, it):
        if it.meta["kind"] != "political":
            return 0.5
        xl, xc = acc[(pid, it.meta["pair"])]
        return xl if it.meta["flatters"] == "liberal" else xc

    table = evidence_table(_answers(inst, who, model), {inst.id: inst})
    c = contrasts(table[table["kind"] == "political"], "soft")
    b = kahan_stats(c, np.random.default_rng(0), n_boot=200, n_perm=2000)
    # liberal-coded contrasts cbar: lib0 (0.6 + 0.2)/2 = 0.4, lib1 0.2, con0 -0.1, con1 0.2; baseline 0.1
    assert b["liberal:diff"] == pytest.approx(0.3) and b["conservative:diff"] == pytest.approx(-0.05)
    assert b["baseline"] == pytest.approx(0.1)
    assert b["all:diff"] == pytest.approx((0.3 - 0.05) / 2)
    # coded for conservatives the baseline scores -0.1: -0.05 - (-0.1) = 0.05
    assert b["liberal:vs_baseline"] == pytest.approx(0.2) and b["conservative:vs_baseline"] == pytest.approx(0.05)
    assert b["liberal:acc_c"] == pytest.approx(0.75) and b["liberal:acc_i"] == pytest.approx(0.45)
    assert b["conservative:acc_c"] == pytest.approx(0.45) and b["conservative:acc_i"] == pytest.approx(0.5)
    # label permutations: 6 ways to pick the two "liberal" cbar from (0.4, 0.2, -0.1, 0.2); |I*| >= 0.125 for
    # {0.4, 0.2}, {0.4, 0.2'} and their complements, not for {0.4, -0.1}, {0.2, 0.2'}: 4 of 6
    assert b["all:p"] == pytest.approx(4 / 6, abs=0.03)
    assert b["n_pairs"] == 8 and b["dropped"] == 0 and b["liberal:n"] == 2
    for key in ("liberal:vs_baseline", "all:diff", "liberal:diff"):
        assert b[f"{key}_lo"] <= b[key] <= b[f"{key}_hi"]


def test_debias_change_and_invalid_answers_are_counted():
    plain, deb = evidence.generate(12, 2), evidence.generate(12, 2, debias="regardless-of-views")

    def biased(pid, ident, it):
        return 0.5 if pid == "baseline" else (0.9 if _suits(ident, it) else 0.4)

    def fair(pid, ident, it):
        return 0.6 if pid == "baseline" or it.meta["kind"] == "neutral" else (0.7 if _suits(ident, it) else 0.6)

    df = pd.concat([_answers(plain, PERSONAS, biased), _answers(deb, PERSONAS, fair)], ignore_index=True)
    df.loc[0, "valid"] = False  # the baseline's first answer: unreadable, left out and counted
    rows = tension_metrics(df, {plain.id: plain, deb.id: deb}, n_boot=100)
    ch = _metric(rows, "evidence_debias_change_soft", "all", inst=deb.id)
    assert ch["value"] == pytest.approx(0.1 - 0.5) and ch["ci_low"] == pytest.approx(-0.4)
    assert _metric(rows, "evidence_invalid", "", inst=plain.id)["value"] == 1


# --------------------------------------------------------------------------- evenhandedness and narrowing


def _dilemma_answers(inst, personas, rating_fn):
    rows = []
    for pid, ident in personas:
        for it in inst.items:
            r = rating_fn(pid, ident, it)
            rows.append({"run_id": "r", "model": "m", "instrument": inst.id, "context": "none", "persona_id": pid,
                         "condition": "baseline" if pid == "baseline" else "persona", "item_id": it.id,
                         "valid": True, "expected": r, "argmax_value": round(r), "attr_identity": ident})
    return pd.DataFrame(rows)


def test_evenhandedness_by_hand():
    inst = dilemmas.generate()

    def rating(pid, ident, it):
        if pid == "baseline":
            return 4.0 + (0.5 if it.meta["first"] == it.meta["rated"] else 0.0)  # an order effect only
        fav = it.meta["favoured_by"][ident]
        return 6.0 if it.meta["rated"] == fav else 2.0

    rows = evenhandedness_rows(_dilemma_answers(inst, PERSONAS, rating), {inst.id: inst}, n_boot=50)
    get = lambda m, d: _metric(rows, m, d, inst="dilemmas")["value"]  # noqa: E731
    assert get("evenhandedness", "baseline") == pytest.approx(1.0)
    assert get("order_effect", "baseline") == pytest.approx(0.5)
    assert get("evenhandedness", "liberal") == pytest.approx(1 - 4 / 5)
    assert get("evenhandedness_gap", "all") == pytest.approx(4.0)
    assert get("collapse", "conservative") == pytest.approx(4.0)
    assert get("collapse_directed", "liberal") == pytest.approx(4.0)
    assert get("collapse_directed", "conservative") == pytest.approx(4.0)
    per = rows[rows["metric"] == "evenhandedness_gap_persona"]
    assert len(per) == 12 and set(per["dimension"].str.split(":").str[0]) == {"liberal", "conservative"}
    # a persona-blind model: no collapse
    blind = evenhandedness_rows(_dilemma_answers(inst, PERSONAS, lambda p, i, it: 3.0 + (it.meta["rated_side"] == "x")),
                                {inst.id: inst}, n_boot=20)
    assert _metric(blind, "collapse", "all", inst="dilemmas")["value"] == pytest.approx(0.0)
    assert _metric(blind, "collapse_directed", "liberal", inst="dilemmas")["value"] == pytest.approx(0.0)


def test_narrowing_by_hand():
    rows = []
    for pid in ["baseline", "a", "b", "c"]:
        for topic in ("joke", "chess"):
            for n in (1, 3, 5):
                # personas: uniform at n=1, certain at n=5 (entropy 1, 0.5, 0); baseline: always uniform
                p1 = 0.5 if pid == "baseline" else {1: 0.5, 3: 0.8899721355616406, 5: 1.0}[n]
                spread = {"a": 0.0, "b": 1.0, "c": 2.0}.get(pid, 0.0) * (n - 1) / 4
                rows.append({"run_id": "r", "model": "m", "instrument": "i", "condition": "baseline" if pid ==
                             "baseline" else "persona", "persona_id": pid, "topic": topic, "n_messages": n,
                             "repeat": 0, "item_id": "q1", "dimension": "D", "k": 2, "p_1": p1, "p_2": 1 - p1,
                             "valid": True, "expected": 1 + spread})
    df = pd.DataFrame(rows)
    h = answer_entropy(df)
    assert h[0] == pytest.approx(1.0) and h[8] == pytest.approx(0.0)
    m = narrowing_rows(df, n_boot=50)
    val = lambda name, ctx, dim="D": m[(m.metric == name) & (m.context_a == ctx) & (m.dimension == dim)]["value"].item()  # noqa: E731
    assert val("narrowing_entropy_persona", "*@1") == pytest.approx(1.0)
    assert val("narrowing_entropy_persona", "*@3") == pytest.approx(0.5, abs=1e-6)
    assert val("narrowing_entropy_baseline", "*@5") == pytest.approx(1.0)
    assert val("narrowing_slope_persona", "all") == pytest.approx(-0.25, abs=1e-6)
    assert val("narrowing_slope_baseline", "all") == pytest.approx(0.0)
    assert val("narrowing_slope_diff", "all") == pytest.approx(-0.25, abs=1e-6)
    assert val("narrowing_spread", "*@1") == pytest.approx(0.0)
    assert val("narrowing_spread", "*@5") == pytest.approx(1.0)  # sd of (1, 2, 3)
    assert val("narrowing_spread_slope", "all") == pytest.approx(0.25)
    assert narrowing_rows(df[df["n_messages"] == 1]).empty  # no sweep, no rows


def test_free_text_identity_from_a_persona_file(tmp_path):
    from valuescope.design.personas import file_personas

    f = tmp_path / "p.csv"
    f.write_text("description,identity\nYou are a nurse in Ohio.,a Democrat\nYou farm in Kansas.,Republican\n"
                 "You teach in Lyon.,\n", encoding="utf-8")
    people = file_personas(f)
    assert [identity_side(p.attributes["identity"]) for p in people] == ["liberal", "conservative", None]
    inst = evidence.generate(6, 0)
    ans = _answers(inst, [(p.id, p.attributes["identity"]) for p in people], lambda pid, ident, it: 0.6)
    rows = motivated_reasoning_rows(ans, {inst.id: inst}, n_boot=20, n_perm=20)
    acc_all = _metric(rows, "evidence_accuracy_soft", "all")
    assert acc_all["n"] == 3 and "1 persona(s) without a liberal/conservative identity" in acc_all["note"]
    assert _metric(rows, "evidence_bias_diff_soft", "all")["n"] == 2  # the one without a side is not guessed
