"""Run a study: plan -> conversations -> backend -> store, resumable and in prefix-sharing order."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuescope import contexts as ctxmod
from valuescope import personas as persmod
from valuescope.backends.base import Backend, BackendError, create_backend
from valuescope.instruments import choose_wording, instrument_for_ref
from valuescope.plan import (
    PlannedInstrument,
    batch_label,
    canonical_batches,
    plan_queries,
    prefix_group,
    query_meta,
    run_id_for,
)
from valuescope.prompts import score_request, sequential_request
from valuescope.sequential import chain_width, run_chains
from valuescope.spec import EXECUTION_FIELDS, ModelSpec, SpecError, Study
from valuescope.store import Store
from valuescope.types import (
    ContextSpec,
    GenerateRequest,
    Instrument,
    LetterScores,
    Message,
    Persona,
    Query,
    ScoreRequest,
)

if TYPE_CHECKING:
    from valuescope.executors import Executor

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class RunResult:
    run_id: str
    model: str
    store_dir: Path
    planned: int
    already_done: int
    new: int = 0
    failed: int = 0
    invalid: int = 0
    reused: int = 0  # answers copied from other runs that asked the very same queries
    reused_from: dict[str, int] = field(default_factory=dict)
    conversations: int = 0
    elapsed_s: float = 0.0
    backend_stats: dict[str, Any] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)  # states recorded / steering applied (geometry_run)


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


def resolve(study: Study) -> Resolved:
    instruments = [PlannedInstrument(instrument_for_ref(ref), ref) for ref in study.instruments]
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
                        choose_wording)


def study_for_model(study: Study, model: ModelSpec) -> dict[str, Any]:
    """The study settings stored with a run: everything but other models, and no secrets (the
    spec only ever holds the *name* of an API-key variable)."""
    data = study.model_dump(mode="json", exclude=set(EXECUTION_FIELDS))  # the same for a local and a Ray run
    data["models"] = [model.model_dump(mode="json")]
    return data


def instruments_json(resolved: Resolved) -> dict[str, Any]:
    return {i.instrument.id: asdict(i.instrument) for i in resolved.instruments}


def make_backend(model: ModelSpec) -> Backend:
    opts = model.model_dump()
    kind = opts.pop("backend")
    return create_backend(kind, **opts)


class _Session:
    """One model's run: owns the backend, the store and the conversation cache."""

    def __init__(self, resolved: Resolved, model: ModelSpec, backend: Backend, store: Store | None) -> None:
        self.r = resolved
        self.study = resolved.study
        self.model = model
        self.backend = backend
        self.store = store  # None on a Ray worker: conversations come in ``known`` and go out in ``fresh``
        self.system_role = bool(getattr(backend, "system_role", True))
        self.conversations: dict[tuple[str, str, int], tuple[Message, ...]] = {}
        self.new_conversations = 0
        self.known: dict[str, tuple[Message, ...]] = {}  # stored conversations handed to a storeless session
        self.fresh: list[tuple[str, str, str, dict[str, Any], tuple[Message, ...]]] = []  # simulated, not stored
        self.register: Callable[[], None] = lambda: None  # registers the run; called before the first write

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
        if getattr(self.backend, "wants_meta", False):
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
        from valuescope import extraction

        gens = [GenerateRequest(messages=r.messages, max_tokens=48, temperature=0.0, seed=self.study.seed)
                for r in reqs]
        texts = self.backend.generate(gens)
        judge = getattr(self, "judge", None)
        out = []
        for text, r in zip(texts, reqs, strict=True):
            s = extraction.letter_scores_from_text(text, r.letters, r.labels)
            if not s.valid and judge is not None:
                s = extraction.judge_extract(judge, text, r.letters, r.labels)
            out.append(s)
        return out


def example_prompt(resolved: Resolved, queries: Sequence[Query], backend: Backend) -> str | None:
    """The exact text the model sees for one persona query (rendered through its template where the
    backend renders locally), for the report."""
    if not queries:
        return None
    q = next((x for x in queries if not x.persona.is_baseline), queries[0])
    inst = resolved.instrument_map[q.instrument]
    req = score_request(persmod.persona_messages(q.persona, bool(getattr(backend, "system_role", True))), (),
                        inst.parts[q.part], inst.item(q.item_id), q.wording, q.option_order,
                        layout=resolved.study.layout, forced_choice=resolved.study.forced_choice,
                        answer_prefix=resolved.study.answer_prefix)
    render = getattr(backend, "render", None)
    if callable(render):
        return render(req)
    return "\n\n".join(f"[{m.role}]\n{m.content}" for m in req.messages) + f"\n\n[assistant]\n{req.answer_prefix}"


OUTSIDE_MARK = "outside_mass "


def limit_outside_mass(s: LetterScores, limit: float) -> LetterScores:
    """An answer whose letters got less than ``1 - limit`` of the probability is unreadable: kept with
    its distribution, marked invalid with the reason. An answer invalidated only by another run's
    limit is judged again by this one's."""
    if not s.valid and (s.error or "").startswith(OUTSIDE_MARK):
        s = replace(s, valid=True, error=None)
    om = s.outside_mass
    if s.valid and om == om and om > limit:
        return replace(s, valid=False, error=f"{OUTSIDE_MARK}{om:.4f} > max_outside_mass {limit:g}: the option "
                                             "letters got almost none of the probability")
    return s


def run_study(
    study: Study,
    *,
    progress: Progress | None = None,
    backend_factory: Callable[[ModelSpec], Backend] = make_backend,
    chunk_size: int = 16,
    max_queries: int | None = None,
    executor: Executor | None = None,
) -> list[RunResult]:
    """Run (or resume) every model of the study; returns one result per model.

    Queries whose very same key another run in the store already answered are copied into this
    run (``reused_from``) instead of being asked again. ``max_queries`` stops after that many new
    answers (used by tests to simulate interruption). The pending queries are answered by
    ``executor`` (default: the study's ``executor`` setting, :mod:`valuescope.executors`); this
    process alone writes the store.
    """
    from valuescope import geometry_run

    results = []
    if study.steer is not None and study.steer.source is None:  # the unsteered reference runs first
        results = run_study(geometry_run.twin_study(study), progress=progress, backend_factory=backend_factory,
                            chunk_size=chunk_size, max_queries=max_queries)
    resolved = resolve(study)
    out_dir = Path(study.output)
    with Store(out_dir) as store:
        for model in study.models:
            t0 = time.perf_counter()
            queries = plan_model(resolved, model)
            run_id = run_id_for(study, model, resolved.instruments)
            done = store.done_keys(run_id)
            pending = [q for q in queries if q.key not in done]
            res = RunResult(run_id, model.name, out_dir, planned=len(queries), already_done=len(queries) - len(pending))
            register = functools.partial(
                store.register_run, run_id, study.name, model.name, study_for_model(study, model), len(queries))
            pending = _reuse_stored(store, pending, res, study.max_outside_mass,
                                    functools.partial(register, None, instruments_json(resolved)))
            states = geometry_run.StateRecorder.create(study, model, run_id, resolved.personas, resolved.contexts,
                                                       store)
            if not pending:
                register(None, instruments_json(resolved))
                if states is None or not states.missing():
                    res.geometry = {"note": states.note} if states is not None and states.note else {}
                    res.elapsed_s = time.perf_counter() - t0
                    results.append(res)
                    continue
            if executor is not None or study.executor == "ray":  # answered elsewhere (executors.py)
                from valuescope.executors import Job, executor_for

                if states is not None or study.steer is not None:
                    raise SpecError("executor: ray does not record or steer hidden states (geometry): run it with "
                                    "executor: local")
                (executor or executor_for(study, backend_factory)).execute(Job(
                    resolved, model, queries, pending, store, res,
                    lambda example, r=register: r(example, instruments_json(resolved)), progress, chunk_size,
                    max_queries))
                res.elapsed_s = time.perf_counter() - t0
                results.append(res)
                continue
            backend = backend_factory(model)
            try:
                check = getattr(backend, "check_instruments", None)
                if callable(check):  # e.g. a synthetic spec naming a dimension no instrument has
                    check(resolved.instrument_map)
                session = _Session(resolved, model, backend, store)
                if study.steer is not None:
                    res.geometry["steer"] = geometry_run.attach_steering(
                        study, model, backend, store, session, [q for q in queries if q.persona.is_baseline],
                        resolved.instruments)
                # registered with the first result written: a model that cannot answer at all (a
                # server that is down) leaves the store exactly as it was
                session.register = functools.partial(  # type: ignore[attr-defined]
                    register, example_prompt(resolved, queries, backend), instruments_json(resolved))
                if model.judge is not None and study.extraction == "generate":
                    session.judge = make_backend(model.judge)  # type: ignore[attr-defined]
                if study.administration == "sequential":
                    _run_sequential(session, queries, pending, res, progress, max_queries)
                else:
                    _run_pending(session, pending, res, progress, chunk_size, max_queries, queries)
                if states is not None and (max_queries is None or res.new < max_queries):
                    states.record(session, progress)
                    res.geometry.update(states=states.recorded, layers=states.layers, seconds=states.seconds,
                                        bytes=states.bytes, note=states.note)
                res.conversations = session.new_conversations
                res.backend_stats = dict(getattr(backend, "stats", {}))
            finally:
                geometry_run.detach_steering(backend, res.geometry.get("steer"))
                backend.close()
            res.elapsed_s = time.perf_counter() - t0
            results.append(res)
    return results


def _reuse_stored(store: Store, pending: list[Query], res: RunResult, limit: float,
                  register: Callable[[], None]) -> list[Query]:
    """Copy into this run the answers other runs hold for the same keys; return what is left to ask."""
    stored = store.stored_answers((q.key for q in pending), exclude_run=res.run_id)
    if not stored:
        return pending
    register()
    copies = []
    for q in pending:
        row = stored.get(q.key)
        if row is None:
            continue
        om = row["outside_mass"]
        s = LetterScores(probs=tuple(json.loads(row["probs"])), outside_mass=float("nan") if om is None else om,
                         valid=bool(row["valid"]), raw=row["raw"], error=row["error"], method=row["method"])
        copies.append((q, limit_outside_mass(s, limit), row["run_id"]))
    for i in range(0, len(copies), 5000):
        res.reused += store.reuse_responses(copies[i:i + 5000])
    for _, s, source in copies:
        res.reused_from[source] = res.reused_from.get(source, 0) + 1
        res.invalid += 0 if s.valid else 1
    return [q for q in pending if q.key not in stored]


def _chunks(pending: Sequence[Query], size: int) -> list[list[Query]]:
    """Whole prefix groups, split only when a group is larger than ``size``."""
    chunks: list[list[Query]] = []
    current: list[Query] = []
    current_group = None
    for q in pending:
        g = prefix_group(q)
        if current and (len(current) >= size or (g != current_group and len(current) >= size // 2)):
            chunks.append(current)
            current = []
        current.append(q)
        current_group = g
    if current:
        chunks.append(current)
    return chunks


def _calls(batches: Sequence[list[Query]], size: int) -> list[list[list[Query]]]:
    """Whole canonical batches per backend call, as many as fit in ``size`` queries (at least one)."""
    calls: list[list[list[Query]]] = []
    current: list[list[Query]] = []
    n = 0
    for b in batches:
        if current and n + len(b) > size:
            calls.append(current)
            current, n = [], 0
        current.append(b)
        n += len(b)
    if current:
        calls.append(current)
    return calls


def _run_pending(session: _Session, pending: list[Query], res: RunResult, progress: Progress | None,
                 chunk_size: int, max_queries: int | None, queries: Sequence[Query] | None = None) -> None:
    """The local loop: whole canonical batches of the plan ``queries`` (default: of ``pending``)
    answered in plan order in this process; the answers of the pending keys are committed as they
    come. For a backend whose answers depend on their batch (``batch_sensitive``) the stored
    neighbours are evaluated again only to keep a batch whole, so a resumed run is bit-identical;
    every other backend is asked the missing queries alone."""
    wanted = {q.key for q in pending}
    todo = [b for b in canonical_batches(queries if queries is not None else pending)
            if any(q.key in wanted for q in b)]
    total = len(wanted)
    done = 0
    for call in _calls(todo, chunk_size):
        if max_queries is not None and res.new >= max_queries:
            break
        chunk = [q for b in call for q in b]
        labels = [batch_label(b) for b in call for _ in b]
        if not getattr(session.backend, "batch_sensitive", False):
            # answers independent of their neighbours (HTTP APIs, llama.cpp prefix, synthetic): ask only
            # the missing queries, never again what is stored (an API bills every request)
            labels = [lab for q, lab in zip(chunk, labels, strict=True) if q.key in wanted]
            chunk = [q for q in chunk if q.key in wanted]
        missing = [q.key in wanted for q in chunk]
        lost = [q for q, m in zip(chunk, missing, strict=True) if m]
        try:
            scores = session.answer(chunk, labels)
        except BackendError:
            raise
        except Exception as exc:  # one bad chunk must not lose the rest: record and go on
            _commit(session, lost, f"{type(exc).__name__}: {exc}", res)
        else:
            _commit(session, lost, [s for s, m in zip(scores, missing, strict=True) if m], res)
        done += len(lost)
        if progress:
            progress("queries", done, total)


def _commit(session: _Session, chunk: Sequence[Query], scores: Sequence[LetterScores] | str, res: RunResult) -> None:
    """Store one chunk's answers (or, given an error text, record the whole chunk as failed)."""
    session.register()
    if isinstance(scores, str):
        session.store.record_failures((q, scores) for q in chunk)
        res.failed += len(chunk)
        return
    limit = session.study.max_outside_mass
    answered = [(q, limit_outside_mass(s, limit)) for q, s in zip(chunk, scores, strict=True) if s.method != "failed"]
    failed = [(q, s.error or "failed") for q, s in zip(chunk, scores, strict=True) if s.method == "failed"]
    res.new += session.store.write_responses(answered)
    res.invalid += sum(1 for _, s in answered if not s.valid)
    if failed:
        session.store.record_failures(failed)
        res.failed += len(failed)


def _run_sequential(session: _Session, queries: list[Query], pending: list[Query], res: RunResult,
                    progress: Progress | None, max_queries: int | None) -> None:
    """Sequential administration (:mod:`valuescope.sequential`): chains answered in order, resumed
    from the answers already stored."""
    pending_keys = {q.key for q in pending}
    stored = session.store.answers(pending[0].run_id, [q.key for q in queries if q.key not in pending_keys])
    registered = False
    done = 0

    def first() -> None:
        nonlocal registered
        if not registered:
            session.register()  # type: ignore[attr-defined]
            registered = True

    def write(pairs: list[tuple[Query, LetterScores]]) -> None:
        first()
        pairs = [(q, limit_outside_mass(s, session.study.max_outside_mass)) for q, s in pairs]
        res.new += session.store.write_responses(pairs)
        res.invalid += sum(1 for _, s in pairs if not s.valid)

    def fail(pairs: list[tuple[Query, str]]) -> None:
        first()
        session.store.record_failures(pairs)
        res.failed += len(pairs)

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("queries", done, len(pending))

    run_chains(queries, pending_keys, stored, session.request, session.answer_requests, write, fail,
               width=chain_width(session.model.backend, session.model.concurrency), budget=max_queries,
               progress=step)
