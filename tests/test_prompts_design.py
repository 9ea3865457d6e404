"""Issue 15: the prompt side of the option mapping and the sequential prompt, as pure functions."""

from __future__ import annotations

import math
import re

import pytest
from helpers import tiny_instrument

from valuescope.analysis.tidy import option_probs_in_scale_order
from valuescope.core.types import LetterScores, Message, Part, Query, Scale
from valuescope.design.plan import balanced_orders
from valuescope.design.prompts import (
    ChainError,
    answer_turn,
    chosen_letter,
    score_request,
    sequential_request,
    user_message,
)

SIX = Scale(labels=("zero", "one", "two", "three", "four", "five"), values=(0, 1, 2, 3, 4, 5))
PART = Part(id="p", instructions="Rate it.", stem="How much? '{item}'", scale=SIX)
NOT_SELF_INVERSE = (2, 0, 1, 5, 3, 4)  # inverse (1, 2, 0, 4, 5, 3)


def _shown(text: str) -> dict[str, str]:
    return dict(re.findall(r"^\(([A-F])\) (\w+)$", text, flags=re.M))


@pytest.mark.parametrize("layout", ["shared-prefix", "paper"])
@pytest.mark.parametrize("order", [NOT_SELF_INVERSE, *balanced_orders(6, None, 3)])
def test_text_under_letter_j_is_option_order_j(layout, order):
    inverse = tuple(order.index(i) for i in range(6))
    text, _ = user_message(PART, "Kindness", order, layout=layout)
    shown = _shown(text)
    assert shown == {"ABCDEF"[j]: SIX.labels[order[j]] for j in range(6)}
    if order != inverse:  # the inverse mapping would show other texts
        assert shown != {"ABCDEF"[j]: SIX.labels[inverse[j]] for j in range(6)}
    # and the answer side maps back the same way: all mass on the letter showing "three" -> option 3
    letter = next(j for j in range(6) if SIX.labels[order[j]] == "three")
    probs = [1.0 if j == letter else 0.0 for j in range(6)]
    assert option_probs_in_scale_order(probs, list(order)) == [0, 0, 0, 1.0, 0, 0]


def test_score_request_labels_follow_the_order():
    inst = tiny_instrument()
    part = inst.parts["main"]
    req = score_request((), (), part, inst.items[0], None, (2, 0, 3, 1))
    assert req.labels == ("often", "never", "always", "rarely")
    assert "(A) often\n(B) never\n(C) always\n(D) rarely" in req.messages[-1].content


def test_answer_turn_closes_the_bracket():
    assert answer_turn("Answer: (", "C") == "Answer: (C)"
    assert answer_turn("Answer: ", "C") == "Answer: C"
    assert answer_turn("[", "B") == "[B]"


def test_chosen_letter_is_the_argmax_and_never_a_guess():
    assert chosen_letter(LetterScores((0.1, 0.5, 0.4), 0.0), "ABC") == "B"
    assert chosen_letter(LetterScores((0.4, 0.2, 0.4), 0.0), "ABC") == "A"  # first on a tie
    assert chosen_letter(LetterScores((0.0, 0.0, 0.0), 1.0, valid=False), "ABC") is None
    assert chosen_letter(LetterScores((math.nan,) * 3, math.nan, valid=False), "ABC") is None


def _chain(n: int, order=(2, 0, 3, 1)):
    inst = tiny_instrument(n)
    qs = []
    prev = ""
    for pos, item in enumerate(inst.items):
        q = Query(key=f"k{pos}", run_id="r", model="m", persona=None, context=None, instrument="tiny",  # type: ignore[arg-type]
                  item_id=item.id, part="main", dimension=item.dimension, wording=None, option_order=order, seed=0,
                  repeat=0, template="t", position=pos, administration="sequential", chain="c", previous_key=prev)
        qs.append(q)
        prev = q.key
    return inst, qs


def test_sequential_prompt_holds_the_previous_items_and_answers():
    inst, qs = _chain(3)
    persona = (Message("system", "You are Ann."),)
    answers = [LetterScores((0.1, 0.2, 0.6, 0.1), 0.01), LetterScores((0.7, 0.1, 0.1, 0.1), 0.0)]
    first = sequential_request(qs[0], [], inst, persona, ())
    assert [m.role for m in first.messages] == ["system", "user"]
    assert "Options:" in first.messages[-1].content and first.boundaries == ()
    third = sequential_request(qs[2], list(zip(qs[:2], answers, strict=True)), inst, persona, ())
    assert [m.role for m in third.messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert third.messages[2].content == "Answer: (C)" and third.messages[4].content == "Answer: (A)"
    assert third.messages[1] == first.messages[1]  # the conversation grows; earlier turns stay as asked
    assert inst.items[2].text in third.messages[-1].content
    assert "Options:" not in third.messages[-1].content  # same part, same options: the stem only
    # each earlier item turn starts a canonical segment, and so does its item (after the shared text)
    assert [m for m, _ in third.boundaries] == [1, 1, 2, 3, 3, 4]
    assert third.boundaries[0] == (1, 0) and third.boundaries[2] == (2, 0) and third.boundaries[3] == (3, 0)
    assert third.messages[1].content[third.boundaries[1][1]:].startswith(inst.items[0].text)
    assert third.labels == ("often", "never", "always", "rarely")
    # generated replies stay as the model wrote them
    gen = LetterScores((0, 0, 1.0, 0), math.nan, raw="I'd say (C) often.", method="generate")
    second = sequential_request(qs[1], [(qs[0], gen)], inst, persona, ())
    assert second.messages[2].content == "I'd say (C) often."


def test_sequential_prompt_refuses_a_broken_chain():
    inst, qs = _chain(3)
    ok = LetterScores((0.1, 0.2, 0.6, 0.1), 0.0)
    with pytest.raises(ChainError):
        sequential_request(qs[2], [(qs[0], ok)], inst, (), ())  # item 1 missing
    with pytest.raises(ChainError):
        sequential_request(qs[2], [(qs[1], ok), (qs[0], ok)], inst, (), ())  # wrong order
    empty = LetterScores((0.0,) * 4, 1.0, valid=False, error="no probability on any option letter")
    with pytest.raises(ChainError, match="no letter"):
        sequential_request(qs[1], [(qs[0], empty)], inst, (), ())


def test_sequential_prompt_shows_the_options_again_when_they_change():
    inst, qs = _chain(2)
    other = Query(**{**qs[1].__dict__, "option_order": (0, 1, 2, 3)})
    req = sequential_request(other, [(qs[0], LetterScores((1.0, 0, 0, 0), 0.0))], inst, (), ())
    assert "Options:" in req.messages[-1].content and "(A) never" in req.messages[-1].content
