#!/usr/bin/env bash
# GPU check (issue 19), on a machine with a CUDA GPU and internet access:
#   bash benchmarks/gpu_check.sh [gpu_check.py options, e.g. --tokenizer HuggingFaceTB/SmolLM2-135M-Instruct]
# Makes a fresh venv (VENV, default /tmp/valuescope-gpu), installs valuescope and vLLM into it, and runs
# benchmarks/gpu_check.py: vLLM offline vs llama.cpp letter distributions on the demo study's prompts
# (argmax agreement, max |dp|), then `vllm serve` timed through the OpenAI-compatible backend at
# concurrency 1, 8 and 64. Results: gpu_check.json (and the printed lines).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi -L || { echo "no CUDA GPU visible (nvidia-smi failed)" >&2; exit 2; }
VENV="${VENV:-/tmp/valuescope-gpu}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[vllm]"
export PATH="$VENV/bin:$PATH"
"$VENV/bin/python" benchmarks/gpu_check.py "$@"
