"""Who answers a run's pending queries: the :class:`Executor` protocol, and the local executor.

``run_study`` (runner.py) plans a model's queries, skips the stored ones and hands the rest to an
executor as a :class:`Job`. The executor owns the backends; the store is written only by this
process, through ``runner._commit`` (answers and failures) as each chunk of answers arrives. The
prompt of a query is built by ``runner._Session.request`` wherever the backend lives, so both
executors send exactly the same requests.

``local`` (:class:`LocalExecutor`): one backend in this process, chunks in plan order.
``ray`` (:class:`valuescope.executor_ray.RayExecutor`): backends in Ray actors on a cluster, shards
cut along prefix groups, answers streamed back (docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from valuescope.backends.base import Backend
from valuescope.spec import ModelSpec, Study
from valuescope.store import Store
from valuescope.types import Query

if TYPE_CHECKING:
    from valuescope.runner import Progress, Resolved, RunResult


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


class Executor(Protocol):
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


class LocalExecutor:
    """One backend in this process: the chunks in plan order (``runner._run_pending``)."""

    def __init__(self, backend_factory: Callable[[ModelSpec], Backend]) -> None:
        self.backend_factory = backend_factory

    def execute(self, job: Job) -> None:
        from valuescope import runner

        backend = self.backend_factory(job.model)
        try:
            check = getattr(backend, "check_instruments", None)
            if callable(check):  # e.g. a synthetic spec naming a dimension no instrument has
                check(job.resolved.instrument_map)
            session = runner._Session(job.resolved, job.model, backend, job.store)
            example = runner.example_prompt(job.resolved, job.queries, backend)
            session.register = once(lambda: job.register(example))
            if job.model.judge is not None and job.resolved.study.extraction == "generate":
                session.judge = runner.make_backend(job.model.judge)  # type: ignore[attr-defined]
            if job.resolved.study.administration == "sequential":  # each prompt shows the chain's earlier answers
                runner._run_sequential(session, job.queries, job.pending, job.res, job.progress, job.max_queries)
            else:
                runner._run_pending(session, job.pending, job.res, job.progress, job.chunk_size, job.max_queries,
                                    job.queries)
            job.res.conversations = session.new_conversations
            job.res.backend_stats = dict(getattr(backend, "stats", {}))
        finally:
            backend.close()


def executor_for(study: Study, backend_factory: Callable[[ModelSpec], Backend]) -> Executor:
    """The executor a study asks for (``executor: local | ray``)."""
    if study.executor == "ray":
        from valuescope.executor_ray import RayExecutor

        return RayExecutor(address=study.ray.address, workers=study.ray.workers,
                           cpus_per_worker=study.ray.cpus_per_worker, gpus_per_worker=study.ray.gpus_per_worker)
    return LocalExecutor(backend_factory)
