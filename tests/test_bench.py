"""The scoring benchmark's parts on tiny real cases (issues 8, 20): workloads, token counts, one run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from valuescope.backends.llamacpp import LlamaCppBackend

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
    return bench.workloads.demo(2, ITEMS)


def test_demo_workload_is_a_real_study(workload):
    assert len(workload) == 3 * len(ITEMS)  # baseline + 2 personas, every item once
    for r in workload:
        assert r.shared_chars > 0 and r.group and r.letters[0] == "A" and r.batch.startswith(r.group)
        # the shared part ends where the item starts: the rest of the user message is item text
        assert len(r.messages[-1].content) > r.shared_chars


def test_sequential_workload_extends_one_prompt_item_by_item(bench):
    reqs = bench.workloads.sequential(1, ITEMS)
    assert len(reqs) == 2 * len(ITEMS)
    for a, b in zip(reqs, reqs[1:], strict=False):
        if a.messages[:-1] == b.messages[:-1] or len(b.messages) == 1 or b.messages[0] != a.messages[0]:
            continue  # the next persona starts a new conversation
        # the next prompt is this one plus the letter left as the answer and the next item
        assert b.messages[: len(a.messages)] == a.messages
        answer = b.messages[len(a.messages)]
        assert answer.role == "assistant" and answer.content[len(a.answer_prefix)] in a.letters
    # the second part (agreement items) is introduced with its own instructions
    firsts = [r.messages[-1].content for r in reqs[:len(ITEMS)]]
    assert sum("Options:" in text for text in firsts) == 2


def test_unique_tokens_count_every_shared_prefix_once(bench):
    # trie of [1 2 3], [1 2 4], [1 5], [1 2 3] (duplicate): nodes 1, 2, 3, 4, 5
    assert bench.unique_tokens([[1, 2, 3], [1, 2, 4], [1, 5], [1, 2, 3]]) == 5
    assert bench.unique_tokens([[7], [8, 9]]) == 3


def test_non_embedding_params_of_smollm2(bench):
    from valuescope.backends.llamacpp import embedded_model_path

    params = bench.non_embedding_params(embedded_model_path())
    # SmolLM2-135M: 134.5 M parameters, 49152 x 576 tied token embedding = 28.3 M
    assert params == pytest.approx(134.5e6 - 49152 * 576, rel=0.01)


def _gguf_bytes(tensors: dict[str, list[int]]) -> bytes:
    """A GGUF v3 header written by hand: a string array (as a tokenizer's), a uint32 and a string value, then
    the tensor infos (the format: docs/gguf.md of ggml)."""
    import struct

    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kv = [s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + b"".join(s(t) for t in ("a", "\u00e9b", "")),
          s("general.alignment") + struct.pack("<II", 4, 32), s("general.name") + struct.pack("<I", 8) + s("tiny")]
    infos = [s(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", 0, 0)
             for name, dims in tensors.items()]
    return b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kv)) + b"".join(kv) + b"".join(infos)


def test_gguf_tensor_table_read_from_the_header(bench, tmp_path):
    tensors = {"token_embd.weight": [8, 50], "blk.0.attn_q.weight": [8, 8], "output_norm.weight": [8],
               "output.weight": [8, 50]}
    path = tmp_path / "tiny.gguf"
    path.write_bytes(_gguf_bytes(tensors))
    assert bench.gguf_tensor_sizes(path) == {"token_embd.weight": 400, "blk.0.attn_q.weight": 64,
                                             "output_norm.weight": 8, "output.weight": 400}
    assert bench.non_embedding_params(path) == 64 + 8  # no embedding table, no output head
    path.write_bytes(_gguf_bytes(tensors)[:-5])
    with pytest.raises(ValueError, match="truncated"):
        bench.gguf_tensor_sizes(path)


def test_ceiling_arithmetic(bench):
    # 1000 tokens x 2 x 1e8 params in 2 s = 1e11 FLOP/s = half of a 200 GFLOP/s machine
    assert bench.ceiling_fraction(1000, 100_000_000, 2.0, 200.0) == pytest.approx(0.5)
    assert bench.matmul_gflops(n=256, repeats=2) > 0


def test_default_row_is_marked_and_repeats_give_the_median(bench):
    assert bench.row_config("prefix", "auto") == "auto thr, default"
    assert bench.row_config("prefix", "1") == "1 thr" and bench.row_config("batched", "auto") == "auto thr"
    assert bench.row_config("prefix", "auto", "off") == "auto thr"
    from valuescope.core.types import LetterScores

    def run(elapsed, p=0.5):
        return bench.Run("llama.cpp", "prefix", "1 thr", 10, elapsed, 5, [LetterScores((p, 1 - p), 0.0)])

    rounds = [[run(4.0)], [run(2.0)], [run(5.0)]]  # 2.5, 5 and 2 queries/s
    (mid,) = bench.median_runs(rounds)
    assert mid.elapsed_s == 4.0 and mid.note == "median of 3: 2-5/s"
    (flagged,) = bench.median_runs([[run(4.0)], [run(2.0, p=0.6)]])
    assert flagged.elapsed_s == 4.0 and flagged.note.endswith("ANSWERS DIFFER BETWEEN RUNS")


@pytest.mark.slow  # the embedded model under three schedulers
def test_rows_agree_and_shared_tokens_count_once(bench):
    # issue 28: the persona's group of the demo workload on 3 relevance items (3 prompts sharing the persona's
    # prefix; was the baseline's group too, 6 prompts, and before that 12), naive evaluation on 2 of them
    # (was 3)
    items = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY"]
    demo = bench.workloads.demo(1, items)
    workload = [r for r in demo if r.group == demo[-1].group]
    assert len(workload) == len(items)
    naive_sample = workload[:2]
    counter = LlamaCppBackend(n_threads=1)
    try:
        toks = {id(r): counter.tokens(counter.render(r)) for r in workload}
    finally:
        counter.close()
    uniq = lambda sub: bench.unique_tokens([toks[id(r)] for r in sub])  # noqa: E731
    bench.PROMPT_TOKENS.update({k: len(v) for k, v in toks.items()})
    total, unique = sum(len(t) for t in toks.values()), uniq(workload)
    assert 0 < unique < total / 2
    runs = bench.run_llamacpp(workload, naive_sample, [("naive", "1"), ("prefix", "1"), ("batched", "1")], uniq)
    by = {r.scheduler: r for r in runs}
    assert by["naive"].queries == len(naive_sample) and by["prefix"].queries == len(workload)
    for r in runs:
        assert r.qps > 0 and 0 < r.unique_tokens <= unique and r.rss_mb > 0
        assert r.prompt_tokens == sum(len(toks[i]) for i in r.request_ids)
        assert bench.max_abs_diff(r, by["naive"]) < 0.05  # on the queries both scored
    # the default scheduler is naive evaluation, bit for bit
    assert bench.max_abs_diff(by["prefix"], by["naive"]) == 0.0
    table = bench.table(runs, 10**8, 100.0, total / unique)
    assert table.count("\n") == 1 + len(runs) and "| llama.cpp | prefix | 1 thr |" in table
    # speed-ups are ratios of prompt tokens answered per second (the naive row scored a sample)
    speedup = by["prefix"].tokens_per_s / by["naive"].tokens_per_s
    assert f"| {speedup:.1f}x | {speedup:.1f}x |" in table
