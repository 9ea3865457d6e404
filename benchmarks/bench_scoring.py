"""Scoring benchmark: how close valuescope's scorers come to what this machine allows (issue 8).

    python benchmarks/bench_scoring.py [--personas 20] [--naive-personas 3] [--quick] [--threads N]

In one process it

1. measures the machine's fp32 matrix-product rate with numpy (best of several 2048 x 2048 @
   2048 x 2048 products, 2 n^3 FLOP each);
2. counts the model's non-embedding parameters from the GGUF (every tensor but the token embedding
   ``token_embd.weight`` and, for untied models, the output head ``output.weight``: a prompt token
   costs about 2 FLOP per such parameter; the head runs only on the last position);
3. builds the workload of a real study without touching a store: ``--personas`` WVS personas (seed
   111) plus the baseline x MFQ-30, options permuted per persona, shared-prefix layout;
4. scores it with each backend / scheduler and prints queries/s, the speed-up over naive on the same
   backend, and the fraction of the FLOP ceiling reached::

       ceiling fraction = unique tokens x 2 x non-embedding params / elapsed / measured matmul rate

   where the unique tokens are the tokens that must be evaluated at all: per prefix group the
   shared prefix once, plus every item suffix.

Naive scoring (every prompt from scratch) of the whole workload takes minutes, so naive runs on the
first ``--naive-personas`` personas only and its rate is per query; every ratio is a ratio of rates.
Answers of every scheduler are compared with the ``prefix`` scheduler's on the queries both scored.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from valuescope.backends.llamacpp import LlamaCppBackend, embedded_model_path
from valuescope.plan import prefix_group
from valuescope.runner import _Session, plan_model, resolve
from valuescope.spec import InstrumentRef, ModelSpec, PopulationSpec, Study, WVSSource
from valuescope.types import LetterScores, ScoreRequest

# ---------------------------------------------------------------------------------------------- machine


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 GFLOP/s of an n x n @ n x n numpy product (2 n^3 FLOP)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def non_embedding_params(path: Path) -> int:
    """Parameters a prompt token is multiplied through: every GGUF tensor except the token
    embedding (a lookup, no FLOPs) and an untied output head (applied to the last position only).

    Read with the ``gguf`` package where it is installed (the ``hf`` extra); otherwise from
    llama.cpp itself: all parameters minus the embedding table, and minus an output head of the
    same size when the GGUF has one (untied)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return _non_embedding_params_llamacpp(path)
    reader = GGUFReader(str(path))
    skip = {"token_embd.weight", "output.weight"}
    return int(sum(int(t.n_elements) for t in reader.tensors if t.name not in skip))


def _non_embedding_params_llamacpp(path: Path) -> int:
    import llama_cpp

    from valuescope.backends.llama_load import load_llama

    llm = load_llama(str(path), vocab_only=False, n_ctx=256, verbose=False)
    try:
        model = llm._model.model
        total = int(llama_cpp.llama_model_n_params(model))
        embd = int(llama_cpp.llama_model_n_embd(model)) * int(llm.n_vocab())
        has_output = llama_cpp.llama_model_get_tensor(model, b"output.weight") if hasattr(
            llama_cpp, "llama_model_get_tensor") else None
        return total - embd - (embd if has_output else 0)
    finally:
        llm.close()


def optional_missing(*modules: str) -> str | None:
    """The first optional module that is not installed, or None."""
    import importlib.util

    for mod in modules:
        if importlib.util.find_spec(mod) is None:
            return mod
    return None


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = f", load average {os.getloadavg()[0]:.1f} at start" if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}{load}"


# ---------------------------------------------------------------------------------------------- workload

# --quick: 4 relevance and 4 agreement items of MFQ-30
QUICK_ITEMS = ("EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT", "COMPASSION", "FAIRLY", "HISTORY", "KIDRESPECT")


def build_workload(n_personas: int = 20, items: Sequence[str] | None = None,
                   system_role: bool = True) -> list[ScoreRequest]:
    """The score requests of a real study (n WVS personas + baseline x MFQ-30), in plan order.

    Built with the runner's own planner and session, so the prompts are exactly a run's; the
    contexts are empty, so no conversation is simulated and no store is needed."""
    study = Study(
        name="bench",
        instruments=[InstrumentRef(name="mfq30", items=list(items) if items else None)],
        population=PopulationSpec(baseline=True, sources=[WVSSource(n=n_personas, seeds=[111])]),
    )
    resolved = resolve(study)
    model = ModelSpec()
    queries = plan_model(resolved, model)
    session = _Session(resolved, model, backend=_RoleOnly(system_role), store=None)  # type: ignore[arg-type]
    reqs = [session.request(q) for q in queries]
    assert all(r.group == prefix_group(q) for r, q in zip(reqs, queries, strict=True))
    return reqs


@dataclass
class _RoleOnly:
    """What ``_Session`` asks of a backend to build requests: whether the template has a system role."""

    system_role: bool


def persona_key(r: ScoreRequest) -> tuple[str, ...]:
    """Everything before the questionnaire's user message: the persona (none for the baseline)."""
    return tuple(m.content for m in r.messages[:-1])


def persona_count(reqs: Sequence[ScoreRequest]) -> int:
    return len({persona_key(r) for r in reqs})


def first_personas(reqs: Sequence[ScoreRequest], n: int) -> list[ScoreRequest]:
    """The requests of the first ``n`` personas (plan order keeps a persona's queries together)."""
    seen: list[tuple[str, ...]] = []
    out = []
    for r in reqs:
        key = persona_key(r)
        if key not in seen:
            seen.append(key)
        if len(seen) > n:
            break
        out.append(r)
    return out


def token_counts(backend: LlamaCppBackend, reqs: Sequence[ScoreRequest]) -> tuple[int, int]:
    """(total prompt tokens, unique tokens): unique = per prefix group the canonical prefix once,
    plus every item suffix: the tokens any scorer must evaluate."""
    total = 0
    prefixes: set[tuple[int, ...]] = set()
    suffix = 0
    for r in reqs:
        toks = backend.tokens(backend.render(r))
        cut = backend.split_points(r, toks)[1]
        total += len(toks)
        prefixes.add(tuple(toks[:cut]))
        suffix += len(toks) - cut
    return total, sum(len(p) for p in prefixes) + suffix


def ceiling_fraction(unique_tokens: int, params: int, elapsed_s: float, gflops: float) -> float:
    """Share of the machine's measured matmul rate that the useful work reached."""
    return unique_tokens * 2.0 * params / elapsed_s / (gflops * 1e9)


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    backend: str
    scheduler: str
    queries: int
    elapsed_s: float
    unique_tokens: int  # of the queries this run scored
    answers: list[LetterScores] = field(default_factory=list)
    note: str = ""

    @property
    def qps(self) -> float:
        return self.queries / self.elapsed_s


def timed(label: tuple[str, str], score: Callable[[list[ScoreRequest]], list[LetterScores]],
          reqs: list[ScoreRequest], unique: int, chunk: int = 64, note: str = "") -> Run:
    """Score in runner-sized chunks (the runner sends whole prefix groups, 64 queries at most)."""
    t0 = time.perf_counter()
    out: list[LetterScores] = []
    for i in range(0, len(reqs), chunk):
        out.extend(score(reqs[i:i + chunk]))
    run = Run(label[0], label[1], len(reqs), time.perf_counter() - t0, unique, out, note)
    print(f"  {label[0]} {label[1]}: {run.queries} queries in {run.elapsed_s:.1f} s", flush=True)
    return run


def max_abs_diff(a: Sequence[LetterScores], b: Sequence[LetterScores]) -> float:
    n = min(len(a), len(b))
    if n == 0:
        return float("nan")
    return float(max(np.max(np.abs(np.array(x.probs) - np.array(y.probs))) for x, y in zip(a[:n], b[:n],
                                                                                             strict=True)))


def run_llamacpp(reqs: list[ScoreRequest], naive_reqs: list[ScoreRequest], schedulers: Sequence[str],
                 threads: int | None, uniq: Callable[[list[ScoreRequest]], int],
                 extra_buffers: str = "auto") -> list[Run]:
    runs = []
    for sched in schedulers:
        be = LlamaCppBackend(scheduler=sched, n_threads=threads, extra_buffers=extra_buffers)
        try:
            work = naive_reqs if sched == "naive" else reqs
            note = f"first {persona_count(work)} personas" if work is not reqs else ""
            be.score(work[:2])  # warm-up (letter ids, thread pool); not timed
            runs.append(timed(("llama.cpp", sched), be.score, work, uniq(work), note=note))
        finally:
            be.close()
    return runs


def compare_extra_buffers(reqs: list[ScoreRequest], threads: int | None,
                          uniq: Callable[[list[ScoreRequest]], int], rounds: int = 3) -> list[Run]:
    """The prefix scheduler with llama.cpp's extra buffer types on and off, alternated ``rounds``
    times so that load from other processes hits both alike; the best round of each is kept."""
    from valuescope.backends.llama_load import system_info

    print(f"llama.cpp system info: {system_info().strip()}")
    best: dict[str, Run] = {}
    for _ in range(rounds):
        for setting in ("on", "off"):
            run = run_llamacpp(reqs, reqs, ["prefix"], threads, uniq, setting)[0]
            run.scheduler = f"prefix, extra buffers {setting}"
            if setting not in best or run.elapsed_s < best[setting].elapsed_s:
                best[setting] = run
    return [best["on"], best["off"]]


def run_hf(reqs: list[ScoreRequest], naive_reqs: list[ScoreRequest], threads: int | None,
           uniq: Callable[[list[ScoreRequest]], int]) -> list[Run]:
    missing = optional_missing("torch", "transformers", "gguf")
    if missing:
        print(f"# transformers rows skipped: the optional package {missing!r} is not installed "
              "(pip install 'valuescope[hf]'; torch==2.13.0 for the CPU build)")
        return []
    from valuescope.backends.hf import HFBackend

    be = HFBackend(n_threads=threads)
    try:
        be.score(naive_reqs[:2])
        # hf.py has no KV sharing: every prompt is evaluated whole (padded batches), i.e. naive
        return [timed(("transformers", "naive"), be.score, naive_reqs, uniq(naive_reqs),
                      note=f"first {persona_count(naive_reqs)} personas, batches of {be.batch_size}")]
    finally:
        be.close()


# ---------------------------------------------------------------------------------------------- report


def table(runs: Sequence[Run], params: int, gflops: float) -> str:
    naive = {r.backend: r.qps for r in runs if r.scheduler == "naive"}
    ref = next((r for r in runs if r.backend == "llama.cpp" and r.scheduler == "prefix"), None)
    lines = ["| backend | scheduler | queries | queries/s | speed-up vs naive | unique tok/s | FLOP ceiling |"
             " max abs diff vs prefix |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        speed = f"{r.qps / naive[r.backend]:.1f}x" if r.backend in naive else "n/a"
        frac = ceiling_fraction(r.unique_tokens, params, r.elapsed_s, gflops)
        diff = "—" if ref is None or r is ref else f"{max_abs_diff(r.answers, ref.answers):.4f}"
        q = f"{r.queries}" + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.backend} | {r.scheduler} | {q} | {r.qps:.1f} | {speed} | "
                     f"{r.unique_tokens / r.elapsed_s:.0f} | {100 * frac:.0f}% | {diff} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--personas", type=int, default=20, help="WVS personas (plus the baseline)")
    ap.add_argument("--naive-personas", type=int, default=3, help="personas scored naively (from scratch)")
    ap.add_argument("--quick", action="store_true", help="4 personas, 1 naive, 8 items: a smoke run")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both backends (default: each backend's own default)")
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers backend")
    ap.add_argument("--extra-buffers", choices=["auto", "on", "off", "compare"], default="auto",
                    help="llama.cpp extra buffer types; 'compare' times the prefix scheduler with them on and off")
    args = ap.parse_args(argv)
    items = None
    if args.quick:
        args.personas, args.naive_personas = min(args.personas, 4), 1
        items = QUICK_ITEMS
    threads = args.threads

    path = embedded_model_path()
    print(f"machine: {machine_line()}")
    gflops = matmul_gflops()
    params = non_embedding_params(path)
    print(f"numpy fp32 matmul: {gflops:.0f} GFLOP/s; model {path.name}: {params / 1e6:.1f} M non-embedding "
          f"parameters = {2 * params / 1e9:.3f} GFLOP per prompt token; ceiling "
          f"{gflops * 1e9 / (2 * params):.0f} prompt tokens/s")

    reqs = build_workload(args.personas, items)
    naive_reqs = first_personas(reqs, args.naive_personas)
    counter = LlamaCppBackend(n_threads=1)
    try:
        total, unique = token_counts(counter, reqs)

        def uniq(sub: list[ScoreRequest]) -> int:
            return token_counts(counter, sub)[1]

        print(f"workload: {persona_count(reqs)} personas (baseline included) x {len(reqs) // persona_count(reqs)}"
              f" queries = {len(reqs)} queries; {total} prompt tokens, {unique} unique ({total / unique:.1f}x"
              f" shared); naive on the first {persona_count(naive_reqs)} personas ({len(naive_reqs)} queries)")
        if args.extra_buffers == "compare":
            runs = compare_extra_buffers(reqs, threads, uniq)
        else:
            runs = run_llamacpp(reqs, naive_reqs, ["naive", "sequential", "prefix", "batched"], threads, uniq,
                                args.extra_buffers)
        if not args.no_hf and args.extra_buffers != "compare":
            runs += run_hf(reqs, naive_reqs, threads, uniq)
    finally:
        counter.close()
    print()
    print(table(runs, params, gflops))
    if hasattr(os, "getloadavg"):
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (other processes share these cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
