"""Shared letter arithmetic and prompt rendering for the backends that read token probabilities.

A letter's probability is the summed probability of every token that spells it: after the
answer prefix ``"Answer: ("`` that is ``"A"`` or ``" A"`` (the token text, whitespace stripped).
Where the model answers without a prefix (a chat API that cannot prefill), ``lenient`` spelling
also accepts the letter wrapped in the usual decoration: ``"(A"``, ``"A)"``, ``"**A"``, ``"A."``.

The probabilities are renormalised over the letters; ``outside_mass`` records what fell on other
tokens (with top-k logprobs only the top k are seen, so it is ``1 - letter mass seen``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from valuescope.backends.base import BackendError
from valuescope.backends.chat_template import ChatTemplate
from valuescope.core.types import LetterScores, Message

_DECOR = "()[]*_.:,\"'`"


def spelled_letter(token: str, letters: Sequence[str], *, lenient: bool = False) -> str | None:
    """The option letter a token spells, or None."""
    t = token.strip()
    if lenient:
        t = t.strip(_DECOR).strip()
    return t if t in letters else None


def scores_from_logprobs(
    pairs: Iterable[tuple[str, float]], letters: Sequence[str], *, lenient: bool = False,
    raw: str | None = None,
) -> LetterScores:
    """Letter distribution from (token text, logprob) pairs, e.g. an API's ``top_logprobs``.

    Each pair is one distinct token; tokens spelling the same letter are summed."""
    mass = dict.fromkeys(letters, 0.0)
    for token, logprob in pairs:
        letter = spelled_letter(token, letters, lenient=lenient)
        if letter is not None and logprob is not None and math.isfinite(logprob):
            mass[letter] += math.exp(logprob)
    return _normalise([mass[c] for c in letters], raw=raw)


def _normalise(mass: list[float], raw: str | None = None) -> LetterScores:
    total = sum(mass)
    k = len(mass)
    if not total > 0:
        return LetterScores(tuple([math.nan] * k), outside_mass=1.0, valid=False, raw=raw,
                            error="no option letter among the scored tokens")
    outside = min(max(1.0 - total, 0.0), 1.0)
    return LetterScores(tuple(m / total for m in mass), outside_mass=outside, raw=raw)


# --------------------------------------------------------------------------- chat templates


def render_prompt(template: ChatTemplate, messages: Sequence[Message], answer_prefix: str = "") -> str:
    """Chat-rendered prompt text with the assistant turn opened and ``answer_prefix`` after it,
    exactly as the embedded backend renders it (the tokenizer adds BOS where the model wants one)."""
    return template.render([m.as_dict() for m in messages], add_generation_prompt=True) + answer_prefix


def load_chat_template(path: str | Path) -> ChatTemplate:
    """The chat template of a GGUF file or an HF model directory (``tokenizer_config.json``).

    Used by the HTTP backends to render a prompt exactly as the served model would."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        from valuescope.backends.llama_load import load_llama

        llm = load_llama(str(p), vocab_only=True, verbose=False)
        try:
            return ChatTemplate.from_metadata(llm.metadata, p)
        finally:
            llm.close()
    cfg = p / "tokenizer_config.json" if p.is_dir() else p
    if not (cfg.is_file() and cfg.suffix == ".json"):
        raise BackendError(f"{p}: expected a .gguf file, an HF model directory or a tokenizer_config.json")
    data = json.loads(cfg.read_text(encoding="utf-8"))
    source = data.get("chat_template")
    jinja = cfg.parent / "chat_template.jinja"
    if not source and jinja.is_file():
        source = jinja.read_text(encoding="utf-8")
    if isinstance(source, list):  # named templates: take "default"
        source = next((t["template"] for t in source if t.get("name") == "default"), None)
    if not source:
        raise BackendError(f"{cfg}: no chat_template")

    def tok(v: object) -> str:
        return str(v.get("content", "")) if isinstance(v, dict) else str(v or "")

    return ChatTemplate(source=source, bos_token=tok(data.get("bos_token")), eos_token=tok(data.get("eos_token")),
                        add_bos=bool(data.get("add_bos_token", False)))
