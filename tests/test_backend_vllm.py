"""vLLM offline engine: runs only where vLLM and a CUDA GPU are present, skipped otherwise."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from valuescope.backends.base import BackendError
from valuescope.core.types import GenerateRequest, Message, ScoreRequest


def _gpu_reason() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (pip install vllm; needs a CUDA GPU)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    return None


def test_missing_vllm_gives_an_install_hint():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    from valuescope.backends.vllm_engine import VLLMBackend

    with pytest.raises(BackendError, match="pip install vllm"):
        VLLMBackend(model="anything")


@pytest.mark.gpu
@pytest.mark.slow
def test_vllm_scores_like_llamacpp_on_the_embedded_gguf(embedded_backend):
    reason = _gpu_reason()
    if reason:
        pytest.skip(reason)
    from valuescope.backends.vllm_engine import VLLMBackend

    backend = VLLMBackend(path=str(embedded_backend.model_path))
    labels = ("Very much like me", "Like me", "Somewhat like me", "A little like me", "Not like me",
              "Not like me at all")
    opts = "\n".join(f"({c}) {lab}" for c, lab in zip("ABCDEF", labels, strict=True))
    reqs = [ScoreRequest((Message("user", f"Options:\n{opts}\n\n{item}\nHow much is this person like you?"),),
                         tuple("ABCDEF"), "Answer: (", labels, group="g")
            for item in ("He values tradition.", "He loves adventure.", "He helps others.")]
    got = backend.score(reqs)
    want = embedded_backend.score(reqs)
    assert all(g.valid for g in got)
    diff = np.abs(np.array([g.probs for g in got]) - np.array([w.probs for w in want]))
    assert diff.max() < 0.1  # GGUF dequantised on GPU vs llama.cpp's CPU kernels
    [text] = backend.generate([GenerateRequest((Message("user", "Say hello."),), max_tokens=8)])
    assert text
    backend.close()
