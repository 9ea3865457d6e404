"""The embedded backend on the real SmolLM2-135M GGUF."""

from __future__ import annotations

import numpy as np
import pytest

from valuescope.analysis.tidy import option_probs_in_scale_order
from valuescope.backends.llamacpp import LlamaCppBackend, embedded_model_path
from valuescope.core.types import GenerateRequest, Message, ScoreRequest

OPTIONS = ["not at all relevant", "not very relevant", "slightly relevant", "somewhat relevant", "very relevant",
           "extremely relevant"]


def _req(item: str, order, persona: str = "You are a retired fisherman from Chile.", group: str = "g"):
    opts = "\n".join(f"({'ABCDEF'[j]}) {OPTIONS[i]}" for j, i in enumerate(order))
    user = (f"To what extent is the following consideration relevant to your thinking?\n\nOptions:\n{opts}\n\n"
            f"'{item}'")
    return ScoreRequest(messages=(Message("system", persona), Message("user", user)), letters=tuple("ABCDEF"),
                        answer_prefix="Answer: (", group=group)


ITEMS = ["Whether or not someone suffered emotionally", "Whether or not someone was good at math",
         "Whether or not someone showed a lack of respect for authority",
         "Whether or not someone did something disgusting"]


@pytest.fixture(scope="module")
def in_order(embedded_backend):
    """The four items with the options in scale order, scored once on the session's model (issue 28: were
    scored by three tests: two of them here, the order of test_schedulers_agree there)."""
    reqs = [_req(i, range(6)) for i in ITEMS]
    return reqs, embedded_backend.score(reqs)


def test_embedded_model_is_found():
    path = embedded_model_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_letter_tokens_cover_both_spellings(embedded_backend):
    ids = embedded_backend.letter_ids(tuple("ABCDEF"))
    for letter, toks in ids.items():
        texts = {embedded_backend.token_text(t) for t in toks}
        assert letter in texts and f" {letter}" in texts


def test_distributions_sum_to_one_and_record_outside_mass(in_order):
    _, res = in_order
    for r in res:
        assert r.valid and sum(r.probs) == pytest.approx(1.0, abs=1e-9)
        assert 0.0 <= r.outside_mass < 0.5


def test_permuting_options_moves_the_distribution_with_them(embedded_backend, in_order):
    """SmolLM2-135M chooses by letter position more than by content, so when the options are
    permuted the distribution over *options* follows the permutation: the letter distribution stays
    put while the scale distribution moves. Mapping letters back to options must follow that."""
    shift = (3, 4, 5, 0, 1, 2)  # letter j shows option shift[j]
    for item, fixed in zip(ITEMS[:2], in_order[1][:2], strict=True):
        moved = embedded_backend.score([_req(item, shift)])[0]
        scale_fixed = np.array(option_probs_in_scale_order(list(fixed.probs), list(range(6))))
        scale_moved = np.array(option_probs_in_scale_order(list(moved.probs), list(shift)))
        # option shift[j] now carries (about) the probability that letter j had before
        carried = np.zeros(6)
        for j, idx in enumerate(shift):
            carried[idx] = fixed.probs[j]
        assert np.abs(scale_moved - carried).max() < 0.1
        assert np.abs(scale_fixed - scale_moved).max() > 0.1  # the option distribution moved


def test_schedulers_agree(embedded_backend, in_order):
    """The default scheduler against naive evaluation, on requests without an item start (issue 28: two of
    the module's in-order requests, was four in another order scored again; bit-equality with naive on
    requests that carry one: tests/test_determinism.py)."""
    reqs = in_order[0][:2]
    batched = np.array([r.probs for r in in_order[1][:2]])
    naive = LlamaCppBackend(scheduler="naive", n_threads=1)  # answers do not depend on threads; 1 is fastest here
    try:
        ref = np.array([r.probs for r in naive.score(reqs)])
        evaluated_naive = naive.stats["evaluated_tokens"]
    finally:
        naive.close()
    # Same cache state gives identical answers, but llama.cpp's Q4_1/Q8 kernels round differently
    # for different batch split points (measured: up to ~0.03 per option on this model's flat
    # distributions), so schedulers agree within 0.05 per option, the tolerance of issue 6.
    assert np.abs(batched - ref).max() < 0.05
    prompt_tokens = sum(len(embedded_backend.tokens(embedded_backend.render(r))) for r in reqs)
    assert evaluated_naive == prompt_tokens


@pytest.mark.parametrize("scheduler", ["prefix", "batched"])
def test_prefix_is_evaluated_once_per_group(scheduler):
    """With the item's start known (``shared_chars``, as the runner's requests carry it), the shared
    part of a group is evaluated once. (Both schedulers share only canonical prefixes, so that an
    answer never depends on what was evaluated before it.)"""
    from dataclasses import replace

    backend = LlamaCppBackend(scheduler=scheduler, n_threads=1)
    try:
        reqs = []
        for i in ITEMS:
            r = _req(i, range(6))
            reqs.append(replace(r, shared_chars=len(r.messages[-1].content) - len(f"'{i}'")))
        backend.score(reqs)
        toks = [backend.tokens(backend.render(r)) for r in reqs]
        total = sum(len(t) for t in toks)
        assert backend.stats["evaluated_tokens"] < total / 2
    finally:
        backend.close()


def test_generate_is_deterministic(embedded_backend):
    req = GenerateRequest(messages=(Message("user", "Tell me a joke."),), max_tokens=24, seed=3)
    a = embedded_backend.generate([req])[0]
    b = embedded_backend.generate([req])[0]
    assert a and a == b


def test_missing_model_file_is_a_clear_error(tmp_path):
    from valuescope.backends.base import BackendError

    with pytest.raises(BackendError, match="model file not found"):
        LlamaCppBackend(path=str(tmp_path / "nope.gguf"))
