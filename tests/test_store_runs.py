"""Issue 14: nothing lost between runs.

Answers belong to their run ((run_id, key) is the primary key); a run that asks the very same
query as an earlier one reuses the stored answer on purpose and says so; an edited instrument is a
new run; a store written by valuescope 0.1.0 is migrated (with a backup) or refused with one line;
parsed and logprob answers are never pooled; letters that got almost no probability make an
unreadable answer. All on real SQLite, answered by the synthetic known-truth model: none of this depends on
what a language model answers (the embedded model's own letter reading: test_backend_llamacpp.py; a real
run through the CLI, resumed: test_cli.py, test_crash_safety.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import cli_in_process as vs

from valuescope.analysis.tables import load_run
from valuescope.core.types import LetterScores
from valuescope.execution.runner import make_backend, run_study
from valuescope.store.sqlite import SCHEMA_VERSION, Store, StoreError
from valuescope.study.spec import study_from_dict

DATA = Path(__file__).parent / "data"
ITEMS = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "FAIRLY"]



#: answers from each query's meta: a persona-dependent model with query noise and a letter habit
SYNTHETIC = [{"name": "truth", "backend": "synthetic",
              "synthetic": {"query_sd": 0.5, "letter_weight": 0.3, "letter_bias": [0.1, 0.1, 0.4, 0.2, 0.1, 0.1]}}]


class _Counting:
    """The synthetic model, counting the queries it is asked. Each answer leaves a share of the probability
    off the option letters (0 to 0.5, a hash of the query), as a network does: something for
    ``max_outside_mass`` to judge."""

    def __init__(self, model) -> None:
        self.b = make_backend(model)
        self.name = self.b.name
        self.system_role = self.b.system_role
        self.wants_meta = True
        self.calls = 0

    def score(self, reqs):
        self.calls += len(reqs)
        out = []
        for r, s in zip(reqs, self.b.score(reqs), strict=True):
            h = int(hashlib.sha256(json.dumps(r.meta, sort_keys=True, default=str).encode()).hexdigest()[:8], 16)
            out.append(replace(s, outside_mass=0.5 * h / 0xFFFFFFFF))
        return out

    def generate(self, reqs):
        return self.b.generate(reqs)

    def close(self):
        pass


def _study(out: Path, name: str, n: int = 2, **extra):
    data = {"name": name, "output": str(out), "report": False, "models": SYNTHETIC,
            "instruments": [{"name": "mfq30", "items": ITEMS}],
            "population": {"baseline": True, "sources": [{"kind": "wvs", "n": n, "seeds": [111]}]}}
    data.update(extra)
    return study_from_dict(data)


def _run(study):
    made = []
    [res] = run_study(study, backend_factory=lambda m: made.append(_Counting(m)) or made[-1])
    return res, sum(b.calls for b in made)


def _metrics(out: Path, run_id: str) -> pd.DataFrame:
    with Store(out) as store:
        m = load_run(store, run_id, n_boot=50).metrics
    return m.drop(columns=["run_id"]).sort_values(["instrument", "metric", "dimension", "context_a"]).reset_index(
        drop=True)


def test_two_studies_asking_the_same_queries_keep_both_runs_whole(tmp_path):
    out = tmp_path / "one"
    a, asked_a = _run(_study(out, "first"))
    b, asked_b = _run(_study(out, "second"))
    assert a.run_id != b.run_id
    assert asked_a == a.planned == a.new
    assert asked_b == 0 and b.new == 0 and b.reused == b.planned
    assert b.reused_from == {a.run_id: b.planned}
    with Store(out) as store:
        runs = {r.run_id: r for r in store.runs()}
        assert runs[a.run_id].done == runs[a.run_id].planned == a.planned
        assert runs[b.run_id].done == runs[b.run_id].planned and runs[b.run_id].reused == b.planned
        assert store.reused_counts(b.run_id) == {a.run_id: b.planned}
    # the second run's numbers equal those of the same study run alone
    alone = tmp_path / "alone"
    c, asked_c = _run(_study(alone, "second"))
    assert c.run_id == b.run_id and asked_c == c.planned
    pd.testing.assert_frame_equal(_metrics(out, b.run_id), _metrics(alone, c.run_id))
    # a rerun asks nothing and adds nothing
    again, asked = _run(_study(out, "second"))
    assert asked == 0 and again.new == 0 and again.reused == 0 and again.already_done == again.planned


def test_scaled_then_full_keeps_the_scaled_answers_and_asks_only_the_rest(tmp_path):
    out = tmp_path / "r"
    small, _ = _run(_study(out, "scaled", n=2))
    full, asked = _run(_study(out, "full", n=4))
    assert full.planned > small.planned
    assert full.reused + full.new == full.planned and asked >= full.new
    assert 0 < full.reused <= small.planned
    with Store(out) as store:
        for r in store.runs():
            assert r.done == r.planned, r
    res = vs("ls", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("yes") == 2 and "│ no" not in res.stdout


def test_an_edited_instrument_is_a_new_run_and_never_stale(tmp_path):
    inst = tmp_path / "inst.yaml"
    shutil.copy(DATA / "custom_instrument.yaml", inst)
    out = tmp_path / "r"

    def study():
        return study_from_dict({"name": "custom", "output": str(out), "report": False, "models": SYNTHETIC,
                                "instruments": [{"path": str(inst)}],
                                "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 1}]}})

    first, _ = _run(study())
    text = inst.read_text()
    import yaml

    doc = yaml.safe_load(text)
    item = doc["items"][0]
    item["reverse"] = not item.get("reverse", False)  # a scoring change: same prompts
    inst.write_text(yaml.safe_dump(doc, sort_keys=False))
    second, asked = _run(study())
    assert second.run_id != first.run_id
    assert asked == 0 and second.reused == second.planned  # same prompts: answers reused, not asked again
    with Store(out) as store:
        old = store.run(first.run_id).instruments
        new = store.run(second.run_id).instruments
    iid = next(iter(new))
    flag = {i["id"]: i["reverse"] for i in new[iid]["items"]}[item["id"]]
    assert flag == item["reverse"]
    assert {i["id"]: i["reverse"] for i in old[iid]["items"]}[item["id"]] != flag
    # a wording change changes that item's prompt: only it is asked again
    edited = doc["items"][0]
    for field in ("text",):
        if field in edited:
            edited[field] += " (edited)"
    edited["variants"] = {k: v + " (edited)" for k, v in (edited.get("variants") or {}).items()}
    inst.write_text(yaml.safe_dump(doc, sort_keys=False))
    third, asked = _run(study())
    assert third.run_id not in (first.run_id, second.run_id)
    # (the backend may be sent whole canonical batches, which re-evaluates stored neighbours: only the
    # missing answers are stored)
    assert third.new == third.planned - third.reused and 0 < third.new < third.planned and asked >= third.new


def _v0_store(directory: Path) -> Path:
    """A store as valuescope 0.1.0 wrote it (tests/data/store_v0.sql: a real run's SQL dump)."""
    directory.mkdir(parents=True)
    path = directory / "valuescope.sqlite"
    db = sqlite3.connect(path)
    db.executescript((DATA / "store_v0.sql").read_text())
    db.close()
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_old_store_is_refused_by_readers_and_left_byte_identical(tmp_path):
    path = _v0_store(tmp_path / "old")
    before = _sha(path)
    with pytest.raises(StoreError, match="valuescope migrate"):
        Store(path.parent, create=False, migrate=False)
    for args in (["ls", str(path.parent)], ["show", "old", "--dir", str(path.parent)]):
        res = vs(*args)
        assert res.returncode == 2, res
        assert "valuescope migrate" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert _sha(path) == before


def test_old_store_is_migrated_in_place_with_a_backup(tmp_path):
    path = _v0_store(tmp_path / "old")
    before = _sha(path)
    old = sqlite3.connect(path)
    old_rows = sorted(old.execute("SELECT key, run_id, probs, valid FROM responses").fetchall())
    old_conv = old.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
    old.close()
    res = vs("migrate", str(path.parent))
    assert res.returncode == 0, res.stderr
    backup = path.with_name("valuescope.sqlite.v0-backup")
    assert backup.is_file() and _sha(backup) == before
    with Store(path.parent, create=False, migrate=False) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = sorted(tuple(r) for r in store.db.execute("SELECT key, run_id, probs, valid FROM responses"))
        assert rows == old_rows
        [run] = store.runs()
        assert run.done == len(old_rows) == run.planned
        assert len(store.conversations(run.run_id)) == old_conv > 0
        tables = load_run(store, run.run_id, n_boot=20)
        assert len(tables.responses) == len(old_rows) and not tables.metrics.empty
    # migrating again is a no-op
    res = vs("migrate", str(path.parent))
    assert res.returncode == 0 and not path.with_name("valuescope.sqlite.v0-backup2").exists()


def test_mixed_readings_are_never_pooled(tmp_path):
    """A run whose later answers were read by generate-and-parse (e.g. a server that stopped
    returning logprobs) holds both kinds; metrics use the distributions and count the rest."""
    out = tmp_path / "r"
    study = _study(out, "mixed", n=3)
    res, _ = _run(study)
    with Store(out) as store:
        rows = store.responses(res.run_id)
        # turn the last persona's answers into what a parsed reply gives: one option, no distribution
        last = rows[-1]["persona_id"]
        for r in rows:
            if r["persona_id"] == last:
                probs = json.loads(r["probs"])
                onehot = [0.0] * len(probs)
                onehot[int(np.argmax(probs))] = 1.0
                store.db.execute("UPDATE responses SET method='generate', probs=?, outside_mass=NULL, raw='C' "
                                 "WHERE run_id=? AND key=?", (json.dumps(onehot), res.run_id, r["key"]))
        tables = load_run(store, res.run_id, n_boot=20)
    n_parsed = sum(r["persona_id"] == last for r in rows)
    assert tables.counts["methods"] == {"generate": n_parsed, "logprobs": len(rows) - n_parsed}
    assert len(tables.responses) == len(rows)  # the export keeps every answer
    mixed = tables.metrics[tables.metrics["metric"] == "mixed_readings"]
    assert len(mixed) == 1 and mixed["value"].iloc[0] == n_parsed and "kept apart" in mixed["note"].iloc[0]
    # the metrics equal those of the logprob answers alone
    assert last not in set(tables.scores["persona_id"])
    out_show = vs("show", res.run_id, "--dir", str(out))
    assert out_show.returncode == 0, out_show.stderr
    assert f"{n_parsed} by generate" in out_show.stdout and "mixed readings" in out_show.stdout


def test_letters_with_almost_no_probability_make_an_unreadable_answer(tmp_path):
    out = tmp_path / "r"
    lax, _ = _run(_study(out, "lax"))
    with Store(out) as store:
        oms = [r["outside_mass"] for r in store.responses(lax.run_id)]
    limit = float(np.median(oms))  # about half the answers are above it
    strict, asked = _run(_study(out, "strict", max_outside_mass=limit))
    assert asked == 0  # the same queries: reused, judged again by this run's limit
    expected_invalid = sum(om > limit for om in oms)
    assert 0 < expected_invalid < len(oms)
    with Store(out) as store:
        rows = store.responses(strict.run_id)
        assert sum(not r["valid"] for r in rows) == expected_invalid == strict.invalid
        bad = [r for r in rows if not r["valid"]]
        assert all("max_outside_mass" in r["error"] and json.loads(r["probs"]) for r in bad)
        tables = load_run(store, strict.run_id, n_boot=20)
        lax_tables = load_run(store, lax.run_id, n_boot=20)
    share = tables.metrics[tables.metrics["metric"] == "valid_share"]["value"]
    assert (share < 1).any()
    assert (lax_tables.metrics[lax_tables.metrics["metric"] == "valid_share"]["value"] == 1).all()


def test_scores_of_a_reused_answer_are_its_own(tmp_path):
    """limit_outside_mass: an answer invalidated only by another run's limit is judged again."""
    from valuescope.execution.runner import limit_outside_mass

    s = LetterScores(probs=(0.5, 0.5), outside_mass=0.7)
    bad = limit_outside_mass(s, 0.5)
    assert not bad.valid and "max_outside_mass" in bad.error
    assert limit_outside_mass(bad, 0.9).valid
    unreadable = LetterScores(probs=(0.0, 0.0), outside_mass=1.0, valid=False, error="no probability on any letter")
    assert not limit_outside_mass(unreadable, 1.0).valid


def test_a_stored_run_is_one_typed_record(tmp_path):
    """Store.run and Store.runs give the same RunRecord (counts, study, instruments); a unique prefix finds it;
    the study is validated by the record itself; an unknown id is one StoreError naming the runs there are."""
    from valuescope.store.records import RunRecord

    out = tmp_path / "rec"
    a, _ = _run(_study(out, "typed"))
    with Store(out) as store:
        [listed] = store.runs()
        record = store.run(a.run_id[:-3])
        with pytest.raises(StoreError, match=f"no run 'nope' in .* \\(runs: {a.run_id}\\)"):
            store.run("nope")
    assert isinstance(record, RunRecord) and record == listed
    assert (record.run_id, record.study_name, record.model) == (a.run_id, "typed", "truth")
    assert record.planned == record.done == a.planned and record.failed == record.reused == 0
    assert record.complete
    assert record.spec().name == "typed" and record.spec().models[0].backend == "synthetic"
    assert set(record.instruments) == {"mfq30"} and record.example_prompt
    with pytest.raises(TypeError):  # typed attributes only: no dict access beside them
        record["done"]  # type: ignore[index]
