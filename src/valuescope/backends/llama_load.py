"""Loading a GGUF with llama.cpp so that it works on every x86 CPU, AMX included.

On Intel CPUs with AMX (Sapphire Rapids and newer Xeons) llama.cpp repacks the weights into its
"AMX" extra buffer type and multiplies through ``ggml_backend_amx_mul_mat``, which segfaults in
``llama_decode`` (upstream ggml-org/llama.cpp issue 20824; stanfordnlp/dspy PR 10079 saw the same
crash on Sapphire Rapids CI runners). The model parameter ``use_extra_bufts = False`` (the
``--no-repack`` of llama.cpp's own tools) keeps the weights in ordinary CPU buffers and avoids it.
``llama_cpp.Llama()`` does not expose that field, so :func:`load_llama` sets it on the parameter
struct that ``llama_model_default_params()`` returns while the model loads.

The setting ``extra_buffers`` of a model block:

``auto`` (default)
    off where llama.cpp reports ``AMX_INT8 = 1`` in its system info, llama.cpp's default (on)
    elsewhere, so that no CPU without AMX can get slower. On an AVX-512 CPU without AMX the two
    settings differed by less than the run-to-run noise (docs/performance.md, "AMX and extra
    buffer types").
``off``
    never use extra buffer types (always safe; what ``auto`` picks on AMX CPUs).
``on``
    llama.cpp's default, for users who know their CPU's AMX path works.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import Any, Literal

ExtraBuffers = Literal["auto", "on", "off"]
EXTRA_BUFFER_SETTINGS: tuple[str, ...] = ("auto", "on", "off")

_AMX = re.compile(r"\bAMX_INT8\s*=\s*1\b")
_patch_lock = threading.Lock()


def system_info() -> str:
    """llama.cpp's own report of the CPU features it was built for and found (``AMX_INT8 = 1`` ...)."""
    import llama_cpp

    raw = llama_cpp.llama_print_system_info()
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)


def reports_amx(info: str) -> bool:
    return bool(_AMX.search(info))


def use_extra_buffers(setting: str = "auto", info: str | None = None) -> bool:
    """Whether to let llama.cpp use its extra (repacked) buffer types. ``info`` is llama.cpp's
    system-info line; None reads it from the installed llama.cpp (tests inject one)."""
    if setting not in EXTRA_BUFFER_SETTINGS:
        raise ValueError(f"extra_buffers must be one of {', '.join(EXTRA_BUFFER_SETTINGS)}, got {setting!r}")
    if setting != "auto":
        return setting == "on"
    return not reports_amx(system_info() if info is None else info)


@contextlib.contextmanager
def model_params_patch(extra_buffers: bool) -> Iterator[None]:
    """While active, ``llama_model_default_params()`` (as ``llama_cpp.Llama`` calls it) returns
    parameters with ``use_extra_bufts`` set as asked. Only model loading happens inside it."""
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def patched() -> Any:
        params = original()
        params.use_extra_bufts = extra_buffers
        return params

    with _patch_lock:
        lib.llama_model_default_params = patched
        try:
            yield
        finally:
            lib.llama_model_default_params = original


def load_llama(model_path: str, *, extra_buffers: str = "auto", info: str | None = None, **kwargs: Any) -> Any:
    """``llama_cpp.Llama(model_path, **kwargs)`` with the extra-buffer setting applied.

    The resulting ``Llama.model_params.use_extra_bufts`` records what was used."""
    import llama_cpp

    with model_params_patch(use_extra_buffers(extra_buffers, info)):
        return llama_cpp.Llama(model_path=model_path, **kwargs)


def patch_globally(extra_buffers: str = "auto", info: str | None = None) -> bool:
    """Apply the setting to every model this process loads from now on (for ``llama_cpp.server``,
    which builds its ``Llama`` objects itself). Returns the value of ``use_extra_bufts`` used."""
    import llama_cpp.llama_cpp as lib

    value = use_extra_buffers(extra_buffers, info)
    original = getattr(lib, "_valuescope_original_default_params", lib.llama_model_default_params)
    lib._valuescope_original_default_params = original  # type: ignore[attr-defined]

    def patched() -> Any:
        params = original()
        params.use_extra_bufts = value
        return params

    lib.llama_model_default_params = patched
    return value
