"""GPU check (issue 19): the vLLM path against llama.cpp, and ``vllm serve`` through the OpenAI backend.

    python benchmarks/gpu_check.py [--model PATH_OR_ID] [--tokenizer ID] [--personas 12]
                                   [--serve-personas 100] [--concurrency 1 8 64] [--out gpu_check.json]

Needs a CUDA GPU and ``pip install vllm`` (benchmarks/gpu_check.sh does both in a fresh venv). Steps:

1. **vLLM offline vs llama.cpp.** The demo study's prompts (``--personas`` WVS personas + baseline x
   MFQ-30, options permuted per persona, exactly the runner's requests) are scored by the embedded
   llama.cpp backend (CPU) and by valuescope's vLLM backend on the same model (default: the embedded
   SmolLM2 GGUF; ``--model`` may be an HF directory or id of the same weights). Printed: argmax
   agreement (share of queries whose most likely option is the same), max and mean |dp| over all
   letter probabilities, and the vLLM rate. A quantised GGUF read by two engines is expected to
   agree closely but not bit for bit; an HF fp16/bf16 model against the Q4 GGUF differs by the
   quantisation (a few hundredths).
2. **``vllm serve`` through the OpenAI-compatible backend.** The same model is served on 127.0.0.1
   and a study of ``--serve-personas`` personas (default 100: 3,030 queries) is scored through
   :class:`OpenAICompatBackend` (completions route with the model's chat template, like a real run)
   at each ``--concurrency``; printed: queries/s per concurrency, and agreement with step 1's offline
   vLLM answers on the shared queries.

Everything is written to ``--out`` (JSON). Nothing here is a test: the numbers are to be read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scoring import build_workload  # noqa: E402

from valuescope.backends.llamacpp import LlamaCppBackend, embedded_model_path  # noqa: E402
from valuescope.core.types import LetterScores, ScoreRequest  # noqa: E402


def compare(a: Sequence[LetterScores], b: Sequence[LetterScores]) -> dict[str, float]:
    """Argmax agreement and |dp| between two answer lists to the same requests (valid pairs only)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x.valid and y.valid]
    if not pairs:
        return {"n": 0, "argmax_agreement": float("nan"), "max_abs_dp": float("nan"), "mean_abs_dp": float("nan")}
    diffs = np.array([np.abs(np.array(x.probs) - np.array(y.probs)).max() for x, y in pairs])
    agree = np.mean([int(np.argmax(x.probs)) == int(np.argmax(y.probs)) for x, y in pairs])
    return {"n": len(pairs), "invalid_a": sum(not x.valid for x in a), "invalid_b": sum(not y.valid for y in b),
            "argmax_agreement": float(agree), "max_abs_dp": float(diffs.max()), "mean_abs_dp": float(diffs.mean())}


def identity(r: ScoreRequest) -> tuple:
    return (tuple((m.role, m.content) for m in r.messages), r.letters, r.answer_prefix)


def timed_score(backend, reqs: list[ScoreRequest], chunk: int = 64) -> tuple[list[LetterScores], float]:
    t0 = time.perf_counter()
    out: list[LetterScores] = []
    for i in range(0, len(reqs), chunk):
        out.extend(backend.score(reqs[i:i + chunk]))
    return out, time.perf_counter() - t0


def wait_for(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vllm serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"vllm serve did not answer {url} within {timeout_s:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="GGUF file, HF directory or id (default: the embedded SmolLM2 GGUF)")
    ap.add_argument("--tokenizer", default=None, help="tokenizer for a GGUF (e.g. HuggingFaceTB/SmolLM2-135M-Instruct)")
    ap.add_argument("--personas", type=int, default=12)
    ap.add_argument("--serve-personas", type=int, default=100)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--out", default="gpu_check.json")
    args = ap.parse_args(argv)

    from valuescope.backends.openai_compat import OpenAICompatBackend
    from valuescope.backends.vllm_engine import VLLMBackend

    model = args.model or str(embedded_model_path())
    report: dict[str, object] = {"model": model, "machine": platform.platform(), "python": sys.version.split()[0]}
    try:
        import torch
        import vllm

        report["vllm"] = vllm.__version__
        report["gpu"] = torch.cuda.get_device_name(0)
    except Exception as exc:  # noqa: BLE001 - reported, then the vLLM backend says what is missing
        report["vllm"] = f"not importable: {exc}"

    # 1. offline vLLM against llama.cpp on the demo's requests
    reqs = build_workload(args.personas)
    print(f"demo workload: {len(reqs)} queries", flush=True)
    cpu = LlamaCppBackend()
    cpu_answers, cpu_s = timed_score(cpu, reqs)
    cpu.close()
    kw = {"path": model} if model.endswith(".gguf") else {"model": model}
    if args.tokenizer:
        kw["tokenizer"] = args.tokenizer
    gpu = VLLMBackend(**kw)
    gpu.score(reqs[:8])  # warm-up: CUDA graphs, compilation
    gpu_answers, gpu_s = timed_score(gpu, reqs)
    gpu.close()
    del gpu
    offline = {**compare(cpu_answers, gpu_answers), "llamacpp_qps": len(reqs) / cpu_s, "vllm_qps": len(reqs) / gpu_s}
    report["vllm_vs_llamacpp"] = offline
    print(json.dumps(offline, indent=1), flush=True)

    # 2. vllm serve through the OpenAI-compatible backend
    cmd = ["vllm", "serve", model, "--host", "127.0.0.1", "--port", str(args.port), "--max-model-len", "2048",
           "--enable-prefix-caching", "--seed", "0", "--max-logprobs", "20"]
    if args.tokenizer:
        cmd += ["--tokenizer", args.tokenizer]
    proc = subprocess.Popen(cmd, start_new_session=True)
    base = f"http://127.0.0.1:{args.port}/v1"
    served: dict[str, object] = {}
    try:
        wait_for(f"{base}/models", proc, 900)
        big = build_workload(args.serve_personas)
        template_path = model if model.endswith(".gguf") or Path(model).is_dir() else None
        for c in args.concurrency:
            backend = OpenAICompatBackend(base_url=base, path=template_path, concurrency=c, timeout=120)
            backend.score(big[:8])
            answers, secs = timed_score(backend, big, chunk=max(64, c))
            backend.close()
            served[str(c)] = {"queries": len(big), "seconds": secs, "qps": len(big) / secs,
                              "failed": sum(a.method == "failed" for a in answers)}
            if c == args.concurrency[0]:  # the demo's queries are among these: same prompts, same answers?
                by_prompt = {identity(r): a for r, a in zip(big, answers, strict=True)}
                shared = [(a, by_prompt[identity(r)]) for r, a in zip(reqs, gpu_answers, strict=True)
                          if identity(r) in by_prompt]
                served["vs_offline_vllm"] = compare([a for a, _ in shared], [b for _, b in shared])
            print(f"vllm serve, concurrency {c}: {len(big) / secs:.1f} queries/s", flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    report["vllm_serve_openai_backend"] = served
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
