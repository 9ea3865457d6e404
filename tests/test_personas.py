"""Personas: seeded WVS sampling, attribute spaces, named lists, persona files, persona messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from scipy.stats import chisquare

from valuescope.core.types import BASELINE, Message
from valuescope.design.attribute_space import HIDDEN, default_space, load_attribute_space
from valuescope.design.personas import (
    PERSONA_ACK,
    build_population,
    file_personas,
    named_personas,
    persona_messages,
    wvs_personas,
)
from valuescope.study.spec import FileSource, NamedSource, PopulationSpec, SpecError, WVSSource

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "personas"
SRC = Path(__file__).resolve().parents[1] / "src"

EXPECTED_S111_0 = (
    "You are a Female born in 1992, which means that you are 32 years old. You were born in Ukraine "
    "and you live in Kyrgyzstan. Your income level is 4 out of 10. You are separated. You have "
    "children. You have received primary education. You are currently part-time employed. "
    "Your occupation group is Clerical. You are Arabic. You are Orthodox."
)


# --------------------------------------------------------------------------- WVS sampling


def test_seed_111_first_persona_is_fixed_forever():
    p = wvs_personas(1, 111)[0]
    assert p.id == "wvs-s111-0000"
    assert p.kind == "wvs" and p.population == "wvs:seed=111" and p.set_seed == 111
    assert p.description == EXPECTED_S111_0
    assert p.gender == "female"
    assert p.attributes == {
        "sex": "Female", "age": "32", "country_of_origin": "Ukraine", "country_of_residence": "Kyrgyzstan",
        "income_level": "4", "marital_status": "Separated", "have_children": "Yes",
        "education_level": "Primary education", "employment_status": "part-time",
        "occupation_group": "Clerical", "ethnic_group": "Arabic", "religious_denomination": "Orthodox",
    }


def test_seed_reproducible_across_processes_and_hash_seeds():
    code = (
        "import json; from valuescope.design.personas import wvs_personas; "
        "print(json.dumps([[p.id, p.description, p.attributes] for p in wvs_personas(30, 333)]))"
    )
    outs = []
    for hash_seed in ("0", "12345"):
        env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONHASHSEED=hash_seed)
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True)
        outs.append(json.loads(res.stdout))
    here = [[p.id, p.description, p.attributes] for p in wvs_personas(30, 333)]
    assert outs[0] == outs[1] == here


def test_set_prefix_and_seed_dependence():
    big = wvs_personas(20, 555)
    assert wvs_personas(5, 555) == big[:5]
    assert [p.id for p in big[:3]] == ["wvs-s555-0000", "wvs-s555-0001", "wvs-s555-0002"]
    assert [p.description for p in wvs_personas(5, 556)] != [p.description for p in big[:5]]
    with pytest.raises(SpecError, match="seeds must be >= 0"):
        wvs_personas(2, -1)


@pytest.fixture(scope="module")
def draws():
    return wvs_personas(2000, 2024)


def test_category_frequencies_are_uniform(draws):
    space = default_space()
    for attr in space.attributes:
        counts = Counter(p.attributes[attr.name] for p in draws)
        counts.pop(HIDDEN, None)
        assert set(counts) <= set(attr.values), attr.name
        observed = [counts.get(v, 0) for v in attr.values]
        assert all(o > 0 for o in observed), attr.name  # every category occurs
        p_value = chisquare(observed).pvalue
        assert p_value > 0.001, (attr.name, p_value)
    ages = [int(p.attributes["age"]) for p in draws]
    assert min(ages) == 20 and max(ages) == 80  # the paper's 20-80, all 61 ages drawn


def test_occupation_shown_only_when_employed(draws):
    n_hidden = 0
    for p in draws:
        employed = p.attributes["employment_status"] in ("full-time", "part-time")
        assert ("Your occupation group is" in p.description) == employed
        assert (p.attributes["occupation_group"] == HIDDEN) == (not employed)
        n_hidden += not employed
    assert 0 < n_hidden < len(draws)


def test_birth_year_uses_reference_year_and_gender_follows_sex(draws):
    for p in draws[:200]:
        m = re.match(r"You are a (Male|Female) born in (\d{4}), which means that you are (\d+) years old\.",
                     p.description)
        assert m, p.description
        assert int(m.group(2)) + int(m.group(3)) == 2024
        assert m.group(3) == p.attributes["age"]
        assert p.gender == m.group(1).lower()


# --------------------------------------------------------------------------- attribute spaces


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


SPACE = """
id: shop
template: "You are a {age}-year-old {job}. {has_pet}{pet}You live in {city}."
gender: {attribute: job, values: {waiter: male}}
attributes:
  age: {range: [30, 32]}
  job:
    categories:
      - {value: waiter, weight: 3}
      - {value: cook, text: chef}
  has_pet: {categories: [{value: "yes", text: ""}, {value: "no", text: ""}]}
  pet:
    categories: [cat, dog]
    show_if: {has_pet: ["yes"]}
    phrase: "You own a {value}. "
  city: {categories: [Oslo, Lima]}
"""


def test_user_attribute_space_weights_and_display(tmp_path):
    path = write(tmp_path, "shop.yaml", SPACE)
    persons = wvs_personas(3000, 7, attributes=path)
    assert persons[0].id == "shop-s7-0000" and persons[0].population == "wvs:shop:seed=7"
    jobs = Counter(p.attributes["job"] for p in persons)
    assert chisquare([jobs["waiter"], jobs["cook"]], [2250, 750]).pvalue > 0.001
    for p in persons[:300]:
        shown = p.attributes["has_pet"] == "yes"
        assert ("You own a" in p.description) == shown
        assert (p.attributes["pet"] == HIDDEN) == (not shown)
        assert p.gender == ("male" if p.attributes["job"] == "waiter" else None)
        assert ("chef" in p.description) == (p.attributes["job"] == "cook")
        assert p.attributes["age"] in ("30", "31", "32")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("{city}", "{town}"), "placeholder {town} is not an attribute"),
        (lambda s: s.replace('value: "yes"', "value: yes"), "attribute 'has_pet'.*boolean"),
        (lambda s: s.replace("weight: 3", "weight: -1"), "attribute 'job'.*weight"),
        (lambda s: s.replace("show_if: {has_pet", "show_if: {has_cat"), "unknown attribute 'has_cat'"),
        (lambda s: s.replace("[30, 32]", "[32, 30]"), "attribute 'age'.*range"),
        (lambda s: s.replace("city: {categories: [Oslo, Lima]}", "city: {categories: []}"),
         "attribute 'city'.*non-empty"),
        (lambda s: s.replace("{pet}", ""), "pet not used in the template"),
        (lambda s: s.replace("[cat, dog]", "[cat, cat]"), "attribute 'pet'.*duplicate"),
        (lambda s: s + "  extra: [1\n", "invalid YAML"),
    ],
)
def test_malformed_attribute_space(tmp_path, edit, message):
    base = SPACE
    load_attribute_space(write(tmp_path, "ok.yaml", base))  # the unedited file is valid
    path = write(tmp_path, "bad.yaml", edit(base))
    with pytest.raises(SpecError, match=message) as err:
        load_attribute_space(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_attribute_space_file(tmp_path):
    with pytest.raises(SpecError, match="attribute space file not found"):
        wvs_personas(2, 1, attributes=tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- named lists


def test_named_lists_counts_genders_and_ids():
    counts = {}
    for name in ("tolkien", "famous_people", "real_world_people"):
        ps = named_personas(name)
        counts[name] = (len(ps), sum(p.gender == "female" for p in ps))
        assert len({p.id for p in ps}) == len(ps)
        for p in ps:
            assert p.kind == "named" and p.population == name and p.gender in ("male", "female")
            assert p.description.startswith(f"You are {p.name}") and "\n" not in p.description
            assert p.attributes == {"gender": p.gender}
    assert counts == {"tolkien": (60, 12), "famous_people": (50, 11), "real_world_people": (50, 25)}
    assert named_personas("tolkien")[2].id == "tolkien-smeagol"
    assert len(named_personas("tolkien", limit=5)) == 5


def test_named_lists_match_the_reference():
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    files = {"tolkien": "tolkien_characters.json", "famous_people": "famous_people.json",
             "real_world_people": "real_world_people.json"}
    for list_name, fname in files.items():
        ref = json.loads((REFERENCE / fname).read_text(encoding="utf-8"))
        ours = named_personas(list_name, wording="paper")
        assert [p.name for p in ours] == [r["name"] for r in ref]
        assert [p.gender for p in ours] == [{"M": "male", "F": "female"}[r["gender"]] for r in ref]
        if list_name != "tolkien":
            assert [p.description for p in ours] == ["You are " + r["description"] for r in ref]


def test_paper_wording():
    gandalf = named_personas("tolkien", limit=1, wording="paper")[0]
    assert gandalf.description == "You are Gandalf from J. R. R. Tolkien's Middle-earth legendarium."
    monroe = named_personas("famous_people", limit=1, wording="paper")[0]
    assert monroe.description == "You are Marilyn Monroe (1926 \u2013 1962) American actress, singer, model."
    with pytest.raises(SpecError, match="unknown named list"):
        named_personas("hobbits")


# --------------------------------------------------------------------------- persona files


def test_txt_personas(tmp_path):
    path = write(tmp_path, "My People.txt", "# comment\nYou are a baker.\n\n  You are a pilot.  \n")
    ps = file_personas(path)
    assert [p.description for p in ps] == ["You are a baker.", "You are a pilot."]
    assert [p.id for p in ps] == ["file-my-people-0000", "file-my-people-0001"]
    assert all(p.kind == "text" and p.population == "file:My People.txt" and p.gender is None for p in ps)


def test_csv_personas(tmp_path):
    path = write(tmp_path, "p.csv", 'name,description,gender,age\nAda,"You are Ada, a coder.",F,36\n'
                                    'Bo,You are Bo.,,\n')
    ada, bo = file_personas(path)
    assert ada.name == "Ada" and ada.gender == "female" and ada.description == "You are Ada, a coder."
    assert ada.attributes == {"age": "36", "gender": "female"}
    assert bo.gender is None and bo.attributes == {"age": HIDDEN}
    assert len(file_personas(path, limit=1)) == 1


def test_jsonl_personas(tmp_path):
    lines = [{"id": "x1", "description": "You are X.", "gender": "male", "score": 3, "tag": None},
             {"description": "You are Y.", "name": "Y"}]
    path = write(tmp_path, "p.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n\n")
    x, y = file_personas(path)
    assert x.id == "x1" and x.gender == "male"
    assert x.attributes == {"score": "3", "tag": HIDDEN, "gender": "male"}
    assert y.id == "file-p-0001" and y.name == "Y"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "who,text\nA,B\n", "needs a 'description' column"),
        ("a.csv", "description,age\nYou are A.,3,extra\n", "line 2: expected 2 columns"),
        ("a.csv", "description,age\n,3\n", "line 2: 'description' is missing or empty"),
        ("a.csv", "description,gender\nYou are A.,42\n", "gender must be a word"),
        ("a.jsonl", '{"description": "ok"}\n{"description": \n', "line 2: invalid JSON"),
        ("a.jsonl", '["You are A."]\n', "line 1: each line must be a JSON object"),
        ("a.jsonl", '{"description": "A", "x": {"y": 1}}\n', "field 'x'"),
        ("a.jsonl", '{"id": "same", "description": "A"}\n{"id": "same", "description": "B"}\n',
         "line 2: persona id 'same' already used"),
        ("a.txt", "\n# only a comment\n", "no personas in the file"),
        ("a.md", "You are A.\n", "must end in .txt, .csv or .jsonl"),
    ],
)
def test_malformed_persona_files(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(SpecError, match=re.escape(message)) as err:
        file_personas(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_binary_persona_files(tmp_path):
    with pytest.raises(SpecError, match="persona file not found"):
        file_personas(tmp_path / "none.txt")
    bad = tmp_path / "bin.txt"
    bad.write_bytes(b"You are \xff\xfe.\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        file_personas(bad)


# --------------------------------------------------------------------------- population, messages


def test_build_population_order_and_duplicates(tmp_path):
    txt = write(tmp_path, "few.txt", "You are A.\nYou are B.\nYou are C.\n")
    spec = PopulationSpec(sources=[
        WVSSource(n=2, seeds=[111, 333]), NamedSource(list="tolkien", limit=2),
        FileSource(path=str(txt), limit=2),
    ])
    pop = build_population(spec)
    assert [p.id for p in pop] == [
        "baseline", "wvs-s111-0000", "wvs-s111-0001", "wvs-s333-0000", "wvs-s333-0001",
        "tolkien-gandalf", "tolkien-gollum", "file-few-0000", "file-few-0001",
    ]
    assert pop[0] is BASELINE and pop[1].description == EXPECTED_S111_0
    assert [p.id for p in build_population(PopulationSpec(baseline=False, sources=spec.sources[:1]))][0] \
        == "wvs-s111-0000"
    twice = PopulationSpec(sources=[NamedSource(list="tolkien"), NamedSource(list="tolkien", limit=1)])
    with pytest.raises(SpecError, match="'tolkien-gandalf' appears twice"):
        build_population(twice)


def test_persona_messages_both_role_modes():
    gandalf = named_personas("tolkien", limit=1)[0]
    assert persona_messages(BASELINE) == [] and persona_messages(BASELINE, system_role=False) == []
    assert persona_messages(gandalf) == [Message("system", gandalf.description)]
    assert persona_messages(gandalf, system_role=False) == [
        Message("user", gandalf.description), Message("assistant", PERSONA_ACK)]
    assert PERSONA_ACK == "OK"
