"""``n_threads: auto``: the number of threads chosen by measurement while scoring (issue 20).

On CPU, llama.cpp's threads spin while they wait for each other. On an idle machine all cores are
faster than one; on a shared machine, when another process holds a core, the spinning threads wait
for it and evaluation collapses (measured 0.3-3 queries/s on 2 threads where 1 thread gives 5). No
fixed choice is right for both, so ``auto`` measures:

1. the first prefix group is evaluated with 1 thread, the second with all usable cores; each is timed
   per evaluated token (wall clock);
2. afterwards every group runs on the faster count (a moving average of the last measurements of
   each), and the other count is tried again after ``probe_every`` groups, an interval that doubles
   each time the probe loses (up to ``max_probe_every``) and resets when it wins: a machine whose
   load changes is followed, and a probe that collapses costs at most one group in 256.

Answers do not depend on the thread count: llama.cpp splits a product's output rows between the
threads, never the sum inside one dot product (tested bit for bit in tests/test_threads.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class ThreadChooser:
    """Chooses between 1 thread and ``cores`` threads by timing the work done with each.

    ``apply(n)`` sets the thread count of the evaluator. Call :meth:`begin` before a unit of work
    (a prefix group) and :meth:`end` with the tokens it evaluated after it."""

    def __init__(self, apply: Callable[[int], None], cores: int | None = None, probe_every: int = 8,
                 max_probe_every: int = 256, clock: Callable[[], float] = time.perf_counter) -> None:
        self.cores = cores if cores is not None else usable_cores()
        self.candidates = (1, self.cores) if self.cores > 1 else (1,)
        self._apply = apply
        self._clock = clock
        self.rate: dict[int, float] = {}  # seconds per evaluated token, moving average
        self.current = self.candidates[0]
        self.best = self.current
        self.probe_every = probe_every
        self._base_probe = probe_every
        self.max_probe_every = max_probe_every
        self._since_probe = 0
        self._probing = False
        self._t0 = 0.0
        self.log: list[tuple[int, float]] = []  # (threads, seconds per token) of every measured unit
        apply(self.current)

    def begin(self) -> None:
        if len(self.candidates) > 1:
            untried = [n for n in self.candidates if n not in self.rate]
            if untried:
                want, self._probing = untried[0], False
            elif self._since_probe >= self.probe_every:
                want, self._probing = next(n for n in self.candidates if n != self.best), True
            else:
                want, self._probing = self.best, False
            if want != self.current:
                self._apply(want)
                self.current = want
        self._t0 = self._clock()

    def end(self, tokens: int) -> None:
        if tokens <= 0 or len(self.candidates) == 1:
            return
        per_token = (self._clock() - self._t0) / tokens
        self.log.append((self.current, per_token))
        old = self.rate.get(self.current)
        self.rate[self.current] = per_token if old is None or self._probing else 0.5 * old + 0.5 * per_token
        if self._probing:
            self._since_probe = 0
            if self.rate[self.current] < self.rate[self.best]:
                self.best, self.probe_every = self.current, self._base_probe
            else:
                self.probe_every = min(2 * self.probe_every, self.max_probe_every)
            self._probing = False
        else:
            self._since_probe += 1
            if len(self.rate) == len(self.candidates):
                self.best = min(self.rate, key=lambda n: self.rate[n])
