"""Run a study: plan -> conversations -> backend -> store, resumable and in prefix-sharing order.

``run_study`` plans each model's queries (:mod:`valuescope.design.plan`), skips the keys this run has
stored, copies the answers other runs hold for the same keys, and hands the rest to an executor
(:mod:`valuescope.execution.executors`: local or Ray), which asks the backend and commits as answers arrive.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from valuescope.backends.base import Backend
from valuescope.core.types import Query
from valuescope.execution.executor_ray import RayExecutor
from valuescope.execution.executors import (
    OUTSIDE_MARK,
    AnswerWriter,
    Executor,
    Job,
    LocalExecutor,
    Progress,
    RunResult,
    limit_outside_mass,
)
from valuescope.execution.session import Resolved, Session, example_prompt, make_backend, plan_model, resolve
from valuescope.store.sqlite import Store
from valuescope.study import identity
from valuescope.study.spec import (
    DEFAULT_OPTION_ORDER,
    OLD_DEFAULT_OPTION_ORDER,
    ModelSpec,
    SpecError,
    Study,
    human_norms,
)

__all__ = ["OUTSIDE_MARK", "Progress", "Resolved", "RunResult", "Session", "example_prompt", "limit_outside_mass",
           "make_backend", "plan_model", "resolve", "run_ids", "run_study", "instruments_json"]


def instruments_json(resolved: Resolved) -> dict[str, Any]:
    return resolved.instruments_content


def executor_for(study: Study, backend_factory: Callable[[ModelSpec], Backend] = make_backend) -> Executor:
    """The executor a study asks for (``executor: local | ray``)."""
    if study.executor == "ray":
        return RayExecutor(address=study.ray.address, workers=study.ray.workers,
                           cpus_per_worker=study.ray.cpus_per_worker, gpus_per_worker=study.ray.gpus_per_worker)
    return LocalExecutor(backend_factory)


def run_ids(study: Study) -> list[str]:
    """The run id of each model of the study (what ``run_study`` writes to), without planning its queries."""
    from valuescope.design.plan import instruments_content
    from valuescope.execution.session import resolve_instruments

    content = instruments_content(resolve_instruments(study))
    return [identity.run_id(study, model, content) for model in study.models]


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
    ``executor`` (default: the study's ``executor`` setting, :func:`executor_for`);
    this process alone writes the store.
    """
    from valuescope.execution import geometry_run

    results = []
    if study.steer is not None and study.steer.source is None:  # the unsteered reference runs first
        results = run_study(identity.reference_study(study), progress=progress, backend_factory=backend_factory,
                            chunk_size=chunk_size, max_queries=max_queries)
    resolved = resolve(study)
    out_dir = Path(study.output)
    executor = executor or executor_for(study, backend_factory)
    with Store(out_dir) as store:
        for model in study.models:
            t0 = time.perf_counter()
            queries = plan_model(resolved, model)
            run_id = resolved.run_id(model)
            done = store.done_keys(run_id)
            pending = [q for q in queries if q.key not in done]
            res = RunResult(run_id, model.name, out_dir, planned=len(queries), already_done=len(queries) - len(pending))
            res.notes.extend(old_default_notes(study, model, resolved, store, run_id))
            res.notes.extend(note for note in human_norms(study, model)[1:] if note)
            register = functools.partial(
                store.register_run, run_id, study.name, model.name, identity.stored_study(study, model), len(queries))
            pending = _reuse_stored(AnswerWriter(store, res, study.max_outside_mass,
                                                 functools.partial(register, None, instruments_json(resolved))),
                                    pending)
            states = geometry_run.StateRecorder.create(study, model, run_id, resolved.personas, resolved.contexts,
                                                       store)
            if not pending:
                register(None, instruments_json(resolved))
            if pending or (states is not None and states.missing()):
                if (states is not None or study.steer is not None) and not getattr(executor, "hidden_states", False):
                    raise SpecError(f"executor: {type(executor).__name__} does not record or steer hidden states "
                                    "(geometry): run it with executor: local")
                executor.execute(Job(resolved, model, queries, pending, store, res,
                                     lambda example, r=register: r(example, instruments_json(resolved)), progress,
                                     chunk_size, max_queries, states))
            elif states is not None and states.note:
                res.geometry = {"note": states.note}
            res.elapsed_s = time.perf_counter() - t0
            results.append(res)
    return results


def old_default_notes(study: Study, model: ModelSpec, resolved: Resolved, store: Store, run_id: str) -> list[str]:
    """One line when the study leaves ``option_order`` unset and the store holds this study's run under the
    old default (``permute-persona``): that run does not resume under the new default (``balanced``)."""
    if "option_order" in study.model_fields_set or study.option_order != DEFAULT_OPTION_ORDER:
        return []
    if study.option_orders is not None:  # not a valid study under the old default
        return []
    old = study.model_copy(update={"option_order": OLD_DEFAULT_OPTION_ORDER})
    old_id = identity.run_id(old, model, resolved.instruments_content)
    if old_id == run_id or not store.has_run(old_id):
        return []
    return [f"this store holds run {old_id} of this study under the old default option_order: "
            f"{OLD_DEFAULT_OPTION_ORDER}; the default is now {DEFAULT_OPTION_ORDER}, so this is a new run "
            f"{run_id}: set option_order: {OLD_DEFAULT_OPTION_ORDER} in the study to resume {old_id}"]


def _reuse_stored(out: AnswerWriter, pending: list[Query]) -> list[Query]:
    """Copy into this run the answers other runs hold for the same keys; return what is left to ask."""
    stored = out.store.stored_answers((q.key for q in pending), exclude_run=out.res.run_id)
    if stored:
        out.copies([(q, *stored[q.key]) for q in pending if q.key in stored])
    return [q for q in pending if q.key not in stored]
