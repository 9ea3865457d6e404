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
(:mod:`valuescope.extraction`). A query that keeps failing comes back ``valid=False`` with the
error; a server that cannot be reached at all, or refuses the key, raises one BackendError.
The API key is read from the environment variable named by ``api_key_env`` and is never stored
on the backend or logged.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from valuescope.backends.base import BackendError
from valuescope.backends.chat_template import ChatTemplate
from valuescope.backends.letters import load_chat_template, render_prompt, scores_from_logprobs
from valuescope.backends.retry import (
    RETRY_STATUS,
    Fatal,
    Verdict,
    call_with_retries,
    parse_retry_after,
    run_concurrently,
)
from valuescope.extraction import letter_scores_from_text
from valuescope.types import GenerateRequest, LetterScores, ScoreRequest

T = TypeVar("T")
TOP_LOGPROBS = 20
LETTER_INSTRUCTION = "Reply with the letter of one option only."
DUMMY_KEY = "sk-no-key-required"


def _classify(exc: Exception) -> Verdict:
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
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
        base_url: str | None = None,
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
        self.base_url = base_url
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.use_logprobs = logprobs
        self.retry_base = retry_base
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        key = os.environ.get(api_key_env) if api_key_env else None
        self._client = openai.OpenAI(
            base_url=base_url, api_key=key or DUMMY_KEY, timeout=timeout, max_retries=0
        )
        self._template: ChatTemplate | None = None
        if path is not None:
            try:
                self._template = load_chat_template(path)
            except (OSError, ValueError, BackendError) as exc:
                raise BackendError(f"model path {path}: {exc}") from exc
        self._model = model

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
            models = self._call(lambda: self._client.models.list())
            if not models.data:
                raise BackendError(f"server {self.base_url} lists no model; set 'model' in the model block")
            self._model = models.data[0].id
        return self._model

    def _call(self, fn: Callable[[], T]) -> T:
        import openai

        with self._rng_lock:
            rng = random.Random(self._rng.random())
        try:
            return call_with_retries(
                fn, _classify, max_retries=self.max_retries, rng=rng, base=self.retry_base
            )
        except openai.APIConnectionError as exc:
            raise Fatal(f"cannot reach {self.base_url or 'the OpenAI API'}: {exc}") from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise Fatal(f"{self.base_url or 'the OpenAI API'} refused the API key: {exc}") from exc

    def _map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        return run_concurrently(fn, items, self.concurrency)

    # ------------------------------------------------------------------ scoring

    def score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        return self._map(self._score_one, list(requests))

    def _score_one(self, req: ScoreRequest) -> LetterScores:
        import openai

        try:
            if self.use_logprobs:
                res = self._score_logprobs(req)
                if res is not None:
                    return res
            return self._score_generate(req)
        except openai.APIError as exc:
            return LetterScores(tuple([float("nan")] * len(req.letters)), float("nan"), valid=False,
                                error=f"{type(exc).__name__}: {exc}"[:500],
                                method="logprobs" if self.use_logprobs else "generate")

    def _chat_messages(self, req: ScoreRequest, *, instruct: bool) -> list[dict[str, str]]:
        msgs = [m.as_dict() for m in req.messages]
        if instruct and msgs and msgs[-1]["role"] == "user":
            msgs[-1] = {"role": "user", "content": f"{msgs[-1]['content']}\n{LETTER_INSTRUCTION}"}
        return msgs

    def _score_logprobs(self, req: ScoreRequest) -> LetterScores | None:
        """Letter scores from top_logprobs, or None when the server gave no logprobs."""
        if self._template is not None:
            prompt = render_prompt(self._template, req.messages, req.answer_prefix)
            resp = self._call(lambda: self._client.completions.create(
                model=self.model, prompt=prompt, max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS))
            lp = resp.choices[0].logprobs if resp.choices else None
            if lp is None or not lp.top_logprobs or not lp.top_logprobs[0]:
                return None
            return scores_from_logprobs(lp.top_logprobs[0].items(), req.letters)
        resp = self._call(lambda: self._client.chat.completions.create(
            model=self.model, messages=self._chat_messages(req, instruct=True), max_tokens=1,
            temperature=0.0, logprobs=True, top_logprobs=TOP_LOGPROBS))
        lp = resp.choices[0].logprobs if resp.choices else None
        if lp is None or not lp.content or not lp.content[0].top_logprobs:
            return None
        pairs = [(t.token, t.logprob) for t in lp.content[0].top_logprobs]
        return scores_from_logprobs(pairs, req.letters, lenient=True)

    def _score_generate(self, req: ScoreRequest) -> LetterScores:
        if self._template is not None:
            prompt = render_prompt(self._template, req.messages, req.answer_prefix)
            resp = self._call(lambda: self._client.completions.create(
                model=self.model, prompt=prompt, max_tokens=32, temperature=0.0))
            text = req.answer_prefix + (resp.choices[0].text or "")
        else:
            resp = self._call(lambda: self._client.chat.completions.create(
                model=self.model, messages=self._chat_messages(req, instruct=False), max_tokens=64,
                temperature=0.0))
            text = resp.choices[0].message.content or ""
        return letter_scores_from_text(text, req.letters, req.labels)

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        return self._map(self._generate_one, list(requests))

    def _generate_one(self, req: GenerateRequest) -> str:
        import openai

        msgs = [m.as_dict() for m in req.messages]
        try:
            resp = self._call(lambda: self._client.chat.completions.create(
                model=self.model, messages=msgs, max_tokens=req.max_tokens, temperature=req.temperature,
                seed=req.seed))
        except openai.APIError as exc:  # generated text feeds later prompts: no silent gaps
            raise Fatal(f"generation failed after {self.max_retries + 1} attempts: {exc}") from exc
        return resp.choices[0].message.content or ""

    def close(self) -> None:
        self._client.close()

