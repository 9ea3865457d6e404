"""llama-cpp-python completions that depend only on their request, never on what ran before (issue 32).

``Llama.create_completion`` (and every chat and text completion of ``llama_cpp.server``, built on
it) keeps the KV cache up to the longest common prefix with whatever the model evaluated last and
evaluates only the rest of the prompt. That rest is then evaluated in other decode calls than in a
fresh process (the tail alone instead of the whole prompt at once), llama.cpp's kernels round
differently for different batch shapes on some CPUs (measured on an AVX2 AMD EPYC; on the AVX-512
CPU where the first tests ran they happened to agree), and sampling turns a rounding difference in
one logit into another text. A generated conversation would then depend on the order of a run, on
what was scored or generated before it, on a resume, on Ray's sharding.

:func:`forget` empties the model's state so that the next completion evaluates its whole prompt
from an empty KV cache, in the same decode calls as the first completion of a fresh process does.
:func:`fresh_completions` makes every completion of every ``Llama`` in this process start that way
(for ``llama_cpp.server``, which builds and calls its ``Llama`` objects itself).

The price is the prompt's evaluation on every request: nothing is re-used across requests.
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_valuescope_fresh"
_RESET_POSITION = 6  # Llama.generate(tokens, top_k, top_p, min_p, typical_p, temp, repeat_penalty, reset, ...)


def forget(llama: Any) -> None:
    """Empty ``llama``'s state: no prefix of the next prompt is taken from an earlier evaluation."""
    llama.reset()  # n_tokens = 0: generate() finds no common prefix and evaluates the prompt whole
    llama._ctx.kv_cache_clear()  # and the KV cache holds no cell of an earlier request


def fresh_completions() -> bool:
    """From now on every ``llama_cpp.Llama.generate`` call (so every completion) that starts a new
    prompt (``reset=True``, the default, as ``create_completion`` calls it) starts from an empty
    state. Returns False when this process was already patched."""
    import llama_cpp

    original = llama_cpp.Llama.generate
    if getattr(original, _MARK, False):
        return False

    @functools.wraps(original)
    def generate(self: Any, tokens: Any, *args: Any, **kwargs: Any) -> Any:
        reset = args[_RESET_POSITION] if len(args) > _RESET_POSITION else kwargs.get("reset", True)
        if reset:
            forget(self)
        return original(self, tokens, *args, **kwargs)

    setattr(generate, _MARK, True)
    llama_cpp.Llama.generate = generate  # type: ignore[method-assign]
    return True
