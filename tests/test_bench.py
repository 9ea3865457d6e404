"""The scoring benchmark's parts on a tiny real case: 2 WVS personas + baseline x 4 MFQ items."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from valuescope.backends.llamacpp import LlamaCppBackend, embedded_model_path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scoring.py"
ITEMS = ["EMOTIONALLY", "TREATED", "COMPASSION", "FAIRLY"]  # two relevance, two agreement items


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_scoring", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_scoring"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def workload(bench):
    return bench.build_workload(2, ITEMS)


def test_workload_is_a_real_study(bench, workload):
    assert len(workload) == 3 * len(ITEMS)  # baseline + 2 personas, every item once
    assert bench.persona_count(workload) == 3
    assert len(bench.first_personas(workload, 1)) == len(ITEMS)
    for r in workload:
        assert r.shared_chars > 0 and r.group and r.letters[0] == "A"
        # the shared part ends where the item starts: the rest of the user message is item text
        assert len(r.messages[-1].content) > r.shared_chars


def test_non_embedding_params_of_smollm2(bench):
    params = bench.non_embedding_params(embedded_model_path())
    # SmolLM2-135M: 134.5 M parameters, 49152 x 576 tied token embedding = 28.3 M
    assert params == pytest.approx(134.5e6 - 49152 * 576, rel=0.01)


def test_ceiling_arithmetic(bench):
    # 1000 tokens x 2 x 1e8 params in 2 s = 1e11 FLOP/s = half of a 200 GFLOP/s machine
    assert bench.ceiling_fraction(1000, 100_000_000, 2.0, 200.0) == pytest.approx(0.5)
    assert bench.matmul_gflops(n=256, repeats=2) > 0


def test_schedulers_agree_and_shared_tokens_count_once(bench, workload):
    counter = LlamaCppBackend(n_threads=1)
    try:
        total, unique = bench.token_counts(counter, workload)
        assert 0 < unique < total
        runs = bench.run_llamacpp(workload, bench.first_personas(workload, 1), ["naive", "prefix", "batched"],
                                  threads=1, uniq=lambda sub: bench.token_counts(counter, sub)[1])
    finally:
        counter.close()
    by = {r.scheduler: r for r in runs}
    assert by["naive"].queries == len(ITEMS) and by["prefix"].queries == len(workload)
    for r in runs:
        assert r.qps > 0 and 0 < r.unique_tokens <= unique
        assert bench.ceiling_fraction(r.unique_tokens, 10**8, r.elapsed_s, 100.0) > 0
        assert bench.max_abs_diff(r.answers, by["prefix"].answers) < 0.05
    table = bench.table(runs, 10**8, 100.0)
    assert table.count("\n") == 1 + len(runs) and "| llama.cpp | prefix |" in table
