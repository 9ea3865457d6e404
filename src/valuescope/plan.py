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

from valuescope.prompts import template_fingerprint
from valuescope.spec import InstrumentRef, ModelSpec, Study
from valuescope.types import ContextSpec, Instrument, Persona, Query


def stable_int(*parts: object) -> int:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def digest(obj: object, n: int = 20) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def model_identity(model: ModelSpec) -> dict[str, object]:
    """What identifies the model's answers (not how it is served: concurrency, timeouts...). A synthetic
    model is identified by its spec's content, so an edited spec file is a new run."""
    ident: dict[str, object] = {"name": model.name, "backend": model.backend, "path": model.path,
                                "model": model.model, "logprobs": model.logprobs}
    if model.backend == "synthetic":
        from valuescope.backends.synthetic_spec import resolve_synthetic

        ident["synthetic"] = resolve_synthetic(model.path, model.synthetic).model_dump(mode="json")
    return ident


def run_id_for(study: Study, model: ModelSpec, instruments: Sequence[PlannedInstrument] | None = None) -> str:
    """``<study>-<model>-<hash>``: the hash covers the study's query-defining settings, the model and
    the content of every instrument the run uses (item texts, options, scale values, dimension map,
    reverse flags, scoring), so a changed study or an edited instrument is a new run and an
    unchanged one resumes. (Answers to queries that did not change are reused, not asked again.)"""
    others = study.model_dump(mode="json", exclude={"output", "report", "name", "models", "score_from"})
    content = instruments_digest(instruments) if instruments is not None else ""
    return f"{study.name}-{model.name}-{digest([others, model_identity(model), content], 8)}"


def instruments_digest(instruments: Sequence[PlannedInstrument]) -> str:
    """Hash of the full content of the instruments a run uses (what ``runs.instruments_json`` holds)."""
    return digest(sorted((p.instrument.id, asdict(p.instrument)) for p in instruments), 20)


def option_order(k: int, policy: str, seed: int, persona_id: str, repeat: int, item_id: str) -> tuple[int, ...]:
    """Scale indices shown under letters A, B, ...: fixed, or a seeded permutation per persona
    (shared by all its items, as in Kovač et al.) or per query."""
    order = list(range(k))
    if policy == "fixed":
        return tuple(order)
    scope: tuple[object, ...] = (seed, persona_id, repeat)
    if policy == "permute-query":
        scope = (*scope, item_id)
    random.Random(stable_int("options", *scope)).shuffle(order)
    return tuple(order)


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


def plan_queries(
    study: Study,
    model: ModelSpec,
    personas: Sequence[Persona],
    contexts: Sequence[ContextSpec],
    instruments: Sequence[PlannedInstrument],
    choose_wording: WordingFn,
) -> list[Query]:
    """Expand one model's share of a study. Order: persona, context, repeat, instrument, item —
    so consecutive queries share persona, conversation and instructions (the KV-cache prefix)."""
    run_id = run_id_for(study, model, instruments)
    ident = model_identity(model)
    queries: list[Query] = []
    # The baseline is also asked without a conversation when every context has one: that is the model's
    # neutral profile (no persona, no conversation; Kovač et al. 2024, B.2) that distance_to_neutral needs.
    neutral = [] if any(c.topic is None for c in contexts) else [ContextSpec()]
    for persona in personas:
        p_ident = [persona.id, persona.description]
        for base_ctx in [*neutral, *contexts] if persona.is_baseline else contexts:
            for repeat in range(study.repeats):
                # each repeat is a new sample: a new conversation (as the paper's seeds) and permutation
                ctx = replace(base_ctx, seed=base_ctx.seed + repeat) if base_ctx.topic else base_ctx
                for planned in instruments:
                    inst = planned.instrument
                    items = [it for it in inst.items if planned.ref.items is None or it.id in planned.ref.items]
                    wording = choose_wording(inst, planned.ref.wording, persona.gender)
                    positions = item_order(len(items), study.item_order, study.seed, persona.id, repeat, inst.id)
                    for pos, idx in enumerate(positions):
                        item = items[idx]
                        part = inst.parts[item.part]
                        order = option_order(part.scale.k, study.option_order, study.seed, persona.id, repeat,
                                             item.id)
                        template = template_fingerprint(part, layout=study.layout,
                                                        forced_choice=study.forced_choice,
                                                        answer_prefix=study.answer_prefix)
                        key = digest([ident, p_ident, asdict(ctx), inst.id, item.id, item.wording(wording),
                                      order, study.seed, repeat, template, study.extraction], 32)
                        queries.append(Query(
                            key=key, run_id=run_id, model=model.name, persona=persona, context=ctx,
                            instrument=inst.id, item_id=item.id, part=item.part, dimension=item.dimension,
                            wording=wording, option_order=order, seed=study.seed, repeat=repeat,
                            template=template, position=pos,
                        ))
    return queries


def prefix_group(q: Query) -> str:
    """Queries in one group share the prompt up to the options (persona, conversation,
    instructions); the backend finds the exact common token prefix within the group, which also
    covers the option list when options are permuted per persona."""
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
