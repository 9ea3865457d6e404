from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import STARTUP_S, embedded_gguf, free_port

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def embedded_backend():
    """One real llama.cpp backend on the embedded SmolLM2 GGUF, shared by the session."""
    from valuescope.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend()
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def hf_embedded_backend():
    """The embedded SmolLM2 GGUF read through transformers (the ``hf`` backend), loaded once per session:
    dequantising the GGUF costs about a minute on 2 cores. Its results do not depend on earlier work (each
    prefix group is evaluated from a fresh cache); a test that changes ``scheduler`` or ``batch_size``
    restores it."""
    if any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "gguf", "accelerate")):
        pytest.skip("the hf extra is not installed (torch, transformers, gguf, accelerate)")
    from valuescope.backends.hf import HFBackend

    backend = HFBackend(batch_size=4)  # path None: the embedded GGUF through transformers
    yield backend
    backend.close()


@pytest.fixture
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE} (../shared/reference beside the repo)")
    return REFERENCE


@pytest.fixture(scope="session")
def llama_server():
    """A real llama.cpp server (``llama_cpp.server``, started through valuescope's launcher so that it
    loads the model as the embedded backend does, AMX CPUs included) on the embedded GGUF on
    127.0.0.1: (base_url, gguf path)."""
    gguf = embedded_gguf()
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama-cpp-python[server] extra is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "valuescope.backends.llama_server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}/v1"
    # a deadline for a hung server, not a speed requirement: loading takes seconds on an idle machine and
    # minutes beside other loaded processes (issue 28: 180 s was tight)
    deadline = time.monotonic() + STARTUP_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer /v1/models within {STARTUP_S:.0f} s")
            time.sleep(0.5)
        yield base, gguf
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
