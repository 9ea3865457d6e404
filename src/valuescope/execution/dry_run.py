"""A dry run (``valuescope plan STUDY.yaml``, ``run --dry-run``): what a study will ask, before it asks.

Per model: the queries planned and already stored, the conversations to simulate, the prompt size of
every query (characters, and tokens where the backend has a tokenizer, else characters / 4, labelled as
an estimate), and, from a quick calibration (a handful of real queries answered in a scratch store that
is deleted afterwards), the time per query on this machine and the bytes per stored answer, scaled to
the queries still to ask. Conversation simulation is not timed: it is counted, and said to come on top.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from valuescope.backends.base import Backend, check_instruments, render, token_counter
from valuescope.core.types import ContextSpec, Query
from valuescope.design.plan import run_id_for
from valuescope.execution.session import Resolved, Session, make_backend, plan_model, resolve
from valuescope.store.sqlite import STORE_NAME, Store
from valuescope.study.spec import ModelSpec, Study

COPIES = 64  #: copies of the calibration answers written to measure bytes per answer (pages are 4 kB)
CHARS_PER_TOKEN = 4  #: the estimate of tokens where a backend has no tokenizer (labelled as an estimate)


@dataclass
class ModelPlan:
    model: str
    backend: str
    run_id: str
    queries: int
    stored: int
    conversations: int  # distinct simulated conversations the pending queries need
    prompt_chars: int  # over all planned queries, without the simulated conversations
    prompt_tokens: int
    tokens_counted: bool  # True: the backend's tokenizer; False: characters / CHARS_PER_TOKEN
    calibration_queries: int = 0
    load_s: float = math.nan  # loading the backend
    per_query_s: float = math.nan
    bytes_per_answer: float = math.nan
    note: str = ""

    @property
    def pending(self) -> int:
        return self.queries - self.stored

    @property
    def estimated_s(self) -> float:
        return self.per_query_s * self.pending

    @property
    def disk_bytes(self) -> float:
        return self.bytes_per_answer * self.pending


def _stored_keys(study: Study, run_id: str) -> set[str]:
    path = Path(study.output)
    if not (path / STORE_NAME).is_file():
        return set()
    with Store(path, create=False, migrate=False) as store:
        return store.done_keys(run_id)


def plan_study(study: Study, *, calibrate: int = 8, seed: int = 0,
               backend_factory: Callable[[ModelSpec], Backend] = make_backend) -> list[ModelPlan]:
    """The dry run of every model of ``study`` (module docstring); ``calibrate`` = real queries answered per
    model to time it (0: no backend is loaded, no time or disk estimate)."""
    resolved = resolve(study)
    return [_plan_model(resolved, model, calibrate, seed, backend_factory) for model in study.models]


def _plan_model(resolved: Resolved, model: ModelSpec, calibrate: int, seed: int,
                backend_factory: Callable[[ModelSpec], Backend]) -> ModelPlan:
    study = resolved.study
    queries = plan_model(resolved, model)
    run_id = run_id_for(study, model, resolved.instruments)
    done = _stored_keys(study, run_id)
    pending = [q for q in queries if q.key not in done]
    conv = {(q.persona.id, q.context.label, q.context.seed) for q in pending
            if q.context.topic is not None and (q.context.n_messages or q.context.opening)}
    plan = ModelPlan(model.name, model.backend, run_id, len(queries), len(queries) - len(pending), len(conv), 0, 0,
                     False)
    backend = None
    try:
        if calibrate > 0 and pending:
            t0 = time.perf_counter()
            backend = backend_factory(model)
            check_instruments(backend, resolved.instrument_map)  # as the executors do (a norms model calibrates)
            plan.load_s = time.perf_counter() - t0
        session = Session(resolved, model, backend if backend is not None else _NoBackend(), None)
        counter = token_counter(backend) if backend is not None else None
        chars = tokens = 0
        for q in queries:
            req = session.request(_without_conversation(q))
            text = render(backend, req)
            if text is None:  # no rendering of its own: the messages' text
                text = "\n".join(m.content for m in req.messages) + req.answer_prefix
            chars += len(text)
            tokens += counter(text) if counter is not None else 0
        plan.prompt_chars = chars
        plan.tokens_counted = counter is not None
        plan.prompt_tokens = tokens if counter is not None else round(chars / CHARS_PER_TOKEN)
        if backend is not None:
            _calibrate(plan, session, pending, calibrate, seed)
    finally:
        if backend is not None:
            backend.close()
    return plan


class _NoBackend:
    """Stands in for a backend when only prompts are built (no calibration)."""

    system_role = True


def _without_conversation(q: Query) -> Query:
    """``q`` with no simulated conversation (it does not exist before the run): its prompt is the persona,
    the item and the answer prefix."""
    return q if q.context.topic is None else replace(q, context=ContextSpec(None, None, 0, q.context.seed))


def _calibrate(plan: ModelPlan, session: Session, pending: list[Query], n: int, seed: int) -> None:
    """Answer the first ``n`` pending queries in plan order (they share a persona prefix, as a run's batches do;
    without their conversations) after one untimed warm-up query: seconds per query. Their answers, written
    ``COPIES`` times under distinct keys into a scratch store: bytes per stored answer (indexes included)."""
    start = random.Random(seed).randrange(max(1, len(pending) - n + 1))
    sample = [_without_conversation(q) for q in pending[start:start + n]]
    session.answer(sample[:1])
    t0 = time.perf_counter()
    answers = session.answer(sample)
    plan.per_query_s = (time.perf_counter() - t0) / len(sample)
    plan.calibration_queries = len(sample)
    scratch = Path(tempfile.mkdtemp(prefix="valuescope-plan-"))
    try:
        with Store(scratch) as store:
            store.register_run(plan.run_id, "plan", plan.model, {}, plan.queries, None, {})
            store.db.execute("VACUUM")
            empty = _size(store)
            rows = [(replace(q, key=f"{q.key}-{i}"), a) for i in range(COPIES)
                    for q, a in zip(sample, answers, strict=True)]
            store.write_responses(rows)
            store.db.execute("VACUUM")
            plan.bytes_per_answer = max(0.0, (_size(store) - empty) / len(rows))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if plan.conversations:
        plan.note = (f"{plan.conversations} simulated conversations come on top (each is generated text: "
                     "slower than a query); prompts and the calibration leave them out")


def _size(store: Store) -> int:
    """The store's file size with its write-ahead log folded in."""
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return store.path.stat().st_size
