"""Issue 9: malformed study, instrument and persona files through the CLI.

Every case must give exit code 2, exactly one non-empty stderr line and no traceback, and must leave
an existing store in the output directory byte-for-byte unchanged (validation before the store).
The table covers wrong types, missing fields, empty lists, unknown names, duplicate ids, non-UTF-8
bytes, files over the 5 MB limit, nesting deeper than the parser's recursion limit, and random bytes
from a seeded RNG.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from pathlib import Path

import pytest
import yaml
from helpers import cli_in_process

from valuescope.execution import runner
from valuescope.study.spec import load_study, study_from_dict

INSTRUMENT = {
    "id": "tiny", "name": "Tiny", "citation": "test", "licence": "CC0",
    "parts": [{"id": "like", "instructions": "How much is each person like you?", "stem": "{item}",
               "scale": {"labels": ["Not like me", "Somewhat like me", "Like me"], "values": [1, 2, 3]}}],
    "dimensions": ["Warmth", "Drive"],
    "items": [{"id": "w1", "part": "like", "dimension": "Warmth", "text": "He cares for his friends."},
              {"id": "d1", "part": "like", "dimension": "Drive", "text": "He wants to win."}],
}
PERSONAS = [{"id": "p1", "description": "You are a baker in Lyon.", "gender": "male"},
            {"id": "p2", "description": "You are a nurse in Oslo.", "age": 41}]


def jsonl(records) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


def study(out: Path, **changes) -> dict:
    base = {"name": "bad", "output": str(out), "report": False,
            "instruments": [{"path": "inst.yaml"}],
            "population": {"baseline": True, "sources": [{"kind": "file", "path": "people.jsonl"}]}}
    base.update(changes)
    return base


def inst(mutate) -> bytes:
    data = copy.deepcopy(INSTRUMENT)
    mutate(data)
    return yaml.safe_dump(data, sort_keys=False).encode()


def _set(path: str, value):
    def mutate(d):
        *parents, last = path.split(".")
        for p in parents:
            d = d[int(p)] if p.isdigit() else d[p]
        d[int(last) if last.isdigit() else last] = value
    return mutate


def _del(key: str):
    return lambda d: d.pop(key)


def _random_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


HUGE = b"name: huge\n# " + b"x" * 5_100_000 + b"\n"
DEEP = b"name: " + b"[" * 5000 + b"]" * 5000 + b"\n"


def cases(out: Path) -> list[tuple[str, dict[str, bytes]]]:
    """(case name, files): ``study.yaml`` is the file run; the valid instrument and persona files are
    added where a case does not replace them."""
    y = lambda d: yaml.safe_dump(d, sort_keys=False).encode()  # noqa: E731
    s = lambda **kw: y(study(out, **kw))  # noqa: E731
    table: list[tuple[str, dict[str, bytes]]] = [
        # --- study: wrong types, missing fields, empty lists, unknown names
        ("study: seed is a list", {"study.yaml": s(seed=[1, 2])}),
        ("study: models is a mapping", {"study.yaml": s(models={"name": "x"})}),
        ("study: instruments is a string", {"study.yaml": s(instruments="mfq30")}),
        ("study: negative persona count", {"study.yaml": s(population={"sources": [{"kind": "wvs", "n": -3}]})}),
        ("study: negative conversation length", {"study.yaml": s(contexts={"n_messages": [-1]})}),
        ("study: custom topics not a mapping", {"study.yaml": s(contexts={"custom_topics": ["chess"]})}),
        ("study: instrument without name or path", {"study.yaml": s(instruments=[{"wording": "you"}])}),
        ("study: file source without path", {"study.yaml": s(population={"sources": [{"kind": "file"}]})}),
        ("study: source without kind", {"study.yaml": s(population={"sources": [{"n": 3}]})}),
        ("study: empty instruments", {"study.yaml": s(instruments=[])}),
        ("study: empty models", {"study.yaml": s(models=[])}),
        ("study: empty topics", {"study.yaml": s(contexts={"topics": []})}),
        ("study: empty seeds", {"study.yaml": s(population={"sources": [{"kind": "wvs", "seeds": []}]})}),
        ("study: unknown instrument", {"study.yaml": s(instruments=[{"name": "no_such_instrument"}])}),
        ("study: unknown item id", {"study.yaml": s(instruments=[{"path": "inst.yaml", "items": ["zz9"]}])}),
        ("study: instrument listed twice", {"study.yaml": s(instruments=[{"path": "inst.yaml"}] * 2)}),
        ("study: unknown topic", {"study.yaml": s(contexts={"topics": ["no-such-topic"]})}),
        ("study: unknown named list", {"study.yaml": s(population={"sources": [{"kind": "named",
                                                                                "list": "hobbits"}]})}),
        ("study: duplicate model names", {"study.yaml": s(models=[{"name": "a"}, {"name": "a"}])}),
        ("study: unknown key", {"study.yaml": s(personas=3)}),
        ("study: missing instrument file", {"study.yaml": s(instruments=[{"path": "absent.yaml"}])}),
        ("study: missing persona file", {"study.yaml": s(population={"sources": [{"kind": "file",
                                                                                 "path": "absent.jsonl"}]})}),
        ("study: model file missing", {"study.yaml": s(models=[{"name": "m", "path": "absent.gguf"}])}),
        ("study: model field of the wrong type", {"study.yaml": s(models=[{"name": "m", "timeout": "soon"}])}),
        ("study: a list", {"study.yaml": y([1, 2, 3])}),
        ("study: a scalar", {"study.yaml": b"42\n"}),
        ("study: empty file", {"study.yaml": b""}),
        ("study: invalid YAML", {"study.yaml": b"name: [unclosed\n  - x: {\n"}),
        ("study: tab indentation", {"study.yaml": b"name: x\npopulation:\n\tbaseline: true\n"}),
        ("study: non-UTF-8", {"study.yaml": b"name: caf\xe9\n"}),
        ("study: huge", {"study.yaml": HUGE}),
        ("study: nested too deep", {"study.yaml": DEEP}),
        # --- instrument files
        ("instrument: missing items", {"inst.yaml": inst(_del("items"))}),
        ("instrument: missing citation", {"inst.yaml": inst(_del("citation"))}),
        ("instrument: items is a mapping", {"inst.yaml": inst(_set("items", {"w1": "x"}))}),
        ("instrument: empty items", {"inst.yaml": inst(_set("items", []))}),
        ("instrument: empty dimensions", {"inst.yaml": inst(_set("dimensions", []))}),
        ("instrument: duplicate item ids", {"inst.yaml": inst(_set("items.1.id", "w1"))}),
        ("instrument: unknown dimension", {"inst.yaml": inst(_set("items.0.dimension", "Cunning"))}),
        ("instrument: unknown part", {"inst.yaml": inst(_set("items.0.part", "nowhere"))}),
        ("instrument: empty scale", {"inst.yaml": inst(_set("parts.0.scale.labels", []))}),
        ("instrument: scale values are text", {"inst.yaml": inst(_set("parts.0.scale.values", ["a", "b", "c"]))}),
        ("instrument: parts is a string", {"inst.yaml": inst(_set("parts", "like"))}),
        ("instrument: item text is a list", {"inst.yaml": inst(_set("items.0.text", ["a"]))}),
        ("instrument: a list", {"inst.yaml": y([INSTRUMENT])}),
        ("instrument: empty file", {"inst.yaml": b""}),
        ("instrument: non-UTF-8", {"inst.yaml": b"id: t\xff\xfe\n"}),
        ("instrument: huge", {"inst.yaml": HUGE}),
        ("instrument: nested too deep", {"inst.yaml": DEEP}),
        # --- persona files
        ("personas: missing description", {"people.jsonl": jsonl([{"id": "p1", "name": "Ann"}])}),
        ("personas: description is a number", {"people.jsonl": jsonl([{"description": 7}])}),
        ("personas: name is a number", {"people.jsonl": jsonl([{"description": "A cook.", "name": 5}])}),
        # any word is a gender (non-binary and others: gender-neutral wording); a number is not
        ("personas: bad gender", {"people.jsonl": jsonl([{"description": "A cook.", "gender": 42}])}),
        ("personas: nested attribute", {"people.jsonl": jsonl([{"description": "A cook.", "job": {"a": 1}}])}),
        ("personas: duplicate ids", {"people.jsonl": jsonl([PERSONAS[0], {**PERSONAS[1], "id": "p1"}])}),
        ("personas: a line is a list", {"people.jsonl": jsonl([PERSONAS[0], ["x"]])}),
        ("personas: invalid JSON", {"people.jsonl": jsonl(PERSONAS) + b"\n{\"description\": \n"}),
        ("personas: empty file", {"people.jsonl": b"\n\n"}),
        ("personas: non-UTF-8", {"people.jsonl": b"{\"description\": \"caf\xe9\"}\n"}),
        ("personas: nested too deep", {"people.jsonl": b"[" * 100_000 + b"]" * 100_000 + b"\n"}),
        ("personas: CSV without description", {"study.yaml": s(population={"sources": [{"kind": "file",
                                                                                       "path": "p.csv"}]}),
                                               "p.csv": b"id,name\n1,Ann\n"}),
        ("personas: unsupported extension", {"study.yaml": s(population={"sources": [{"kind": "file",
                                                                                     "path": "p.yaml"}]}),
                                             "p.yaml": y(PERSONAS)}),
    ]
    # --- random bytes from a seeded RNG, as each kind of file
    for seed in range(4):
        table.append((f"study: random bytes #{seed}", {"study.yaml": _random_bytes(seed, 64 + 97 * seed)}))
    table.append(("instrument: random bytes", {"inst.yaml": _random_bytes(10, 300)}))
    table.append(("personas: random bytes", {"people.jsonl": _random_bytes(11, 300)}))
    return table


def _materialise(case_dir: Path, out: Path, files: dict[str, bytes]) -> Path:
    case_dir.mkdir(parents=True)
    defaults = {"study.yaml": yaml.safe_dump(study(out)).encode(), "inst.yaml": inst(lambda d: None),
                "people.jsonl": jsonl(PERSONAS)}
    for name, data in {**defaults, **files}.items():
        (case_dir / name).write_bytes(data)
    return case_dir / "study.yaml"


def _snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _cli(path: Path) -> tuple[int, str, str]:
    """``valuescope run PATH -q`` in-process, from the study's folder: (exit code, stdout, stderr, with any
    escaping exception as a traceback). What the installed entry point adds (usage errors as one line) is
    covered by test_hostile's subprocess cases."""
    res = cli_in_process("run", str(path), "-q", cwd=path.parent, raise_errors=False)
    return res.returncode, res.stdout, res.stderr


@pytest.fixture
def existing_store(tmp_path):
    """An output directory holding a store from a tiny valid run (baseline x 2 items). No case reaches a
    model (validation comes before the store), so the synthetic model answers."""
    out = tmp_path / "out"
    tiny = study_from_dict({"name": "tiny", "output": str(out), "report": False,
                            "models": [{"name": "truth", "backend": "synthetic"}],
                            "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED"]}],
                            "option_order": "permute-persona"})  # one order for the baseline: 2 queries
    [res] = runner.run_study(tiny)
    assert res.new == 2
    assert not (out / "valuescope.sqlite-wal").exists()  # closed and checkpointed
    return out


def test_bad_files_give_one_line_exit_2_and_leave_the_store_alone(tmp_path, existing_store, monkeypatch):
    out = existing_store
    before = _snapshot(out)
    # control: the untouched base files form a valid study
    control = _materialise(tmp_path / "control", out, {})
    runner.resolve(load_study(control))

    table = cases(out)
    paths = [_materialise(tmp_path / f"case{i:02d}", out, files) for i, (_, files) in enumerate(table)]
    results = [_cli(path) for path in paths]

    problems = []
    for (name, _), (code, stdout, stderr) in zip(table, results, strict=True):
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        if code != 2 or len(lines) != 1 or "Traceback" in stderr + stdout:
            problems.append(f"{name}: exit {code}, stderr {stderr[-600:]!r}")
        elif not lines[0].startswith("error: "):
            problems.append(f"{name}: unexpected error line {lines[0]!r}")
    assert not problems, "\n".join(problems)
    assert _snapshot(out) == before  # the existing store (and nothing else) in the output dir is unchanged
    assert len(table) >= 60
