"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI, ...) through the official
``openai`` client.

Scoring reads the ``top_logprobs`` of the first generated token (``max_tokens=1``). Two routes:

``completions`` (used when the model block gives ``path``: the GGUF file or HF model directory
    the server serves) -- the prompt is rendered here through the model's own chat template, the
    answer prefix ("Answer: (") appended, and sent to ``/v1/completions``. The next token is then
    the letter exactly as in the in-process backend: on a llama.cpp server the letter
    distributions agree with the embedded backend to within a few thousandths (tested).
``chat`` (no ``path``) -- ``/v1/chat/completions`` cannot prefill the assistant turn portably, so
    the answer-prefix instruction goes into the last user message ("Reply with the letter of one
    option only.") and the first token is read with lenient spelling ("(A", "A", "**A"). This is
    a different prompt from the in-process one, so its numbers differ (measured in
    docs/backends.md); prefer ``path`` where the server offers /v1/completions.

No logprobs from the server (or ``logprobs: false``): the model generates and the reply is parsed
(:mod:`valuescope.backends.extraction`). A reply without logprobs is retried like any fault; only when every
attempt of a query comes back without them does the backend decide that the server gives none and
generate from then on (a flaky reply must not silently switch a run to another measurement).

Failures: timeouts, dropped connections, 408/409/429/5xx and malformed replies (bad JSON, not a
completion) are retried at most ``max_retries`` times (Retry-After honoured). A query that keeps
failing comes back ``valid=False, method="failed"`` with the error, so the runner records it in
``failures`` and retries it on the next run; an unreadable *answer* (no option letter) is a
``"logprobs"``/``"generate"`` result. A server that cannot be reached at all (connection refused)
or refuses the key raises one BackendError.

Several servers of one model: ``base_url`` may be a list. Each query goes to the server of its prefix
group (:mod:`valuescope.backends.routing`: the same persona and context always to the same server, so
its prefix cache hits), with the retry and failure rules above applied per server. A server that
cannot be reached (connection refused, also mid-run after it died) is dropped and its groups go to
the others; only when none is left does the run stop with one BackendError.
The API key is read from the environment variable named by ``api_key_env``; it is never logged,
and any error text a server sends back has it masked before it is stored or shown.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from valuescope.backends.base import BackendError
from valuescope.backends.chat_template import ChatTemplate, load_chat_template, render_prompt
from valuescope.backends.extraction import letter_scores_from_text
from valuescope.backends.letters import scores_from_logprobs
from valuescope.backends.retry import (
    RETRY_STATUS,
    Fatal,
    Verdict,
    call_with_retries,
    parse_retry_after,
    run_concurrently,
)
from valuescope.backends.routing import Router
from valuescope.core.types import GenerateRequest, LetterScores, ScoreRequest

T = TypeVar("T")
TOP_LOGPROBS = 20
LETTER_INSTRUCTION = "Reply with the letter of one option only."
DUMMY_KEY = "sk-no-key-required"


class BadReply(Exception):
    """A reply that is not a usable completion (malformed JSON, truncated, wrong shape)."""


class NoLogprobs(Exception):
    """A reply without the logprobs that were asked for."""


def _classify(exc: Exception) -> Verdict:
    import openai

    if isinstance(exc, openai.APIConnectionError | BadReply | NoLogprobs):  # includes timeouts
        return Verdict(True)
    if isinstance(exc, openai.APIStatusError) and exc.status_code in RETRY_STATUS:
        headers = dict(exc.response.headers) if exc.response is not None else None
        return Verdict(True, parse_retry_after(headers))
    return Verdict(False)


class OpenAICompatBackend:
    def __init__(
        self,
        *,
        name: str = "openai",
        model: str | None = None,
        base_url: str | Sequence[str] | None = None,
        api_key_env: str | None = None,
        path: str | None = None,
        concurrency: int = 4,
        timeout: float = 60.0,
        max_retries: int = 4,
        logprobs: bool = True,
        retry_base: float = 0.5,
        **_: Any,
    ) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - openai is a core dependency
            raise BackendError("the openai backend needs the 'openai' package: pip install openai") from exc
        self.name = name
        urls: list[str | None] = [base_url] if base_url is None or isinstance(base_url, str) else list(base_url)
        if not urls or len(set(urls)) != len(urls):
            raise BackendError(f"base_url: give one server or a list of distinct servers, got {base_url!r}")
        self.base_url = urls[0]
        self.router = Router(urls)
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.use_logprobs = logprobs
        self.retry_base = retry_base
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        key = os.environ.get(api_key_env) if api_key_env else None
        self._clients = {u: openai.OpenAI(base_url=u, api_key=key or DUMMY_KEY, timeout=timeout, max_retries=0)
                         for u in urls}
        self._client = self._clients[urls[0]]
        self._template: ChatTemplate | None = None
        if path is not None:
            try:
                self._template = load_chat_template(path)
            except (OSError, ValueError, BackendError) as exc:
                raise BackendError(f"model path {path}: {exc}") from exc
        self._model = model
        self._server_lacks_logprobs = False

    # ------------------------------------------------------------------ plumbing

    @property
    def system_role(self) -> bool:
        """Whether the model's template keeps a system message (unknown without ``path``: assume so)."""
        return self._template.system_role if self._template is not None else True

    def render(self, req: ScoreRequest) -> str:
        """The exact prompt text scored for a request (shown in the report)."""
        if self._template is not None:
            return render_prompt(self._template, req.messages, req.answer_prefix)
        msgs = self._chat_messages(req, instruct=True)
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in msgs) + "\n\n[assistant]\n"

    @property
    def mode(self) -> str:
        return "completions" if self._template is not None else "chat"

    @property
    def model(self) -> str:
        if self._model is None:
            data = self._call(lambda c: c.models.list(), lambda r: list(r.data))
            if not data:
                raise BackendError(f"server {self.base_url} lists no model; set 'model' in the model block")
            self._model = data[0].id
        return self._model

    def _redact(self, text: str) -> str:
        """``text`` with the API key masked (some servers and gateways echo request headers back)."""
        key = self._client.api_key
        return text.replace(key, "[api key]") if key and key != DUMMY_KEY else text

    @property
    def stats(self) -> dict[str, Any]:
        if len(self.router.urls) == 1:
            return {}
        return {"requests_per_server": dict(self.router.sent), "servers_down": self.router.down}

    def _call(self, fn: Callable[[Any], Any], read: Callable[[Any], T] = lambda r: r, group: str = "") -> T:
        """``read(fn(client))`` on the server of ``group``; a server found down hands the call to the next."""
        while True:
            try:
                url = self.router.pick(group)
            except Fatal as exc:
                raise Fatal(self._redact(str(exc))) from None
            try:
                return self._call_on(url, fn, read)
            except _ServerDown as exc:
                self.router.mark_down(url, str(exc))

    def _call_on(self, url: str | None, fn: Callable[[Any], Any], read: Callable[[Any], T]) -> T:
        """``read(fn(client))`` on one server with bounded retries; a reply ``read`` cannot use is a
        retried BadReply."""
        import openai

        client = self._clients[url]

        def attempt() -> T:
            try:
                resp = fn(client)
            except ValueError as exc:  # the client could not decode the JSON body
                raise BadReply(f"malformed JSON reply: {exc}") from None
            if isinstance(resp, str | bytes):  # the client hands back a body it could not parse
                raise BadReply(f"reply is not JSON: {resp[:80]!r}")
            try:
                return read(resp)
            except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
                raise BadReply(f"reply is not a completion ({type(exc).__name__}: {exc})") from None

        with self._rng_lock:
            rng = random.Random(self._rng.random())
        where = url or "the OpenAI API"
        try:
            return call_with_retries(attempt, _classify, max_retries=self.max_retries, rng=rng,
                                     base=self.retry_base)
        except openai.APIConnectionError as exc:
            if _is_connect_error(exc):  # nothing listens there: every query would fail the same way
                raise _ServerDown(self._redact(f"cannot reach {where}: {exc}")) from None
            raise
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise Fatal(self._redact(f"{where} refused the API key: {exc}")) from None

    def _map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        return run_concurrently(fn, items, self.concurrency)

    # ------------------------------------------------------------------ scoring

    def score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        return self._map(self._score_one, list(requests))

    def _score_one(self, req: ScoreRequest) -> LetterScores:
        import openai

        try:
            if self.use_logprobs and not self._server_lacks_logprobs:
                res = self._score_logprobs(req)
                if res is not None:
                    return res
            return self._score_generate(req)
        except (openai.APIError, BadReply) as exc:  # kept failing: a failure to retry, not an answer
            return LetterScores(tuple([float("nan")] * len(req.letters)), float("nan"), valid=False,
                                error=self._redact(f"{type(exc).__name__}: {exc}")[:500], method="failed")

    def _chat_messages(self, req: ScoreRequest, *, instruct: bool) -> list[dict[str, str]]:
        msgs = [m.as_dict() for m in req.messages]
        if instruct and msgs and msgs[-1]["role"] == "user":
            msgs[-1] = {"role": "user", "content": f"{msgs[-1]['content']}\n{LETTER_INSTRUCTION}"}
        return msgs

    def _score_logprobs(self, req: ScoreRequest) -> LetterScores | None:
        """Letter scores from top_logprobs; None when every attempt came back without logprobs (the
        server gives none: generate from then on)."""
        misses = 0

        def read(resp: Any) -> LetterScores:
            nonlocal misses
            lp = resp.choices[0].logprobs
            if self._template is not None:
                if lp is None or not lp.top_logprobs or not lp.top_logprobs[0]:
                    misses += 1
                    raise NoLogprobs("the reply has no logprobs")
                return scores_from_logprobs(list(lp.top_logprobs[0].items()), req.letters)
            if lp is None or not lp.content or not lp.content[0].top_logprobs:
                misses += 1
                raise NoLogprobs("the reply has no logprobs")
            pairs = [(t.token, t.logprob) for t in lp.content[0].top_logprobs]
            return scores_from_logprobs(pairs, req.letters, lenient=True)

        if self._template is not None:
            prompt = render_prompt(self._template, req.messages, req.answer_prefix)
            send = lambda c: c.completions.create(  # noqa: E731
                model=self.model, prompt=prompt, max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS)
        else:
            send = lambda c: c.chat.completions.create(  # noqa: E731
                model=self.model, messages=self._chat_messages(req, instruct=True), max_tokens=1,
                temperature=0.0, logprobs=True, top_logprobs=TOP_LOGPROBS)
        try:
            return self._call(send, read, req.group)
        except NoLogprobs:
            if misses <= self.max_retries:  # other faults too: this query failed, the server is fine
                raise BadReply(f"the last reply had no logprobs ({misses} of {self.max_retries + 1})") from None
            self._server_lacks_logprobs = True
            return None

    def _score_generate(self, req: ScoreRequest) -> LetterScores:
        if self._template is not None:
            prompt = render_prompt(self._template, req.messages, req.answer_prefix)
            text = req.answer_prefix + self._call(lambda c: c.completions.create(
                model=self.model, prompt=prompt, max_tokens=32, temperature=0.0), _completion_text, req.group)
        else:
            text = self._call(lambda c: c.chat.completions.create(
                model=self.model, messages=self._chat_messages(req, instruct=False), max_tokens=64,
                temperature=0.0), _chat_text, req.group)
        return letter_scores_from_text(text, req.letters, req.labels)

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        return self._map(self._generate_one, list(requests))

    def _generate_one(self, req: GenerateRequest) -> str:
        import openai

        msgs = [m.as_dict() for m in req.messages]
        try:
            return self._call(lambda c: c.chat.completions.create(
                model=self.model, messages=msgs, max_tokens=req.max_tokens, temperature=req.temperature,
                seed=req.seed), _chat_text, msgs[0]["content"] if msgs else "")
        except (openai.APIError, BadReply) as exc:  # generated text feeds later prompts: no silent gaps
            raise Fatal(self._redact(f"generation failed after {self.max_retries + 1} attempts: {exc}")) from None

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


class _ServerDown(Exception):
    """Nothing answers at one server (connection refused): its queries go to the other servers."""


def _text_or_bad(text: Any) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise TypeError(f"completion text is {type(text).__name__}")
    return text


def _completion_text(resp: Any) -> str:
    return _text_or_bad(resp.choices[0].text)


def _chat_text(resp: Any) -> str:
    return _text_or_bad(resp.choices[0].message.content)


def _is_connect_error(exc: BaseException) -> bool:
    """Whether a connection error means nothing answers there (refused, unresolvable), as opposed to
    a timeout or a connection dropped mid-request (one query's bad luck, retried on the next run)."""
    cause: BaseException | None = exc
    for _ in range(5):
        if cause is None:
            return False
        if any(c.__name__ in ("ConnectError", "ConnectTimeout") for c in type(cause).__mro__):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
