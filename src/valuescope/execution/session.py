"""What every executor shares: a study resolved into plain data, and the per-model :class:`Session`
that turns a planned query into its prompt and asks the backend.

The prompt of a query is a pure function of the plan and the conversation the query starts with
(:func:`valuescope.design.prompts.score_request`, :func:`valuescope.design.prompts.sequential_request`);
``Session.request`` only gathers those parts, so the local executor and the Ray workers
(:mod:`valuescope.execution.executors`, :mod:`valuescope.execution.executor_ray`) send exactly the same requests.
A session with a store reads and writes conversations there; a storeless one (a Ray worker) is
handed the stored ones in ``known`` and returns the ones it simulates in ``fresh``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from valuescope.backends.base import Backend, capabilities, create_backend, render
from valuescope.core.types import (
    ContextSpec,
    GenerateRequest,
    Instrument,
    LetterScores,
    Message,
    Persona,
    Query,
    ScoreRequest,
)
from valuescope.design import contexts as ctxmod
from valuescope.design import personas as persmod
from valuescope.design.instruments import choose_wording, instrument_for_ref
from valuescope.design.plan import PlannedInstrument, instruments_content, plan_queries, prefix_group, query_meta
from valuescope.design.prompts import score_request, sequential_request
from valuescope.store.sqlite import Store
from valuescope.study import identity
from valuescope.study.spec import ModelSpec, SpecError, Study


@dataclass
class Resolved:
    """A study with its instruments, personas and contexts loaded (plain data)."""

    study: Study
    instruments: list[PlannedInstrument]
    personas: list[Persona]
    contexts: list[ContextSpec]

    @property
    def instrument_map(self) -> dict[str, Instrument]:
        return {p.instrument.id: p.instrument for p in self.instruments}

    @functools.cached_property
    def instruments_content(self) -> dict[str, Any]:
        """What ``runs.instruments_json`` stores and the run id hashes."""
        return instruments_content(self.instruments)

    def run_id(self, model: ModelSpec) -> str:
        """The model's run id (:func:`valuescope.study.identity.run_id`): computed here, once."""
        return identity.run_id(self.study, model, self.instruments_content)


def resolve_instruments(study: Study) -> list[PlannedInstrument]:
    return [PlannedInstrument(instrument_for_ref(ref), ref) for ref in study.instruments]


def resolve(study: Study) -> Resolved:
    instruments = resolve_instruments(study)
    ids = [p.instrument.id for p in instruments]
    if len(set(ids)) != len(ids):
        raise SpecError(f"study: field 'instruments': the same instrument is listed twice ({ids})")
    for n, p in enumerate(instruments):
        known = {it.id for it in p.instrument.items}
        for item_id in p.ref.items or []:
            if item_id not in known:
                raise SpecError(f"study: field 'instruments.{n}.items': {p.instrument.id} has no item {item_id!r}")
    personas = persmod.build_population(study.population)
    contexts = ctxmod.context_specs(study.contexts, study.seed)
    return Resolved(study, instruments, personas, contexts)


def plan_model(resolved: Resolved, model: ModelSpec) -> list[Query]:
    return plan_queries(resolved.study, model, resolved.personas, resolved.contexts, resolved.instruments,
                        choose_wording, run_id=resolved.run_id(model))


def make_backend(model: ModelSpec) -> Backend:
    opts = model.model_dump()
    kind = opts.pop("backend")
    return create_backend(kind, **opts)


class Session:
    """One model's requests and answers: the backend, the conversations (from the store, or from
    ``known`` where there is none) and the prompt of every query."""

    def __init__(self, resolved: Resolved, model: ModelSpec, backend: Backend, store: Store | None) -> None:
        self.r = resolved
        self.study = resolved.study
        self.model = model
        self.backend = backend
        self.store = store  # None on a Ray worker: conversations come in ``known`` and go out in ``fresh``
        self.caps = capabilities(backend)
        self.system_role = self.caps.system_role
        self.conversations: dict[tuple[str, str, int], tuple[Message, ...]] = {}
        self.new_conversations = 0
        self.known: dict[str, tuple[Message, ...]] = {}  # stored conversations handed to a storeless session
        self.fresh: list[tuple[str, str, str, dict[str, Any], tuple[Message, ...]]] = []  # simulated, not stored
        self.register: Callable[[], None] = lambda: None  # registers the run; called before the first write
        self.judge: Backend | None = None  # reads free-text answers the parser cannot (extraction: generate)

    def conversation_key(self, q: Query) -> str | None:
        """The stored conversation a query's prompt starts with (None: it has none)."""
        ctx = q.context
        if ctx.topic is None or ctx.n_messages == 0 and not ctx.opening:
            return None
        return ctxmod.conversation_key(self.model.name, q.persona, ctx, system_role=self.system_role,
                                       max_tokens=self.study.contexts.max_tokens)

    def persona_messages(self, persona: Persona) -> list[Message]:
        return persmod.persona_messages(persona, system_role=self.system_role)

    def conversation(self, q: Query) -> tuple[Message, ...]:
        ctx = q.context
        key = self.conversation_key(q)
        if key is None:
            return ()
        memo = (q.persona.id, ctx.label, ctx.seed)
        if memo not in self.conversations:
            msgs = self.store.conversation(key, run_id=q.run_id) if self.store is not None else self.known.get(key)
            if msgs is None:
                msgs = ctxmod.simulate_conversation(self.backend, q.persona, ctx, system_role=self.system_role,
                                                    max_tokens=self.study.contexts.max_tokens)
                if self.store is not None:
                    self.store.write_conversation(key, q.run_id, q.persona.id, asdict(ctx), msgs)
                else:
                    self.fresh.append((key, q.run_id, q.persona.id, asdict(ctx), msgs))
                self.new_conversations += 1
            self.conversations[memo] = msgs
        return self.conversations[memo]

    def request(self, q: Query, previous: Sequence[tuple[Query, LetterScores]] = (), batch: str = ""
                ) -> ScoreRequest:
        """The prompt of ``q``; a sequential item also needs the stored answers asked before it."""
        inst = self.r.instrument_map[q.instrument]
        meta = None
        if self.caps.wants_meta:
            meta = query_meta(q, inst, q.administration)
        if q.administration == "sequential":
            return sequential_request(
                q, previous, inst, self.persona_messages(q.persona), self.conversation(q), layout=self.study.layout,
                forced_choice=self.study.forced_choice, answer_prefix=self.study.answer_prefix, group=prefix_group(q),
                meta=meta)
        req = score_request(
            self.persona_messages(q.persona), self.conversation(q), inst.parts[q.part], inst.item(q.item_id),
            q.wording, q.option_order, layout=self.study.layout, forced_choice=self.study.forced_choice,
            answer_prefix=self.study.answer_prefix, group=prefix_group(q), meta=meta,
        )
        return replace(req, batch=batch) if batch else req

    def answer(self, queries: Sequence[Query], batches: Sequence[str] | None = None) -> list[LetterScores]:
        labels = batches or [""] * len(queries)
        return self.answer_requests([self.request(q, batch=b) for q, b in zip(queries, labels, strict=True)])

    def answer_requests(self, reqs: Sequence[ScoreRequest]) -> list[LetterScores]:
        if self.study.extraction == "logprobs":
            return self.backend.score(reqs)
        from valuescope.backends import extraction

        gens = [GenerateRequest(messages=r.messages, max_tokens=48, temperature=0.0, seed=self.study.seed)
                for r in reqs]
        texts = self.backend.generate(gens)
        judge = self.judge
        out = []
        for text, r in zip(texts, reqs, strict=True):
            s = extraction.letter_scores_from_text(text, r.letters, r.labels)
            if not s.valid and judge is not None:
                s = extraction.judge_extract(judge, text, r.letters, r.labels)
            out.append(s)
        return out


def example_query(queries: Sequence[Query], conversation_key: Callable[[Query], str | None]) -> Query | None:
    """The query whose prompt the report shows, the same whichever executor runs the plan and in whatever order
    its work comes back: the first persona query (plan order) that starts with a simulated conversation, else
    the first persona query, else the first query."""
    persona = [q for q in queries if not q.persona.is_baseline] or list(queries)
    if not persona:
        return None
    return next((q for q in persona if conversation_key(q) is not None), persona[0])


def example_prompt(resolved: Resolved, q: Query | None, backend: Backend,
                   conversation: Sequence[Message] = ()) -> str | None:
    """The exact text the model sees for query ``q`` (:func:`example_query`) after ``conversation``, rendered
    through the model's template where the backend renders locally, for the report."""
    if q is None:
        return None
    inst = resolved.instrument_map[q.instrument]
    req = score_request(persmod.persona_messages(q.persona, capabilities(backend).system_role), tuple(conversation),
                        inst.parts[q.part], inst.item(q.item_id), q.wording, q.option_order,
                        layout=resolved.study.layout, forced_choice=resolved.study.forced_choice,
                        answer_prefix=resolved.study.answer_prefix)
    text = render(backend, req)
    if text is not None:
        return text
    return "\n\n".join(f"[{m.role}]\n{m.content}" for m in req.messages) + f"\n\n[assistant]\n{req.answer_prefix}"
