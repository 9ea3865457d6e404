"""Reading a user's spec file (study, instrument, persona list, synthetic spec): one-line errors.

The lowest part of the study layer: :mod:`valuescope.study.spec` and :mod:`valuescope.study.synthetic_spec`
both read files and report validation errors this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from valuescope.core.errors import ValuescopeError


class SpecError(ValuescopeError, ValueError):
    """A study, instrument or persona file that cannot be used. The message is one line for the user."""


def format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    # drop pydantic's discriminator tags such as "wvs" in population.sources.0.wvs.n
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    value = first.get("input")
    shown = "" if first["type"] in ("missing", "extra_forbidden") else f" (got {value!r:.60})"
    more = len(err.errors()) - 1
    tail = f"; and {more} more problem(s)" if more else ""
    return f"{source}: field '{loc or '<root>'}': {msg}{shown}{tail}"


MAX_SPEC_BYTES = 5_000_000


def read_yaml_file(path: str | Path, what: str) -> Any:
    """Read a small YAML file with one-line errors for missing, huge, non-UTF-8 or malformed files."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{what} file not found: {p}")
    if p.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{p}: {what} file is larger than {MAX_SPEC_BYTES // 1_000_000} MB")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{p}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise SpecError(f"{p}: invalid YAML: nested too deeply") from None


