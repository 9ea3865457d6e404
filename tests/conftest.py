from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from unittest import mock

import pytest
from helpers import STARTUP_S, embedded_gguf, free_port

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"

# pytest-xdist (README's test command: ``-n auto --dist loadfile``): at most this many workers, however many
# cores; each loads its own models and servers, so more would cost memory and start-up for little gain.
MAX_WORKERS = 4


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: unknown when xdist is absent or disabled (-p no:xdist)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per usable core, at most ``MAX_WORKERS``."""
    from valuescope.backends.threads import usable_cores

    return min(usable_cores(), MAX_WORKERS)


def _pin_xdist_worker() -> None:
    """Give each xdist worker its own share of the CPUs (its processes, servers and Ray included inherit it).

    Without this, two workers each running llama.cpp or torch on every core oversubscribe the machine and their
    spinning threads wait for each other; pinned, ``n_threads: auto`` sees the worker's share (one core on a
    2-core machine), and timing-sensitive tests see a core that no other test uses."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < count:
        return
    index = int(worker[2:])
    os.sched_setaffinity(0, cpus[index::count])


_pin_xdist_worker()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files holding a ``slow`` test run first (stable order otherwise), so that under ``--dist loadfile`` the
    long files are not dealt last, where one worker would finish them while the other idles."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session")
def embedded_backend():
    """One real llama.cpp backend on the embedded SmolLM2 GGUF, shared by the session."""
    from valuescope.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend()
    yield backend
    backend.close()


HF_NEEDED = ("torch", "transformers", "gguf", "accelerate")


def _save_dequantised(backend, directory: Path) -> None:
    """The transformers model of a GGUF as a plain model directory (float32 safetensors, config, generation
    config, tokenizer with its chat template) that ``HFBackend(path=directory)`` loads in seconds with the same
    weights. transformers refuses ``save_pretrained`` on a model read from a GGUF, so the parts are written
    one by one; the directory appears whole or not at all (written beside it, then renamed)."""
    from safetensors.torch import save_model

    tmp = directory.with_name(directory.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)  # a conversion that died half-way in this run
    tmp.mkdir()
    save_model(backend.model, str(tmp / "model.safetensors"))  # ties lm_head to the embedding as loaded
    config = backend.model.config.to_dict()
    config.pop("quantization_config", None)  # the weights are float32 now, not GGUF blocks
    type(backend.model.config).from_dict(config).save_pretrained(tmp)
    backend.model.generation_config.save_pretrained(tmp)
    backend.tokenizer.save_pretrained(tmp)
    tmp.rename(directory)


@pytest.fixture(scope="session")
def hf_embedded_dir(tmp_path_factory) -> Path:
    """The embedded SmolLM2 GGUF read through transformers (the ``hf`` backend on the GGUF: dequantising it
    costs about a minute on 2 cores), saved once per test run as a model directory that loads in seconds.
    Under pytest-xdist the workers share it: the first to take the lock in the run's common temp folder
    converts, the others wait and load the result. The GGUF path itself is exercised here, once per run;
    tests/test_backend_hf.py compares what the directory gives with llama.cpp on the same GGUF."""
    if any(importlib.util.find_spec(m) is None for m in HF_NEEDED):
        pytest.skip("the hf extra is not installed (torch, transformers, gguf, accelerate)")
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    # xdist: each worker's basetemp is popen-gwN inside the run's folder; without it basetemp is the run's
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    directory = root / "hf-embedded-smollm2"
    with FileLock(str(root / "hf-embedded-smollm2.lock")):
        if not directory.is_dir():
            from valuescope.backends.hf import HFBackend

            with _gguf_read_once():
                backend = HFBackend(batch_size=1)  # path None: the embedded GGUF through transformers
            try:
                _save_dequantised(backend, directory)
            finally:
                backend.close()
    return directory


@contextlib.contextmanager
def _gguf_read_once():
    """transformers reads the GGUF three times (config, tokenizer, weights: a ``GGUFReader`` each) and builds
    gguf's tensor-name map once per module of the model (397 times for SmolLM2-135M): most of the ~60 s of the
    conversion (cProfile, 2026-12-05). Both are pure functions of their arguments (a read-only memory map; a
    table of names), so while the embedded GGUF is converted they are memoised: the same calls, made once."""
    import gguf

    with (mock.patch.object(gguf, "GGUFReader", functools.lru_cache(maxsize=None)(gguf.GGUFReader)),
          mock.patch.object(gguf, "get_tensor_name_map", functools.lru_cache(maxsize=None)(gguf.get_tensor_name_map))):
        yield


@pytest.fixture(scope="session")
def hf_embedded_backend(hf_embedded_dir):
    """The embedded SmolLM2 GGUF read through transformers (the ``hf`` backend), loaded once per session
    from the run's dequantised copy (``hf_embedded_dir``). Its results do not depend on earlier work (each
    prefix group is evaluated from a fresh cache); a test that changes ``scheduler`` or ``batch_size``
    restores it."""
    from valuescope.backends.hf import HFBackend

    backend = HFBackend(path=str(hf_embedded_dir), batch_size=4)
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
