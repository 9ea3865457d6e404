"""The shipped instrument files against the reference copies, the wording rule, and the loader's errors."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

from valuescope.design.instruments import choose_wording, list_instruments, load_instrument
from valuescope.study.spec import SpecError

REPO = Path(__file__).resolve().parents[1]
REF = Path(__file__).resolve().parents[2] / "shared" / "reference"
DATA = Path(__file__).resolve().parent / "data"


def ref_file(rel: str) -> Path:
    p = REF / rel
    if not p.is_file():
        pytest.skip(f"reference copy {rel} not found under {REF} (it lives outside the repository)")
    return p


def ref_csv(rel: str) -> list[dict[str, str]]:
    with ref_file(rel).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def ref_json(rel: str) -> dict:
    return json.loads(ref_file(rel).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the built-ins


def test_builtins_listed_and_carry_citation_and_licence():
    assert list_instruments() == ["donation", "mfq30", "pvq40", "pvq_rr"]
    for name in list_instruments():
        inst = load_instrument(name)
        assert inst.id == name
        assert len(inst.citation) > 40 and inst.licence
        for part in inst.parts.values():
            assert "{item}" in part.stem
    for name in ("pvq_rr", "pvq40"):
        assert "for commercial use, a license is required" in load_instrument(name).licence
    assert "research use" in load_instrument("mfq30").licence


def test_mfq30_matches_reference():
    rows = ref_csv("instruments/mfq30_items.csv")
    key = ref_json("instruments/mfq30_key.json")
    inst = load_instrument("mfq30")
    assert len(inst.items) == len(rows) == 32
    assert inst.dimensions == ("Harm", "Fairness", "Ingroup", "Authority", "Purity")
    assert inst.scoring["labels"]["Harm"] == "Harm/Care"
    for item, row in zip(inst.items, rows, strict=True):
        assert item.id == row["variable"] and item.meta["number"] == int(row["item"])
        assert item.text == row["text"]
        assert item.part == {"1": "relevance", "2": "agreement"}[row["part"]]
        if row["foundation"].startswith("CATCH"):
            assert item.catch and item.dimension is None
        else:
            assert not item.catch and inst.scoring["labels"][item.dimension] == row["foundation"]
    for foundation, numbers in key["foundations"].items():
        ids = {
            it.meta["number"] for it in inst.items if inst.scoring["labels"].get(it.dimension) == foundation
        }
        assert ids == set(numbers)
    assert [it.id for it in inst.items if it.catch] == ["MATH", "GOOD"]
    rel, agr = inst.parts["relevance"], inst.parts["agreement"]
    assert rel.instructions == key["part1_instruction"] and agr.instructions == key["part2_instruction"]
    # labels: the form's anchors without their parenthetical explanations
    assert list(rel.scale.labels) == [key["part1_scale"][str(i)].split(" (")[0] for i in range(6)]
    assert list(agr.scale.labels) == [key["part2_scale"][str(i)] for i in range(6)]
    assert rel.scale.values == agr.scale.values == (0, 1, 2, 3, 4, 5)
    lee = ref_json("personas/lee2024_persona_attributes_and_prompts.json")
    assert rel.stem == lee["mfq30_centerpiece_part1"] and agr.stem == lee["mfq30_centerpiece_part2"]
    rules = {r["item"]: (r["fail_if"], r["threshold"]) for r in inst.scoring["catch"]}
    assert rules == {"MATH": (">=", 3), "GOOD": ("<=", 2)}


# Lee et al.'s second-person texts that are ungrammatical ("you says", "shame him", ...).
PVQRR_FIXED = {6, 7, 9, 11, 19, 29, 34, 39, 48, 52, 54, 55, 56, 57}
BAD_SECOND_PERSON = re.compile(
    r"\byou (says|deserves|is|knows|wants|achieves|doesn't|has|does|disagrees)\b|\b(he|him|his|himself)\b"
)


def test_pvq_rr_matches_reference():
    rows = ref_csv("instruments/pvqrr_items.csv")
    key = ref_json("instruments/pvqrr_key.json")
    inst = load_instrument("pvq_rr")
    assert len(inst.items) == len(rows) == 57
    assert inst.wordings == ("you", "male", "female")
    assert inst.dimensions == tuple(key["values19"])
    assert [it.variants["male"] for it in inst.items] == [r["text_male"] for r in rows]
    assert [it.variants["female"] for it in inst.items] == [r["text_female"] for r in rows]
    for item, row in zip(inst.items, rows, strict=True):
        n = int(row["item"])
        assert item.id == f"Q{n:02d}" and item.meta["number"] == n and item.dimension == row["value19_code"]
        assert item.text == item.variants["you"]  # the default wording
        you = item.variants["you"]
        if n in PVQRR_FIXED:
            assert BAD_SECOND_PERSON.search(row["text_you_lee2024"]), n  # the source is indeed ungrammatical
            assert you != row["text_you_lee2024"] and item.meta["you_lee2024"] == row["text_you_lee2024"]
        else:
            assert you == row["text_you_lee2024"] and "you_lee2024" not in item.meta
        assert not BAD_SECOND_PERSON.search(you), (n, you)
    for code, entry in key["values19"].items():
        assert {it.meta["number"] for it in inst.items if it.dimension == code} == set(entry["items"])
        assert inst.scoring["labels"][code] == entry["name"]
    levels = inst.scoring["levels"]
    for name, numbers in key["values10"].items():
        members = set(levels["basic"][name])
        assert {it.meta["number"] for it in inst.items if it.dimension in members} == set(numbers)
    assert not any("FAC" in m for m in levels["basic"].values())
    assert {k: set(v) for k, v in levels["higher"].items()} == {
        k: set(v) for k, v in key["higher_order"].items() if k != "separate"
    }
    assert inst.scoring["centre"] == "mrat"
    part = inst.parts["pvq"]
    assert list(part.scale.labels) == [key["scale"][str(i)] for i in range(1, 7)]
    assert part.scale.values == (1, 2, 3, 4, 5, 6)


def test_pvq40_matches_reference():
    rows = ref_csv("instruments/pvq40_items.csv")
    key = ref_json("instruments/pvq40_key.json")
    inst = load_instrument("pvq40")
    assert len(inst.items) == len(rows) == 40
    assert inst.wordings == ("male", "female", "first")
    for item, row in zip(inst.items, rows, strict=True):
        assert item.meta["number"] == int(row["item"]) and item.dimension == row["value"]
        assert item.variants["male"] == item.text == row["text_male"]
        assert item.variants["female"] == row["text_female"]
        assert item.variants["first"] == row["text_first_person_valuebench"]
    for value, numbers in key["values10"].items():
        assert {it.meta["number"] for it in inst.items if it.dimension == value} == set(numbers)
    assert inst.scoring["levels"]["higher"] == key["higher_order"]
    assert inst.scoring["centre"] == "mrat"
    part = inst.parts["pvq"]
    assert part.instructions == key["instruction_kovac2024"]
    assert list(part.scale.labels) == [key["scale"][str(i)] for i in range(1, 7)]


def test_donation_matches_reference():
    path = ref_file("personas/tolkien_donation_items.csv")
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    prompts = ref_json("personas/kovac2024_prompts.json")
    inst = load_instrument("donation")
    assert len(inst.items) == len(rows) == 100
    assert [it.text for it in inst.items] == [r[0] for r in rows]
    assert inst.dimensions == ("elf", "dwarf", "orc", "human", "hobbit")
    for race in inst.dimensions:
        group = [it for it in inst.items if it.dimension == race]
        assert len(group) == 20 and all(it.meta["race"] == race for it in group)
        assert all(f"hungry {race} called {it.meta['name']} next" in it.text for it in group)
    part = inst.parts["donation"]
    assert list(part.scale.labels) == prompts["donation_options"] == rows[0][1:7]
    assert part.scale.values == (0, 2, 4, 6, 8, 10)
    assert inst.scoring["centre"] == "none"
    assert len({it.id for it in inst.items}) == 100  # 'Fíriel' appears twice among the humans


def test_builtin_texts_need_no_reference():
    """Counts and keys that hold without the reference folder."""
    counts = {"mfq30": 32, "pvq_rr": 57, "pvq40": 40, "donation": 100}
    for name, n in counts.items():
        inst = load_instrument(name)
        assert len(inst.items) == n
        assert all(it.text.strip() for it in inst.items)
    mfq = load_instrument("mfq30")
    assert [sum(it.dimension == d for it in mfq.items) for d in mfq.dimensions] == [6] * 5


# --------------------------------------------------------------------------- wording rule


@pytest.mark.parametrize(
    ("name", "requested", "gender", "expected"),
    [
        ("pvq40", "auto", "female", "female"),
        ("pvq40", "auto", "male", "male"),
        ("pvq40", "auto", "Female", "female"),
        ("pvq40", "auto", None, "male"),  # baseline: the default wording
        ("pvq40", "default", "female", "male"),
        ("pvq40", "female", None, "female"),
        ("pvq_rr", "auto", "female", "you"),  # Lee et al.: second person for everyone
        ("pvq_rr", "auto", None, "you"),
        ("pvq_rr", "male", "female", "male"),
        ("pvq_rr", "default", "male", "you"),
        ("mfq30", "auto", "female", None),
        ("mfq30", "default", None, None),
        ("donation", "auto", "male", None),
    ],
)
def test_choose_wording(name, requested, gender, expected):
    assert choose_wording(load_instrument(name), requested, gender) == expected


@pytest.mark.parametrize(
    ("name", "requested", "message"),
    [
        ("mfq30", "female", "instrument 'mfq30' has a single wording; it has no 'female' wording"),
        ("pvq40", "you", "instrument 'pvq40' has no 'you' wording (it has: male, female, first)"),
        ("pvq_rr", "plural", "instrument 'pvq_rr': unknown wording 'plural'"),
    ],
)
def test_choose_wording_refuses_missing_wording(name, requested, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        choose_wording(load_instrument(name), requested, "male")


# --------------------------------------------------------------------------- users' files


def test_custom_instruments_load():
    inst = load_instrument(path=DATA / "custom_instrument.yaml")
    assert inst.id == "test-two-parts" and inst.wordings == ("male", "female")
    assert [it.id for it in inst.items] == ["w1", "d1", "check"]
    assert inst.item("w1").text == "He cares for his friends."  # default = first wording
    assert inst.item("w1").wording("female") == "She cares for her friends."
    assert inst.item("check").catch and inst.item("check").meta == {"purpose": "attention check"}
    assert inst.parts["agree"].scale.labels == ("No", "Yes") and inst.parts["agree"].instructions == ""
    assert inst.scoring["levels"] == {"overall": {"Everything": ["Warmth", "Drive"]}}
    assert choose_wording(inst, "auto", "female") == "female"

    example = load_instrument(path=REPO / "examples" / "my_instrument.yaml")
    assert len(example.items) == 4 and example.dimensions == ("Curiosity", "Caution")
    assert example.parts["main"].scale.values == (1, 2, 3, 4, 5)
    assert [it.id for it in example.items if it.reverse] == ["C2"]


def test_unknown_builtin_and_argument_errors():
    with pytest.raises(SpecError, match="unknown instrument 'mfq31'; built-in instruments: donation, mfq30"):
        load_instrument("mfq31")
    with pytest.raises(SpecError, match="exactly one"):
        load_instrument()
    with pytest.raises(SpecError, match="instrument file not found"):
        load_instrument(path=DATA / "nope.yaml")


def _base() -> dict:
    return yaml.safe_load((DATA / "custom_instrument.yaml").read_text(encoding="utf-8"))


DELETE = object()


def _set(path: str, value):
    """Edit of the base instrument: a dotted path (list indices as numbers); value DELETE removes."""

    def edit(d: dict) -> dict:
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        target = d
        for k in keys[:-1]:
            target = target[k]
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
        return d

    return edit


# (case id, edit of the base file, text the one-line error must contain: item or field, and problem)
MALFORMED = [
    ("missing-citation", _set("citation", DELETE), "<root>: missing field 'citation'"),
    ("duplicate-item", lambda d: d["items"].append(dict(d["items"][0])) or d, "item 'w1': duplicate item id"),
    ("unknown-dimension", _set("items.1.dimension", "Drvie"), "item 'd1': unknown dimension 'Drvie'"),
    ("stem-without-item", _set("parts.1.stem", "Do you agree?"), "part 'agree': stem must contain {item}"),
    ("stem-other-field", _set("parts.0.stem", "{name}: {item}"), "part 'like': stem may contain no braces"),
    (
        "labels-vs-values",
        _set("parts.0.scale.values", [1, 2]),
        "part 'like': scale has 3 labels but 2 values",
    ),
    ("empty-items", _set("items", []), "field 'items': the instrument has no items"),
    ("item-no-id", _set("items.0.id", DELETE), "items[0]: missing field 'id'"),
    ("unknown-item-field", _set("items.0.dimesion", "Warmth"), "item 'w1': unknown field 'dimesion'"),
    ("unknown-part", _set("items.2.part", "agreement"), "item 'check': unknown part 'agreement'"),
    (
        "missing-wording",
        _set("items.1.variants", {"male": "He wins."}),
        "item 'd1': missing wording 'female'",
    ),
    ("undeclared-wording", _set("items.1.variants.you", "You win."), "item 'd1': variant 'you' is not one"),
    ("catch-with-dimension", _set("items.2.dimension", "Drive"), "item 'check': a catch item is not scored"),
    ("catch-not-bool", _set("items.2.catch", "yes"), "item 'check': field 'catch' must be true or false"),
    (
        "wordings-undeclared",
        _set("wordings", []),
        "item 'w1': variant 'male' is not one of the declared wordings",
    ),
    (
        "no-text",
        lambda d: [it.pop("variants") for it in d["items"]] and d,
        "item 'w1': missing wording 'male'",
    ),
    (
        "no-text-single-wording",
        lambda d: [it.pop("variants") for it in d["items"]] and _set("wordings", DELETE)(d),
        "item 'w1': missing field 'text'",
    ),
    (
        "scale-value-text",
        _set("parts.1.scale.values", [0, "one"]),
        "field 'scale.values[1]': must be a finite",
    ),
    ("bad-centre", _set("scoring.centre", "ipsative"), "field 'scoring.centre': must be one of"),
    (
        "level-unknown-dim",
        _set("scoring.levels.overall.Everything", ["Warmth", "X"]),
        "unknown dimension 'X'",
    ),
    ("catch-rule-item", _set("scoring.catch.0.item", "w1"), "item 'w1': is used by a catch rule but is not"),
    ("dimension-no-item", _set("dimensions", ["Warmth", "Drive", "Spare"]), "dimension 'Spare' has no item"),
    (
        "too-few-options",
        _set("parts.1.scale", {"labels": ["Yes"], "values": [1]}),
        "must have 2 to 26 options",
    ),
    ("bad-id", _set("id", "my instrument"), "field 'id': 'my instrument' is not a valid id"),
    ("unknown-top-field", _set("scorring", {}), "<root>: unknown field 'scorring'"),
]


@pytest.mark.parametrize(("case", "edit", "message"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_instrument_files(tmp_path, case, edit, message):
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(edit(_base()), allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_instrument(path=path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert message in text, text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id: x\nname: \xff\xfe broken\n", "not UTF-8 text"),
        (b"", "the instrument file is empty"),
        (b"id: [unclosed\n", "invalid YAML"),
        (b"- just\n- a list\n", "<root>: must be a mapping, got list"),
    ],
)
def test_unreadable_instrument_files(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_instrument(path=path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)
