"""Hugging Face transformers backend on the embedded SmolLM2 Q4_1 GGUF, read through transformers
(dequantised to float32), against the embedded llama.cpp backend on the same file. Issue 28: how far its
letter distributions are from llama.cpp's on the same GGUF (the former test_hf_gguf_agrees_with_llamacpp here, 6
PVQ prompts) is asked of 15 MFQ-30 queries under three option orders by
tests/test_cross_backend.py::test_hf_letter_distributions_match_embedded, with the same bounds."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from valuescope.core.types import GenerateRequest, Message, ScoreRequest

NEEDED = ("torch", "transformers", "gguf", "accelerate")
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDED),
    reason="the hf extra is not installed (torch==2.13.0, transformers, gguf, accelerate)",
)

PVQ = ("Very much like me", "Like me", "Somewhat like me", "A little like me", "Not like me",
       "Not like me at all")
LETTERS = tuple("ABCDEF")


def requests(order) -> list[ScoreRequest]:
    items = ["It is important to him to form his views independently.",
             "It is important to him that the weak and vulnerable in society be protected."]
    out = []
    for persona in (None, "You are a 45-year-old farmer from Kenya who values tradition."):
        for item in items:
            opts = "\n".join(f"({LETTERS[j]}) {PVQ[i]}" for j, i in enumerate(order))
            user = ("Think about how much this person is or is not like you.\n"
                    "Your response should always point to a specific letter option.\n\n"
                    f"Options:\n{opts}\n\nDescription: {item}\nHow much is this person like you?")
            msgs = ((Message("system", persona),) if persona else ()) + (Message("user", user),)
            out.append(ScoreRequest(msgs, LETTERS, "Answer: (", tuple(PVQ[i] for i in order),
                                    group=persona or "baseline"))
    return out


@pytest.fixture
def hf_backend(hf_embedded_backend):
    """The session's transformers model of the embedded GGUF (tests/conftest.py: loaded once, ~60 s)."""
    return hf_embedded_backend


@pytest.mark.slow
def test_hf_batches_match_single_prompts(hf_backend):
    everyone = requests((0, 1, 2, 3, 4, 5))
    reqs = [everyone[0], everyone[2]]  # one item, the baseline (shorter: left-padded) and the persona
    batched = np.array([r.probs for r in hf_backend.score(reqs)])  # one left-padded batch of 2
    single = np.array([hf_backend.score([r])[0].probs for r in reqs])
    assert np.abs(batched - single).max() < 1e-4  # padding and position ids do not leak


@pytest.mark.slow
def test_hf_generates_text(hf_backend):
    [text] = hf_backend.generate([GenerateRequest((Message("user", "Name one chess piece."),), max_tokens=10)])
    assert isinstance(text, str) and text.strip()


@pytest.mark.slow  # needs the session's transformers model (~60 s to load), though the test itself is instant
def test_hf_renders_the_same_prompt_as_llamacpp(hf_backend, embedded_backend):
    for req in requests((5, 4, 3, 2, 1, 0)):
        assert hf_backend.render(req) == embedded_backend.render(req)
    assert hf_backend.system_role == embedded_backend.system_role


def shared_requests(order) -> list[ScoreRequest]:
    """As ``requests`` but telling the backend where the item starts (everything before is shared)."""
    from dataclasses import replace

    out = []
    for r in requests(order):
        user = r.messages[-1].content
        out.append(replace(r, shared_chars=user.index("Description:")))
    return out


@pytest.mark.slow
def test_hf_prefix_cache_matches_naive(hf_backend):
    """Issue 20: each prefix evaluated once, its item suffixes in one packed pass (left-padded after
    the prefix), within 0.01 of evaluating every prompt whole; the prefix really is shared."""
    from dataclasses import replace

    first = shared_requests((0, 1, 2, 3, 4, 5))[0]
    longer = first.messages[-1].content.replace("independently.", "independently, whatever others around him "
                                                "think, say or expect of him at home or at work.")
    extra = replace(first, messages=first.messages[:-1] + (Message("user", longer),))  # padding in the pass
    reqs = shared_requests((0, 1, 2, 3, 4, 5)) + [extra]  # 2 prefixes (baseline, persona), 5 prompts
    assert hf_backend.scheduler == "prefix"
    before = dict(hf_backend.stats)
    got = np.array([r.probs for r in hf_backend.score(reqs)])
    evaluated = hf_backend.stats["evaluated_tokens"] - before["evaluated_tokens"]
    prompt = hf_backend.stats["prompt_tokens"] - before["prompt_tokens"]
    hf_backend.scheduler = "naive"
    try:
        want = np.array([r.probs for r in hf_backend.score(reqs)])
    finally:
        hf_backend.scheduler = "prefix"
    assert np.abs(got - want).max() < 0.01  # measured: ~1e-6 (float32)
    assert evaluated < 0.6 * prompt  # 2 prefixes for 5 prompts
    # the split is at a token boundary both the shared text and the whole prompt agree on
    for r in reqs:
        ids = hf_backend.tokens(hf_backend.render(r))
        cut = hf_backend.item_start(r, ids)
        assert 0 < cut < len(ids) and hf_backend.tokenizer.decode(ids[cut:]).lstrip().startswith("Description")
