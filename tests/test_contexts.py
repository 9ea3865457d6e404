"""Contexts: topics, context specs, the conversation procedure of Kovač et al. (2024), keys."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import pytest

from valuescope.core.types import BASELINE, ContextSpec, GenerateRequest, Message
from valuescope.design.contexts import (
    TOPICS,
    context_specs,
    conversation_key,
    first_sentence,
    interlocutor_instruction,
    simulate_conversation,
    simulate_conversations,
    strip_role_prefix,
)
from valuescope.design.personas import named_personas, wvs_personas
from valuescope.study.spec import ContextsSpec, SpecError

GANDALF = named_personas("tolkien", limit=1)[0]
JOKE3 = ContextSpec(topic="joke", opening=TOPICS["joke"], n_messages=3, seed=7)


class ScriptedBackend:
    """Test double for the pure logic only: answers each request from a script keyed on who
    speaks (persona model or interlocutor) and records every request it got."""

    def __init__(self, persona_replies: Sequence[str], interlocutor_replies: Sequence[str],
                 system_role: bool = True) -> None:
        self.persona_replies = list(persona_replies)
        self.interlocutor_replies = list(interlocutor_replies)
        self.system_role = system_role
        self.batches: list[list[GenerateRequest]] = []

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        self.batches.append(list(requests))
        out = []
        for r in requests:
            is_interlocutor = any("simulating a human" in m.content for m in r.messages[:1])
            out.append((self.interlocutor_replies if is_interlocutor else self.persona_replies).pop(0))
        return out


def assert_alternating(messages: Sequence[Message], last: str) -> None:
    roles = [m.role for m in messages]
    if roles and roles[0] == "system":
        roles = roles[1:]
    assert "system" not in roles
    assert roles[0] == "user" and roles[-1] == last
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False)), roles


# --------------------------------------------------------------------------- topics and specs


def test_topics_are_the_papers_openings():
    assert TOPICS == {
        "poem": "Hello, let's write a poem together. You start by the first verse I'll add the second one, "
                "and so on.",
        "joke": "Tell me a joke.",
        "history": "What is the significance of the battle of Hastings. Answer in two sentences.",
        "chess": "1. e4",
        "grammar": "Can you check this sentence for grammar? Whilst Jane was waiting to meet hers friend "
                   "their nose started bleeding.",
    }


def test_context_specs_expand_topics_and_lengths():
    spec = ContextsSpec(topics=["none", "joke", "riddle", "none"], n_messages=[1, 5],
                        custom_topics={"riddle": "Ask me a riddle."})
    got = context_specs(spec, seed=3)
    assert got == [
        ContextSpec(),
        ContextSpec("joke", "Tell me a joke.", 1, 3), ContextSpec("joke", "Tell me a joke.", 5, 3),
        ContextSpec("riddle", "Ask me a riddle.", 1, 3), ContextSpec("riddle", "Ask me a riddle.", 5, 3),
    ]
    assert [c.label for c in got] == ["none", "joke@1", "joke@5", "riddle@1", "riddle@5"]
    assert context_specs(ContextsSpec(), seed=0) == [ContextSpec()]  # default: no conversation


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ContextsSpec(topics=["jokes"]), "unknown topic 'jokes'"),
        (ContextsSpec(topics=["joke"], n_messages=[2]), "n_messages: 2 is not allowed"),
        (ContextsSpec(topics=["joke"], n_messages=[0]), "must be odd"),
        (ContextsSpec(custom_topics={"joke": "Another joke."}), "'joke' is a built-in topic"),
        (ContextsSpec(custom_topics={"none": "x"}), "not 'none'"),
        (ContextsSpec(custom_topics={"blank": " "}), "non-empty text"),
    ],
)
def test_context_spec_errors(spec, message):
    with pytest.raises(SpecError, match=message) as err:
        context_specs(spec, seed=0)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- procedure


def test_conversation_roles_counts_and_swapping_with_system_role():
    backend = ScriptedBackend(
        persona_replies=["Gandalf: A wizard is never late.", "Fly, you fools!"],
        interlocutor_replies=["HUMAN: Ha, that is a good one! Tell me another. And more."],
    )
    conv = simulate_conversation(backend, GANDALF, JOKE3, max_tokens=40)
    assert conv == (
        Message("user", "Tell me a joke."),
        Message("assistant", "A wizard is never late."),
        Message("user", "Ha, that is a good one!"),
        Message("assistant", "Fly, you fools!"),
    )
    # n = 3 generated messages, one request per turn, persona model first
    assert [len(b) for b in backend.batches] == [1, 1, 1]
    p1, inter, p3 = (b[0] for b in backend.batches)
    assert all(r.max_tokens == 40 and r.seed == 7 for r in (p1, inter, p3))
    assert p1.messages == (Message("system", GANDALF.description), Message("user", "Tell me a joke."))
    assert p3.messages[2:] == conv[1:3] and p3.messages[0].role == "system"
    assert_alternating(p3.messages, last="user")
    # the interlocutor sees the conversation with roles swapped
    assert inter.messages == (
        Message("system", "You are simulating a human using a chatbot. The chatbot is pretending to be "
                          "Gandalf. Your every reply must be in one sentence only."),
        Message("user", ""),
        Message("assistant", "Tell me a joke."),
        Message("user", "A wizard is never late."),
    )
    assert_alternating(inter.messages, last="user")
    # the questionnaire item comes next as a user message: the full prompt stays valid
    assert_alternating([Message("system", GANDALF.description), *conv, Message("user", "Item?")], last="user")


def test_conversation_without_system_role_and_baseline():
    backend = ScriptedBackend(["R1", "R3"], ["Q2."], system_role=False)
    conv = simulate_conversation(backend, GANDALF, JOKE3)  # system_role taken from the backend
    p1, inter, p3 = (b[0] for b in backend.batches)
    assert p1.messages[:3] == (Message("user", GANDALF.description), Message("assistant", "OK"),
                               Message("user", "Tell me a joke."))
    assert inter.messages[0].role == "user" and inter.messages[1] == Message("assistant", "Tell me a joke.")
    for req in (p1, inter, p3):
        assert_alternating(req.messages, last="user")
        assert all(m.role != "system" for m in req.messages)
    assert_alternating([Message("user", GANDALF.description), Message("assistant", "OK"), *conv,
                        Message("user", "Item?")], last="user")
    # baseline: no persona message, no name in the interlocutor's instruction
    backend = ScriptedBackend(["R1"], [], system_role=False)
    conv = simulate_conversation(backend, BASELINE, ContextSpec("chess", "1. e4", 1, 0))
    assert conv == (Message("user", "1. e4"), Message("assistant", "R1"))
    assert backend.batches[0][0].messages == (Message("user", "1. e4"),)
    assert interlocutor_instruction(BASELINE) == (
        "You are simulating a human using a chatbot. Your every reply must be in one sentence only.")
    assert "pretending" not in interlocutor_instruction(wvs_personas(1, 111)[0])  # no name


def test_lockstep_batches_and_no_topic():
    jobs = [(GANDALF, JOKE3), (BASELINE, ContextSpec()),
            (BASELINE, ContextSpec("joke", "Tell me a joke.", 1, 2))]
    backend = ScriptedBackend(["a", "b", "c"], ["q."])
    convs = simulate_conversations(backend, jobs)
    assert [len(b) for b in backend.batches] == [2, 1, 1]  # turn 1 for both, then the n=3 one alone
    assert [len(c) for c in convs] == [4, 0, 2]
    assert convs[2] == (Message("user", "Tell me a joke."), Message("assistant", "b"))
    with pytest.raises(SpecError, match="must be odd"):
        simulate_conversation(backend, GANDALF, ContextSpec("joke", "Tell me a joke.", 2, 0))


def test_cleaning_helpers():
    assert first_sentence("1. e4 e5 2. Nf3") == "1. e4 e5 2. Nf3"
    assert first_sentence("Mr. Baggins wrote it. Then he left.") == "Mr. Baggins wrote it."
    assert first_sentence("J. R. R. Tolkien? Yes! Truly.") == "J. R. R. Tolkien?"
    assert first_sentence('\n  "Nice one!" she said.\nNext line.') == '"Nice one!"'
    assert first_sentence("no end at all") == "no end at all"
    labels = {"user", "human", "gandalf"}
    assert strip_role_prefix("**Human:** Hi there", labels) == "Hi there"
    assert strip_role_prefix("Gandalf: User: hello", labels) == "hello"
    assert strip_role_prefix("Note: keep this", labels) == "Note: keep this"
    assert strip_role_prefix("Answer here.\nUser: and a fake next turn", labels) == "Answer here."


def test_conversation_key_is_stable_and_complete():
    key = conversation_key("smollm2-135m", GANDALF, JOKE3)
    assert key == conversation_key("smollm2-135m", GANDALF, JOKE3)
    assert key == "4192a5148599d2772b1688d2"  # fixed forever: stored conversations are found by it
    others = {
        conversation_key("other-model", GANDALF, JOKE3),
        conversation_key("smollm2-135m", named_personas("tolkien", limit=2)[1], JOKE3),
        conversation_key("smollm2-135m", GANDALF, ContextSpec("joke", "Tell me a joke.", 5, 7)),
        conversation_key("smollm2-135m", GANDALF, ContextSpec("joke", "Tell me a joke.", 3, 8)),
        conversation_key("smollm2-135m", GANDALF, ContextSpec("chess", "1. e4", 3, 7)),
        conversation_key("smollm2-135m", GANDALF, JOKE3, max_tokens=64),
    }
    assert key not in others and len(others) == 6


# --------------------------------------------------------------------------- real embedded model


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("valuescope.backends.llamacpp") is None,
                    reason="valuescope.backends.llamacpp is not on this branch yet (the lead merges it)")
def test_real_embedded_model_conversation():
    from valuescope.backends.base import create_backend

    backend = create_backend("llamacpp")
    try:
        ctx = ContextSpec(topic="joke", opening=TOPICS["joke"], n_messages=3, seed=11)
        conv = simulate_conversation(backend, GANDALF, ctx, max_tokens=32)
        again = simulate_conversation(backend, GANDALF, ctx, max_tokens=32)
        assert conv == again  # deterministic given the seed
        assert [m.role for m in conv] == ["user", "assistant", "user", "assistant"]
        assert conv[0].content == "Tell me a joke."
        interlocutor = conv[2].content
        assert first_sentence(interlocutor) == interlocutor  # one sentence
        assert not interlocutor.lower().startswith(("human:", "user:"))
        system_role = getattr(backend, "system_role", True)
        lead = [Message("system", GANDALF.description)] if system_role else [
            Message("user", GANDALF.description), Message("assistant", "OK")]
        assert_alternating([*lead, *conv, Message("user", "Item?")], last="user")
    finally:
        backend.close()
