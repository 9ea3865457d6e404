"""Who answers a run's pending queries: the :class:`Executor` protocol, and the local executor.

``run_study`` (runner.py) plans a model's queries, skips the stored ones and hands the rest to an
executor as a :class:`Job`. The executor owns the backends; the store is written only by the
process that runs ``run_study``, through :func:`commit`, as each unit of answers arrives. What both
executors share, so neither copies the other:

- the prompt of a query: :class:`valuescope.execution.session.Session` (a pure function of the plan and the
  stored conversations), wherever the backend lives;
- the backend calls: :func:`work_units` (whole canonical batches of the plan, ``plan.canonical_batches``);
- the writing: :func:`commit` (answers, unreadable answers, failures).

``local`` (:class:`LocalExecutor`): one backend in this process, the units in plan order; also
records and steers hidden states (``geometry:``, ``steer:``) and runs sequential administration.
``ray`` (:class:`valuescope.execution.executor_ray.RayExecutor`): backends in Ray actors, units dealt along
prefix groups, answers streamed back (docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from valuescope.backends.base import Backend, BackendError, check_instruments, stats
from valuescope.core.types import LetterScores, Query
from valuescope.design.plan import batch_label, canonical_batches
from valuescope.execution.sequential import chain_width, run_chains
from valuescope.execution.session import Resolved, Session, example_prompt, example_query, make_backend
from valuescope.store.sqlite import Store
from valuescope.study.spec import ModelSpec

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
    elsewhere: int = 0  # answers another process (on the same store) stored first while this one asked them
    conversations: int = 0
    elapsed_s: float = 0.0
    backend_stats: dict[str, Any] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)  # states recorded / steering applied (geometry_run)
    notes: list[str] = field(default_factory=list)  # one line each for the user (e.g. a run under an old default)


@dataclass
class Job:
    """One model's pending work, and where its results go."""

    resolved: Resolved
    model: ModelSpec
    queries: list[Query]  # the whole plan, in plan order
    pending: list[Query]  # the queries not stored yet, in plan order
    store: Store
    res: RunResult  # counters the executor fills in (new, failed, invalid, conversations, backend_stats)
    register: Callable[[str | None], None]  # register the run with its example prompt (before the first write)
    progress: Progress | None = None
    chunk_size: int = 16
    max_queries: int | None = None  # stop after that many new answers (tests simulate interruption)
    states: Any = None  # a geometry_run.StateRecorder: hidden states still to record (local only)


class Executor(Protocol):
    """``hidden_states`` (optional attribute, default False): the executor can record and steer
    hidden states (``geometry:``, ``steer:``); only the local one can."""

    def execute(self, job: Job) -> None:
        """Answer ``job.pending`` and commit every answer or failure to ``job.store``; raises
        BackendError when the model cannot answer at all (what was committed stays)."""
        ...


def once(fn: Callable[[], None]) -> Callable[[], None]:
    done = False

    def call() -> None:
        nonlocal done
        if not done:
            fn()
            done = True

    return call


@dataclass(frozen=True)
class Unit:
    """One backend call: the queries asked, the canonical batch each belongs to, and which of them
    are pending (the others are stored neighbours asked again only to keep a batch whole)."""

    queries: list[Query]
    labels: list[str]
    wanted: list[bool]

    @property
    def pending(self) -> list[Query]:
        return [q for q, w in zip(self.queries, self.wanted, strict=True) if w]


def calls(batches: Sequence[list[Query]], size: int) -> list[list[list[Query]]]:
    """Whole canonical batches per backend call, as many as fit in ``size`` queries (at least one)."""
    out: list[list[list[Query]]] = []
    current: list[list[Query]] = []
    n = 0
    for b in batches:
        if current and n + len(b) > size:
            out.append(current)
            current, n = [], 0
        current.append(b)
        n += len(b)
    if current:
        out.append(current)
    return out


def work_units(queries: Sequence[Query], pending: Sequence[Query], size: int, batch_sensitive: bool) -> list[Unit]:
    """The backend calls that answer ``pending``: whole canonical batches of the plan ``queries``, in
    plan order, as many per call as fit in ``size``. For a backend whose answers depend on their batch
    (``batch_sensitive``: llama.cpp ``batched``, the hf prefix cache) a call keeps its batches whole,
    re-asking stored neighbours, so a resumed run is bit-identical to an uninterrupted one; every
    other backend is asked the pending queries alone (an API bills every request)."""
    wanted = {q.key for q in pending}
    units = []
    for call in calls([b for b in canonical_batches(queries) if any(q.key in wanted for q in b)], size):
        asked = [q for b in call for q in b]
        labels = [batch_label(b) for b in call for _ in b]
        if not batch_sensitive:
            labels = [lab for q, lab in zip(asked, labels, strict=True) if q.key in wanted]
            asked = [q for q in asked if q.key in wanted]
        units.append(Unit(asked, labels, [q.key in wanted for q in asked]))
    return units


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


@dataclass
class AnswerWriter:
    """The one path an answer takes into the store, for every executor and the runner's reuse: the run is
    registered before the first write, ``max_outside_mass`` is applied, and the run's counts follow."""

    store: Store
    res: RunResult
    limit: float  # the study's max_outside_mass
    register: Callable[[], None]

    def answers(self, pairs: Sequence[tuple[Query, LetterScores]]) -> None:
        """New answers of this run."""
        self.register()
        pairs = [(q, limit_outside_mass(s, self.limit)) for q, s in pairs]
        new = self.store.write_responses(pairs)
        self.res.new += new
        self.res.elsewhere += len(pairs) - new  # stored first by another process on the same store
        self.res.invalid += sum(1 for _, s in pairs if not s.valid)

    def copies(self, triples: Sequence[tuple[Query, LetterScores, str]]) -> None:
        """Answers another run holds for the very same queries, copied in (``reused_from`` = that run)."""
        self.register()
        triples = [(q, limit_outside_mass(s, self.limit), source) for q, s, source in triples]
        for i in range(0, len(triples), 5000):
            self.res.reused += self.store.reuse_responses(triples[i:i + 5000])
        for _, s, source in triples:
            self.res.reused_from[source] = self.res.reused_from.get(source, 0) + 1
            self.res.invalid += 0 if s.valid else 1

    def failures(self, pairs: Sequence[tuple[Query, str]]) -> None:
        """Queries the backend failed on (retried by the next run)."""
        self.register()
        self.store.record_failures(pairs)
        self.res.failed += len(pairs)

    def chunk(self, chunk: Sequence[Query], scores: Sequence[LetterScores] | str) -> None:
        """One chunk's answers (or, given an error text, the whole chunk as failed)."""
        if isinstance(scores, str):
            self.failures([(q, scores) for q in chunk])
            return
        pairs = list(zip(chunk, scores, strict=True))
        self.answers([(q, s) for q, s in pairs if s.method != "failed"])
        failed = [(q, s.error or "failed") for q, s in pairs if s.method == "failed"]
        if failed:
            self.failures(failed)


def writer(session: Session, res: RunResult) -> AnswerWriter:
    assert session.store is not None
    return AnswerWriter(session.store, res, session.study.max_outside_mass, lambda: session.register())


def commit(session: Session, chunk: Sequence[Query], scores: Sequence[LetterScores] | str, res: RunResult) -> None:
    """Store one chunk's answers (or, given an error text, record the whole chunk as failed)."""
    writer(session, res).chunk(chunk, scores)


class LocalExecutor:
    """One backend in this process: the work units in plan order."""

    hidden_states = True  # records and steers hidden states (geometry:, steer:)

    def __init__(self, backend_factory: Callable[[ModelSpec], Backend] = make_backend) -> None:
        self.backend_factory = backend_factory

    def execute(self, job: Job) -> None:
        from valuescope.execution import geometry_run

        study = job.resolved.study
        backend = self.backend_factory(job.model)
        try:
            check_instruments(backend, job.resolved.instrument_map)  # e.g. a synthetic spec's unknown dimension
            session = Session(job.resolved, job.model, backend, job.store)
            if study.steer is not None:
                job.res.geometry["steer"] = geometry_run.attach_steering(
                    study, job.model, backend, job.store, session, [q for q in job.queries if q.persona.is_baseline],
                    job.resolved.instruments_content)
            # registered with the first result written: a model that cannot answer at all (a server
            # that is down) leaves the store exactly as it was; a context study's example shows its conversation
            def example() -> str | None:
                q = example_query(job.queries, session.conversation_key)
                return None if q is None else example_prompt(job.resolved, q, backend, session.conversation(q))

            session.register = once(lambda: job.register(example()))
            if job.model.judge is not None and study.extraction == "generate":
                session.judge = make_backend(job.model.judge)
            if study.administration == "sequential":  # each prompt shows the chain's earlier answers
                run_sequential(session, job)
            else:
                run_units(session, job)
            states = job.states
            if states is not None and (job.max_queries is None or job.res.new < job.max_queries):
                states.record(session, job.progress)
                job.res.geometry.update(states=states.recorded, layers=states.layers, seconds=states.seconds,
                                        bytes=states.bytes, note=states.note)
            job.res.conversations = session.new_conversations
            job.res.backend_stats = stats(backend)
        finally:
            geometry_run.detach_steering(backend, job.res.geometry.get("steer"))
            backend.close()


def run_units(session: Session, job: Job) -> None:
    """Independent administration in this process: the work units in plan order, each unit's pending
    answers committed as it comes back."""
    units = work_units(job.queries, job.pending, job.chunk_size, session.caps.batch_sensitive)
    done = 0
    for unit in units:
        if job.max_queries is not None and job.res.new >= job.max_queries:
            break
        lost = unit.pending
        try:
            scores = session.answer(unit.queries, unit.labels)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad unit must not lose the rest: record and go on
            commit(session, lost, f"{type(exc).__name__}: {exc}", job.res)
        else:
            commit(session, lost, [s for s, w in zip(scores, unit.wanted, strict=True) if w], job.res)
        done += len(lost)
        if job.progress:
            job.progress("queries", done, len(job.pending))


def run_sequential(session: Session, job: Job) -> None:
    """Sequential administration (:mod:`valuescope.execution.sequential`): chains answered in order, resumed
    from the answers already stored."""
    assert session.store is not None
    store, res, pending = session.store, job.res, job.pending
    if not pending:  # only hidden states left to record
        return
    pending_keys = {q.key for q in pending}
    stored = store.answers(pending[0].run_id, [q.key for q in job.queries if q.key not in pending_keys])
    done = 0

    out = writer(session, res)

    def step(n: int) -> None:
        nonlocal done
        done += n
        if job.progress:
            job.progress("queries", done, len(pending))

    run_chains(job.queries, pending_keys, stored, session.request, session.answer_requests, out.answers, out.failures,
               width=chain_width(session.caps.renders_locally, session.model.concurrency), budget=job.max_queries,
               progress=step)
