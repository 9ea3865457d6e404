"""Sequential administration: the items of one questionnaire asked one after another in one conversation.

A *chain* is one questionnaire: one (persona, context, repeat, instrument, option-order cell), its
items in the order the plan gives them (``Query.position``). Item i's prompt holds items 0..i-1 and
the answers they got (:func:`valuescope.design.prompts.sequential_request`), so the chain is answered in
order, and an item is only asked once every item before it has a stored answer.

Resume rebuilds each chain from the store: the answers already stored are read back (the letters they
chose are what the model saw), and the chain goes on from its first missing item. Because an item's
prompt is a pure function of its query and those stored answers, and the embedded backend evaluates a
prompt in canonical segments (:attr:`ScoreRequest.boundaries`), an interrupted and resumed run gives the
same answers, bit for bit, as an uninterrupted one (tested).

Chains advance in lockstep, ``width`` at a time: item i of each of ``width`` chains in one backend
call. Local backends (llama.cpp, transformers) keep one chain at a time, so that each prompt extends the
one their cache holds; HTTP backends take ``model.concurrency`` chains at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from valuescope.backends.base import BackendError
from valuescope.core.types import LetterScores, Query, ScoreRequest
from valuescope.design.prompts import ChainError


def chains_of(queries: Sequence[Query]) -> list[list[Query]]:
    """The plan's chains in plan order, each in the order its items are asked."""
    out: dict[str, list[Query]] = {}
    for q in queries:
        out.setdefault(q.chain, []).append(q)
    for chain in out.values():
        chain.sort(key=lambda q: q.position)
        for i, q in enumerate(chain):
            if q.position != i or (i and q.previous_key != chain[i - 1].key):
                raise ValueError(f"chain {q.chain}: item {q.item_id} is not linked to the item before it")
    return list(out.values())


def chain_width(renders_locally: bool, concurrency: int) -> int:
    """Chains advanced together: one for a backend that evaluates prompts itself (its prefix cache keeps the
    chain), ``concurrency`` for a server or the synthetic model."""
    return 1 if renders_locally else max(1, concurrency)


def run_chains(
    queries: Sequence[Query],
    pending_keys: set[str],
    stored: dict[str, LetterScores],
    build: Callable[[Query, list[tuple[Query, LetterScores]]], ScoreRequest],
    answer: Callable[[list[ScoreRequest]], list[LetterScores]],
    write: Callable[[list[tuple[Query, LetterScores]]], Any],
    fail: Callable[[list[tuple[Query, str]]], Any],
    *,
    width: int = 1,
    budget: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Answer the pending items of sequential chains in order.

    ``stored`` holds the stored answers of the chains' items that are not pending; ``build`` makes a
    prompt from a query and the answers before it (pure); ``answer`` scores a batch of prompts;
    ``write`` stores answered (query, scores) pairs, ``fail`` records (query, error) pairs. An item
    whose backend call failed, or whose predecessor cannot be shown, stops its chain for this run (its
    later items stay pending and are retried with it next time). ``budget`` stops after that many
    answers (tests use it to interrupt a run)."""
    states: list[tuple[list[Query], list[tuple[Query, LetterScores]]]] = []
    for chain in chains_of(queries):
        if not any(q.key in pending_keys for q in chain):
            continue
        prior: list[tuple[Query, LetterScores]] = []
        for q in chain:
            if q.key in pending_keys or q.key not in stored:
                break
            prior.append((q, stored[q.key]))
        states.append((chain, prior))
    answered = 0
    for start in range(0, len(states), width):
        active = states[start:start + width]
        while active:
            if budget is not None and answered >= budget:
                return
            batch: list[tuple[Query, list[tuple[Query, LetterScores]], ScoreRequest]] = []
            broken: list[tuple[Query, str]] = []
            for chain, prior in active:
                q = chain[len(prior)]
                try:
                    batch.append((q, prior, build(q, prior)))
                except ChainError as exc:
                    broken.append((q, f"ChainError: {exc}"))
            if broken:
                fail(broken)
            if budget is not None:
                batch = batch[: budget - answered]
            try:
                scores = answer([r for _, _, r in batch]) if batch else []
            except BackendError:
                raise
            except Exception as exc:  # one bad batch must not lose the rest: record, stop these chains
                scores = [LetterScores((), float("nan"), valid=False, error=f"{type(exc).__name__}: {exc}",
                                       method="failed") for _ in batch]
            good = [(q, s) for (q, _, _), s in zip(batch, scores, strict=True) if s.method != "failed"]
            bad = [(q, s.error or "failed") for (q, _, _), s in zip(batch, scores, strict=True)
                   if s.method == "failed"]
            if good:
                write(good)
            if bad:
                fail(bad)
            answered += len(good)
            if progress:
                progress(len(batch) + len(broken))
            ok = {q.key for q, _ in good}
            for (q, prior, _), s in zip(batch, scores, strict=True):
                if q.key in ok:
                    prior.append((q, s))
            active = [(chain, prior) for chain, prior in active
                      if len(prior) < len(chain) and prior and prior[-1][0].key in ok]
