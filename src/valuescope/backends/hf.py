"""Hugging Face transformers backend: a local model directory, a Hub id ``ORG/NAME`` (from the local
cache, else downloaded by transformers), or a GGUF file read through transformers (``gguf_file=``;
the weights are dequantised to float32).

Prompts are rendered with the tokenizer's own chat template, the answer prefix appended, and
scored in batched forward passes (left padding, attention mask, position ids from the mask, only
the last position's logits kept). The letter distribution is the same arithmetic as the embedded
backend: the full-vocabulary softmax summed over every token that spells a letter, renormalised.

On the embedded SmolLM2 Q4_1 GGUF the distributions agree with llama.cpp's to within a few
hundredths (dequantised float32 weights vs llama.cpp's quantised kernels; see docs/backends.md).
Needs the optional extra ``valuescope[hf]``: torch, transformers, gguf (for GGUF files) and
accelerate.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from valuescope.backends.base import BackendError
from valuescope.backends.chat_template import ChatTemplate
from valuescope.backends.llamacpp import embedded_model_path, letter_distribution
from valuescope.types import GenerateRequest, LetterScores, Message, ScoreRequest

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # a Hugging Face model id, ORG/NAME
INSTALL_HINT = 'pip install torch==2.13.0 "transformers>=4.45" "gguf>=0.10" accelerate'


class HFBackend:
    def __init__(
        self,
        *,
        path: str | None = None,
        name: str = "hf",
        batch_size: int = 16,
        n_threads: int | None = None,
        device: str | None = None,
        **_: Any,
    ) -> None:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendError(f"the hf backend needs torch and transformers: {INSTALL_HINT}") from exc
        self._torch = torch
        self.name = name
        self.batch_size = batch_size
        if n_threads:
            torch.set_num_threads(n_threads)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model_path = Path(path).expanduser() if path else embedded_model_path()
        if model_path.is_file() and model_path.suffix == ".gguf":
            src, kwargs = str(model_path.parent), {"gguf_file": model_path.name}
        elif model_path.is_dir():
            src, kwargs = str(model_path), {"local_files_only": True}
        elif path and HUB_ID.fullmatch(path):  # ORG/NAME: the local Hugging Face cache, else the Hub
            src, kwargs = path, {}
        else:
            raise BackendError(f"hf backend: {model_path} is neither a .gguf file, a model directory nor ORG/NAME")
        dtype = torch.float32 if self.device == "cpu" else "auto"
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(src, **kwargs)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=dtype, **kwargs)
        except ImportError as exc:
            raise BackendError(f"hf backend: {exc} ({INSTALL_HINT})") from exc
        except (OSError, ValueError) as exc:
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise BackendError(f"hf backend could not load {model_path}: {first}") from exc
        if not getattr(self.tokenizer, "chat_template", None):
            raise BackendError(f"{model_path}: the tokenizer has no chat template")
        # does the template keep a system message? (else personas go in the user turn)
        self.system_role = ChatTemplate(source=self.tokenizer.chat_template).system_role
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model_path = model_path
        self._letter_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}
        # hook point (issue 18, backends/hf_geometry.py): context managers entered around every score()
        # call, e.g. forward hooks that steer the residual stream while scoring (never while generating)
        self.score_hooks: list[Callable[[], contextlib.AbstractContextManager[Any]]] = []

    # ------------------------------------------------------------------ helpers

    def _render(self, messages: Sequence[Message], answer_prefix: str = "") -> str:
        text = self.tokenizer.apply_chat_template(
            [m.as_dict() for m in messages], tokenize=False, add_generation_prompt=True
        )
        return text + answer_prefix

    def render(self, req: ScoreRequest) -> str:
        """The exact prompt text scored for a request (shown in the report)."""
        return self._render(req.messages, req.answer_prefix)

    def letter_ids(self, letters: tuple[str, ...]) -> dict[str, list[int]]:
        """Every token id whose decoded text, stripped of whitespace, is one of the letters."""
        if letters not in self._letter_ids:
            wanted = set(letters)
            out: dict[str, list[int]] = {c: [] for c in letters}
            for tid in range(len(self.tokenizer)):
                text = self.tokenizer.decode([tid]).strip()
                if text in wanted:
                    out[text].append(tid)
            self._letter_ids[letters] = out
        return self._letter_ids[letters]

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        # the chat template writes any special tokens itself (HF's own advice after apply_chat_template)
        enc = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        return enc

    # ------------------------------------------------------------------ scoring

    def score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        with contextlib.ExitStack() as stack:
            for hook in self.score_hooks:
                stack.enter_context(hook())
            return self._score(requests)

    def _score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        torch = self._torch
        texts = [self.render(r) for r in requests]
        lengths = [len(self.tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: (requests[i].group, lengths[i]))
        results: list[LetterScores | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            enc = self._encode([texts[i] for i in idx])
            mask = enc["attention_mask"]
            position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                out = self.model(**enc, position_ids=position_ids, logits_to_keep=1, use_cache=False)
            last = out.logits[:, -1, :].float().cpu().numpy()
            for row, i in enumerate(idx):
                letters = requests[i].letters
                results[i] = letter_distribution(np.asarray(last[row]), self.letter_ids(letters), letters)
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        torch = self._torch
        out: list[str] = []
        for req in requests:  # one at a time: each request has its own seed and sampling settings
            enc = self._encode([self._render(req.messages)])
            torch.manual_seed(req.seed)
            sample = req.temperature > 0
            with torch.inference_mode():
                gen = self.model.generate(
                    **enc, max_new_tokens=req.max_tokens, do_sample=sample,
                    temperature=req.temperature if sample else None, top_p=None, top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new = gen[0, enc["input_ids"].shape[1]:]
            out.append(self.tokenizer.decode(new, skip_special_tokens=True).strip())
        return out

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
