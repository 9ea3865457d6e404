"""Pipeline benchmark: everything that is not the model, at the size of the full inertia study.

    python benchmarks/bench_pipeline.py [--scale 1.0] [--out DIR]

Runs the ``inertia`` preset (200 WVS personas x 3 persona-set seeds + baseline x MFQ-30 + PVQ-RR = 53,489
queries) on ``backend: synthetic`` (a known-truth model that costs almost nothing) through the real
runner and SQLite store, then loads the run (tidy table, per-persona scores, the metrics table with
bootstrap CIs and permutation tests, the Cohen's d grid) and writes the HTML report, timing each stage.
The numbers are the cost of valuescope itself: planning, prompt building, store writes, analysis, report.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="scale the preset's population (1.0 = 53,489 queries)")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: a temporary one)")
    args = ap.parse_args(argv)

    from valuescope.analysis.tables import load_run
    from valuescope.execution.runner import run_study
    from valuescope.output.report import write_report
    from valuescope.output.report.data import from_tables
    from valuescope.store.sqlite import Store
    from valuescope.study import presets
    from valuescope.study.spec import ModelSpec

    out = args.out or Path(tempfile.mkdtemp(prefix="vs-bench-"))
    study = presets.adapt(presets.load_preset("inertia"), scale=args.scale, output=str(out),
                          model=ModelSpec(name="synthetic", backend="synthetic",
                                          synthetic={"persona_sd": 1.0, "query_sd": 0.3, "item_sd": 0.5,
                                                     "effects": {"religious_denomination=Orthodox":
                                                                 {"Tradition": 0.5}}}))
    times: dict[str, tuple[float, float]] = {}
    load0 = os.getloadavg()[0]

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    start = (time.perf_counter(), cpu())
    mark = start

    def stage(name: str) -> None:
        nonlocal mark
        now = (time.perf_counter(), cpu())
        times[name] = (now[0] - mark[0], now[1] - mark[1])
        mark = now

    res = run_study(study, chunk_size=16)[0]
    stage("plan + run + store")
    with Store(out) as store:
        tables = load_run(store, res.run_id)
    stage("load + tidy + scores + metrics + effects")
    write_report([from_tables(tables)], out / "report")
    stage("report")
    times["total"] = (time.perf_counter() - start[0], cpu() - start[1])
    print(f"{res.planned} queries ({res.new} new), {tables.counts['personas']} personas; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print("| stage | wall s | CPU s |\n|---|---:|---:|")
    for k, (w, c) in times.items():
        print(f"| {k} | {w:.1f} | {c:.1f} |")
    return {k: w for k, (w, _) in times.items()}


if __name__ == "__main__":
    main()
