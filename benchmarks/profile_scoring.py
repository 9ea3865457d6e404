"""Where a query's time goes in the llama.cpp schedulers (issue 31).

    python benchmarks/profile_scoring.py --workload demo|stability [--schedulers prefix,batched] [--personas N]

For each scheduler (1 thread) it scores the workload in the runner's calls (as bench_scoring.py) under
cProfile (timed by this process's CPU time, so that the shares hold on a loaded machine) and with
llama.cpp's own counters (``llama_perf_context``: tokens evaluated; its timers are off, ``no_perf``), then
prints the shares of the process's CPU time: llama_decode (the model), tokenisation, the letter
softmax, batch filling and the rest of the Python around them. Absolute times depend on the
machine's load; the shares do not much.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workloads  # noqa: E402
from bench_scoring import build  # noqa: E402

from valuescope.backends.llamacpp import LlamaCppBackend  # noqa: E402

# (label, substrings of a profiled function's "file:function") -> its inclusive time is one share
BUCKETS = [
    ("llama_decode (model)", ("_internals.py:decode",)),
    ("tokenize", ("_internals.py:tokenize",)),
    ("letter softmax", ("letter_distribution",)),
    ("logits row read", ("_logits_row",)),
    ("KV cache seq ops", ("kv_cache_seq",)),
    ("batch filling", ("set_batch", "_fill_batch")),
]


def calls_of(reqs: list) -> list[list]:
    calls: list[list] = []
    for r in reqs:
        if calls and calls[-1][-1].group == r.group and calls[-1][-1].batch == r.batch and len(calls[-1]) < 64:
            calls[-1].append(r)
        else:
            calls.append([r])
    return calls


def profile(reqs: list, scheduler: str, top: int) -> str:
    be = LlamaCppBackend(scheduler=scheduler, n_threads=1)
    try:
        be.score(reqs[:1])
        import llama_cpp

        llama_cpp.llama_perf_context_reset(be._ctx.ctx)
        prof = cProfile.Profile(time.process_time)  # CPU time: shares hold under load
        t0, c0 = time.perf_counter(), time.process_time()
        prof.enable()
        for c in calls_of(reqs):
            be.score(c)
        prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        perf = llama_cpp.llama_perf_context(be._ctx.ctx)
        stats = pstats.Stats(prof)
        total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
        out = [f"## {scheduler}, 1 thread: {len(reqs)} queries, wall {wall:.1f} s, CPU {cpu:.1f} s, "
               f"{len(reqs) / cpu:.2f} queries/CPU-s; evaluated {be.stats['evaluated_tokens']} tokens of "
               f"{be.stats['prompt_tokens']} prompt tokens",
               f"llama_perf: prompt eval {perf.t_p_eval_ms / 1000:.2f} s for {perf.n_p_eval} tokens, "
               f"eval {perf.t_eval_ms / 1000:.2f} s for {perf.n_eval} (its timer; 0 when perf is off)",
               f"profiled CPU time {total:.2f} s; inclusive shares:"]
        for label, keys in BUCKETS:
            t = sum(v[3] for k, v in stats.stats.items()  # type: ignore[attr-defined]
                    if any(s in f"{k[0]}:{k[2]}" for s in keys) and k[2] != "<module>")
            out.append(f"  {label:24s} {t:7.2f} s  {100 * t / total:5.1f}%")
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
        body = [ln for ln in buf.getvalue().splitlines() if ln.strip()][-top - 1:]
        return "\n".join(out + ["top functions by own time:"] + body)
    finally:
        be.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=workloads.WORKLOADS, default="demo")
    ap.add_argument("--personas", type=int, default=3)
    ap.add_argument("--schedulers", default="prefix,batched")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    reqs = build(args.workload, args.personas, False)
    for s in args.schedulers.split(","):
        print(profile(reqs, s, args.top), flush=True)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
