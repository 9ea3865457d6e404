"""Hugging Face transformers backend: a local model directory, a Hub id ``ORG/NAME`` (from the local
cache, else downloaded by transformers), or a GGUF file read through transformers (``gguf_file=``;
the weights are dequantised to float32).

Prompts are rendered with the tokenizer's own chat template and the answer prefix appended. The
letter distribution is the same arithmetic as the embedded backend: the full-vocabulary softmax
summed over every token that spells a letter, renormalised. Schedulers (``scheduler=``):

``prefix`` (default)
    Each prompt is split where its item starts (``ScoreRequest.shared_chars``, at a token boundary
    both the prefix and the whole prompt agree on); requests are grouped by that token prefix (and
    by the runner's canonical ``batch``). The prefix is evaluated once (batch 1, its key/value cache
    kept while the next group shares it), then all of the group's item suffixes in one packed
    forward pass: the cache repeated per row, each suffix left-padded *after* the prefix, an attention
    mask that lets each suffix see the prefix and itself only, position ids continuing the prefix's.
    Every prefix and suffix token goes through every decoder layer exactly once per pass (forward
    hooks on the layers see the prefix pass, then the suffix pass; pad positions carry mask 0).
``naive``
    Every prompt evaluated whole, in left-padded batches (position ids from the mask).

``dtype``: ``float32`` (the default on CPU), ``bfloat16`` or ``float16``; ``auto`` takes the
checkpoint's (on CUDA the default).

On the embedded SmolLM2 Q4_1 GGUF the distributions agree with llama.cpp's to within a few
hundredths (dequantised float32 weights vs llama.cpp's quantised kernels; see docs/backends.md).
Needs the optional extra ``valuescope[hf]``: torch, transformers, gguf (for GGUF files) and
accelerate.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from valuescope.backends.base import BackendError
from valuescope.backends.chat_template import ChatTemplate
from valuescope.backends.letters import TokenLevel
from valuescope.backends.llamacpp import embedded_model_path
from valuescope.backends.threads import ThreadChooser
from valuescope.core.types import GenerateRequest, LetterScores, Message, ScoreRequest

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # a Hugging Face model id, ORG/NAME
INSTALL_HINT = 'pip install torch==2.13.0 "transformers>=4.45" "gguf>=0.10" accelerate'


class HFBackend(TokenLevel):
    hooks = True  # core.capabilities.Capabilities: forward hooks (steering) and hidden states

    def __init__(
        self,
        *,
        path: str | None = None,
        name: str = "hf",
        batch_size: int = 16,
        n_threads: int | str | None = None,
        device: str | None = None,
        scheduler: str | None = None,
        dtype: str | None = None,
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
        scheduler = scheduler or "prefix"
        if scheduler not in ("prefix", "naive"):
            raise BackendError(f"hf backend: unknown scheduler {scheduler!r} (prefix or naive)")
        self.scheduler = scheduler
        # the prefix cache packs a group's suffixes into one padded pass: the runner keeps batches whole
        self.batch_sensitive = scheduler == "prefix"
        if isinstance(n_threads, int) and n_threads > 0:  # None: torch's default (the physical cores)
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
        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}
        if dtype is not None and dtype not in dtypes:
            raise BackendError(f"hf backend: unknown dtype {dtype!r} ({', '.join(dtypes)})")
        dtype = dtypes[dtype] if dtype else (torch.float32 if self.device == "cpu" else "auto")
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
        self._prefix: tuple[tuple[int, ...], Any] | None = None  # (token ids, key/value cache) held
        # transformers 5 renamed the forward argument and output ``past_key_values`` to ``cache``
        self._cache_kw = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        # generation always on the threads set here, never on a count the scoring measured, so that
        # a text depends only on its request (issue 32)
        self.generate_threads = torch.get_num_threads()
        # n_threads "auto": 1 thread or all cores, whichever evaluates faster (backends/threads.py)
        self.threads_chooser = ThreadChooser(torch.set_num_threads) if n_threads == "auto" else None
        self.stats = {"prompt_tokens": 0, "evaluated_tokens": 0, "queries": 0}

    # ------------------------------------------------------------------ helpers

    def render_messages(self, messages: Sequence[Message]) -> str:
        return self.tokenizer.apply_chat_template([m.as_dict() for m in messages], tokenize=False,
                                                  add_generation_prompt=True)

    def token_text(self, tid: int) -> str:
        return self.tokenizer.decode([tid])

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        # the chat template writes any special tokens itself (HF's own advice after apply_chat_template)
        enc = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        return enc

    # ------------------------------------------------------------------ scoring

    def tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        ids = [self.tokens(self.render(r)) for r in requests]
        self.stats["prompt_tokens"] += sum(len(x) for x in ids)
        self.stats["queries"] += len(requests)
        if self.score_hooks:  # steering hooks (hf_geometry): every forward pass one whole prompt, as they expect
            with contextlib.ExitStack() as stack:
                for hook in self.score_hooks:
                    stack.enter_context(hook())
                return self._score_naive(requests, ids)
        if self.scheduler == "naive":
            return self._score_naive(requests, ids)
        results: list[LetterScores | None] = [None] * len(requests)
        groups: dict[tuple[tuple[int, ...], str], list[int]] = {}
        for i, r in enumerate(requests):
            cut = self.item_start(r, ids[i])
            groups.setdefault((tuple(ids[i][:cut]), r.batch), []).append(i)
        for (prefix, _), idxs in groups.items():
            for start in range(0, len(idxs), self.batch_size):
                chunk = idxs[start:start + self.batch_size]
                chooser, before = self.threads_chooser, self.stats["evaluated_tokens"]
                if chooser:
                    chooser.begin()
                logits = self._score_suffixes(prefix, [ids[i][len(prefix):] for i in chunk])
                if chooser:
                    chooser.end(self.stats["evaluated_tokens"] - before)
                for row, i in enumerate(chunk):
                    results[i] = self.letter_scores(requests[i], logits[row])
        return [r for r in results if r is not None]

    def _prefix_cache(self, prefix: tuple[int, ...]) -> Any:
        """The key/value cache of ``prefix`` (batch 1), evaluated once and kept while it is reused."""
        torch = self._torch
        if self._prefix is None or self._prefix[0] != prefix:
            self._prefix = None
            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True,
                                 logits_to_keep=1)
            self._prefix = (prefix, getattr(out, self._cache_kw))
            self.stats["evaluated_tokens"] += len(prefix)
        return self._prefix[1]

    def _score_suffixes(self, prefix: tuple[int, ...], suffixes: list[list[int]]) -> np.ndarray:
        """Last-position logits of prefix + each suffix, the suffixes in one packed forward pass."""
        torch = self._torch
        n, p, width = len(suffixes), len(prefix), max(len(s) for s in suffixes)
        if p == 0:  # nothing shared: plain left-padded batch
            return self._forward_padded(suffixes)
        cache = copy.deepcopy(self._prefix_cache(prefix))
        cache.batch_repeat_interleave(n)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.ones((n, p + width), dtype=torch.long)
        positions = torch.full((n, width), p, dtype=torch.long)
        for row, suf in enumerate(suffixes):
            gap = width - len(suf)  # left padding between the prefix and this suffix
            input_ids[row, gap:] = torch.tensor(suf)
            mask[row, p:p + gap] = 0
            positions[row, gap:] = torch.arange(p, p + len(suf))
        with torch.inference_mode():
            out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=positions.to(self.device), use_cache=True, logits_to_keep=1,
                             **{self._cache_kw: cache})
        self.stats["evaluated_tokens"] += sum(len(s) for s in suffixes)
        return out.logits[:, -1, :].float().cpu().numpy()

    def _forward_padded(self, seqs: list[list[int]]) -> np.ndarray:
        torch = self._torch
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            input_ids[row, width - len(s):] = torch.tensor(s)
            mask[row, width - len(s):] = 1
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=position_ids.to(self.device), logits_to_keep=1, use_cache=False)
        self.stats["evaluated_tokens"] += sum(len(s) for s in seqs)
        return out.logits[:, -1, :].float().cpu().numpy()

    def _score_naive(self, requests: Sequence[ScoreRequest], ids: list[list[int]]) -> list[LetterScores]:
        """Every prompt whole, in left-padded batches of similar length within a group."""
        order = sorted(range(len(ids)), key=lambda i: (requests[i].group, len(ids[i])))
        results: list[LetterScores | None] = [None] * len(ids)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            logits = self._forward_padded([ids[i] for i in idx])
            for row, i in enumerate(idx):
                results[i] = self.letter_scores(requests[i], logits[row])
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        torch = self._torch
        out: list[str] = []
        scoring_threads = torch.get_num_threads()
        torch.set_num_threads(self.generate_threads)
        try:
            for req in requests:  # one at a time, from a fresh cache: each request has its own seed and settings
                out.append(self._generate_one(req))
        finally:
            torch.set_num_threads(scoring_threads)
        return out

    def _generate_one(self, req: GenerateRequest) -> str:
        torch = self._torch
        enc = self._encode([self.render_messages(req.messages)])
        torch.manual_seed(req.seed)
        sample = req.temperature > 0
        with torch.inference_mode():
            gen = self.model.generate(
                **enc, max_new_tokens=req.max_tokens, do_sample=sample,
                temperature=req.temperature if sample else None, top_p=None, top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = gen[0, enc["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()

    def close(self) -> None:
        self._prefix = None
        self.model = None  # type: ignore[assignment]
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
