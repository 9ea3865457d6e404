"""Reading a user's spec file (study, instrument, persona list, synthetic spec): one-line errors.

The lowest part of the study layer: :mod:`valuescope.study.spec` and :mod:`valuescope.study.synthetic_spec`
both read files and report validation errors this way.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from valuescope.core.errors import ValuescopeError
from valuescope.study import limits


class SpecError(ValuescopeError, ValueError):
    """A study, instrument or persona file that cannot be used. The message is one line for the user."""


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxtuple, _SHORT.maxset = 2, 4, 4, 4, 4
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 50, 50, 40


def short_repr(value: Any, width: int = 60) -> str:
    """A value as at most ``width`` characters, built lazily: a huge list, string or number is never
    formatted in full to be cut afterwards."""
    text = _SHORT.repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    # drop pydantic's discriminator tags such as "wvs" in population.sources.0.wvs.n
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    shown = "" if first["type"] in ("missing", "extra_forbidden") else f" (got {short_repr(first.get('input'))})"
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
        return _load_bounded(text, p)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{p}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise SpecError(f"{p}: invalid YAML: nested too deeply") from None




class _BoundedLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's where installed) that refuses a document whose aliases (``*name``)
    would expand it by more than :data:`limits.MAX_YAML_ALIAS_NODES` nodes (a "billion laughs" file),
    before anything is built from it."""

    source = "<yaml>"

    def get_single_data(self):  # type: ignore[no-untyped-def]
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node, self.source)
        return self.construct_document(node)


def _check_expansion(root: yaml.Node, name: str) -> None:
    sizes: dict[int, int] = {}
    distinct = 0
    budget = limits.MAX_YAML_ALIAS_NODES

    def size(node: yaml.Node) -> int:
        nonlocal distinct
        key = id(node)
        if key in sizes:
            if sizes[key] < 0:
                raise SpecError(f"{name}: invalid YAML: an alias refers to the node that contains it")
            return sizes[key]
        distinct += 1
        sizes[key] = -1
        if isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            n = 1
        sizes[key] = n
        if n > distinct + budget:
            raise SpecError(f"{name}: YAML aliases (*name) would expand this file beyond {budget} extra values; "
                            "refused (write the values out, or use fewer aliases)")
        return n

    size(root)


def _load_bounded(text: str, path: Path) -> Any:
    loader = _BoundedLoader(text)
    loader.source = str(path)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
