"""Issue 20: ``n_threads: auto`` chooses between 1 thread and all cores by measurement; answers do not
depend on the thread count."""

from __future__ import annotations

import numpy as np
import pytest

from valuescope.backends.threads import ThreadChooser


class FakeClock:
    """Time advances by the cost of the work at the current thread count (no real timing)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _run(costs, groups: int, chooser: ThreadChooser, clock: FakeClock, tokens: int = 100) -> list[int]:
    used = []
    for g in range(groups):
        chooser.begin()
        clock.t += costs(chooser.current, g) * tokens
        chooser.end(tokens)
        used.append(chooser.current)
    return used


def test_keeps_the_faster_count_and_follows_a_change_of_load():
    clock = FakeClock()
    applied: list[int] = []
    chooser = ThreadChooser(applied.append, cores=2, probe_every=4, max_probe_every=16, clock=clock)
    # idle machine for 40 groups (2 threads twice as fast), then another process takes a core and
    # 2 spinning threads collapse to 10x slower than 1
    def costs(n, g):
        return (0.01 if n == 1 else 0.005) if g < 40 else (0.01 if n == 1 else 0.1)

    used = _run(costs, 200, chooser, clock)
    assert used[:2] == [1, 2]  # each count measured once
    assert used[2:40].count(2) >= 32  # then the faster one, 1 thread re-tried now and then
    assert used[40:42] == [2, 1]  # one slow group noticed, then switched
    late = used[60:]
    assert late.count(1) / len(late) > 0.9  # probes of 2 threads back off to one in 16
    assert set(applied) == {1, 2}


def test_one_core_means_one_thread():
    applied: list[int] = []
    chooser = ThreadChooser(applied.append, cores=1)
    chooser.begin()
    chooser.end(10)
    assert chooser.candidates == (1,) and applied == [1]


@pytest.mark.slow  # two model loads, 2 spinning threads (slow on a loaded machine)
def test_thread_count_does_not_change_answers():
    from test_backend_llamacpp import ITEMS, _req

    from valuescope.backends.llamacpp import LlamaCppBackend

    reqs = [_req(i, (2, 0, 5, 1, 4, 3)) for i in ITEMS[:2]]
    out = {}
    for n in (1, 2):  # (2 spinning threads are slow on a loaded machine: few prompts)
        backend = LlamaCppBackend(n_threads=n)
        try:
            for sched in ("prefix", "batched"):
                backend.scheduler = sched
                out[n, sched] = np.array([r.probs for r in backend.score(reqs)])
        finally:
            backend.close()
    for sched in ("prefix", "batched"):
        assert np.array_equal(out[1, sched], out[2, sched])  # bit for bit
