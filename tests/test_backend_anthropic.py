"""Anthropic backend's wire format against a local HTTP server on 127.0.0.1 that speaks the
Messages API (request JSON and headers checked; realistic response bodies)."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from valuescope.backends.anthropic_api import AnthropicBackend, to_wire
from valuescope.backends.base import BackendError
from valuescope.core.types import GenerateRequest, Message, ScoreRequest

KEY_ENV = "VALUESCOPE_TEST_ANTHROPIC_KEY"
PVQ = ("Very much like me", "Like me", "Somewhat like me", "A little like me", "Not like me",
       "Not like me at all")


def message_body(text: str, model: str) -> dict:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 212, "output_tokens": len(text.split()), "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0},
    }


class MessagesServer:
    """Answers POST /v1/messages; ``reply(body) -> (status, headers, json)`` decides each answer."""

    def __init__(self, reply):
        self.requests: list[tuple[dict, dict, float]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((body, dict(self.headers), time.monotonic()))
                if self.path != "/v1/messages":
                    status, headers, payload = 404, {}, {"type": "error", "error": {"type": "not_found_error"}}
                else:
                    status, headers, payload = reply(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"content-type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-ant-test-123")
    return KEY_ENV


def score_request() -> ScoreRequest:
    user = "Options:\n" + "\n".join(f"({c}) {lab}" for c, lab in zip("ABCDEF", PVQ, strict=True))
    msgs = (Message("system", "You are Frodo Baggins."), Message("user", "Tell me about the Shire."),
            Message("assistant", "It is green and quiet."), Message("user", user + "\nHow much like you?"))
    return ScoreRequest(msgs, tuple("ABCDEF"), "Answer: (", PVQ)


def test_wire_format_and_prefilled_answer(key):
    srv = MessagesServer(lambda body: (200, {}, message_body("C) Somewhat like me", body["model"])))
    try:
        backend = AnthropicBackend(model="claude-test-1", base_url=srv.base, api_key_env=key)
        [res] = backend.score([score_request()])
    finally:
        srv.close()
    assert res.valid and res.method == "generate"
    assert res.probs == (0.0, 0.0, 1.0, 0.0, 0.0, 0.0) and math.isnan(res.outside_mass)
    assert res.raw == "Answer: (C) Somewhat like me"
    body, headers, _ = srv.requests[0]
    assert body["model"] == "claude-test-1"
    assert body["system"] == "You are Frodo Baggins."
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]
    assert body["messages"][-1] == {"role": "assistant", "content": "Answer: ("}
    assert body["messages"][2]["content"].startswith("Options:\n(A) Very much like me")
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["x-api-key"] == "sk-ant-test-123"
    assert lower["anthropic-version"] == "2023-06-01"
    assert "sk-ant-test-123" not in repr(vars(backend))  # the key is read per request, never kept


def test_prefill_refused_falls_back_and_unreadable_is_invalid(key):
    def reply(body):
        if body["messages"][-1]["role"] == "assistant":
            return 400, {}, {"type": "error", "error": {"type": "invalid_request_error",
                                                        "message": "prefill is not supported"}}
        return 200, {}, message_body("I'd rather not say; both A and B fit.", body["model"])

    srv = MessagesServer(reply)
    try:
        backend = AnthropicBackend(model="claude-test-1", base_url=srv.base, api_key_env=key, max_retries=3)
        first, second = backend.score([score_request(), score_request()])
    finally:
        srv.close()
    for res in (first, second):
        assert not res.valid and res.raw == "I'd rather not say; both A and B fit."
    assert not backend.prefill
    assert len(srv.requests) <= 4  # at most one refused prefill per in-flight query, never retried


def test_overloaded_529_is_retried_after_retry_after(key):
    calls = []

    def reply(body):
        calls.append(1)
        if len(calls) == 1:
            return 529, {"retry-after": "1"}, {"type": "error", "error": {"type": "overloaded_error"}}
        return 200, {}, message_body("Two roads, one poem.", body["model"])

    srv = MessagesServer(reply)
    try:
        backend = AnthropicBackend(model="claude-test-1", base_url=srv.base, api_key_env=key, retry_base=0.001)
        [text] = backend.generate([GenerateRequest((Message("user", "Write a poem."),), max_tokens=50,
                                                   temperature=0.7)])
    finally:
        srv.close()
    assert text == "Two roads, one poem."
    assert len(srv.requests) == 2 and srv.requests[1][2] - srv.requests[0][2] >= 0.95
    body = srv.requests[1][0]
    assert body["max_tokens"] == 50 and body["temperature"] == 0.7 and "system" not in body


def test_missing_key_bad_key_and_server_down(key, monkeypatch):
    with pytest.raises(BackendError, match="needs 'model'"):
        AnthropicBackend(api_key_env=key)
    monkeypatch.delenv(key)
    with pytest.raises(BackendError, match=KEY_ENV):
        AnthropicBackend(model="m", api_key_env=key)
    monkeypatch.setenv(key, "wrong")
    srv = MessagesServer(lambda body: (401, {}, {"type": "error", "error": {"type": "authentication_error"}}))
    try:
        with pytest.raises(BackendError, match="refused the API key"):
            AnthropicBackend(model="m", base_url=srv.base, api_key_env=key).score([score_request()])
    finally:
        srv.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = AnthropicBackend(model="m", base_url=f"http://127.0.0.1:{port}", api_key_env=key, max_retries=1,
                            retry_base=0.001)
    with pytest.raises(BackendError, match="cannot reach"):
        down.score([score_request()] * 3)


def test_to_wire_merges_roles_and_lifts_system():
    system, turns = to_wire((Message("system", "a"), Message("system", "b"), Message("user", "x"),
                             Message("user", "y"), Message("assistant", "z")))
    assert system == "a\n\nb"
    assert turns == [{"role": "user", "content": "x\n\ny"}, {"role": "assistant", "content": "z"}]
