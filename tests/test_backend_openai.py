"""OpenAI-compatible backend against a real llama.cpp server (the embedded model) on 127.0.0.1
(the session fixture ``llama_server`` in conftest.py),
and its retry policy against a tiny local HTTP server that answers 429 / 503 / 400 / 401.

The completions route (``path`` names the served GGUF) against the embedded backend: tests/test_cross_backend.py
(issue 28: the former test_completions_route_matches_embedded_backend here asked the same question of 8 PVQ
prompts; the cross-backend study asks it of 15 MFQ-30 queries under three option orders, with the same
checks: valid, logprobs, sum 1, outside mass < 0.5, within 0.05 of the embedded backend, completions mode)."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import free_port

from valuescope.backends.base import BackendError
from valuescope.backends.extraction import judge_eval
from valuescope.backends.openai_compat import OpenAICompatBackend
from valuescope.backends.retry import Verdict, call_with_retries, parse_retry_after
from valuescope.core.types import GenerateRequest, Message, ScoreRequest

PVQ = ("Very much like me", "Like me", "Somewhat like me", "A little like me", "Not like me",
       "Not like me at all")
LETTERS = tuple("ABCDEF")


def pvq_requests(order=(0, 1, 2, 3, 4, 5)) -> list[ScoreRequest]:
    items = ["It is important to him to form his views independently.",
             "It is important to him to have a good time.",
             "It is important to him that the weak and vulnerable in society be protected."]
    out = []
    for persona in (None, "You are Gandalf, a wise wizard of Middle-earth."):
        for item in items:
            opts = "\n".join(f"({LETTERS[j]}) {PVQ[i]}" for j, i in enumerate(order))
            user = ("Please read the description and think about how much this person is or is not "
                    "like you.\nYour response should always point to a specific letter option.\n\n"
                    f"Options:\n{opts}\n\nDescription: {item}\nHow much is this person like you?")
            msgs = ((Message("system", persona),) if persona else ()) + (Message("user", user),)
            out.append(ScoreRequest(msgs, LETTERS, "Answer: (", tuple(PVQ[i] for i in order)))
    return out


@pytest.mark.slow
def test_chat_route_and_generation(llama_server):
    base, _ = llama_server
    backend = OpenAICompatBackend(base_url=base, concurrency=2)
    assert backend.mode == "chat"
    got = backend.score(pvq_requests()[:2])  # issue 28: 3 prompts -> 2
    for r in got:
        assert r.method == "logprobs"
        if r.valid:  # a letter among the top 20 first tokens
            assert math.isclose(sum(r.probs), 1.0) and 0.0 <= r.outside_mass <= 1.0
        else:
            assert r.error
    parsed = OpenAICompatBackend(base_url=base, logprobs=False).score(pvq_requests()[:2])
    for r in parsed:
        assert r.method == "generate" and isinstance(r.raw, str)
        assert r.valid == (sum(p == 1.0 for p in r.probs) == 1)
    [text] = backend.generate([GenerateRequest((Message("user", "Write one word about chess."),),
                                               max_tokens=8)])
    assert isinstance(text, str) and text.strip()
    backend.close()


@pytest.mark.slow
def test_judge_eval_with_a_served_judge(llama_server):
    base, gguf = llama_server
    judge = OpenAICompatBackend(base_url=base, path=str(gguf))
    samples = [("I'd say B, it fits me.", LETTERS, PVQ, 1), ("Not like me at all.", LETTERS, PVQ, 5),
               ("I cannot answer that.", LETTERS, PVQ, None), ("(D)", LETTERS, PVQ, 3)]
    report = judge_eval(judge, samples)
    judge.close()
    assert report["n"] == 4 and report["rule_accuracy"] == 1.0
    diagonal = sum(row.get(g, 0) for g, row in report["confusion"].items())
    assert math.isclose(report["accuracy"], diagonal / 4)
    assert sum(sum(row.values()) for row in report["confusion"].values()) == 4


# --------------------------------------------------------------------------- retries


CHAT_OK = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "length",
                 "message": {"role": "assistant", "content": "B"},
                 "logprobs": {"content": [{"token": "B", "logprob": -0.5, "bytes": None, "top_logprobs": [
                     {"token": "B", "logprob": -0.5, "bytes": None},
                     {"token": "(A", "logprob": -2.0, "bytes": None},
                     {"token": " B", "logprob": -4.0, "bytes": None},
                     {"token": "Hello", "logprob": -3.0, "bytes": None}]}]}}],
}


class Script:
    """A local server answering each POST with the next (status, headers) of a script; 200 after it."""

    def __init__(self, script):
        self.script = list(script)
        self.times: list[float] = []
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.times.append(time.monotonic())
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                status, headers = outer.script.pop(0) if outer.script else (200, {})
                body = json.dumps(CHAT_OK if status == 200 else {"error": {"message": f"status {status}"}})
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def one_request() -> list[ScoreRequest]:
    return [ScoreRequest((Message("user", "Pick one.\n(A) yes\n(B) no"),), ("A", "B"), "Answer: (")]


def test_retry_after_is_honoured_on_429_then_scores_the_top_logprobs():
    script = Script([(429, {"Retry-After": "1"})])
    with script as base:
        backend = OpenAICompatBackend(base_url=base, model="m", max_retries=3, retry_base=0.001)
        [res] = backend.score(one_request())
    assert len(script.times) == 2 and script.times[1] - script.times[0] >= 0.95
    assert res.valid and res.method == "logprobs"
    # hand-computed: B = e^-0.5 + e^-4.0 (" B"), A = e^-2.0 ("(A" read leniently in chat mode)
    b, a = math.exp(-0.5) + math.exp(-4.0), math.exp(-2.0)
    assert res.probs == pytest.approx((a / (a + b), b / (a + b)))
    assert res.outside_mass == pytest.approx(1 - a - b)


def test_retry_after_waits_at_least_what_the_server_asked():
    script = Script([(429, {"Retry-After": "1"}), (503, {"retry-after-ms": "300"})])
    with script as base:
        backend = OpenAICompatBackend(base_url=base, model="m", max_retries=3, retry_base=0.001)
        [res] = backend.score(one_request())
    assert res.valid and len(script.times) == 3
    # backoff alone would wait <= 1 ms (retry_base); the gaps are the server's Retry-After
    assert script.times[1] - script.times[0] >= 0.95
    assert script.times[2] - script.times[1] >= 0.28
    body = script.bodies[0]
    assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["messages"][-1]["content"].endswith("Reply with the letter of one option only.")


def test_attempts_are_capped_and_a_bad_query_is_invalid_not_raised():
    script = Script([(503, {})] * 10)
    with script as base:
        backend = OpenAICompatBackend(base_url=base, model="m", max_retries=2, retry_base=0.001)
        [res] = backend.score(one_request())
    assert len(script.times) == 3  # max_retries + 1
    assert not res.valid and "503" in res.error and all(math.isnan(p) for p in res.probs)
    assert res.method == "failed"  # the runner records it as a failure and retries it next run
    script = Script([(400, {})])
    with script as base:
        [res] = OpenAICompatBackend(base_url=base, model="m", max_retries=4).score(one_request())
    assert len(script.times) == 1 and not res.valid  # a bad request is not retried


def test_server_down_or_key_refused_raises_once():
    port = free_port()  # nothing listens there
    backend = OpenAICompatBackend(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1,
                                  retry_base=0.001, concurrency=4)
    with pytest.raises(BackendError, match="cannot reach"):
        backend.score(one_request() * 5)
    with Script([(401, {})] * 5) as base, pytest.raises(BackendError, match="refused the API key"):
        OpenAICompatBackend(base_url=base, model="m").score(one_request())


def test_parse_retry_after_forms():
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_call_with_retries_backoff_is_bounded_and_jittered():
    import random

    waits: list[float] = []
    calls = []

    def always_fails():
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        call_with_retries(always_fails, lambda e: Verdict(True), max_retries=4, sleep=waits.append,
                          rng=random.Random(0), base=0.5)
    assert len(calls) == 5 and len(waits) == 4
    assert all(0 <= w <= 0.5 * 2**i for i, w in enumerate(waits))
    assert len(set(waits)) == 4  # jittered, not a fixed schedule
