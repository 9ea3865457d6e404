"""``python tests/fault_run.py [--kill-at commit|score] [--after N] [--delay S] [--barrier DIR] [--chunk-size N]
-- ARGS``:
the valuescope CLI (``ARGS`` as after ``valuescope``) with faults at points the caller chooses.

- ``--kill-at commit --after N``: SIGKILL this process inside the answer transaction that would take the
  answers it has committed past N, after its rows are written and before ``COMMIT`` runs (SQLite's trace
  callback sees the statement before it executes): the transaction is lost, nothing else.
- ``--kill-at score --after N``: SIGKILL at the first backend call made once N answers are committed (a
  process that dies while its model computes).
- ``--delay S``: every backend call (synthetic and llama.cpp backends) first sleeps S seconds, so that a
  short run lasts long enough to overlap with another.
- ``--barrier DIR:K``: the first backend call waits until K processes have reached it (a file each in DIR),
  so that concurrent runs really run at the same time, however slowly each started.
- ``--chunk-size N``: at most N queries per backend call, and so per answer transaction (the runner's
  ``chunk_size``, 16 by default; whole canonical batches), so that a study of a few answers is committed in
  several transactions.

Test-only: nothing here is part of valuescope."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    split = argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at", choices=("commit", "score"))
    parser.add_argument("--after", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--barrier", default=None)
    parser.add_argument("--chunk-size", type=int, default=None)
    opts = parser.parse_args(argv[:split])

    from valuescope.backends.llamacpp import LlamaCppBackend
    from valuescope.backends.synthetic import SyntheticBackend
    from valuescope.store.sqlite import Store

    committed = 0
    in_tx = 0
    barrier_passed = opts.barrier is None

    def die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def trace(sql: str) -> None:
        nonlocal committed, in_tx
        if sql.startswith("BEGIN") or sql.startswith("ROLLBACK"):
            in_tx = 0
        elif sql.startswith("INSERT OR IGNORE INTO responses"):
            in_tx += 1
        elif sql.startswith("COMMIT") and in_tx:
            if opts.kill_at == "commit" and committed + in_tx > opts.after:
                die()
            committed += in_tx
            in_tx = 0

    store_init = Store.__init__

    def traced_init(self, *args, **kwargs) -> None:
        store_init(self, *args, **kwargs)
        self.db.set_trace_callback(trace)

    Store.__init__ = traced_init  # type: ignore[method-assign]

    def wait_at_barrier() -> None:
        nonlocal barrier_passed
        folder, _, k = opts.barrier.rpartition(":")
        Path(folder, str(os.getpid())).touch()
        deadline = time.monotonic() + 600
        while len(list(Path(folder).iterdir())) < int(k):
            if time.monotonic() > deadline:
                sys.exit("fault_run: the other processes never reached the barrier")
            time.sleep(0.02)
        barrier_passed = True

    def slowed(score):
        def wrapper(self, requests):
            if not barrier_passed:
                wait_at_barrier()
            if opts.kill_at == "score" and committed >= opts.after:
                die()
            time.sleep(opts.delay)
            return score(self, requests)

        return wrapper

    for cls in (SyntheticBackend, LlamaCppBackend):
        cls.score = slowed(cls.score)  # type: ignore[method-assign]

    if opts.chunk_size is not None:  # the CLI looks run_study up in the runner module when it runs
        import functools

        from valuescope.execution import runner

        runner.run_study = functools.partial(runner.run_study, chunk_size=opts.chunk_size)

    from valuescope.cli import app

    sys.argv = ["valuescope", *argv[split + 1:]]
    app(prog_name="valuescope")


if __name__ == "__main__":
    main(sys.argv[1:])
