"""Anthropic Messages API (``POST {base_url}/v1/messages``). It gives no logprobs, so scoring is
generation plus rule-based parsing (:mod:`valuescope.backends.extraction`), recorded as ``method="generate"``.

System messages go to the top-level ``system`` field; consecutive turns of one role are merged
(the API wants user/assistant alternation). The answer prefix ("Answer: (") is sent as a final
assistant turn that the model continues (prefill); a model that refuses prefill (HTTP 400) is
asked again without it, and the prefill is left off from then on.

Plain ``urllib`` speaks the wire format (no extra dependency). The key is read from the environment
variable named by ``api_key_env`` (default ``ANTHROPIC_API_KEY``) at each request and never stored.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from valuescope.backends.base import BackendError
from valuescope.backends.extraction import letter_scores_from_text
from valuescope.backends.retry import (
    RETRY_STATUS,
    Fatal,
    Verdict,
    call_with_retries,
    parse_retry_after,
    run_concurrently,
)
from valuescope.core.types import GenerateRequest, LetterScores, Message, ScoreRequest

API_VERSION = "2023-06-01"
DEFAULT_BASE = "https://api.anthropic.com"
SCORE_MAX_TOKENS = 24


class HTTPStatusError(Exception):
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.headers = headers
        self.body = body


class BadReply(Exception):
    """A reply that is not a usable message (malformed or truncated JSON): retried."""


def _classify(exc: Exception) -> Verdict:
    if isinstance(exc, BadReply):
        return Verdict(True)
    if isinstance(exc, HTTPStatusError):
        if exc.status in RETRY_STATUS:
            return Verdict(True, parse_retry_after(exc.headers))
        return Verdict(False)
    return Verdict(isinstance(exc, (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError)))


def to_wire(messages: Sequence[Message]) -> tuple[str | None, list[dict[str, str]]]:
    """(system text, alternating messages) for the Messages API."""
    system = "\n\n".join(m.content for m in messages if m.role == "system") or None
    turns: list[dict[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"] += "\n\n" + m.content
        else:
            turns.append({"role": m.role, "content": m.content})
    return system, turns


class AnthropicBackend:
    def __init__(
        self,
        *,
        name: str = "anthropic",
        model: str | None = None,
        base_url: str | None = None,
        api_key_env: str | None = None,
        concurrency: int = 4,
        timeout: float = 60.0,
        max_retries: int = 4,
        retry_base: float = 0.5,
        **_: Any,
    ) -> None:
        if not model:
            raise BackendError("the anthropic backend needs 'model' in the model block (e.g. claude-sonnet-4-5)")
        self.key_env = api_key_env or "ANTHROPIC_API_KEY"
        if not os.environ.get(self.key_env):
            raise BackendError(f"set the environment variable {self.key_env} to your Anthropic API key")
        self.name = name
        self.model = model
        self.url = (base_url or DEFAULT_BASE).rstrip("/")
        if not self.url.endswith("/v1"):
            self.url += "/v1"
        self.url += "/messages"
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_base = retry_base
        self.prefill = True
        self._rng = random.Random()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ wire

    def _post_once(self, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url, data=json.dumps(body).encode("utf-8"), method="POST",
            headers={"x-api-key": os.environ.get(self.key_env, ""), "anthropic-version": API_VERSION,
                     "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            raise HTTPStatusError(exc.code, dict(exc.headers.items()), text) from None
        except (ValueError, http.client.IncompleteRead) as exc:
            raise BadReply(f"malformed reply: {type(exc).__name__}: {exc}"[:300]) from None
        if not isinstance(data, dict):
            raise BadReply(f"reply is not a JSON object: {str(data)[:80]!r}")
        return data

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rng = random.Random(self._rng.random())
        try:
            return call_with_retries(lambda: self._post_once(body), _classify, max_retries=self.max_retries,
                                     rng=rng, base=self.retry_base)
        except HTTPStatusError as exc:
            if exc.status in (401, 403):
                raise Fatal(f"{self.url} refused the API key ({exc.status})") from exc
            raise
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise Fatal(f"cannot reach {self.url}: {exc.reason}") from exc
            raise

    @staticmethod
    def _text(resp: dict[str, Any]) -> str:
        blocks = resp.get("content", [])
        if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
            raise BadReply("reply has no list of content blocks")
        return "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.key_env)
        return text.replace(key, "[api key]") if key else text

    def _body(self, messages: Sequence[Message], max_tokens: int, temperature: float,
              prefill: str = "") -> dict[str, Any]:
        system, turns = to_wire(messages)
        if prefill:
            turns.append({"role": "assistant", "content": prefill})
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "messages": turns,
                                "temperature": temperature}
        if system:
            body["system"] = system
        return body

    # ------------------------------------------------------------------ protocol

    def score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        return run_concurrently(self._score_one, list(requests), self.concurrency)

    def _score_one(self, req: ScoreRequest) -> LetterScores:
        prefix = req.answer_prefix.rstrip()  # the API rejects a prefill ending in whitespace
        try:
            if prefix and self.prefill:
                try:
                    resp = self._post(self._body(req.messages, SCORE_MAX_TOKENS, 0.0, prefix))
                    return letter_scores_from_text(prefix + self._text(resp), req.letters, req.labels)
                except HTTPStatusError as exc:
                    if exc.status != 400:
                        raise
                    self.prefill = False  # this model does not continue a prefilled turn
            resp = self._post(self._body(req.messages, 4 * SCORE_MAX_TOKENS, 0.0))
            return letter_scores_from_text(self._text(resp), req.letters, req.labels)
        except (HTTPStatusError, BadReply, urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            # kept failing: recorded as a failure and retried on the next run, not stored as an answer
            return LetterScores(tuple([float("nan")] * len(req.letters)), float("nan"), valid=False,
                                error=self._redact(str(exc))[:500], method="failed")

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        def one(req: GenerateRequest) -> str:
            try:
                return self._text(self._post(self._body(req.messages, req.max_tokens, req.temperature)))
            except (HTTPStatusError, BadReply, urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                raise Fatal(self._redact(f"generation failed after {self.max_retries + 1} attempts: {exc}")) from None

        return run_concurrently(one, list(requests), self.concurrency)

    def close(self) -> None:
        pass
