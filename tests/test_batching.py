"""Issue 20: deterministic batching. The plan is cut into canonical batches; the runner always sends
whole batches and stores only the missing answers, so every answer is bit-identical whatever the
store held before (a resumed run equals an uninterrupted one even where the kernels round
differently for different batch shapes)."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from helpers import SharedBackend

from valuescope.design.plan import BATCH_SIZE, batch_label, canonical_batches, prefix_group
from valuescope.execution.executors import calls as _calls
from valuescope.execution.runner import plan_model, resolve, run_study
from valuescope.study.spec import study_from_dict

# 4 relevance items: one canonical batch of 4 per condition (issue 28: was 8 items, batches of 8)
SCORED = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT"]
STUDY = {
    "name": "batching",
    "instruments": [{"name": "mfq30", "items": SCORED}],
    "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 2, "seeds": [111]}]},
    "report": False,
    "option_order": "permute-persona",  # one order per condition: the counts below
}


def _answers(store) -> dict[str, str]:
    con = sqlite3.connect(store)
    try:
        return dict(con.execute("SELECT key, probs FROM responses").fetchall())
    finally:
        con.close()


def test_canonical_batches_depend_only_on_the_plan():
    study = study_from_dict({**STUDY, "instruments": [{"name": "mfq30"}], "output": "unused"})
    queries = plan_model(resolve(study), study.models[0])
    batches = canonical_batches(queries)
    assert [q for b in batches for q in b] == sorted(queries, key=lambda q: [prefix_group(x) for x in queries]
                                                     .index(prefix_group(q)))
    for b in batches:
        assert 0 < len(b) <= BATCH_SIZE and len({prefix_group(q) for q in b}) == 1
    # MFQ-30: 16 items per part -> one batch per (persona, part); with 5 per batch: 5, 5, 5, 1
    sizes = [len(b) for b in canonical_batches(queries, 5)]
    assert sizes[:4] == [5, 5, 5, 1] and len({batch_label(b) for b in batches}) == len(batches)
    # the same plan in another order of arrival gives the same batches (groups keep plan order inside)
    calls = _calls(batches, 20)
    assert all(sum(len(b) for b in c) <= 20 or len(c) == 1 for c in calls)
    assert [b for c in calls for b in c] == batches


class Counting(SharedBackend):
    """The module's backend, counting the queries each run asks."""

    def __init__(self, backend) -> None:
        super().__init__(backend)
        self.asked = 0

    def score(self, requests):
        self.asked += len(requests)
        return self.backend.score(requests)


@pytest.mark.slow  # the embedded model: 12 queries, then the 2 partial batches again (8)
def test_answers_do_not_depend_on_what_was_stored(tmp_path):
    """The ``batched`` scheduler, whose answers depend on the batch they are evaluated in: a resumed run
    re-asks whole canonical batches and its answers equal an uninterrupted run's bit for bit.

    Issue 28: was also run under ``prefix``, whose answers depend on their own prompt only (each alone, in
    another order and company, equals naive evaluation: tests/test_determinism.py) and which resumes a
    killed embedded run bit for bit (test_crash_safety). One backend for both runs (its answers do not depend
    on what it evaluated before), 1 thread (the answers do not depend on it: test_threads)."""
    from valuescope.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(scheduler="batched", n_threads=1)
    try:
        _clean_then_resumed(tmp_path, backend)
    finally:
        backend.close()


def _clean_then_resumed(tmp_path, backend) -> None:
    clean = tmp_path / "clean"
    study = study_from_dict({**STUDY, "output": str(clean), "models": [{"name": "m", "scheduler": "batched"}]})
    assert run_study(study, backend_factory=lambda _m: SharedBackend(backend))[0].new == 3 * len(SCORED)
    want = _answers(clean / "valuescope.sqlite")
    # a store that holds a subset of the answers, as after a kill at any point (issue 28: one store chosen to
    # hold every case, was 2 random subsets): one condition's batch misses 1 answer, another's 3 of its 4,
    # the third's is whole (its batch must not be asked again)
    out = tmp_path / "partial"
    shutil.copytree(clean, out)
    con = sqlite3.connect(out / "valuescope.sqlite")
    by_persona: dict[str, list[str]] = {}
    for key, persona in con.execute("SELECT key, persona_id FROM responses ORDER BY key"):
        by_persona.setdefault(persona, []).append(key)
    assert sorted(len(v) for v in by_persona.values()) == [len(SCORED)] * 3  # one batch per condition
    first, second, _whole = (by_persona[p] for p in sorted(by_persona))
    gone = first[:1] + second[1:]
    con.executemany("DELETE FROM responses WHERE key = ?", [(k,) for k in gone])
    con.commit()
    con.close()
    counting = Counting(backend)
    res = run_study(study.model_copy(update={"output": str(out)}), backend_factory=lambda _m: counting)[0]
    assert res.already_done == len(want) - len(gone) and res.new == len(gone) == 4
    assert counting.asked == 2 * len(SCORED)  # the two partial batches whole, the whole one not again
    assert _answers(out / "valuescope.sqlite") == want  # the probability JSON, bit for bit
