"""Per-persona scoring on hand-computed fixtures, one per instrument (real instrument files and tidy rows)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuescope.analysis.scoring import catch_screen, score_personas
from valuescope.analysis.tidy import build_responses
from valuescope.design.instruments import load_instrument
from valuescope.study.spec import SpecError

INSTRUMENTS = {name: load_instrument(name) for name in ("mfq30", "pvq_rr", "pvq40", "donation")}
NAN = float("nan")


def answers(
    instrument: str,
    persona: str,
    values: dict[str, float],
    *,
    default: float | None = None,
    invalid: tuple[str, ...] = (),
    argmax: dict[str, float] | None = None,
    repeat: int = 0,
    **persona_cols,
) -> list[dict]:
    """Tidy rows for one respondent: ``values[item_id]`` (or ``default``) is the expected score; items in
    ``invalid`` are unreadable answers (valid False, NaN values)."""
    inst = INSTRUMENTS[instrument]
    rows = []
    for item in inst.items:
        x = values.get(item.id, default)
        if x is None:
            continue
        ok = item.id not in invalid
        rows.append(
            {
                "run_id": "r1",
                "model": "m",
                "condition": "persona",
                "persona_id": persona,
                "population": "test",
                "set_seed": 111,
                "gender": persona_cols.get("gender"),
                "attr_age": persona_cols.get("age", "40"),
                "context": "none",
                "topic": "none",
                "n_messages": 0,
                "seed": 0,
                "repeat": repeat,
                "instrument": instrument,
                "item_id": item.id,
                "dimension": item.dimension,
                "expected": float(x) if ok else NAN,
                "argmax_value": float((argmax or {}).get(item.id, x)) if ok else NAN,
                "valid": ok,
            }
        )
    return rows


def scores(df: pd.DataFrame, persona: str, level: str = "dimension", column: str = "score") -> dict:
    sel = df[(df.persona_id == persona) & (df.level == level)]
    return dict(zip(sel.dimension, sel[column], strict=True))


# --------------------------------------------------------------------------- MFQ-30


def _mfq_items(foundation: str) -> list[str]:
    return [it.id for it in INSTRUMENTS["mfq30"].items if it.dimension == foundation]


def test_mfq_foundation_means_invalid_items_and_nan():
    harm, ingroup, authority, purity = (_mfq_items(f) for f in ("Harm", "Ingroup", "Authority", "Purity"))
    vals = {harm[0]: 2.0, **{i: float(v) for i, v in zip(ingroup, range(6), strict=True)}}
    vals.update({"MATH": 1.0, "GOOD": 5.0})
    rows = answers(
        "mfq30", "p1", vals, default=5.0, invalid=(authority[0], *purity), gender="female", age="33"
    )
    for row in rows:
        if row["dimension"] == "Fairness":
            row["expected"] = 3.0
        if row["dimension"] == "Authority" and row["valid"]:
            row["expected"] = 4.0
    out = score_personas(pd.DataFrame(rows), INSTRUMENTS)
    got = scores(out, "p1")
    assert got["Harm"] == pytest.approx((5 * 5 + 2) / 6)  # 4.5
    assert got["Fairness"] == 3.0
    assert got["Ingroup"] == pytest.approx(2.5)  # 0..5
    assert got["Authority"] == 4.0
    assert math.isnan(got["Purity"])  # no valid item: NaN, not a crash
    assert scores(out, "p1", column="n_items") == {
        "Harm": 6,
        "Fairness": 6,
        "Ingroup": 6,
        "Authority": 5,
        "Purity": 0,
    }
    # the MFQ is not centred
    assert scores(out, "p1", column="raw_score")["Harm"] == got["Harm"]
    assert list(out.dimension) == ["Harm", "Fairness", "Ingroup", "Authority", "Purity"]
    assert set(out.level) == {"dimension"} and not out.catch_failed.any()
    row = out.iloc[0]
    assert (row.gender, row.attr_age, row.set_seed, row.population) == ("female", "33", 111, "test")


@pytest.mark.parametrize(
    ("math_x", "good_x", "invalid", "flag_expected", "flag_argmax"),
    [
        (1.0, 5.0, (), False, False),
        (3.0, 5.0, (), True, True),  # MATH in the top 3 options (3, 4, 5)
        (5.0, 5.0, (), True, True),
        (0.0, 2.0, (), True, True),  # GOOD in the bottom 3 options (0, 1, 2)
        (2.0, 3.0, (), False, False),  # the boundaries themselves pass
        (2.9, 2.1, (), False, True),  # expected answers pass; the argmax options (3, 2) fail
        (5.0, 0.0, ("MATH", "GOOD"), False, False),  # unreadable catch answers flag nobody
    ],
)
def test_mfq_catch_screen_both_ways(math_x, good_x, invalid, flag_expected, flag_argmax):
    rows = answers(
        "mfq30",
        "p",
        {"MATH": math_x, "GOOD": good_x},
        default=3.0,
        invalid=invalid,
        argmax={"MATH": round(math_x), "GOOD": round(good_x)},
    )
    df = pd.DataFrame(rows)
    for value, flag in (("expected", flag_expected), ("argmax_value", flag_argmax)):
        out = score_personas(df, INSTRUMENTS, value=value)
        assert len(out) == 5 and (out.catch_failed == flag).all(), value
        screen = catch_screen(df, INSTRUMENTS, value=value)
        assert list(screen.catch_failed) == [flag]
    # no data is dropped: the foundation scores are there either way
    assert score_personas(df, INSTRUMENTS).score.tolist() == [3.0] * 5
    screen = catch_screen(df, INSTRUMENTS)
    if invalid:
        assert screen.catch_MATH.isna().all()
    else:
        assert screen.catch_MATH.tolist() == [math_x] and screen.catch_GOOD.tolist() == [good_x]


# --------------------------------------------------------------------------- PVQ-RR


def _rr(code: str) -> list[str]:
    return [it.id for it in INSTRUMENTS["pvq_rr"].items if it.dimension == code]


def test_pvq_rr_mrat_and_19_10_4_aggregation():
    vals = {i: 6.0 for i in _rr("AC")} | {i: 1.0 for i in _rr("POD")} | {i: 5.0 for i in _rr("HUM")}
    vals["Q09"] = 6.0  # one Face item
    rows = answers("pvq_rr", "full", vals, default=3.0)
    rows += answers("pvq_rr", "gap", vals, default=3.0, invalid=("Q17",))  # an Achievement item lost
    out = score_personas(pd.DataFrame(rows), INSTRUMENTS)
    assert out.groupby("persona_id").size().tolist() == [19 + 10 + 4] * 2

    # persona "full": item sum 57*3 + 3*3 (AC) - 3*2 (POD) + 3*2 (HUM) + 3 (Face) = 183
    mrat = 183 / 57
    raw = scores(out, "full", column="raw_score")
    assert raw["AC"] == 6 and raw["POD"] == 1 and raw["HUM"] == 5 and raw["FAC"] == 4 and raw["SDT"] == 3
    got = scores(out, "full")
    assert got["AC"] == pytest.approx(6 - mrat)
    assert got["FAC"] == pytest.approx(4 - mrat)
    assert got["UNN"] == pytest.approx(3 - mrat)
    basic = scores(out, "full", "basic", "raw_score")
    assert len(basic) == 10 and "Face" not in basic
    assert basic["Power"] == pytest.approx((1 * 3 + 3 * 3) / 6)  # POD + POR = 2
    assert basic["Tradition"] == pytest.approx((3 * 3 + 5 * 3) / 6)  # TR + HUM = 4
    assert basic["Achievement"] == 6 and basic["Universalism"] == 3
    assert scores(out, "full", "basic")["Power"] == pytest.approx(2 - mrat)
    assert scores(out, "full", "basic", "n_items") == {
        "Achievement": 3,
        "Benevolence": 6,
        "Conformity": 6,
        "Hedonism": 3,
        "Power": 6,
        "Security": 6,
        "Self-Direction": 6,
        "Stimulation": 3,
        "Tradition": 6,
        "Universalism": 9,
    }
    higher = scores(out, "full", "higher", "raw_score")
    assert higher["Self-Enhancement"] == pytest.approx((6 * 3 + 1 * 3 + 3 * 3) / 9)  # 30/9
    assert higher["Conservation"] == 3 and higher["Openness to change"] == 3
    assert higher["Self-Transcendence"] == 3
    assert scores(out, "full", "higher")["Self-Enhancement"] == pytest.approx(30 / 9 - mrat)

    # persona "gap": Q17 (AC, answered 6) unreadable -> left out of AC, MRAT and the pools
    mrat_gap = (183 - 6) / 56
    gap = scores(out, "gap")
    assert gap["AC"] == pytest.approx(6 - mrat_gap)
    assert scores(out, "gap", column="n_items")["AC"] == 2
    assert scores(out, "gap", "higher", "raw_score")["Self-Enhancement"] == pytest.approx((12 + 3 + 9) / 8)
    assert scores(out, "gap", "higher", "n_items")["Self-Enhancement"] == 8


def test_pvq_rr_mrat_scores_sum_to_zero_over_items():
    """With every item answered, the item-weighted mean of the 19 centred scores is 0 (3 items each)."""
    rng = np.random.default_rng(0)
    vals = {it.id: float(rng.uniform(1, 6)) for it in INSTRUMENTS["pvq_rr"].items}
    out = score_personas(pd.DataFrame(answers("pvq_rr", "p", vals)), INSTRUMENTS)
    assert sum(scores(out, "p").values()) == pytest.approx(0, abs=1e-9)


# --------------------------------------------------------------------------- PVQ-40


def test_pvq40_mrat_and_higher_order():
    by_value = {
        v: [it.id for it in INSTRUMENTS["pvq40"].items if it.dimension == v]
        for v in ("Power", "Universalism")
    }
    vals = {i: 1.0 for i in by_value["Power"]} | {i: 6.0 for i in by_value["Universalism"]}
    rows = answers("pvq40", "eowyn", vals, default=4.0, gender="female")
    rows += answers("pvq40", "eowyn", vals, default=4.0, gender="female", repeat=1, invalid=("Q02",))
    out = score_personas(pd.DataFrame(rows), INSTRUMENTS)
    first = out[out.repeat == 0]
    # item sum: 40*4 - 3*3 (Power 1s) + 6*2 (Universalism 6s) = 163
    mrat = 163 / 40
    got = dict(
        zip(first[first.level == "dimension"].dimension, first[first.level == "dimension"].score, strict=True)
    )
    assert got["Power"] == pytest.approx(1 - mrat)
    assert got["Universalism"] == pytest.approx(6 - mrat)
    assert got["Security"] == pytest.approx(4 - mrat)
    assert len(got) == 10
    higher = first[first.level == "higher"].set_index("dimension")
    assert higher.loc["Self-Transcendence", "raw_score"] == pytest.approx((6 * 6 + 4 * 4) / 10)
    assert higher.loc["Self-Enhancement", "raw_score"] == pytest.approx((3 * 1 + 4 * 4) / 7)
    # repeat 1 lost Q02 (Power, answered 1): Power = 1 from 2 items, MRAT = 162/39
    second = out[(out.repeat == 1) & (out.level == "dimension")].set_index("dimension")
    assert second.loc["Power", "n_items"] == 2
    assert second.loc["Power", "score"] == pytest.approx(1 - 162 / 39)
    assert (out.gender == "female").all()


# --------------------------------------------------------------------------- donation


def test_donation_mean_coins_per_race():
    items = INSTRUMENTS["donation"].items
    race = {r: [it.id for it in items if it.dimension == r] for r in INSTRUMENTS["donation"].dimensions}
    vals = {i: 10.0 for i in race["elf"]}
    vals |= {i: (0.0 if k < 10 else 4.0) for k, i in enumerate(race["dwarf"])}
    vals |= {i: 1.5 for i in race["orc"]}
    vals |= {i: 6.0 for i in race["human"]}
    argmax = {i: 2.0 for i in race["orc"]}
    rows = answers(
        "donation", "gandalf", vals, default=8.0, argmax=argmax, invalid=(race["human"][0], *race["hobbit"])
    )
    for value, orc in (("expected", 1.5), ("argmax_value", 2.0)):
        out = score_personas(pd.DataFrame(rows), INSTRUMENTS, value=value)
        got = scores(out, "gandalf")
        assert got["elf"] == 10 and got["dwarf"] == 2 and got["orc"] == orc and got["human"] == 6
        assert math.isnan(got["hobbit"])
        assert scores(out, "gandalf", column="n_items") == {
            "elf": 20,
            "dwarf": 20,
            "orc": 20,
            "human": 19,
            "hobbit": 0,
        }
        assert (out.score.fillna(-1) == out.raw_score.fillna(-1)).all()  # no centring


# --------------------------------------------------------------------------- through the tidy builder


def test_scores_map_back_to_options_not_letters():
    """Stored letter distributions with a permuted option order -> tidy table -> donation scores."""
    inst = INSTRUMENTS["donation"]
    order = [5, 4, 3, 2, 1, 0]  # letter A shows "10 coins", ..., letter F shows "0 coins"
    stored = []
    for n, item in enumerate(inst.items[:40]):  # the 20 elves and the 20 dwarves
        probs = [0.0] * 6
        if item.dimension == "elf":
            probs[0] = 1.0  # always letter A = 10 coins
        else:
            probs[4], probs[5] = 0.6, 0.4  # letters E/F = 2 and 0 coins -> expected 1.2, argmax 2
        stored.append(
            {
                "run_id": "r",
                "model": "m",
                "seed": 0,
                "repeat": 0,
                "instrument": "donation",
                "item_id": item.id,
                "part": "donation",
                "dimension": item.dimension,
                "wording": None,
                "position": n,
                "option_order": json.dumps(order),
                "probs": json.dumps(probs),
                "valid": 1,
                "outside_mass": 0.01,
                "method": "logprobs",
                "error": None,
                "raw": None,
                "key": f"k{n}",
                "persona_json": json.dumps(
                    {
                        "id": "frodo",
                        "kind": "named",
                        "name": "Frodo",
                        "gender": "male",
                        "population": "tolkien",
                    }
                ),
                "context_json": json.dumps({"topic": "chess", "n_messages": 3}),
            }
        )
    tidy = build_responses(stored, {"donation": inst})
    out = score_personas(tidy, INSTRUMENTS)
    got = scores(out, "frodo")
    assert got["elf"] == 10 and got["dwarf"] == pytest.approx(1.2)
    assert math.isnan(got["orc"]) and scores(out, "frodo", column="n_items")["orc"] == 0
    assert scores(score_personas(tidy, INSTRUMENTS, value="argmax_value"), "frodo")["dwarf"] == 2.0
    assert set(out.context) == {"chess@3"} and set(out.persona_name) == {"Frodo"}


# --------------------------------------------------------------------------- shape and errors


def test_several_instruments_personas_and_custom_instrument():
    example = load_instrument(path=Path(__file__).resolve().parents[1] / "examples" / "my_instrument.yaml")
    rows = []
    base = answers("mfq30", "a", {"GOOD": 5.0}, default=2.0)
    base += answers("mfq30", "b", {"GOOD": 0.0}, default=4.0)
    for item_id, x in (("Q1", 5.0), ("Q2", 4.0), ("C1", 2.0), ("C2", 5.0)):
        rows.append(
            dict(base[0], instrument=example.id, item_id=item_id, expected=x, argmax_value=x, persona_id="a")
        )
    out = score_personas(pd.DataFrame(base + rows), {**INSTRUMENTS, example.id: example})
    assert out.groupby(["persona_id", "instrument"]).size().to_dict() == {
        ("a", "curiosity_caution"): 2,
        ("a", "mfq30"): 5,
        ("b", "mfq30"): 5,
    }
    custom = out[out.instrument == example.id].set_index("dimension")
    assert custom.loc["Curiosity", "score"] == 4.5
    assert custom.loc["Caution", "score"] == pytest.approx((2 + (1 + 5 - 5)) / 2)  # C2 reverse-keyed: 6 - 5
    flags = out[out.instrument == "mfq30"].groupby("persona_id").catch_failed.first().to_dict()
    assert flags == {"a": False, "b": True}
    assert list(out.columns[:4]) == ["run_id", "model", "condition", "persona_id"]
    assert list(out.columns[-8:]) == [
        "instrument",
        "level",
        "dimension",
        "score",
        "raw_score",
        "sampling_var",
        "n_items",
        "catch_failed",
    ]


def test_scoring_errors_and_empty_input():
    df = pd.DataFrame(answers("mfq30", "p", {}, default=1.0))
    with pytest.raises(SpecError, match="value must be one of"):
        score_personas(df, INSTRUMENTS, value="median")
    with pytest.raises(SpecError, match="no instrument definition for 'mfq30'"):
        score_personas(df, {})
    bad = df.assign(item_id=df.item_id.where(df.index > 0, "NOPE"))
    with pytest.raises(SpecError, match="instrument 'mfq30' has no item 'NOPE'"):
        score_personas(bad, INSTRUMENTS)
    with pytest.raises(SpecError, match="no column 'valid'"):
        score_personas(df.drop(columns="valid"), INSTRUMENTS)
    empty = score_personas(df.iloc[:0], INSTRUMENTS)
    assert empty.empty and "score" in empty.columns
