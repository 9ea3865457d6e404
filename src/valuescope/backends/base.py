"""The one small protocol every backend implements, and the registry that builds them.

A backend does two things for a batch of chat prompts: score the next token as a distribution
over option letters, and generate text. Each implementation lives in one file of this package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from valuescope.core.capabilities import capabilities
from valuescope.core.errors import ValuescopeError
from valuescope.core.types import GenerateRequest, LetterScores, ScoreRequest


class BackendError(ValuescopeError, RuntimeError):
    """A backend could not be built or could not answer (bad path, server down, ...)."""


@runtime_checkable
class Backend(Protocol):
    name: str

    def score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        """Letter distributions, one per request, in request order. Requests with the same
        ``group`` share a prompt prefix; a backend may reorder internally to reuse its cache."""
        ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        """Generated text, one per request."""
        ...

    def close(self) -> None: ...


def render(backend: Any, request: ScoreRequest) -> str | None:
    """The exact prompt text a backend scores for ``request`` (its ``render``), or None when it has none."""
    fn = getattr(backend, "render", None)
    return fn(request) if callable(fn) else None


def token_counter(backend: Any) -> Callable[[str], int] | None:
    """The backend's own tokenizer as a counter (llama.cpp: ``tokens``; transformers: ``tokenizer``), or None."""
    tokens = getattr(backend, "tokens", None)
    if callable(tokens):
        return lambda text: len(tokens(text))
    tok = getattr(backend, "tokenizer", None)
    if tok is not None and callable(getattr(tok, "encode", None)):
        return lambda text: len(tok.encode(text, add_special_tokens=False))
    return None


def check_instruments(backend: Any, instruments: Any) -> None:
    """Let a backend reject the study's instruments before it answers (the synthetic model checks that its
    spec names their dimensions); a backend without ``check_instruments`` accepts any."""
    fn = getattr(backend, "check_instruments", None)
    if callable(fn):
        fn(instruments)


def stats(backend: Any) -> dict[str, Any]:
    """The backend's counters (``stats``: tokens evaluated, queries ...), empty when it keeps none."""
    return dict(getattr(backend, "stats", {}) or {})


def score_hooks(backend: Any) -> list[Any]:
    """The backend's forward hooks (steering), empty for a backend that takes none."""
    return list(getattr(backend, "score_hooks", []) or []) if capabilities(backend).hooks else []


# backend kind -> "module:Class"; each class takes the model block (a dict) as keyword arguments
REGISTRY: dict[str, str] = {
    "llamacpp": "valuescope.backends.llamacpp:LlamaCppBackend",
    "openai": "valuescope.backends.openai_compat:OpenAICompatBackend",
    "hf": "valuescope.backends.hf:HFBackend",
    "vllm": "valuescope.backends.vllm_engine:VLLMBackend",
    "anthropic": "valuescope.backends.anthropic_api:AnthropicBackend",
    "synthetic": "valuescope.backends.synthetic:SyntheticBackend",
}


def create_backend(kind: str, **options: Any) -> Backend:
    if kind not in REGISTRY:
        raise BackendError(f"unknown backend {kind!r}; known: {', '.join(sorted(REGISTRY))}")
    module_name, cls_name = REGISTRY[kind].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"backend {kind!r} needs an optional dependency: {exc}") from exc
    return getattr(module, cls_name)(**options)
