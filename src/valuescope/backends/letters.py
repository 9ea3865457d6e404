"""Shared letter arithmetic and prompt rendering for the backends that read token probabilities.

A letter's probability is the summed probability of every token that spells it: after the
answer prefix ``"Answer: ("`` that is ``"A"`` or ``" A"`` (the token text, whitespace stripped).
Where the model answers without a prefix (a chat API that cannot prefill), ``lenient`` spelling
also accepts the letter wrapped in the usual decoration: ``"(A"``, ``"A)"``, ``"**A"``, ``"A."``.

The probabilities are renormalised over the letters; ``outside_mass`` records what fell on other
tokens (with top-k logprobs only the top k are seen, so it is ``1 - letter mass seen``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from valuescope.types import LetterScores, Message

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


def scores_from_probs(probs: Sequence[float], ids_per_letter: Sequence[Sequence[int]]) -> LetterScores:
    """Letter distribution from a full next-token probability vector (HF, llama.cpp)."""
    return _normalise([float(sum(probs[i] for i in ids)) for ids in ids_per_letter])


def letter_token_ids(vocab: Iterable[tuple[int, str]], letters: Sequence[str]) -> list[list[int]]:
    """For each letter, the ids of the tokens whose text (whitespace stripped) is that letter."""
    out: list[list[int]] = [[] for _ in letters]
    index = {c: j for j, c in enumerate(letters)}
    for tid, text in vocab:
        j = index.get(text.strip())
        if j is not None:
            out[j].append(tid)
    return out


def _normalise(mass: list[float], raw: str | None = None) -> LetterScores:
    total = sum(mass)
    k = len(mass)
    if not total > 0:
        return LetterScores(tuple([math.nan] * k), outside_mass=1.0, valid=False, raw=raw,
                            error="no option letter among the scored tokens")
    outside = min(max(1.0 - total, 0.0), 1.0)
    return LetterScores(tuple(m / total for m in mass), outside_mass=outside, raw=raw)


# --------------------------------------------------------------------------- chat templates


def render_chat(
    template: str, messages: Sequence[Message], *, bos_token: str = "", eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render messages through a model's own Jinja2 chat template (as HF and llama.cpp do)."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def strftime_now(fmt: str) -> str:
        import datetime

        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    return env.from_string(template).render(
        messages=[m.as_dict() for m in messages], bos_token=bos_token, eos_token=eos_token,
        add_generation_prompt=add_generation_prompt,
    )


def render_prompt(
    template: str, bos: str, eos: str, messages: Sequence[Message], answer_prefix: str = ""
) -> str:
    """Chat-rendered prompt text with the assistant turn opened and ``answer_prefix`` after it.

    A leading BOS written by the template is dropped: the server's tokenizer adds its own where
    the model wants one (llama.cpp and HF tokenizers both do)."""
    text = render_chat(template, messages, bos_token=bos, eos_token=eos)
    if bos and text.startswith(bos):
        text = text[len(bos):]
    return text + answer_prefix


def load_chat_template(path: str | Path) -> tuple[str, str, str]:
    """(template, bos text, eos text) from a GGUF file or an HF model directory.

    Used by the HTTP backends to render a prompt exactly as the served model would."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        from llama_cpp import Llama

        llm = Llama(str(p), vocab_only=True, verbose=False)
        md: Mapping[str, str] = llm.metadata
        template = md.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{p}: the GGUF has no tokenizer.chat_template")
        bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "ignore")
        eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "ignore")
        return template, bos, eos
    cfg = p / "tokenizer_config.json" if p.is_dir() else p
    if cfg.is_file() and cfg.suffix == ".json":
        import json

        data = json.loads(cfg.read_text(encoding="utf-8"))
        template = data.get("chat_template")
        jinja = cfg.parent / "chat_template.jinja"
        if not template and jinja.is_file():
            template = jinja.read_text(encoding="utf-8")
        if not template:
            raise ValueError(f"{cfg}: no chat_template")
        if isinstance(template, list):  # named templates: take "default"
            template = next(t["template"] for t in template if t.get("name") == "default")

        def tok(v: object) -> str:
            return v.get("content", "") if isinstance(v, dict) else (v or "")  # type: ignore[return-value]

        return template, tok(data.get("bos_token")), tok(data.get("eos_token"))
    raise ValueError(f"{p}: expected a .gguf file, an HF model directory or a tokenizer_config.json")
