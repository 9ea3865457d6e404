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
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from valuescope.types import OPTION_LETTERS, Item, Message, Part, ScoreRequest

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
