"""Shared letter arithmetic, prompt rendering and the token-level base (:class:`TokenLevel`) of the backends
that read token probabilities.

A letter's probability is the summed probability of every token that spells it: after the
answer prefix ``"Answer: ("`` that is ``"A"`` or ``" A"`` (the token text, whitespace stripped).
Where the model answers without a prefix (a chat API that cannot prefill), ``lenient`` spelling
also accepts the letter wrapped in the usual decoration: ``"(A"``, ``"A)"``, ``"**A"``, ``"A."``.

The probabilities are renormalised over the letters; ``outside_mass`` records what fell on other
tokens (with top-k logprobs only the top k are seen, so it is ``1 - letter mass seen``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from valuescope.core.types import LetterScores, Message, ScoreRequest

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
    return normalise_mass([mass[c] for c in letters], raw=raw)


def normalise_mass(mass: Sequence[float], raw: str | None = None) -> LetterScores:
    """Letter probabilities renormalised over the letters, ``outside_mass`` = what fell elsewhere. No mass on
    any letter (or a non-finite one) is an unreadable answer: NaN probabilities, ``valid = False``."""
    total = float(sum(mass))
    if not (math.isfinite(total) and total > 0):
        return LetterScores(tuple([math.nan] * len(mass)), outside_mass=1.0, valid=False, raw=raw,
                            error="no probability on any option letter")
    outside = min(max(1.0 - total, 0.0), 1.0)
    return LetterScores(tuple(float(m) / total for m in mass), outside_mass=outside, raw=raw)


def letter_token_ids(token_text: Callable[[int], str], n_vocab: int, letters: Sequence[str]) -> dict[str, list[int]]:
    """Every token id whose text, stripped of whitespace, is exactly one of the letters."""
    wanted = set(letters)
    out: dict[str, list[int]] = {letter: [] for letter in letters}
    for tid in range(n_vocab):
        stripped = token_text(tid).strip()
        if stripped in wanted and len(stripped) == 1:
            out[stripped].append(tid)
    return out


def letter_distribution(logits: np.ndarray, ids: dict[str, list[int]], letters: Sequence[str]) -> LetterScores:
    """Softmax over the whole vocabulary, summed per letter and renormalised over the letters."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max())
    probs = z / z.sum()
    return normalise_mass([float(probs[ids[letter]].sum()) for letter in letters])


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class TokenLevel(ABC):
    """What the backends that evaluate prompts themselves (llama.cpp, hf) share: the prompt text of a request,
    the token ids that spell each letter, the letter distribution from next-token logits and the canonical
    split points of a prompt. A subclass gives ``render_messages``, ``tokens``, ``token_text`` and
    ``vocab_size``."""

    renders_locally = True  # core.capabilities.Capabilities: it evaluates its own rendering of each prompt

    @abstractmethod
    def render_messages(self, messages: Sequence[Message]) -> str:
        """The chat-rendered messages with the assistant turn opened."""

    @abstractmethod
    def tokens(self, text: str) -> list[int]:
        """Token ids of ``text`` as the model tokenizes a prompt."""

    @abstractmethod
    def token_text(self, tid: int) -> str:
        """The text one token id spells."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids (the length of a logits row)."""

    def render(self, req: ScoreRequest) -> str:
        """The exact prompt text scored for a request (shown in the report)."""
        return self.render_messages(req.messages) + req.answer_prefix

    def letter_ids(self, letters: tuple[str, ...]) -> dict[str, list[int]]:
        cache: dict[tuple[str, ...], dict[str, list[int]]] = self.__dict__.setdefault("_letter_ids", {})
        if letters not in cache:
            cache[letters] = letter_token_ids(self.token_text, self.vocab_size, letters)
        return cache[letters]

    def letter_scores(self, req: ScoreRequest, logits: np.ndarray) -> LetterScores:
        return letter_distribution(np.asarray(logits), self.letter_ids(req.letters), req.letters)

    def _item_text(self, req: ScoreRequest) -> tuple[str, int] | None:
        """(the rendered prompt, where its last message's content starts), or None without a canonical split."""
        if req.shared_chars < 0 or not req.messages:
            return None
        full = self.render(req)
        start = full.rfind(req.messages[-1].content)
        return (full, start) if start >= 0 else None

    def split_points(self, req: ScoreRequest, toks: list[int]) -> tuple[int, int]:
        """Canonical token positions of a prompt: where its last message's content starts (the persona and
        conversation come before) and where its item starts (``ScoreRequest.shared_chars``), at most len - 1."""
        last = len(toks) - 1
        found = self._item_text(req)
        if found is None:
            return 0, last
        full, start = found
        head = min(common_prefix_len(self.tokens(full[:start]), toks), last)
        cut = min(common_prefix_len(self.tokens(full[: start + req.shared_chars]), toks), last)
        return min(head, cut), max(head, cut)

    def item_start(self, req: ScoreRequest, toks: list[int]) -> int:
        """Token position where the request's item starts (everything before is shared by its group): the
        common prefix of the prompt's tokens and the shared text's, at most len - 1."""
        last = len(toks) - 1
        found = self._item_text(req)
        if found is None:
            return last
        full, start = found
        return min(common_prefix_len(self.tokens(full[: start + req.shared_chars]), toks), last)
