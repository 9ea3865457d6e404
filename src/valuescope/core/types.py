"""Plain data passed between the stages of a study (docs/architecture.md: spec -> plan -> contexts ->
backend -> store -> scoring -> metrics -> report).

Everything here is an immutable dataclass with no behaviour beyond small helpers, so that each
stage can be tested alone and no stage reaches back into another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


# --------------------------------------------------------------------------- instruments


@dataclass(frozen=True)
class Scale:
    """Answer options of a part, in the instrument's own order (index 0 = first option).

    ``values[i]`` is the score of option ``i`` (e.g. 0..5 for the MFQ, 1..6 for the PVQ, coins
    0..10 for the donation task).
    """

    labels: tuple[str, ...]
    values: tuple[float, ...]

    @property
    def k(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Part:
    """A block of items sharing instructions and a scale (MFQ part 1 'relevance', part 2
    'agreement'; the PVQ has a single part).

    ``instructions`` is shown once before the item (it belongs to the shared prompt prefix);
    ``stem`` wraps each item's text and must contain ``{item}``.
    """

    id: str
    instructions: str
    stem: str
    scale: Scale


@dataclass(frozen=True)
class Item:
    id: str
    part: str
    text: str  # the default wording
    dimension: str | None  # foundation / value scored by this item; None for catch items
    variants: dict[str, str] = field(default_factory=dict)  # wording -> text ("male", "female", "you")
    catch: bool = False
    reverse: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. donation race, official variable name

    def wording(self, variant: str | None) -> str:
        if variant and variant in self.variants:
            return self.variants[variant]
        return self.text


@dataclass(frozen=True)
class Instrument:
    id: str
    name: str
    citation: str
    licence: str
    parts: dict[str, Part]
    items: tuple[Item, ...]
    dimensions: tuple[str, ...]
    # how per-persona scores are built: {"method": "mean"|"mrat", "groups": {...}, "catch": {...}}
    scoring: dict[str, Any] = field(default_factory=dict)
    wordings: tuple[str, ...] = ()  # available wording variants, e.g. ("male", "female", "you")

    def item(self, item_id: str) -> Item:
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(f"instrument {self.id!r} has no item {item_id!r}")


# --------------------------------------------------------------------------- personas


@dataclass(frozen=True)
class Persona:
    """Who the model is asked to be.

    ``kind == "baseline"`` is the no-persona condition: ``description`` is None and no persona
    message is sent at all (it is *not* a persona with empty text).
    """

    id: str
    kind: Literal["baseline", "wvs", "named", "text"]
    description: str | None
    name: str | None = None
    gender: str | None = None  # "male", "female", or another gender as the persona file gives it (lower case)
    attributes: dict[str, str] = field(default_factory=dict)
    population: str = ""  # which source produced it, e.g. "wvs:seed=111", "tolkien"
    set_seed: int | None = None  # persona-set seed (Lee et al. draw sets with 111/333/555)

    @property
    def is_baseline(self) -> bool:
        return self.kind == "baseline"


BASELINE = Persona(id="baseline", kind="baseline", description=None, population="baseline")

#: the two political identities: a persona's declared side (``identity`` personas), the side an evidence item
#: suits, and the two sides of every congruence contrast
SIDES = ("liberal", "conservative")


@dataclass(frozen=True)
class ContextSpec:
    """A simulated conversation before the questionnaire (Kovac et al. 2024).

    ``topic is None`` means no conversation (the questionnaire comes right after the persona).
    ``thread`` holds a real conversation read from a file (``contexts.files``): its first
    ``n_messages + 1`` turns as (role, text), user first; nothing is generated for it.
    """

    topic: str | None = None
    opening: str | None = None
    n_messages: int = 0
    seed: int = 0
    thread: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return "none" if self.topic is None else f"{self.topic}@{self.n_messages}"

    def identity(self) -> dict[str, Any]:
        """What identifies the context in query keys: its fields, ``thread`` only when there is one (so
        the keys of contexts without a real conversation stay as they were before threads existed)."""
        out: dict[str, Any] = {"topic": self.topic, "opening": self.opening, "n_messages": self.n_messages,
                               "seed": self.seed}
        if self.thread:
            out["thread"] = [list(t) for t in self.thread]
        return out


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    """One questionnaire item put to one persona in one context; the unit of work and of storage."""

    key: str
    run_id: str
    model: str
    persona: Persona
    context: ContextSpec
    instrument: str
    item_id: str
    part: str
    dimension: str | None
    wording: str | None
    option_order: tuple[int, ...]  # option_order[j] = scale index shown under letter j
    seed: int
    repeat: int
    template: str  # prompt-template fingerprint
    position: int = 0  # position of the item in this persona's (possibly shuffled) item order
    # option-order cell: index of ``option_order`` in the balanced design's order set (0 otherwise)
    cell: int = 0
    administration: str = "independent"  # "independent" | "sequential"
    # sequential administration: the questionnaire (chain) this item belongs to, and the key of the
    # item asked just before it in that conversation ("" for the first item)
    chain: str = ""
    previous_key: str = ""


@dataclass(frozen=True)
class ScoreRequest:
    """What a backend scores: chat messages, the option letters, and an optional assistant prefix
    (e.g. "Answer: (") after which the next token should be a letter."""

    messages: tuple[Message, ...]
    letters: tuple[str, ...]
    answer_prefix: str = ""
    labels: tuple[str, ...] = ()  # option label texts in letter order (for text extraction)
    group: str = ""  # queries with the same group share a prompt prefix (scheduling hint)
    # characters at the start of the last message shared by the whole group (everything before the
    # item); a backend splits the prompt there so that an answer never depends on which other
    # queries were batched with it. -1: unknown.
    shared_chars: int = -1
    # plain data about the query (persona, item, option order, context, position: ``plan.query_meta``),
    # set by the runner only for backends that ask for it (``wants_meta``: the synthetic model);
    # every other backend reads the messages alone
    meta: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    # further canonical split points, as (message index, character offset in its content): in sequential
    # administration the start of each earlier item turn and of its item, so a backend can keep the
    # conversation cached and still give every answer from its own prompt only, bit for bit
    boundaries: tuple[tuple[int, int], ...] = ()
    # the canonical batch (plan.canonical_batches) the query belongs to: a batching backend evaluates
    # the requests of one group and batch together, and the runner always sends whole batches, so
    # an answer never depends on what a store held before. "": the group's requests of this call.
    batch: str = ""


@dataclass(frozen=True)
class LetterScores:
    """A backend's answer: a distribution over the option letters (in letter order).

    ``probs`` sums to 1 when ``valid``; ``outside_mass`` is the probability that fell on tokens
    that spell no option letter before renormalising (NaN when the backend cannot know it).
    An answer that could not be read is ``valid=False`` with ``raw`` kept: never a guess.
    """

    probs: tuple[float, ...]
    outside_mass: float
    valid: bool = True
    raw: str | None = None
    error: str | None = None
    method: str = "logprobs"  # "logprobs" | "generate" | "judge"


@dataclass(frozen=True)
class GenerateRequest:
    messages: tuple[Message, ...]
    max_tokens: int = 128
    temperature: float = 0.0
    seed: int = 0
