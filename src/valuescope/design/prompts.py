"""The one place where a query becomes chat messages.

Two layouts keep the papers' prompt content:

``shared-prefix`` (default)
    persona message(s), the conversation, then one user message::

        {part instructions}
        {forced-choice sentence}

        Options:
        (A) {label of the option under A}
        ...

        {stem with the item}

    The instructions, the option list (shared by every item of a persona when options are
    permuted per persona) and the stem's fixed text before the item come first, so that all
    queries of one persona share every token but the item's few dozen; the KV cache keeps the prefix.

``paper``
    Kovač et al.'s user message: instructions, the item, then the options; the forced-choice
    sentence (Lee et al.) last::

        {part instructions}

        {stem with the item}
        (A) {label}
        ...
        {forced-choice sentence}

In both layouts the assistant turn starts with ``answer_prefix`` (default ``"Answer: ("``, the
"query string" of Kovač et al.), so the next token is the option letter.

Sequential administration (:func:`sequential_request`): the items of one questionnaire are asked in
one conversation. Each earlier item stays in the prompt as a user turn followed by the model's answer
as an assistant turn, ``answer_prefix`` + the chosen letter (+ ``)`` when the prefix opens a
bracket: "Answer: (C)"); the chosen letter is the most probable one of that item's stored
distribution (generated text, as generated, with ``extraction: generate``). An item's user turn is
the full message above when it starts the questionnaire or its part, or its options differ from the
item before; otherwise, as on a printed form under one heading, only the stem with the item (the
``paper`` layout repeats the options under every item, as it shows them after each item).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from valuescope.core.types import OPTION_LETTERS, Instrument, Item, LetterScores, Message, Part, Query, ScoreRequest

FORCED_CHOICE = "Your response should always point to a specific letter option."


def letters_for(k: int) -> tuple[str, ...]:
    return tuple(OPTION_LETTERS[:k])


def option_lines(part: Part, option_order: Sequence[int]) -> list[str]:
    letters = letters_for(len(option_order))
    return [f"({letters[j]}) {part.scale.labels[idx]}" for j, idx in enumerate(option_order)]


def user_message(
    part: Part,
    item_text: str,
    option_order: Sequence[int],
    *,
    layout: str = "shared-prefix",
    forced_choice: bool = True,
) -> tuple[str, int]:
    """The user message and how many of its leading characters come before the item."""
    stem = part.stem.format(item=item_text)
    opts = "\n".join(option_lines(part, option_order))
    instructions = part.instructions.strip()
    if layout == "shared-prefix":
        head = instructions + (f"\n{FORCED_CHOICE}" if forced_choice else "")
        before = part.stem.split("{item}", 1)[0]  # the stem's fixed opening is shared too
        shared = f"{head}\n\nOptions:\n{opts}\n\n{before.lstrip()}".lstrip()
        return (shared + stem[len(before):]).rstrip(), len(shared)
    if layout == "paper":
        tail = f"\n{FORCED_CHOICE}" if forced_choice else ""
        shared = f"{instructions}\n\n" if instructions else ""
        return f"{shared}{stem}\n{opts}{tail}", len(shared)
    raise ValueError(f"unknown layout {layout!r}")


def score_request(
    persona_messages: Sequence[Message],
    conversation: Sequence[Message],
    part: Part,
    item: Item,
    wording: str | None,
    option_order: Sequence[int],
    *,
    layout: str = "shared-prefix",
    forced_choice: bool = True,
    answer_prefix: str = "Answer: (",
    group: str = "",
    meta: Mapping[str, Any] | None = None,
) -> ScoreRequest:
    text, shared = user_message(
        part, item.wording(wording), option_order, layout=layout, forced_choice=forced_choice
    )
    messages = (*persona_messages, *conversation, Message("user", text))
    labels = tuple(part.scale.labels[i] for i in option_order)
    return ScoreRequest(
        messages=messages,
        letters=letters_for(len(option_order)),
        answer_prefix=answer_prefix,
        labels=labels,
        group=group,
        shared_chars=shared,
        meta=meta,
    )


def template_fingerprint(part: Part, *, layout: str, forced_choice: bool, answer_prefix: str) -> str:
    """Hash of everything in the prompt that is not the persona, conversation, item or options."""
    blob = "\x1f".join(
        [layout, str(forced_choice), answer_prefix, part.instructions, part.stem, *part.scale.labels]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


class ChainError(ValueError):
    """A sequential questionnaire cannot be continued (an earlier item has no answer to show)."""


def answer_turn(answer_prefix: str, letter: str) -> str:
    """The assistant turn left in a sequential conversation: ``"Answer: (" + "C" + ")"``."""
    closing = {"(": ")", "[": "]", "{": "}", "<": ">"}.get(answer_prefix.rstrip()[-1:], "")
    return f"{answer_prefix}{letter}{closing}"


def chosen_letter(scores: LetterScores, letters: Sequence[str]) -> str | None:
    """The letter a stored answer chose: the most probable one (the first on a tie); None when its
    distribution has no mass on any letter."""
    probs = list(scores.probs)
    if len(probs) != len(letters) or not any(p > 0 for p in probs):
        return None
    return letters[max(range(len(probs)), key=lambda j: (probs[j], -j))]


def sequential_user_message(
    part: Part, item_text: str, option_order: Sequence[int], *, full: bool, layout: str = "shared-prefix",
    forced_choice: bool = True,
) -> tuple[str, int]:
    """The user turn of one item in a sequential questionnaire (see the module docstring) and how many
    of its leading characters come before the item."""
    if full:
        return user_message(part, item_text, option_order, layout=layout, forced_choice=forced_choice)
    if layout == "paper":
        opts = "\n".join(option_lines(part, option_order))
        tail = f"\n{FORCED_CHOICE}" if forced_choice else ""
        return f"{part.stem.format(item=item_text)}\n{opts}{tail}", 0
    before = part.stem.split("{item}", 1)[0]
    stem = part.stem.format(item=item_text)
    return (before.lstrip() + stem[len(before):]).rstrip(), len(before.lstrip())


def _item_turn(q: Query, inst: Instrument, before: Query | None, layout: str, forced_choice: bool) -> tuple[str, int]:
    full = before is None or before.part != q.part or tuple(before.option_order) != tuple(q.option_order)
    return sequential_user_message(inst.parts[q.part], inst.item(q.item_id).wording(q.wording), q.option_order,
                                   full=full, layout=layout, forced_choice=forced_choice)


def sequential_request(
    q: Query,
    previous: Sequence[tuple[Query, LetterScores]],
    instrument: Instrument,
    persona_messages: Sequence[Message],
    conversation: Sequence[Message],
    *,
    layout: str = "shared-prefix",
    forced_choice: bool = True,
    answer_prefix: str = "Answer: (",
    group: str = "",
    meta: Mapping[str, Any] | None = None,
) -> ScoreRequest:
    """The prompt of item ``q`` of a sequential questionnaire, a pure function of the query and the
    stored answers of the items asked before it in its chain (``previous``, in the order asked):
    persona, conversation, then per earlier item its user turn and the answer it got, then ``q``'s user
    turn. ``ScoreRequest.boundaries`` marks where each earlier item turn, its item and its answer start."""
    if len(previous) != q.position or (previous and previous[-1][0].key != q.previous_key):
        raise ChainError(f"item {q.item_id} at position {q.position} needs the {q.position} answers asked "
                         f"before it in its questionnaire, got {len(previous)}")
    head = (*persona_messages, *conversation)
    messages: list[Message] = list(head)
    boundaries: list[int] = []
    before: Query | None = None
    for pq, ans in previous:
        text, shared = _item_turn(pq, instrument, before, layout, forced_choice)
        boundaries.append((len(messages), 0))
        if shared > 0:
            boundaries.append((len(messages), shared))
        messages.append(Message("user", text))
        letters = letters_for(len(pq.option_order))
        if ans.method != "logprobs" and ans.raw is not None:
            reply = ans.raw.strip()
        else:
            letter = chosen_letter(ans, letters)
            if letter is None:
                raise ChainError(f"item {pq.item_id} (position {pq.position}) has no letter to leave in the "
                                 f"conversation: {ans.error or 'no probability on any option letter'}")
            reply = answer_turn(answer_prefix, letter)
        boundaries.append((len(messages), 0))  # where that item's answer starts: the cut its own prompt ended at
        messages.append(Message("assistant", reply))
        before = pq
    text, shared = _item_turn(q, instrument, before, layout, forced_choice)
    messages.append(Message("user", text))
    return ScoreRequest(
        messages=tuple(messages),
        letters=letters_for(len(q.option_order)),
        answer_prefix=answer_prefix,
        labels=tuple(instrument.parts[q.part].scale.labels[i] for i in q.option_order),
        group=group,
        shared_chars=shared,
        boundaries=tuple(boundaries),
        meta=meta,
    )
