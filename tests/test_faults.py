"""Issue 9: a real study through a proxy that injects ~20% faults in front of an OpenAI-compatible server.

Faults: stalls past the client timeout, 429 with Retry-After, 500, 503, connection resets, truncated
bodies, malformed JSON, replies without logprobs. The run must complete, retry each query a bounded
number of times, record the queries that kept failing (with their error) and retry them on the
next run, never write a key twice, and never store a guess (every stored answer is read from
logprobs, as a fault-free run would be).

Issue 28: 12 queries (3 items) instead of 32, the doomed prompts named (the first two planned) instead of
the first two to arrive, and a seed whose faults, computed from the fault rule (fault_proxy: a pure function
of seed, prompt and attempt), cross every one of the 8 kinds once with a single stall (the doomed timeout):
18 requests, 8 faults. The old seed on 32 queries crossed 7 kinds (no "nologprobs") in 39 requests.
The upstream is fault_proxy.FastUpstream (replies shaped as llama_cpp.server's, letter logprobs from the
prompt, answered at once) instead of a real llama.cpp server: the claim is the client's retries, failure
records and resume; on a loaded machine the real server's latency passed the client timeout on every request
(12 of 12 queries failed at load 20, without any fault injected). The real server's completions route:
test_cross_backend, test_backend_openai.
"""

from __future__ import annotations

import sqlite3

from fault_proxy import FAULTS, FastUpstream, FaultProxy, prompt_key
from helpers import embedded_gguf

from valuescope.execution import runner
from valuescope.store.sqlite import Store
from valuescope.study.spec import study_from_dict

MAX_RETRIES = 2
TIMEOUT_S = 3.0  # the upstream answers in milliseconds: a genuine timeout needs a 3 s stall of the machine
# the error a query is left with when its last attempt met this fault
EXPECTED_ERROR = {"timeout": "APITimeoutError", "429": "RateLimitError", "500": "InternalServerError",
                  "503": "InternalServerError", "reset": "APIConnectionError", "truncated": "APIConnectionError",
                  "malformed": "BadReply", "nologprobs": "BadReply"}
FORWARDED = {"truncated", "malformed", "nologprobs"}  # faults that wait for the real server's reply
ITEMS = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY"]
PLANNED = 4 * len(ITEMS)  # 3 personas + the baseline
SEED = 195  # with the first two planned prompts doomed: every fault kind once, one stall (see the docstring)


def _study(base_url: str, gguf, out):
    return study_from_dict({
        "name": "faults",
        "output": str(out),
        "option_order": "permute-persona",  # one order per condition: the counts below
        "instruments": [{"name": "mfq30", "items": ITEMS}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 3, "seeds": [111]}]},
        "models": [{"name": "served", "backend": "openai", "base_url": base_url, "model": "x",
                    "path": str(gguf), "timeout": TIMEOUT_S, "max_retries": MAX_RETRIES, "concurrency": 2}],
        "report": False,
    })


def _prompt_keys(study) -> dict[str, str]:
    """Query key -> the proxy's identity of its request (the exact prompt the backend sends)."""
    resolved = runner.resolve(study)
    model = study.models[0]
    backend = runner.make_backend(model)
    try:
        session = runner.Session(resolved, model, backend, store=None)  # no contexts: no store needed
        return {q.key: prompt_key(backend.render(session.request(q))) for q in runner.plan_model(resolved, model)}
    finally:
        backend.close()


def _rows(path) -> dict[str, tuple]:
    con = sqlite3.connect(path)
    try:
        return {r[0]: r[1:] for r in con.execute("SELECT key, probs, valid, method, created_at FROM responses")}
    finally:
        con.close()


def test_study_through_a_faulty_proxy_completes_and_resumes(tmp_path):
    gguf = embedded_gguf()  # ``path``: the completions route with the GGUF's chat template
    out = tmp_path / "out"
    with FastUpstream() as base, FaultProxy(base, rate=0.2, seed=SEED, doomed=2, stall_s=TIMEOUT_S + 0.5) as proxy:
        study = _study(proxy.base_url, gguf, out)
        expected = _prompt_keys(study)
        assert len(expected) == PLANNED and len(set(expected.values())) == PLANNED  # one prompt per query
        proxy.doom(list(expected.values())[:2])

        [first] = runner.run_study(study)
        assert first.planned == PLANNED and first.already_done == 0

        outcomes = dict(proxy.outcomes)
        faults = [f for seq in outcomes.values() for f in seq if f != "ok"]
        n_requests = sum(len(seq) for seq in outcomes.values())
        # the proxy saw exactly the planned prompts, each tried at most max_retries + 1 times
        assert set(outcomes) == set(expected.values())
        assert max(len(seq) for seq in outcomes.values()) <= MAX_RETRIES + 1
        assert 0.15 <= len(faults) / n_requests <= 0.6  # ~20% random faults plus the doomed prompts
        assert set(faults) == set(FAULTS), faults  # every fault kind was exercised

        with Store(out, create=False) as store:
            failures = {f["key"]: f for f in store.failures(first.run_id)}
        # a query fails exactly when every one of its attempts was faulted (a slow machine may add a
        # genuine timeout: such a query also used all its attempts)
        all_faulted = {k for k, pk in expected.items()
                       if len(outcomes[pk]) == MAX_RETRIES + 1 and "ok" not in outcomes[pk]}
        used_all = {k for k, pk in expected.items() if len(outcomes[pk]) == MAX_RETRIES + 1}
        assert len(all_faulted) >= 2  # the doomed prompts at least
        assert all_faulted <= set(failures) <= used_all
        for f in failures.values():
            assert f["attempts"] == 1 and f["error"]
        # each failure carries the error of its last attempt
        for k in all_faulted:
            last = outcomes[expected[k]][-1]
            # a fault applied to a forwarded reply can also meet a genuine timeout on a loaded machine
            allowed = {EXPECTED_ERROR[last]} | ({"APITimeoutError"} if last in FORWARDED else set())
            assert any(e in failures[k]["error"] for e in allowed), (last, failures[k]["error"])
        assert first.failed == len(failures) and first.new == PLANNED - len(failures)

        path = out / "valuescope.sqlite"
        after_first = _rows(path)
        assert set(after_first) == set(expected) - set(failures)
        # nothing guessed: every stored answer was read from logprobs, none from a fallback
        assert all(valid == 1 and method == "logprobs" for _, valid, method, _ in after_first.values())

        # resume with the faults off: only the failed queries are asked again, and they succeed
        proxy.enabled = False
        proxy.reset_counts()
        [second] = runner.run_study(study)
        assert second.already_done == PLANNED - len(failures) and second.new == len(failures) and second.failed == 0
        assert set(proxy.outcomes) == {expected[k] for k in failures}
        assert all(set(seq) == {"ok"} and len(seq) <= MAX_RETRIES + 1 for seq in proxy.outcomes.values())

    con = sqlite3.connect(path)
    try:
        total, distinct = con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM responses").fetchone()
        n_failures = con.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
    finally:
        con.close()
    assert total == distinct == PLANNED and n_failures == 0
    final = _rows(path)
    assert set(final) == set(expected)  # exactly the planned keys
    assert {k: final[k] for k in after_first} == after_first  # rows of the first run untouched
    assert all(valid == 1 and method == "logprobs" for _, valid, method, _ in final.values())
