"""Scoring benchmark: how close valuescope's scorers come to what this machine allows (issues 8, 20).

    python benchmarks/bench_scoring.py --workload demo|stability|sequential [--personas N] [--quick]

In one process it

1. measures the machine's fp32 matrix-product rate with numpy (best of several 2048 x 2048 @
   2048 x 2048 products, 2 n^3 FLOP each);
2. counts the model's non-embedding parameters from the GGUF (every tensor but the token embedding
   ``token_embd.weight`` and, for untied models, the output head ``output.weight``: a prompt token
   costs about 2 FLOP per such parameter; the head runs only on the last position);
3. builds the workload of a real study without a results store (benchmarks/workloads.py) and counts
   its prompt tokens and its *unique* tokens: the nodes of the token trie of all prompts, i.e. what a
   scorer that evaluates every shared prefix once must evaluate at least. Their ratio is the
   **sharing factor**, the most that reusing prefixes can save on one backend;
4. scores it with each backend / scheduler / thread count and prints one row each: queries/s, the
   speed-up over **naive llama.cpp** (every prompt from scratch, one at a time, 1 thread: how peer
   tools evaluate), the speed-up over naive on the same backend and which fraction of the sharing
   factor that is, the fraction of the fp32 FLOP ceiling::

       ceiling fraction = unique tokens x 2 x non-embedding params / elapsed / measured matmul rate

   the largest difference of any option probability from naive evaluation on the same backend (on
   the queries both scored; bf16 rows: from float32 on the same scheduler), and the process's peak
   resident memory so far.

Naive scoring of a whole workload takes minutes, so naive rows score ``--naive-queries`` queries
spaced evenly through the workload; every speed-up is a ratio of prompt tokens answered per second
(so a sample of shorter or longer prompts does not bias it). Rows run in the order printed, in one
process.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workloads  # noqa: E402
from gguf_tensors import gguf_tensor_sizes  # noqa: E402

from valuescope.backends.llamacpp import DEFAULT_SCHEDULER, LlamaCppBackend, embedded_model_path  # noqa: E402
from valuescope.core.types import LetterScores, ScoreRequest  # noqa: E402

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
    Read from the GGUF's tensor table (``gguf_tensors``: the header only, no ``gguf`` package)."""
    skip = {"token_embd.weight", "output.weight"}
    return sum(n for name, n in gguf_tensor_sizes(path).items() if name not in skip)


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
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, load average {load():.1f}"


def load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def plan_rss_mb(preset: str = "inertia") -> tuple[int, float]:
    """(queries, peak RSS in MB) of a fresh process that plans a whole preset and builds every score
    request of it (no model, no store): the memory a run of that size needs before any model.

    Read from /proc/self/status (VmHWM: reset by exec); Linux's ru_maxrss would carry over the
    parent's peak into the child."""
    code = (
        "import resource, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import workloads\n"
        "from valuescope.study.presets import load_preset\n"
        "from valuescope.execution.session import Session, plan_model, resolve\n"
        "r = resolve(load_preset(sys.argv[2]))\n"
        "m = r.study.models[0]\n"
        "qs = plan_model(r, m)\n"
        "s = Session(r, m, backend=workloads._RoleOnly(True), store=None)\n"
        "n = sum(len(s.request(q).messages[-1].content) > 0 for q in qs)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "print(len(qs), int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), preset],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1]) / 1024


# ---------------------------------------------------------------------------------------------- tokens


def unique_tokens(token_lists: Sequence[Sequence[int]]) -> int:
    """Nodes of the token trie of all prompts: every shared prefix counted once."""
    seqs = sorted({tuple(t) for t in token_lists})
    total = 0
    prev: tuple[int, ...] = ()
    for s in seqs:
        n = 0
        while n < min(len(s), len(prev)) and s[n] == prev[n]:
            n += 1
        total += len(s) - n
        prev = s
    return total


def ceiling_fraction(unique: int, params: int, elapsed_s: float, gflops: float) -> float:
    """Share of the machine's measured matmul rate that the useful work reached."""
    return unique * 2.0 * params / elapsed_s / (gflops * 1e9)


# ---------------------------------------------------------------------------------------------- runs

PROMPT_TOKENS: dict[int, int] = {}  # id(request) -> its prompt tokens (filled by main)


@dataclass
class Run:
    backend: str
    scheduler: str
    config: str  # threads, dtype
    queries: int
    elapsed_s: float
    unique_tokens: int  # of the queries this run scored
    answers: list[LetterScores] = field(default_factory=list)
    note: str = ""
    rss_mb: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time (all its threads, spinning included)
    prompt_tokens: int = 0  # of the queries this run scored
    request_ids: list[int] = field(default_factory=list)  # id() of each request scored, in order

    @property
    def tokens_per_s(self) -> float:
        """Prompt tokens answered per second: the rate ratios compare (a naive row scores a sample)."""
        return self.prompt_tokens / self.elapsed_s

    @property
    def qps(self) -> float:
        return self.queries / self.elapsed_s

    @property
    def label(self) -> str:
        return f"{self.backend} {self.scheduler} {self.config}"


def timed(backend: str, scheduler: str, config: str, score: Callable[[list[ScoreRequest]], list[LetterScores]],
          reqs: list[ScoreRequest], unique: int, note: str = "") -> Run:
    """Score in the runner's calls: whole canonical batches (16 queries), one call each."""
    calls: list[list[ScoreRequest]] = []
    for r in reqs:
        if calls and calls[-1][-1].group == r.group and calls[-1][-1].batch == r.batch and len(calls[-1]) < 64:
            calls[-1].append(r)
        else:
            calls.append([r])
    t0, c0 = time.perf_counter(), time.process_time()
    out: list[LetterScores] = []
    for c in calls:
        out.extend(score(c))
    run = Run(backend, scheduler, config, len(reqs), time.perf_counter() - t0, unique, out, note, peak_rss_mb(),
              time.process_time() - c0, sum(PROMPT_TOKENS.get(id(r), 0) for r in reqs), [id(r) for r in reqs])
    print(f"  {run.label}: {run.queries} queries in {run.elapsed_s:.1f} s ({run.qps:.2f}/s), load {load():.1f}",
          flush=True)
    return run


def max_abs_diff(a: Run, b: Run) -> float:
    """The largest difference of any option probability between two runs, on the requests both scored."""
    theirs = dict(zip(b.request_ids, b.answers, strict=True))
    pairs = [(x, theirs[i]) for i, x in zip(a.request_ids, a.answers, strict=True) if i in theirs]
    if not pairs:
        return float("nan")
    return float(max(np.max(np.abs(np.array(x.probs) - np.array(y.probs))) for x, y in pairs))


# (scheduler, threads): 1 thread, all cores, or measured ("auto"); the first row is the reference
LLAMA_ROWS = [("naive", "1"), ("sequential", "1"), ("prefix", "1"), ("batched", "1"), ("prefix", "all"),
              ("prefix", "auto")]
# (scheduler, threads, dtype)
HF_ROWS = [("naive", "1", "float32"), ("prefix", "1", "float32"), ("prefix", "all", "float32"),
           ("prefix", "1", "bfloat16")]


def _threads(spec: str) -> int | str:
    from valuescope.backends.threads import usable_cores

    return spec if spec == "auto" else usable_cores() if spec == "all" else int(spec)


def _note(run: Run, chooser: object, work: list[ScoreRequest], reqs: list[ScoreRequest]) -> None:
    if work is not reqs:
        run.note = f"{len(work)} of {len(reqs)}, evenly spaced"
    log = getattr(chooser, "log", None)
    if log:
        used = [n for n, _ in log]
        run.note = f"{used.count(1)} units on 1 thread, {len(used) - used.count(1)} on {getattr(chooser, 'cores', '?')}"


def row_config(sched: str, threads: str, extra_buffers: str = "auto") -> str:
    """A llama.cpp row's config column; the configuration a model block that sets none of scheduler,
    n_threads and extra_buffers gets is marked ``default``."""
    default = sched == DEFAULT_SCHEDULER and threads == "auto" and extra_buffers == "auto"
    return f"{_threads(threads)} thr" + (", default" if default else "")


def run_llamacpp(reqs: list[ScoreRequest], naive_reqs: list[ScoreRequest], rows: Sequence[tuple[str, str]],
                 uniq: Callable[[list[ScoreRequest]], int], extra_buffers: str = "auto") -> list[Run]:
    runs = []
    for sched, threads in rows:
        be = LlamaCppBackend(scheduler=sched, n_threads=_threads(threads), extra_buffers=extra_buffers)
        try:
            work = naive_reqs if sched == "naive" else reqs
            be.score(work[:1])  # warm-up (letter ids, thread pool); not timed
            run = timed("llama.cpp", sched, row_config(sched, threads, extra_buffers), be.score, work, uniq(work))
            _note(run, getattr(be, "threads_chooser", None), work, reqs)
            runs.append(run)
        finally:
            be.close()
    return runs


def median_runs(rounds: Sequence[Sequence[Run]]) -> list[Run]:
    """Row by row, the run of median rate among repeated rounds of the same rows (the lower middle one
    for an even count), its note giving the spread; rounds whose answers differ are flagged."""
    out = []
    for same_row in zip(*rounds, strict=True):
        ranked = sorted(same_row, key=lambda r: r.qps)
        mid = ranked[(len(ranked) - 1) // 2]
        if len(ranked) > 1:
            spread = f"median of {len(ranked)}: {ranked[0].qps:.3g}-{ranked[-1].qps:.3g}/s"
            if any([a.probs for a in r.answers] != [a.probs for a in same_row[0].answers] for r in same_row):
                spread += ", ANSWERS DIFFER BETWEEN RUNS"
            mid.note = f"{mid.note}; {spread}" if mid.note else spread
        out.append(mid)
    return out


def compare_extra_buffers(reqs: list[ScoreRequest], threads: str, uniq: Callable[[list[ScoreRequest]], int],
                          rounds: int = 3) -> list[Run]:
    """The prefix scheduler with llama.cpp's extra buffer types on and off, alternated ``rounds``
    times so that load from other processes hits both alike; the best round of each is kept."""
    from valuescope.backends.llama_load import system_info

    print(f"llama.cpp system info: {system_info().strip()}")
    best: dict[str, Run] = {}
    for _ in range(rounds):
        for setting in ("on", "off"):
            run = run_llamacpp(reqs, reqs, [("prefix", threads)], uniq, setting)[0]
            run.scheduler = f"prefix, extra buffers {setting}"
            if setting not in best or run.elapsed_s < best[setting].elapsed_s:
                best[setting] = run
    return [best["on"], best["off"]]


def run_hf(reqs: list[ScoreRequest], naive_reqs: list[ScoreRequest], rows: Sequence[tuple[str, str, str]],
           uniq: Callable[[list[ScoreRequest]], int]) -> list[Run]:
    """One transformers backend per dtype (loading dequantises the GGUF: slow), rows switch its scheduler
    and thread count."""
    missing = optional_missing("torch", "transformers", "gguf")
    if missing:
        print(f"# transformers rows skipped: the optional package {missing!r} is not installed "
              "(pip install 'valuescope[hf]'; torch==2.13.0 for the CPU build)")
        return []
    import torch

    from valuescope.backends.base import BackendError
    from valuescope.backends.hf import HFBackend
    from valuescope.backends.threads import ThreadChooser

    runs = []
    for dtype in dict.fromkeys(d for _, _, d in rows):
        try:
            be = HFBackend(dtype=dtype)
        except BackendError as exc:
            print(f"# transformers {dtype} rows skipped: {exc}")
            continue
        try:
            for sched, threads, d in rows:
                if d != dtype:
                    continue
                be.scheduler, be._prefix = sched, None
                n = _threads(threads)
                be.threads_chooser = ThreadChooser(torch.set_num_threads) if n == "auto" else None
                if n != "auto":
                    torch.set_num_threads(int(n))
                work = naive_reqs if sched == "naive" else reqs
                be.score(work[:1])
                run = timed("transformers", sched, f"{dtype}, {n} thr", be.score, work, uniq(work))
                _note(run, be.threads_chooser, work, reqs)
                runs.append(run)
        finally:
            be.close()
    return runs


# ---------------------------------------------------------------------------------------------- report


def table(runs: Sequence[Run], params: int, gflops: float, sharing: float) -> str:
    naive = {r.backend: r for r in runs if r.scheduler == "naive"}
    base = naive.get("llama.cpp")
    lines = ["| backend | scheduler | config | queries | queries/s | queries/CPU-s | vs naive llama.cpp |"
             " vs naive same backend | of sharing factor | FLOP ceiling | max diff | peak RSS |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        # speed-ups compare prompt tokens answered per second: a naive row scores an evenly spaced
        # sample, whose prompts need not have the workload's average length
        vs_base = f"{r.tokens_per_s / base.tokens_per_s:.1f}x" if base else "n/a"
        same = naive.get(r.backend)
        vs_same = f"{r.tokens_per_s / same.tokens_per_s:.1f}x" if same else "n/a"
        of_sharing = (f"{100 * r.tokens_per_s / same.tokens_per_s / sharing:.0f}%" if same and r is not same
                      else "—")
        frac = ceiling_fraction(r.unique_tokens, params, r.elapsed_s, gflops)
        if r.config.startswith("bfloat16"):  # agreement with float32 on the same scheduler
            ref = next((x for x in runs if x.backend == r.backend and x.scheduler == r.scheduler
                        and x.config.startswith("float32")), None)
            diff = f"{max_abs_diff(r, ref):.4f} vs fp32" if ref else "n/a"
        else:
            diff = "—" if same is None or r is same else f"{max_abs_diff(r, same):.4f}"
        q = f"{r.queries}" + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.backend} | {r.scheduler} | {r.config} | {q} | {r.qps:.3g} | {r.queries / r.cpu_s:.3g} | "
                     f"{vs_base} | {vs_same} | "
                     f"{of_sharing} | {100 * frac:.0f}% | {diff} | {r.rss_mb:.0f} MB |")
    return "\n".join(lines)


def build(workload: str, personas: int, quick: bool) -> list[ScoreRequest]:
    if workload == "demo":
        return workloads.demo(personas, workloads.QUICK_MFQ if quick else None)
    if workload == "sequential":
        return workloads.sequential(personas, workloads.QUICK_MFQ if quick else None)
    gen = LlamaCppBackend(n_threads=1)  # the model measured simulates the conversations (not timed)
    try:
        return workloads.stability(gen, personas, workloads.QUICK_PVQ if quick else None)
    finally:
        gen.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=workloads.WORKLOADS, default="demo")
    ap.add_argument("--personas", type=int, default=3, help="personas besides the baseline")
    ap.add_argument("--naive-queries", type=int, default=24, help="queries scored naively (from scratch)")
    ap.add_argument("--quick", action="store_true", help="8 items, 1 persona, 4 naive queries: a smoke run")
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers rows")
    ap.add_argument("--hf-rows", default="", help="comma-separated transformers rows sched:threads:dtype "
                    "(default: all)")
    ap.add_argument("--rows", default="", help="comma-separated llama.cpp rows sched:threads (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="run the llama.cpp rows this many times (interleaved) "
                    "and report each row's median run with the spread")
    ap.add_argument("--extra-buffers", choices=["auto", "on", "off", "compare"], default="auto",
                    help="llama.cpp extra buffer types; 'compare' times the prefix scheduler with them on and off")
    args = ap.parse_args(argv)
    if args.quick:
        args.personas, args.naive_queries = min(args.personas, 1), min(args.naive_queries, 4)

    path = embedded_model_path()
    print(f"machine: {machine_line()}")
    gflops = matmul_gflops()
    params = non_embedding_params(path)
    print(f"numpy fp32 matmul: {gflops:.0f} GFLOP/s; model {path.name}: {params / 1e6:.1f} M non-embedding "
          f"parameters = {2 * params / 1e9:.3f} GFLOP per prompt token; ceiling "
          f"{gflops * 1e9 / (2 * params):.0f} prompt tokens/s")
    reqs = build(args.workload, args.personas, args.quick)
    naive_reqs = reqs[:: max(1, len(reqs) // args.naive_queries)][: args.naive_queries]  # evenly spaced
    counter = LlamaCppBackend(n_threads=1)
    try:
        toks = {id(r): counter.tokens(counter.render(r)) for r in reqs}
    finally:
        counter.close()
    PROMPT_TOKENS.update({k: len(v) for k, v in toks.items()})

    def uniq(sub: list[ScoreRequest]) -> int:
        return unique_tokens([toks[id(r)] for r in sub])

    total = sum(len(t) for t in toks.values())
    unique = uniq(reqs)
    sharing = total / unique
    print(f"workload {args.workload}: {len(reqs)} queries, {total} prompt tokens ({total / len(reqs):.0f} per query),"
          f" {unique} unique ({unique / len(reqs):.0f} per query): sharing factor {sharing:.1f}x; naive rows on the"
          f" {len(naive_reqs)} evenly spaced queries")
    rows = [tuple(x.split(":")) for x in args.rows.split(",")] if args.rows else LLAMA_ROWS
    if args.extra_buffers == "compare":
        runs = compare_extra_buffers(reqs, "1", uniq)
    else:
        runs = median_runs([run_llamacpp(reqs, naive_reqs, rows, uniq, args.extra_buffers)  # type: ignore[arg-type]
                            for _ in range(max(1, args.repeat))])
    if not args.no_hf and args.extra_buffers != "compare":
        hf_rows = [tuple(x.split(":")) for x in args.hf_rows.split(",")] if args.hf_rows else HF_ROWS
        runs += run_hf(reqs, naive_reqs, hf_rows, uniq)  # type: ignore[arg-type]
    print()
    print(table(runs, params, gflops, sharing))
    best = max(runs, key=lambda r: r.qps)
    n, mb = plan_rss_mb("inertia")
    print(f"\nfastest: {best.label}, {best.qps:.1f} queries/s; the inertia preset ({n:,} queries) would take "
          f"{n / best.qps / 60:.0f} min at this rate; load average at the end: {load():.1f}")
    print(f"planning the inertia preset ({n:,} queries) and building every request: peak RSS {mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
