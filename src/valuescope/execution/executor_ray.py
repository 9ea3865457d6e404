"""The Ray executor: a study's queries answered by backends in Ray actors (``executor: ray``).

Each worker is a Ray actor holding one backend (llama.cpp, hf, vllm, an OpenAI-compatible client)
and a storeless :class:`valuescope.execution.session.Session`, so it builds exactly the requests a local run
builds. The driver (this process)

1. cuts the pending queries into the local run's backend calls (``executors.work_units``: whole
   canonical batches, labelled, so a batching backend evaluates the same company as in a local run)
   and deals them into one queue per worker, every unit of a prefix group (one persona in one
   context) to the same worker, in plan order, so that worker's prefix cache serves the group;
2. keeps two units in flight per worker and, as each answer comes back (``ray.wait``), commits it
   to the SQLite store (``executors.commit``): the driver alone writes, stored keys are skipped, a
   SIGKILLed driver loses only the chunks in flight and a rerun resumes;
3. sends each chunk the conversations already stored for it; a worker simulates the missing ones
   and returns them with its answers, and the driver stores each once before the answers;
4. when a worker dies (its node is lost, ``ray.kill``), hands that worker's unfinished chunks (in
   flight or queued) to the live worker with the least work, whole; nothing it had not returned was
   stored, so nothing is lost or duplicated. With no worker left the run stops with a BackendError
   and the next run resumes.

Ray is optional: ``pip install 'valuescope[ray]'``.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

from valuescope.backends.base import BackendError, check_instruments, stats
from valuescope.core.types import Message, Query
from valuescope.design.plan import prefix_group
from valuescope.execution.executors import Job, Unit, commit, once, work_units
from valuescope.study.spec import SpecError

DEPTH = 2  # chunks in flight per worker: one being answered, one waiting in its mailbox


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise BackendError("executor: ray needs Ray: pip install 'valuescope[ray]'") from exc
    return ray


class _Worker:
    """One backend on a Ray worker: answers chunks, touches no store."""

    def __init__(self, resolved: Any, model: Any) -> None:
        from valuescope.execution.session import Session, make_backend

        self.error: str | None = None
        self.backend = None
        try:
            self.backend = make_backend(model)
            check_instruments(self.backend, resolved.instrument_map)
            self.session = Session(resolved, model, self.backend, store=None)
            if model.judge is not None and resolved.study.extraction == "generate":
                self.session.judge = make_backend(model.judge)
        except Exception as exc:  # noqa: BLE001 - reported to the driver as one line
            self.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, BackendError) else str(exc)
        self.resolved = resolved

    def info(self, example: Query | None = None, known: dict[str, tuple[Message, ...]] | None = None
             ) -> dict[str, Any]:
        """The backend's template facts, the prompt of ``example`` after its conversation (stored ones in
        ``known``, else simulated here: deterministic, #32), or the error that stopped it."""
        from valuescope.execution.session import example_prompt

        if self.error is not None:
            return {"error": self.error}
        out: dict[str, Any] = {"system_role": self.session.system_role,
                               "batch_sensitive": self.session.caps.batch_sensitive}
        if example is not None:
            held, self.session.known = dict(self.session.conversations), dict(known or {})
            try:
                conversation = self.session.conversation(example)
                out["example"] = example_prompt(self.resolved, example, self.backend, conversation)
            except Exception as exc:  # noqa: BLE001 - reported to the driver as one line
                return {"error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, BackendError) else str(exc)}
            finally:  # the conversation is simulated again (identically) by the chunk that needs it, and stored then
                self.session.conversations, self.session.fresh = held, []
        return out

    def answer(self, chunk: list[Query], labels: list[str], known: dict[str, tuple[Message, ...]]
               ) -> tuple[str, Any, list[Any]]:
        """("ok", scores, fresh conversations) | ("error", text, fresh) | ("fatal", text, [])."""
        self.session.known.update(known)
        self.session.fresh = []
        try:
            scores = self.session.answer(chunk, labels)
        except BackendError as exc:
            return "fatal", str(exc), []
        except Exception as exc:  # noqa: BLE001 - one bad chunk is recorded as failed, as in a local run
            return "error", f"{type(exc).__name__}: {exc}", self.session.fresh
        return "ok", scores, self.session.fresh

    def stats(self) -> dict[str, Any]:
        return stats(self.backend)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def deal(chunks: Sequence[Sequence[Query]], workers: int) -> list[collections.deque[int]]:
    """Unit indices per worker (``chunks``: each unit's queries): every unit of a prefix group with the
    same worker (the one that got the group's first unit), a new group to the worker with the fewest
    queries so far; plan order kept."""
    queues: list[collections.deque[int]] = [collections.deque() for _ in range(workers)]
    load = [0] * workers
    home: dict[str, int] = {}
    for i, chunk in enumerate(chunks):
        groups = [prefix_group(q) for q in chunk]
        w = next((home[g] for g in groups if g in home), None)
        if w is None:
            w = min(range(workers), key=lambda k: (load[k], k))
        for g in groups:
            home.setdefault(g, w)
        queues[w].append(i)
        load[w] += len(chunk)
    return queues


def _merge_stats(stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Numbers summed over workers; anything else listed per worker."""
    out: dict[str, Any] = {"workers": len(stats)}
    for s in stats:
        for k, v in s.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
            else:
                out.setdefault(k, []).append(v)
    return out


class RayExecutor:
    """Answer a job on Ray actors (see the module docstring)."""

    def __init__(self, address: str | None = None, workers: int | None = None, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0, depth: int = DEPTH) -> None:
        self.address = address
        self.workers = workers
        self.cpus = cpus_per_worker
        self.gpus = gpus_per_worker
        self.depth = depth
        self.actors: list[Any] = []  # the live job's actors (tests kill one)
        self.reassigned = 0  # chunks handed to another worker after theirs died

    def _start(self, ray: Any, job: Job, n_groups: int) -> list[Any]:
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, ValueError, RuntimeError...
                where = self.address or "this machine"
                raise BackendError(f"cannot start or reach Ray at {where}: {type(exc).__name__}: {exc}") from None
        n = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus))
        n = max(1, min(n, n_groups))
        model = job.model
        if model.backend == "llamacpp" and model.n_threads is None:  # each actor uses the cores it reserved
            model = model.model_copy(update={"n_threads": max(1, int(self.cpus))})
        resolved = ray.put(job.resolved)
        cls = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0)(_Worker)
        return [cls.remote(resolved, model) for _ in range(n)]

    def execute(self, job: Job) -> None:
        from valuescope.execution.session import Session, example_query

        if job.resolved.study.administration == "sequential":
            raise SpecError("executor: ray runs independent administration only; run sequential administration "
                            "(each prompt shows the earlier answers of its chain) with executor: local")
        ray = _ray()
        self.actors = actors = self._start(ray, job, len({prefix_group(q) for q in job.pending}))
        try:
            infos = ray.get([a.info.remote() for a in actors])
            bad = next((i["error"] for i in infos if "error" in i), None)
            if bad is not None:
                raise BackendError(bad)
            # the driver's session builds no prompts: it finds stored conversations and writes the store
            driver = Session(job.resolved, job.model, _Facts(infos[0]["system_role"]), job.store)  # type: ignore[arg-type]
            shown = example_query(job.queries, driver.conversation_key)
            if shown is not None:
                key = driver.conversation_key(shown)
                stored = job.store.conversation(key, run_id=shown.run_id) if key is not None else None
                info = ray.get(actors[0].info.remote(shown, {key: stored} if stored is not None else {}))
                if "error" in info:
                    raise BackendError(info["error"])
                infos[0]["example"] = info["example"]
            driver.register = once(lambda: job.register(infos[0].get("example")))
            units = work_units(job.queries, job.pending, job.chunk_size, infos[0]["batch_sensitive"])
            self._drive(ray, job, units, actors, driver)
            stats = ray.get([a.stats.remote() for a in actors if a is not None], timeout=60)
            job.res.backend_stats = _merge_stats(stats)
        finally:
            for a in actors:
                if a is not None:
                    ray.kill(a)
            self.actors = []

    def _drive(self, ray: Any, job: Job, units: list[Unit], actors: list[Any], driver: Any) -> None:
        queues = deal([u.queries for u in units], len(actors))
        inflight: dict[Any, tuple[int, int]] = {}  # ref -> (worker, chunk)
        total, done = len(job.pending), 0

        def known(chunk: Sequence[Query]) -> dict[str, tuple[Message, ...]]:
            out = {}
            for q in chunk:
                key = driver.conversation_key(q)
                if key is not None and key not in out:
                    msgs = job.store.conversation(key, run_id=q.run_id)
                    if msgs is not None:
                        out[key] = msgs
            return out

        def fill() -> None:
            for w, actor in enumerate(actors):
                if actor is None:
                    continue
                while queues[w] and sum(1 for v in inflight.values() if v[0] == w) < self.depth:
                    if job.max_queries is not None and job.res.new >= job.max_queries:
                        return
                    ci = queues[w].popleft()
                    u = units[ci]
                    inflight[actor.answer.remote(u.queries, u.labels, known(u.queries))] = (w, ci)

        fill()
        while inflight:
            [ref], _ = ray.wait(list(inflight), num_returns=1)
            w, ci = inflight.pop(ref)
            try:
                status, payload, fresh = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the call itself broke (not the worker): a failed chunk
                status, payload, fresh = "error", str(exc).splitlines()[0], []
            except ray.exceptions.RayError as exc:  # the worker is gone: its unfinished chunks go elsewhere
                self._reassign(w, ci, inflight, queues, actors, exc)
                fill()
                continue
            if status == "fatal":
                raise BackendError(payload)
            for key, run_id, persona_id, ctx, msgs in fresh:
                if job.store.conversation(key, run_id=run_id) is None:  # a re-sent chunk may bring one again
                    job.store.write_conversation(key, run_id, persona_id, ctx, msgs)
                    job.res.conversations += 1
            u = units[ci]
            commit(driver, u.pending, payload if isinstance(payload, str) else
                   [s for s, want in zip(payload, u.wanted, strict=True) if want], job.res)
            done += len(u.pending)
            if job.progress:
                job.progress("queries", done, total)
            fill()

    def _reassign(self, w: int, ci: int, inflight: dict[Any, tuple[int, int]], queues: list[collections.deque[int]],
                  actors: list[Any], exc: BaseException) -> None:
        lost = [ci]
        for ref, (ww, c) in list(inflight.items()):
            if ww == w:  # sent to the dead worker too: it will never answer
                del inflight[ref]
                lost.append(c)
        lost = sorted(lost) + list(queues[w])
        queues[w].clear()
        actors[w] = None
        live = [k for k, a in enumerate(actors) if a is not None]
        if not live:
            raise BackendError(f"every Ray worker died (last: {type(exc).__name__}); the answers received are "
                               "stored: run again to resume")
        target = min(live, key=lambda k: (len(queues[k]), k))
        queues[target].extend(lost)
        self.reassigned += len(lost)


class _Facts:
    """What a storeless driver session needs to know of the workers' backend."""

    def __init__(self, system_role: bool) -> None:
        self.system_role = system_role
