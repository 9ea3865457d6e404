"""vLLM offline engine, for GPU users.

``LLM(model=..., enable_prefix_caching=True)``: queries of one persona share every prompt token
but the item's few dozen, and the automatic prefix cache evaluates that shared prefix once.
Scoring asks for one generated token with its top logprobs,
``SamplingParams(max_tokens=1, temperature=0, logprobs=20)``, and reads
``RequestOutput.outputs[0].logprobs[0]`` (a ``{token_id: Logprob}`` dict; ``Logprob`` has
``logprob`` and ``decoded_token``). ``prompt_logprobs`` is deliberately not used: it makes vLLM
recompute the prompt and bypasses the prefix cache.

Prompts are rendered with the tokenizer's chat template plus the answer prefix and passed as
token ids (``{"prompt_token_ids": [...]}``) so no second BOS is added. The top-20 tokens are
summed per letter and renormalised (:func:`valuescope.backends.letters.scores_from_logprobs`).

vLLM is optional (``pip install vllm``, CUDA GPU); without it this backend raises BackendError.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from valuescope.backends.base import BackendError
from valuescope.backends.letters import scores_from_logprobs
from valuescope.core.types import GenerateRequest, LetterScores, Message, ScoreRequest

TOP_LOGPROBS = 20  # vLLM's default max_logprobs


class VLLMBackend:
    def __init__(
        self,
        *,
        name: str = "vllm",
        model: str | None = None,
        path: str | None = None,
        n_ctx: int = 2048,
        tokenizer: str | None = None,  # for a GGUF: the base model's tokenizer (vLLM's advice)
        **_: Any,
    ) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise BackendError(
                "the vllm backend needs vLLM and a CUDA GPU: pip install vllm "
                f"(import failed: {exc})"
            ) from exc
        target = model or path
        if not target:
            raise BackendError("the vllm backend needs 'model' (an HF model id or directory) or 'path'")
        if path and Path(path).expanduser().suffix != ".gguf" and not Path(path).expanduser().exists():
            raise BackendError(f"vllm backend: {path} does not exist")
        self.name = name
        self._SamplingParams = SamplingParams
        try:
            extra = {"tokenizer": tokenizer} if tokenizer else {}
            self.llm = LLM(model=str(target), enable_prefix_caching=True, max_model_len=n_ctx, seed=0, **extra)
        except Exception as exc:  # vLLM raises many kinds (ValueError, RuntimeError, OSError)
            raise BackendError(f"vLLM could not load {target}: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()

    def _prompt(self, messages: Sequence[Message], answer_prefix: str = "") -> dict[str, list[int]]:
        text = self.tokenizer.apply_chat_template(
            [m.as_dict() for m in messages], tokenize=False, add_generation_prompt=True
        )
        ids = self.tokenizer(text + answer_prefix, add_special_tokens=False).input_ids
        return {"prompt_token_ids": list(ids)}

    def score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        if not requests:
            return []
        # one batch, grouped so that queries sharing a prefix are scheduled together
        order = sorted(range(len(requests)), key=lambda i: requests[i].group)
        params = self._SamplingParams(max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS)
        prompts = [self._prompt(requests[i].messages, requests[i].answer_prefix) for i in order]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results: list[LetterScores | None] = [None] * len(requests)
        for i, out in zip(order, outputs, strict=True):
            req = requests[i]
            steps = out.outputs[0].logprobs if out.outputs else None
            if not steps:
                results[i] = LetterScores(tuple([float("nan")] * len(req.letters)), float("nan"),
                                          valid=False, error="vLLM returned no logprobs")
                continue
            pairs = [
                (lp.decoded_token if lp.decoded_token is not None else self.tokenizer.decode([tid]), lp.logprob)
                for tid, lp in steps[0].items()
            ]
            results[i] = scores_from_logprobs(pairs, req.letters)
        return [r for r in results if r is not None]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        if not requests:
            return []
        prompts = [self._prompt(r.messages) for r in requests]
        params = [self._SamplingParams(max_tokens=r.max_tokens, temperature=r.temperature, seed=r.seed)
                  for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [o.outputs[0].text.strip() if o.outputs else "" for o in outputs]

    def close(self) -> None:
        self.llm = None  # type: ignore[assignment]
