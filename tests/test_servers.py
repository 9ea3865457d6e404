"""Issue 19: one model on several OpenAI-compatible servers, routed by prefix group.

Two server processes on loopback share a study; one is SIGKILLed midway, after the first 6 answers are
stored. The run completes with every planned answer exactly once, the dead server's groups go to the other
one, and the groups that were on the surviving server stay there (its prefix cache keeps hitting). The
servers are ``tests/fake_openai_server.py`` processes (keep-alive HTTP/1.1 as uvicorn, fixed logprobs):
routing and failover do not depend on the model; a real llama.cpp server's answers are checked by
``test_backend_openai::test_completions_route_matches_embedded_backend``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import embedded_gguf, free_port, stop_process
from test_backend_openai import Script, one_request

from valuescope.backends.base import BackendError
from valuescope.backends.openai_compat import OpenAICompatBackend
from valuescope.backends.routing import Router
from valuescope.design.plan import prefix_group
from valuescope.execution import runner
from valuescope.store.sqlite import Store
from valuescope.study.spec import SpecError, study_from_dict

ITEMS = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY"]
FAKE_SERVER = Path(__file__).with_name("fake_openai_server.py")


def start_fake_server() -> tuple[subprocess.Popen, str]:
    """A fake OpenAI-compatible server process: (process, base_url); the caller stops it."""
    proc = subprocess.Popen([sys.executable, str(FAKE_SERVER)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "PORT n" once it listens (empty if it died)
    if not line.startswith("PORT "):
        stop_process(proc)
        pytest.fail(f"fake server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def test_router_is_stable_spreads_groups_and_moves_only_a_dead_servers_groups():
    urls = ["http://a/v1", "http://b/v1", "http://c/v1"]
    groups = [f"persona-{i}|none" for i in range(300)]
    router = Router(urls)
    before = {g: router.pick(g) for g in groups}
    assert before == {g: Router(list(reversed(urls))).pick(g) for g in groups}  # order of the list is irrelevant
    counts = {u: sum(1 for s in before.values() if s == u) for u in urls}
    assert all(60 <= n <= 140 for n in counts.values()), counts  # ~100 each (binomial sd ~8)
    router.mark_down("http://b/v1", "cannot reach http://b/v1")
    after = {g: router.pick(g) for g in groups}
    assert all(after[g] == before[g] for g in groups if before[g] != "http://b/v1")
    assert all(after[g] == router.ranking(g)[1] for g in groups if before[g] == "http://b/v1")
    router.mark_down("http://a/v1", "down")
    router.mark_down("http://c/v1", "down")
    with pytest.raises(Exception, match="none of the 3 servers"):
        router.pick(groups[0])


def test_a_server_that_refuses_connections_leaves_its_queries_to_the_other():
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with Script([]) as live:
        backend = OpenAICompatBackend(base_url=[dead, live], model="m", max_retries=1, retry_base=0.001)
        reqs = [replace(r, group=f"g{i}") for i, r in enumerate(one_request() * 12)]
        res = backend.score(reqs)
    assert all(r.valid and r.method == "logprobs" for r in res)
    assert backend.stats["servers_down"] == [dead]
    backend = OpenAICompatBackend(base_url=[dead, f"http://127.0.0.1:{free_port()}/v1"], model="m",
                                  max_retries=1, retry_base=0.001)
    with pytest.raises(BackendError, match="none of the 2 servers can be reached"):
        backend.score(one_request())


def test_a_list_of_servers_is_for_the_openai_backend_only():
    with pytest.raises(SpecError, match="needs backend: openai"):
        study_from_dict({"models": [{"backend": "anthropic", "base_url": ["http://a", "http://b"]}]})
    with pytest.raises(SpecError, match="without repeats"):
        study_from_dict({"models": [{"backend": "openai", "base_url": ["http://a", "http://a"]}]})


def test_two_servers_share_a_run_and_one_is_killed_midway(tmp_path):
    gguf = embedded_gguf()  # its chat template renders the completions prompts (the model's name only)
    servers = [start_fake_server(), start_fake_server()]
    procs = {base: proc for proc, base in servers}
    try:
        out = tmp_path / "out"
        study = study_from_dict({
            "name": "two-servers", "output": str(out), "report": False, "option_order": "permute-persona",
            "instruments": [{"name": "mfq30", "items": ITEMS}],
            "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 7, "seeds": [111]}]},
            "models": [{"name": "served", "backend": "openai", "base_url": list(procs), "path": str(gguf),
                        "concurrency": 2, "timeout": 60}],
        })
        resolved = runner.resolve(study)
        planned = runner.plan_model(resolved, study.models[0])
        assert len(planned) == 24  # 8 groups (baseline + 7 personas) x 3 items
        made: list[OpenAICompatBackend] = []
        killed: list[str] = []
        home: dict[str, str] = {}

        def factory(model):
            made.append(runner.make_backend(model))
            return made[0]

        def progress(phase, done, total):
            if killed:
                return
            assert 0 < done <= 6  # called after the first unit (at most a chunk of 6) is stored
            router = made[0].router
            remaining = {prefix_group(q) for q in planned[done:]}
            home.update({g: router.ranking(g)[0] for g in {prefix_group(q) for q in planned}})
            # kill the server that would serve most of the groups still to come
            victim = max(procs, key=lambda u: sum(1 for g in remaining if home[g] == u))
            assert any(home[g] == victim for g in remaining)
            procs[victim].kill()  # SIGKILL: its pooled keep-alive connections die with it
            procs[victim].wait()
            killed.append(victim)

        [res] = runner.run_study(study, backend_factory=factory, progress=progress, chunk_size=6)
        assert killed and res.planned == 24 and res.new == 24 and res.failed == 0
        assert res.backend_stats["servers_down"] == killed
        survivor = next(u for u in procs if u not in killed)
        assert res.backend_stats["requests_per_server"][survivor] >= 12
        with Store(out, create=False) as store:
            assert store.done_keys(res.run_id) == {q.key for q in planned}
            assert store.failures(res.run_id) == []
        con = sqlite3.connect(out / "valuescope.sqlite")
        try:
            keys = [k for (k,) in con.execute("SELECT key FROM responses")]
            rows = con.execute("SELECT valid, method FROM responses").fetchall()
        finally:
            con.close()
        assert len(keys) == len(set(keys)) == 24  # no duplicates
        assert all(valid == 1 and method == "logprobs" for valid, method in rows)
        # a resume asks nothing again
        [again] = runner.run_study(study)
        assert again.already_done == 24 and again.new == 0
    finally:
        for proc in procs.values():
            stop_process(proc)
