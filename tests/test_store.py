from __future__ import annotations

import json
import sqlite3

import pytest
from helpers import tiny_instrument

from valuescope.analysis.tidy import build_responses
from valuescope.core.types import BASELINE, ContextSpec, LetterScores, Persona
from valuescope.design.plan import PlannedInstrument, plan_queries
from valuescope.store.sqlite import Store, StoreError
from valuescope.study.spec import InstrumentRef, Study


def _queries():
    study = Study()
    personas = [BASELINE, Persona(id="p0", kind="text", description="You are a sailor.", attributes={"job": "sailor"})]
    planned = [PlannedInstrument(tiny_instrument(), InstrumentRef(name="tiny"))]
    return plan_queries(study, study.models[0], personas, [ContextSpec()], planned, lambda i, r, g: None)


def _scores(q, probs=(0.1, 0.2, 0.3, 0.4)):
    return LetterScores(probs=probs, outside_mass=0.05)


def test_write_is_idempotent_and_resumable(tmp_path):
    qs = _queries()
    with Store(tmp_path) as store:
        assert store.write_responses([(q, _scores(q)) for q in qs[:3]]) == 3
        assert store.write_responses([(q, _scores(q)) for q in qs[:3]]) == 0  # nothing twice
        assert store.done_keys(qs[0].run_id) == {q.key for q in qs[:3]}
    with Store(tmp_path) as store:  # a new process resumes from disk
        assert store.write_responses([(q, _scores(q)) for q in qs]) == len(qs) - 3
        n = store.db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM responses").fetchone()
        assert tuple(n) == (len(qs), len(qs))


def test_failures_are_kept_then_cleared_by_an_answer(tmp_path):
    qs = _queries()
    with Store(tmp_path) as store:
        store.record_failures([(qs[0], "timeout")])
        store.record_failures([(qs[0], "HTTP 503")])
        (f,) = store.failures(qs[0].run_id)
        assert f["attempts"] == 2 and f["error"] == "HTTP 503"
        store.write_responses([(qs[0], _scores(qs[0]))])
        assert store.failures(qs[0].run_id) == []


def test_wal_mode_and_missing_store(tmp_path):
    with Store(tmp_path) as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(StoreError, match="no valuescope store"):
        Store(tmp_path / "nothing", create=False)


def test_corrupt_store_is_a_clear_error(tmp_path):
    (tmp_path / "valuescope.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable valuescope store"):
        Store(tmp_path)


def test_tidy_maps_letters_back_to_the_scale(tmp_path):
    qs = _queries()
    inst = tiny_instrument()
    with Store(tmp_path) as store:
        store.write_responses([(q, _scores(q)) for q in qs])
        rows = store.responses(qs[0].run_id)
    df = build_responses(rows, {"tiny": inst})
    for _, row in df.iterrows():
        order = [int(x) for x in row["option_order"].split(",")]
        # letter j showed scale option order[j], so p_{order[j]+1} must be the j-th letter probability
        for j, idx in enumerate(order):
            assert row[f"p_{idx + 1}"] == pytest.approx((0.1, 0.2, 0.3, 0.4)[j])
        expected = sum(row[f"p_{i + 1}"] * v for i, v in enumerate(inst.parts["main"].scale.values))
        assert row["expected"] == pytest.approx(expected)
        assert row["argmax"] == order[3] + 1  # letter D (0.4) is the most probable
    assert set(df["condition"]) == {"baseline", "persona"}
    assert df.loc[df["persona_id"] == "p0", "attr_job"].eq("sailor").all()


def test_invalid_answer_keeps_raw_text_and_no_guess(tmp_path):
    q = _queries()[0]
    bad = LetterScores(probs=(0.0, 0.0, 0.0, 0.0), outside_mass=float("nan"), valid=False,
                       raw="I would rather not say.", error="unreadable", method="generate")
    with Store(tmp_path) as store:
        store.write_responses([(q, bad)])
        (row,) = store.responses(q.run_id)
    assert row["valid"] == 0 and row["raw"] == "I would rather not say." and row["outside_mass"] is None
    df = build_responses([row], {"tiny": tiny_instrument()})
    assert df["argmax"].isna().all() and df["expected"].isna().all()


def test_two_connections_do_not_duplicate(tmp_path):
    qs = _queries()
    a, b = Store(tmp_path), Store(tmp_path)
    try:
        a.write_responses([(q, _scores(q)) for q in qs])
        b.write_responses([(q, _scores(q)) for q in qs])
    finally:
        a.close()
        b.close()
    con = sqlite3.connect(tmp_path / "valuescope.sqlite")
    assert con.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == len(qs)
    assert json.loads(con.execute("SELECT probs FROM responses LIMIT 1").fetchone()[0]) == [0.1, 0.2, 0.3, 0.4]
