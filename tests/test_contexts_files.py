"""Issue 30, part 2: real conversations as contexts (``contexts: {files: [threads.jsonl]}``).

A JSONL file of conversations, on the synthetic backend: the thread's first n + 1 turns are the prompt's
conversation (nothing generated), stored in the conversations table; the run resumes to exactly its planned
keys, reports stability across the conversations; an edited file is a new run; a malformed line is one
line naming the line number."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from valuescope.analysis.tables import load_run
from valuescope.core.types import Message
from valuescope.design.contexts import read_threads, simulate_conversation, thread_contexts
from valuescope.design.plan import run_id_for
from valuescope.execution.runner import run_study
from valuescope.execution.session import plan_model, resolve
from valuescope.store.sqlite import Store
from valuescope.study.spec import ContextsSpec, SpecError, study_from_dict

EXAMPLE = Path(__file__).parent.parent / "examples" / "threads.jsonl"
SYNTHETIC = [{"name": "truth", "backend": "synthetic", "synthetic": {"query_sd": 0.3}}]


def _study(out: Path, threads: Path, **contexts):
    return study_from_dict({
        "name": "threads", "output": str(out), "report": False, "models": SYNTHETIC,
        "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "FAIRLY", "KILL"]}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 5, "seeds": [111]}]},
        "contexts": {"files": [str(threads)], "n_messages": [1, 3], **contexts}})


def test_threads_are_read_as_given():
    threads = read_threads(str(EXAMPLE))
    assert [n for n, _ in threads] == [1, 2, 3]
    first_two = (("user", "Should I tell my friend that her partner is cheating? I saw them together last night."),
                 ("assistant", "That is a hard spot. How sure are you about what you saw?"))
    assert threads[1][1][:2] == first_two
    ctxs = thread_contexts(ContextsSpec(files=[str(EXAMPLE)], n_messages=[3]), seed=7)
    assert [c.label for c in ctxs] == ["threads#1@3", "threads#2@3", "threads#3@3"]
    # the prompt's conversation is the first n + 1 turns, user first; nothing is generated
    msgs = simulate_conversation(None, None, ctxs[2])  # type: ignore[arg-type]
    assert msgs == tuple(Message(r, t) for r, t in threads[2][1][:4])
    sampled = thread_contexts(ContextsSpec(files=[str(EXAMPLE)], n_messages=[3], threads=2), seed=7)
    assert len(sampled) == 2 and {c.label for c in sampled} < {c.label for c in ctxs}


@pytest.mark.parametrize(("line", "message"), [
    ("not json", r"line 2: not JSON"),
    ('{"role": "user"}', r"line 2: a conversation must be a non-empty JSON list"),
    ('[{"role": "assistant", "content": "hi"}]', r"line 2: message 1 has role 'assistant', expected 'user'"),
    ('["a", {"role": "user", "content": "b"}]', r"line 2: mix of messages and plain text turns"),
    ('[{"role": "user", "text": "b"}]', r"line 2: message 1 must be"),
    ('["a", ""]', r"line 2: message 2 is empty"),
])
def test_a_malformed_line_is_one_line_with_its_number(tmp_path, line, message):
    f = tmp_path / "bad.jsonl"
    f.write_text('["fine", "yes"]\n' + line + "\n")
    with pytest.raises(SpecError, match=message) as err:
        read_threads(str(f))
    assert "\n" not in str(err.value)


def test_a_thread_too_short_for_n_is_named(tmp_path):
    f = tmp_path / "short.jsonl"
    f.write_text('["a", "b", "c", "d"]\n["a", "b"]\n')
    with pytest.raises(SpecError, match=r"short.jsonl line 2: 2 messages, contexts.n_messages 3 needs at least 4"):
        thread_contexts(ContextsSpec(files=[str(f)], n_messages=[3]), seed=0)


@pytest.mark.slow
def test_runs_resumes_and_reports_stability_across_threads(tmp_path):
    threads = tmp_path / "threads.jsonl"
    shutil.copy(EXAMPLE, threads)
    study = _study(tmp_path / "out", threads)
    resolved = resolve(study)
    planned = {q.key for q in plan_model(resolved, study.models[0])}
    [first] = run_study(study, max_queries=len(planned) // 3)
    assert 0 < first.new < len(planned)
    [res] = run_study(study)
    assert res.run_id == first.run_id and res.already_done == first.new
    store = Store(Path(study.output))
    assert {r["key"] for r in store.responses(res.run_id)} == planned
    stored = store.conversations(res.run_id)
    assert len(stored) == 6 * 3 * 2  # 6 personas (5 + baseline) x 3 threads x 2 lengths
    sent = {tuple(Message(**m) for m in json.loads(c["messages_json"])) for c in stored}
    assert tuple(Message(r, t) for r, t in read_threads(str(threads))[0][1][:2]) in sent
    tables = load_run(store, res.run_id, n_boot=50)
    stab = tables.metrics[tables.metrics["metric"].str.startswith("rank_order")]
    # stability across the threads themselves (not only against the no-conversation context)
    between = stab[stab["context_a"].str.startswith("threads#") & stab["context_b"].str.startswith("threads#")]
    assert len(between) and between["value"].notna().any()
    # an edited file is a new run; the same content elsewhere is the same run
    moved = tmp_path / "elsewhere.jsonl"
    shutil.copy(threads, moved)
    assert run_id_for(_study(tmp_path / "out", moved), study.models[0]) == run_id_for(study, study.models[0])
    threads.write_text(threads.read_text().replace("Berlin", "Munich"))
    edited = _study(tmp_path / "out", threads)
    assert run_id_for(edited, study.models[0]) != res.run_id
    [again] = run_study(edited)
    assert again.run_id != res.run_id
