"""valuescope: audit how a language model's expressed values respond to role-play.

The Python API (docs/python.md), the same operations as the CLI:

- :func:`run` ``(study="demo", model=None, scale=1.0, output=None, report=True, progress=True) -> list[Run]``:
  run or resume a study (a :class:`Study`, a dict, a YAML path or a preset name);
- :func:`load` ``(run_id, dir="valuescope-results") -> Run`` and :func:`open` ``(dir) -> Results``: stored runs;
- :class:`Run`: ``.responses``, ``.scores``, ``.metrics``, ``.effects``, ``.headline`` (pandas DataFrames, the
  export columns), ``.counts``, ``.report(path)``, ``.compare(other_runs)``, ``.export(path)``, ``.summary()``;
- :class:`Study`, :class:`ModelSpec`, :func:`preset`: studies built in Python, validated like YAML;
- :mod:`valuescope.figures`: each report figure as a function returning a matplotlib Figure;
- errors: :class:`ValuescopeError` and its subclasses :class:`SpecError` (a bad study / file / option),
  :class:`StoreError` (no store, unknown run), :class:`BackendError` (a model that cannot load or answer),
  :class:`FigureError` (a figure the data cannot support), each with the CLI's one-line message.

Names are imported on first use, so ``import valuescope`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "valuescope.output.api",
    "load": "valuescope.output.api",
    "open": "valuescope.output.api",
    "preset": "valuescope.output.api",
    "compare": "valuescope.output.api",
    "write_report": "valuescope.output.api",
    "Run": "valuescope.output.api",
    "Results": "valuescope.output.api",
    "Study": "valuescope.output.api",
    "ModelSpec": "valuescope.output.api",
    "ValuescopeError": "valuescope.core.errors",
    "FigureError": "valuescope.core.errors",
    "SpecError": "valuescope.study.spec",
    "StoreError": "valuescope.store.sqlite",
    "BackendError": "valuescope.backends.base",
}
_SUBMODULES = ("figures",)

__all__ = [
    "BackendError", "FigureError", "ModelSpec", "Results", "Run", "SpecError", "StoreError", "Study", "ValuescopeError",
    "__version__", "compare", "figures", "load", "open", "preset", "run", "write_report",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from valuescope.backends.base import BackendError
    from valuescope.core.errors import FigureError, ValuescopeError
    from valuescope.output import figures
    from valuescope.output.api import (
        ModelSpec,
        Results,
        Run,
        Study,
        compare,
        load,
        open,
        preset,
        run,
        write_report,
    )
    from valuescope.store.sqlite import StoreError
    from valuescope.study.spec import SpecError


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"valuescope.output.{name}")
    raise AttributeError(f"module 'valuescope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
