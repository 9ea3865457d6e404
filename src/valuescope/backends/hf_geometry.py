"""Inside a transformers model: residual-stream states per persona, and steering along an axis.

Used with the ``hf`` backend only (:class:`valuescope.backends.hf.HFBackend`); nothing here changes
how that backend scores unless a :class:`Steering` is attached to its ``score_hooks``.

Layers are numbered as transformers' ``output_hidden_states`` numbers them: state ``l`` (1..n_layers-1)
is the residual stream after ``l`` decoder blocks, i.e. the output of block ``l - 1``. The last state
is left out: transformers applies the final norm to it, so it is not the residual stream.

Recording (:func:`record_states`): one forward pass per prefix text, batch of one (a state never
depends on what else was batched or already stored), the state of the prefix's last token at each
chosen layer, as float32.

Steering (:class:`Steering`): a forward hook on decoder block ``l - 1`` rewrites its output, at every
token position, while the backend scores (never while it generates conversations):

* ``add``: ``h <- h + alpha * c`` where ``c`` is the contrast vector (baseline state minus the persona
  mean), so ``alpha = 1`` moves the average persona's last-token state onto the baseline's;
* ``cap``: ``h <- h + max(0, tau - h.u) * u`` with ``u = c / |c|``: the projection on the assistant
  axis is floored at ``tau`` (Lu et al. 2026 cap the projection so it cannot fall below a threshold
  taken from ordinary assistant use; see docs/geometry.md).

Both are applied in that order when both are given, at every position (``positions="all"``) or only at
the last position of each forward pass, the one whose next-token distribution is read as the answer
(``positions="answer"``; with left padding that is the last column of every row).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from valuescope.backends.base import BackendError
from valuescope.core.types import Message


def decoder_layers(model: Any) -> Any:
    """The model's list of decoder blocks (Llama/Qwen/Mistral ``model.layers``, GPT-2 ``transformer.h``,
    GPT-NeoX ``gpt_neox.layers``)."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    raise BackendError(f"geometry: cannot find the decoder blocks of {type(model).__name__}")


def n_states(backend: Any) -> int:
    """Number of decoder blocks: usable layers are 1..n-1."""
    return len(decoder_layers(backend.model))


def auto_layers(n_layers: int) -> list[int]:
    """Four layers spread over depth: about 1/4, 1/2, 3/4 of the way and the last block before the final
    norm (SmolLM2-135M, 30 blocks: 8, 15, 22, 29)."""
    picks = [round(n_layers * f) for f in (0.25, 0.5, 0.75)] + [n_layers - 1]
    return sorted({min(max(1, p), n_layers - 1) for p in picks})


def check_layers(layers: Sequence[int], n_layers: int) -> list[int]:
    bad = [x for x in layers if not 1 <= x <= n_layers - 1]
    if bad:
        from valuescope.study.spec import SpecError

        raise SpecError(f"geometry: layer(s) {bad} out of range: this model has states 1..{n_layers - 1} "
                        f"({n_layers} decoder blocks; the last state is after the final norm)")
    return list(layers)


def prefix_text(backend: Any, messages: Sequence[Message]) -> str:
    """The rendered persona + conversation prefix: the text every scoring prompt of this persona and
    context starts with, up to and including the header of the questionnaire's user turn.

    Found as the common start of two renders that differ only in the user turn's content, so it
    holds for any chat template (including one that adds a default system prompt for the baseline).
    """
    msgs = [m.as_dict() for m in messages]
    a, b = (backend.tokenizer.apply_chat_template(msgs + [{"role": "user", "content": x}], tokenize=False,
                                                  add_generation_prompt=True) for x in ("Q", "Z"))
    n = 0
    for ca, cb in zip(a, b, strict=False):
        if ca != cb:
            break
        n += 1
    if n == 0:
        raise BackendError("geometry: the chat template renders no common prefix")
    return a[:n]


def record_states(backend: Any, texts: Sequence[str], layers: Sequence[int]) -> tuple[np.ndarray, list[int]]:
    """Residual-stream states at the last token of each text: ``(len(texts), len(layers), d)`` float32,
    and each text's token count. One text per forward pass (batch of one, no padding)."""
    torch = backend._torch
    out = []
    n_tokens = []
    for text in texts:
        enc = backend._encode([text])
        with torch.inference_mode():
            res = backend.model(**enc, output_hidden_states=True, use_cache=False, logits_to_keep=1)
        hs = res.hidden_states
        out.append(np.stack([hs[layer][0, -1, :].float().cpu().numpy() for layer in layers]))
        n_tokens.append(int(enc["input_ids"].shape[1]))
    d = int(backend.model.config.hidden_size)
    arr = np.stack(out).astype(np.float32) if out else np.zeros((0, len(layers), d), np.float32)
    return arr, n_tokens


def token_projections(backend: Any, texts: Sequence[str], layer: int, unit: np.ndarray,
                      positions: str = "all") -> np.ndarray:
    """Projections on ``unit`` of the state at ``layer`` of every token of every text but the first (the
    first position is an attention sink with an outlying norm in most models), or with ``positions="answer"``
    of each text's last token only: the distribution a cap quantile is taken from. One text per pass."""
    torch = backend._torch
    u = np.asarray(unit, dtype=np.float64)
    out = []
    for text in texts:
        enc = backend._encode([text])
        with torch.inference_mode():
            res = backend.model(**enc, output_hidden_states=True, use_cache=False, logits_to_keep=1)
        h = res.hidden_states[layer][0, -1:, :] if positions == "answer" else res.hidden_states[layer][0, 1:, :]
        out.append(h.double().cpu().numpy() @ u)
    return np.concatenate(out) if out else np.zeros(0)


class Steering:
    """A forward hook on one decoder block that adds ``add * contrast`` and/or floors the projection on
    ``contrast / |contrast|`` at ``cap``. Use as ``backend.score_hooks.append(steering)`` (entered around
    every ``score`` call) or ``with steering(): ...``. ``calls`` counts the hooked forward passes."""

    def __init__(self, backend: Any, layer: int, contrast: np.ndarray, *, add: float | None = 0.0,
                 cap: float | None = None, positions: str = "all") -> None:
        n = n_states(backend)
        check_layers([layer], n)
        c = np.asarray(contrast, dtype=np.float64)
        norm = float(np.linalg.norm(c))
        if not np.isfinite(norm) or norm == 0.0:
            raise BackendError("steering: the contrast vector is zero or not finite")
        torch = backend._torch
        dtype = next(backend.model.parameters()).dtype
        self.block = decoder_layers(backend.model)[layer - 1]
        self.layer = layer
        self.contrast = torch.tensor(c, dtype=dtype, device=backend.device)
        self.unit = torch.tensor(c / norm, dtype=dtype, device=backend.device)
        self.add = add
        self.cap = cap
        self.positions = positions  # "all", or "answer": the last position of each forward pass only
        self.calls = 0
        self.capped_tokens = 0  # positions whose projection was raised to the floor
        self.tokens = 0

    def _edit(self, h: Any) -> Any:
        if self.positions == "answer" and h.dim() == 3:
            h = h.clone()
            h[:, -1:, :] = self._steer(h[:, -1:, :])
            return h
        return self._steer(h)

    def _steer(self, h: Any) -> Any:
        if self.add is not None:
            h = h + self.add * self.contrast
        if self.cap is not None:
            proj = h @ self.unit
            lift = (self.cap - proj).clamp(min=0.0)
            self.capped_tokens += int((lift > 0).sum())
            h = h + lift.unsqueeze(-1) * self.unit
        self.tokens += int(h.shape[0] * h.shape[1]) if h.dim() == 3 else 0
        return h

    def _hook(self, module: Any, args: Any, output: Any) -> Any:
        self.calls += 1
        if isinstance(output, tuple):
            return (self._edit(output[0]), *output[1:])
        return self._edit(output)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[Steering]:
        handle = self.block.register_forward_hook(self._hook)
        try:
            yield self
        finally:
            handle.remove()
