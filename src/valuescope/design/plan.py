"""Study -> Queries: the full expansion, each query with a stable key, in prefix-sharing order.

Everything random here (option permutations, item shuffles) comes from ``random.Random`` seeded
with a SHA-256 of the things it depends on, so the same study gives the same plan on any machine
and Python version (no dependence on ``hash()`` or dict order).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from valuescope.core.types import ContextSpec, Instrument, Persona, Query
from valuescope.design.prompts import template_fingerprint
from valuescope.study import identity, limits
from valuescope.study.files import SpecError
from valuescope.study.identity import digest, model_identity
from valuescope.study.spec import InstrumentRef, ModelSpec, Study


def stable_int(*parts: object) -> int:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def instruments_content(instruments: Sequence[PlannedInstrument]) -> dict[str, dict[str, Any]]:
    """``{id: asdict(instrument)}`` of the instruments a run uses (what ``runs.instruments_json`` holds and
    what the run id hashes)."""
    return {p.instrument.id: asdict(p.instrument) for p in instruments}


def run_id_for(study: Study, model: ModelSpec, instruments: Sequence[PlannedInstrument] | None = None) -> str:
    """:func:`valuescope.study.identity.run_id` of planned instruments."""
    return identity.run_id(study, model, instruments_content(instruments) if instruments is not None else None)


def option_order(k: int, policy: str, seed: int, persona_id: str, repeat: int, item_id: str) -> tuple[int, ...]:
    """Scale indices shown under letters A, B, ...: fixed, or a seeded permutation per persona
    (shared by all its items, as in Kovač et al.) or per query. (``balanced`` orders come from
    :func:`balanced_orders` and :func:`rotation`.)

    Warning: with ``permute-persona`` the baseline is asked under one order and each persona under its
    own, and a persona keeps its order in every context, so a model that answers by letter position
    shows steerability and rank-order stability that are artefacts (docs/design.md)."""
    order = list(range(k))
    if policy == "fixed":
        return tuple(order)
    scope: tuple[object, ...] = (seed, persona_id, repeat)
    if policy == "permute-query":
        scope = (*scope, item_id)
    random.Random(stable_int("options", *scope)).shuffle(order)
    return tuple(order)


def balanced_orders(k: int, n: int | None, seed: int) -> tuple[tuple[int, ...], ...]:
    """The balanced design's fixed set of N option orders for K options (N = K by default).

    Orders come in cyclic Latin squares: square m has a seeded base arrangement ``b`` of the K options
    and rows ``order_s[j] = b[(j + s) mod K]`` for s = 0..K-1, so over one square every option appears
    under every letter exactly once. N = K is one square; a multiple of K is several squares with
    different bases (each letter-balanced); any other N takes the first N rows, and the balance then
    holds only approximately. The set depends only on (K, N, seed)."""
    n = k if n is None else n
    orders: list[tuple[int, ...]] = []
    square = 0
    while len(orders) < n:
        base = list(range(k))
        random.Random(stable_int("latin", seed, k, square)).shuffle(base)
        orders.extend(tuple(base[(j + s) % k] for j in range(k)) for s in range(k))
        square += 1
    return tuple(orders[:n])


def rotation(personas: Sequence[Persona], context: ContextSpec, repeat: int, seed: int) -> list[int]:
    """Balanced design: the order-cell number of each persona (``-1`` for the baseline) in one
    (context, repeat). Within each population (a WVS persona set, a named list...) the personas are put
    in a seeded random order and numbered from a seeded offset; a persona then takes order
    ``number mod N`` of its part's set, so each population uses every order equally often (within one).
    The shuffle is drawn afresh for every context and repeat: a persona's order in one context says
    nothing about its order in another, so a letter-biased model cannot make persona rankings or value
    profiles agree across contexts."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(personas):
        if not p.is_baseline:
            groups.setdefault(p.population, []).append(i)
    out = [-1] * len(personas)
    for population, members in sorted(groups.items()):
        members = sorted(members, key=lambda i: (personas[i].id, str(personas[i].set_seed)))
        rng = random.Random(stable_int("rotation", seed, population, context.label, context.seed, repeat))
        rng.shuffle(members)
        offset = rng.randrange(1 << 30)
        for r, i in enumerate(members):
            out[i] = offset + r
    return out


def item_order(n: int, policy: str, seed: int, persona_id: str, repeat: int, instrument: str) -> list[int]:
    """Item positions: the instrument's order, or shuffled per persona (Lee et al.'s ablation)."""
    order = list(range(n))
    if policy == "shuffle":
        random.Random(stable_int("items", seed, persona_id, repeat, instrument)).shuffle(order)
    return order


@dataclass(frozen=True)
class PlannedInstrument:
    instrument: Instrument
    ref: InstrumentRef


WordingFn = Callable[[Instrument, str, str | None], str | None]


def _cells(study: Study, inst: Instrument, persona: Persona, number: int) -> list[int]:
    """The option-order cells a persona answers an instrument in: every cell of the order set for the
    baseline under ``balanced``, its rotation number for a persona, the single cell 0 otherwise."""
    if study.option_order != "balanced":
        return [0]
    n_max = max(study.option_orders or part.scale.k for part in inst.parts.values())
    return list(range(n_max)) if persona.is_baseline else [number % n_max]


def _check_size(study: Study, personas: Sequence[Persona], contexts: Sequence[ContextSpec],
                instruments: Sequence[PlannedInstrument]) -> None:
    """Refuse a plan over :data:`limits.MAX_QUERIES` queries before building any of it."""
    n_items = sum(len(p.ref.items) if p.ref.items is not None else len(p.instrument.items) for p in instruments)
    size = len(personas) * len(contexts) * study.repeats * n_items
    if size > limits.MAX_QUERIES:
        raise SpecError(f"study: about {size} queries per model ({len(personas)} personas x {len(contexts)} contexts "
                        f"x {study.repeats} repeats x {n_items} items); at most {limits.MAX_QUERIES} are accepted "
                        "(split the study into several: they share one store)")


def plan_queries(
    study: Study,
    model: ModelSpec,
    personas: Sequence[Persona],
    contexts: Sequence[ContextSpec],
    instruments: Sequence[PlannedInstrument],
    choose_wording: WordingFn,
    run_id: str | None = None,
) -> list[Query]:
    """Expand one model's share of a study. Order: persona, context, repeat, instrument, option-order
    cell, item (in the persona's item order) — so consecutive queries share persona, conversation and
    instructions (the KV-cache prefix), and a sequential questionnaire's items come in the order asked.

    Keys: a SHA-256 of everything that defines the prompt. The balanced design adds the cell; the
    sequential administration adds the administration and the previous item's key (which covers the
    whole chain before it), so an item's key changes with everything its prompt depends on."""
    _check_size(study, personas, contexts, instruments)
    run_id = run_id or run_id_for(study, model, instruments)
    ident = model_identity(model)
    sequential = study.administration == "sequential"
    balanced = study.option_order == "balanced"
    order_sets: dict[int, tuple[tuple[int, ...], ...]] = {}
    queries: list[Query] = []
    # The baseline is also asked without a conversation when every context has one: that is the model's
    # neutral profile (no persona, no conversation; Kovač et al. 2024, B.2) that distance_to_neutral needs.
    neutral = [] if any(c.topic is None for c in contexts) else [ContextSpec()]
    rotations = {(c, r): rotation(personas, ctx, r, study.seed) for c, ctx in enumerate(contexts)
                 for r in range(study.repeats)} if balanced else {}
    for p_index, persona in enumerate(personas):
        p_ident = [persona.id, persona.description]
        for c_index, base_ctx in enumerate([*neutral, *contexts] if persona.is_baseline else contexts):
            for repeat in range(study.repeats):
                # each repeat is a new sample: a new conversation (as the paper's seeds) and permutation
                ctx = replace(base_ctx, seed=base_ctx.seed + repeat) if base_ctx.topic else base_ctx
                # (the baseline is asked under every cell: its rotation number is not used)
                number = rotations[c_index, repeat][p_index] if balanced and not persona.is_baseline else 0
                for planned in instruments:
                    inst = planned.instrument
                    items = [it for it in inst.items if planned.ref.items is None or it.id in planned.ref.items]
                    wording = choose_wording(inst, planned.ref.wording, persona.gender)
                    positions = item_order(len(items), study.item_order, study.seed, persona.id, repeat, inst.id)
                    for cell_number in _cells(study, inst, persona, number):
                        chain = digest([ident, p_ident, ctx.identity(), inst.id, wording, repeat, cell_number], 16)
                        previous = ""
                        for pos, idx in enumerate(positions):
                            item = items[idx]
                            part = inst.parts[item.part]
                            cell = 0
                            if balanced:
                                k = part.scale.k
                                if k not in order_sets:
                                    order_sets[k] = balanced_orders(k, study.option_orders, study.seed)
                                cell = cell_number % len(order_sets[k])
                                if not sequential and persona.is_baseline and cell != cell_number:
                                    continue  # a part with fewer orders than another: each asked once
                                order = order_sets[k][cell]
                            else:
                                order = option_order(part.scale.k, study.option_order, study.seed, persona.id,
                                                     repeat, item.id)
                            template = template_fingerprint(part, layout=study.layout,
                                                            forced_choice=study.forced_choice,
                                                            answer_prefix=study.answer_prefix)
                            fields: list[object] = [ident, p_ident, ctx.identity(), inst.id, item.id,
                                                    item.wording(wording), order, study.seed, repeat, template,
                                                    study.extraction]
                            if balanced:
                                fields.append(["balanced", cell_number])
                            if sequential:
                                fields.append(["sequential", previous, pos])
                            if study.steer is not None:  # a steered answer is another answer
                                fields.append(["steer", study.steer.model_dump(mode="json")])
                            key = digest(fields, 32)
                            queries.append(Query(
                                key=key, run_id=run_id, model=model.name, persona=persona, context=ctx,
                                instrument=inst.id, item_id=item.id, part=item.part, dimension=item.dimension,
                                wording=wording, option_order=order, seed=study.seed, repeat=repeat,
                                template=template, position=pos, cell=cell,
                                administration=study.administration, chain=chain if sequential else "",
                                previous_key=previous,
                            ))
                            if sequential:
                                previous = key
    return queries


def prefix_group(q: Query) -> str:
    """Queries in one group share the prompt up to the options (persona, conversation,
    instructions); the backend finds the exact common token prefix within the group, which also
    covers the option list when options are permuted per persona. A sequential questionnaire is one
    group: each of its prompts extends the one before."""
    if q.chain:
        return q.chain
    return digest([q.persona.id, q.context.label, q.context.seed, q.repeat, q.instrument, q.part], 16)


def score_groups(instrument: Instrument, dimension: str | None) -> tuple[str, ...]:
    """Names of the score groups (the instrument's scoring levels) that pool ``dimension``."""
    if dimension is None:
        return ()
    levels = instrument.scoring.get("levels", {}) or {}
    return tuple(g for groups in levels.values() for g, members in groups.items() if dimension in members)


def query_meta(q: Query, instrument: Instrument, administration: str = "independent") -> dict[str, object]:
    """The plain data a backend may read about a query instead of its prompt text (``ScoreRequest.meta``;
    the synthetic model answers from it)."""
    item = instrument.item(q.item_id)
    return {
        "key": q.key, "persona_id": q.persona.id, "persona_kind": q.persona.kind, "persona_name": q.persona.name,
        "set_seed": q.persona.set_seed, "attributes": dict(q.persona.attributes), "instrument": q.instrument,
        "item_id": q.item_id, "dimension": q.dimension, "groups": score_groups(instrument, q.dimension),
        "reverse": item.reverse, "catch": item.catch, "values": tuple(instrument.parts[q.part].scale.values),
        "option_order": tuple(q.option_order), "context": q.context.label, "context_seed": q.context.seed,
        "repeat": q.repeat, "position": q.position, "administration": administration, "seed": q.seed,
    }


BATCH_SIZE = 16  # queries per canonical batch; part of what defines a batched scheduler's answers


def canonical_batches(queries: Sequence[Query], size: int = BATCH_SIZE) -> list[list[Query]]:
    """The plan cut into the batches a batching backend evaluates together: each prefix group's
    queries in plan order (groups in order of first appearance), in consecutive runs of ``size``.

    They depend only on the plan, never on what a store already holds: a resumed run re-evaluates a
    whole batch (keeping only the answers it lacks), so every answer is computed in the same company
    and is bit-identical to an uninterrupted run's, even where a backend's kernels round differently
    for different batch shapes."""
    groups: dict[str, list[Query]] = {}
    for q in queries:
        groups.setdefault(prefix_group(q), []).append(q)
    return [qs[i:i + size] for qs in groups.values() for i in range(0, len(qs), size)]


def batch_label(batch: Sequence[Query]) -> str:
    """A canonical batch's name: its group and the key of its first query."""
    return f"{prefix_group(batch[0])}:{batch[0].key[:12]}"
