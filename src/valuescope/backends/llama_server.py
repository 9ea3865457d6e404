"""``python -m valuescope.backends.llama_server [--extra-buffers auto|on|off] ARGS...``: llama.cpp's
OpenAI-compatible server (``python -m llama_cpp.server ARGS...``) with the model loaded the way
valuescope loads it, so that it also runs on CPUs with AMX (see backends/llama_load.py), and every
completion evaluated from an empty KV cache, so that an answer or a generated text depends only on its
request, never on the requests the server answered before (backends/llama_fresh.py; a plain
``llama_cpp.server`` re-uses the cache of the previous request, and the numbers then depend on the order
in which requests arrive). The price: every prompt is evaluated whole.

Every other argument goes to ``llama_cpp.server`` unchanged (``--model``, ``--host``, ``--port``...).
"""

from __future__ import annotations

import runpy
import sys

from valuescope.backends.llama_fresh import fresh_completions
from valuescope.backends.llama_load import EXTRA_BUFFER_SETTINGS, patch_globally


def split_args(argv: list[str]) -> tuple[str, list[str]]:
    """Take ``--extra-buffers X`` (or ``--extra-buffers=X``) out of the arguments."""
    setting = "auto"
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--extra-buffers":
            setting = next(it, "")
        elif arg.startswith("--extra-buffers="):
            setting = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if setting not in EXTRA_BUFFER_SETTINGS:
        raise SystemExit(f"error: --extra-buffers must be one of {', '.join(EXTRA_BUFFER_SETTINGS)}, got {setting!r}")
    return setting, rest


def main(argv: list[str] | None = None) -> None:
    setting, rest = split_args(list(sys.argv[1:] if argv is None else argv))
    patch_globally(setting)
    fresh_completions()
    sys.argv = ["llama_cpp.server", *rest]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
