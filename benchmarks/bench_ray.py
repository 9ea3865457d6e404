"""Ray benchmark (issue 19): the demo study run locally and on a local Ray cluster with 1, 2, ... workers.

    python benchmarks/bench_ray.py [--personas 12] [--items N] [--workers 1 2] [--out DIR]

Each configuration runs the same study into a fresh store, from the model load to the last commit
(``RunResult.elapsed_s``); Ray's own start (``ray.init``) is timed apart, since a cluster is started
once for many studies. Printed: queries/s per configuration, the ratio to the local run, and whether
every answer is bit-identical to the local run's. The numbers are for this machine and its load at
the time: read the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from valuescope.design.instruments import load_instrument
from valuescope.execution import runner
from valuescope.execution.executor_ray import RayExecutor
from valuescope.study.spec import study_from_dict


def study(out: Path, personas: int, items: int | None):
    ids = [it.id for it in load_instrument(name="mfq30").items]
    return study_from_dict({
        "name": "demo", "output": str(out), "report": False,
        "instruments": [{"name": "mfq30", "items": ids[:items] if items else None}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": personas, "seeds": [111]}]},
    })


def rows(out: Path) -> dict[str, tuple]:
    con = sqlite3.connect(out / "valuescope.sqlite")
    try:
        return {r[0]: r[1:] for r in con.execute("SELECT key, probs, outside_mass, valid, method FROM responses")}
    finally:
        con.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--personas", type=int, default=12)
    ap.add_argument("--items", type=int, default=None, help="first N MFQ-30 items (default: all 30)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads per backend (local and each worker)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import ray

    base = Path(args.out or tempfile.mkdtemp(prefix="bench-ray-"))
    shutil.rmtree(base, ignore_errors=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)

    def one(name: str, **kw) -> tuple[float, int]:
        s = study(base / name, args.personas, args.items)
        s = s.model_copy(update={"models": [s.models[0].model_copy(update={"n_threads": args.threads})]})
        [res] = runner.run_study(s, **kw)
        assert res.new == res.planned and res.failed == 0, res
        print(f"  {name}: {res.planned} queries in {res.elapsed_s:.1f} s = {res.planned / res.elapsed_s:.2f} q/s",
              flush=True)
        return res.elapsed_s, res.planned

    local_s, n = one("local")
    t0 = time.perf_counter()
    ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0
    print(f"  ray.init: {init_s:.1f} s", flush=True)
    table = [("local", local_s, True)]
    for w in args.workers:
        secs, _ = one(f"ray-{w}", executor=RayExecutor(workers=w))
        table.append((f"ray, {w} worker{'s' if w > 1 else ''}", secs, rows(base / f"ray-{w}") == rows(base / "local")))
    ray.shutdown()
    print(f"\n{n} queries ({args.personas} personas + baseline), {args.threads} llama.cpp thread(s) per backend; "
          f"ray.init {init_s:.1f} s not included")
    print("| run | seconds | queries/s | time vs local | identical answers |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, secs, same in table:
        print(f"| {name} | {secs:.1f} | {n / secs:.2f} | {secs / local_s:.2f} | {'yes' if same else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
