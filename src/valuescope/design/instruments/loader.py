"""Read instrument YAML files (built-in or a user's) into :class:`valuescope.core.types.Instrument`.

The format is documented in ``docs/instruments.md``. Every problem raises one
:class:`~valuescope.study.spec.SpecError` whose message names the file, the field or item, and the problem.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from valuescope.core.types import OPTION_LETTERS, Instrument, Item, Part, Scale
from valuescope.study import limits
from valuescope.study.files import SpecError, read_yaml_file, short_repr

DATA_DIR = Path(__file__).resolve().parent / "data"

TOP_REQUIRED = ("id", "name", "citation", "licence", "parts", "dimensions", "items")
TOP_OPTIONAL = ("wordings", "scoring", "notes", "source", "version")
PART_KEYS = {"id", "instructions", "stem", "scale"}
ITEM_REQUIRED = ("id",)
ITEM_OPTIONAL = ("part", "text", "dimension", "variants", "catch", "reverse", "meta")
SCORING_KEYS = {"centre", "levels", "catch", "labels", "notes"}
CENTRES = ("none", "mrat")
CATCH_OPS = (">=", "<=", ">", "<")
RESERVED_LEVEL = "dimension"  # the level of the instrument's own dimensions
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def list_instruments() -> list[str]:
    """Names of the built-in instruments (the YAML files shipped in ``instruments/data``)."""
    return sorted(p.stem for p in DATA_DIR.glob("*.yaml"))


def load_instrument(name: str | None = None, path: str | Path | None = None) -> Instrument:
    """A built-in instrument by ``name`` (see :func:`list_instruments`) or a user's YAML file by ``path``."""
    if (name is None) == (path is None):
        raise SpecError("load_instrument: give exactly one of 'name' or 'path'")
    if name is not None:
        if name not in list_instruments():
            raise SpecError(
                f"unknown instrument {name!r}; built-in instruments: {', '.join(list_instruments())}"
            )
        return _load_builtin(name)
    return _load_path(Path(path))  # type: ignore[arg-type]


@functools.cache
def _load_builtin(name: str) -> Instrument:
    return _load_path(DATA_DIR / f"{name}.yaml")


def _load_path(path: Path) -> Instrument:
    data = read_yaml_file(path, "instrument")
    if data is None:
        raise SpecError(f"{path}: the instrument file is empty")
    return instrument_from_dict(data, source=str(path))


# --------------------------------------------------------------------------- validation helpers


def _fail(source: str, where: str, problem: str) -> SpecError:
    return SpecError(f"{source}: {where}: {problem}")


def _text(value: Any, source: str, where: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail(source, where, f"must be text, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise _fail(source, where, "must not be empty")
    return value


def _ident(value: Any, source: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(source, where, f"must be a name or number, got {type(value).__name__}")
    text = str(value)
    if not _ID_RE.match(text):
        raise _fail(source, where, f"{text!r} is not a valid id (letters, digits, '_', '-', '.')")
    return text


def _keys(data: Any, source: str, where: str, required: tuple[str, ...], allowed: set[str]) -> dict:
    if not isinstance(data, Mapping):
        raise _fail(source, where, f"must be a mapping, got {type(data).__name__}")
    for key in required:
        if key not in data:
            raise _fail(source, where, f"missing field '{key}'")
    unknown = [str(k) for k in data if k not in allowed]
    if unknown:
        raise _fail(source, where, f"unknown field '{unknown[0]}'")
    return dict(data)


def _number(value: Any, source: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(source, where, f"must be a finite number, got {value!r:.40}")
    return float(value)


def _text_list(value: Any, source: str, where: str, *, allow_empty_list: bool = False) -> list[str]:
    if not isinstance(value, list):
        raise _fail(source, where, f"must be a list, got {type(value).__name__}")
    if not value and not allow_empty_list:
        raise _fail(source, where, "must not be empty")
    out = [
        str(v) if isinstance(v, int) and not isinstance(v, bool) else _text(v, source, f"{where}[{i}]")
        for i, v in enumerate(value)
    ]
    seen: set[str] = set()
    for v in out:
        if v in seen:
            raise _fail(source, where, f"duplicate entry {v!r}")
        seen.add(v)
    return out


# --------------------------------------------------------------------------- parts and items


def _parse_part(raw: Any, index: int, source: str) -> Part:
    where = f"parts[{index}]"
    data = _keys(raw, source, where, tuple(sorted(PART_KEYS)), PART_KEYS)
    pid = _ident(data["id"], source, f"{where}.id")
    where = f"part '{pid}'"
    instructions = _text(data["instructions"], source, f"{where}: field 'instructions'", allow_empty=True)
    stem = _text(data["stem"], source, f"{where}: field 'stem'")
    if "{item}" not in stem:
        raise _fail(source, where, "stem must contain {item} where the item text goes")
    if "{" in stem.replace("{item}", "") or "}" in stem.replace("{item}", ""):
        raise _fail(source, where, "stem may contain no braces other than {item}")
    scale = _keys(
        data["scale"], source, f"{where}: field 'scale'", ("labels", "values"), {"labels", "values"}
    )
    labels = _text_list(scale["labels"], source, f"{where}: field 'scale.labels'")
    if not isinstance(scale["values"], list):
        raise _fail(source, where, "scale values must be a list of numbers")
    values = [
        _number(v, source, f"{where}: field 'scale.values[{i}]'") for i, v in enumerate(scale["values"])
    ]
    if len(labels) != len(values):
        raise _fail(source, where, f"scale has {len(labels)} labels but {len(values)} values")
    if not 2 <= len(labels) <= len(OPTION_LETTERS):
        raise _fail(source, where, f"scale must have 2 to {len(OPTION_LETTERS)} options, got {len(labels)}")
    return Part(id=pid, instructions=instructions, stem=stem, scale=Scale(tuple(labels), tuple(values)))


def _parse_item(
    raw: Any, index: int, source: str, parts: dict[str, Part], dimensions: set[str], wordings: tuple[str, ...]
) -> Item:
    if not isinstance(raw, Mapping):
        raise _fail(source, f"items[{index}]", f"must be a mapping, got {type(raw).__name__}")
    if "id" not in raw:
        raise _fail(source, f"items[{index}]", "missing field 'id'")
    iid = _ident(raw["id"], source, f"items[{index}].id")
    where = f"item '{iid}'"
    data = _keys(raw, source, where, ITEM_REQUIRED, set(ITEM_REQUIRED + ITEM_OPTIONAL))
    if "part" in data:
        part = _ident(data["part"], source, f"{where}: field 'part'")
        if part not in parts:
            raise _fail(source, where, f"unknown part {part!r} (parts: {', '.join(parts)})")
    elif len(parts) == 1:
        part = next(iter(parts))
    else:
        raise _fail(source, where, "missing field 'part' (the instrument has several parts)")
    variants_raw = data.get("variants") or {}
    if not isinstance(variants_raw, Mapping):
        raise _fail(source, where, "field 'variants' must be a mapping of wording -> text")
    variants: dict[str, str] = {}
    for name, text in variants_raw.items():
        if name not in wordings:
            raise _fail(
                source, where, f"variant {name!r} is not one of the declared wordings {list(wordings)}"
            )
        variants[str(name)] = _text(text, source, f"{where}: variant '{name}'")
    missing = [w for w in wordings if w not in variants]
    if missing:
        raise _fail(source, where, f"missing wording '{missing[0]}' in field 'variants'")
    if "text" in data:
        text = _text(data["text"], source, f"{where}: field 'text'")
    elif wordings:
        text = variants[wordings[0]]
    else:
        raise _fail(source, where, "missing field 'text'")
    catch = data.get("catch", False)
    reverse = data.get("reverse", False)
    for field, flag in (("catch", catch), ("reverse", reverse)):
        if not isinstance(flag, bool):
            raise _fail(source, where, f"field '{field}' must be true or false, got {short_repr(flag, 40)}")
    dimension = data.get("dimension")
    if dimension is not None:
        dimension = str(dimension)
        if dimension not in dimensions:
            raise _fail(
                source,
                where,
                f"unknown dimension {dimension!r} (dimensions: {', '.join(sorted(dimensions))})",
            )
    if catch and dimension is not None:
        raise _fail(source, where, "a catch item is not scored: its dimension must be null")
    if reverse and dimension is None:
        raise _fail(source, where, "'reverse: true' needs a 'dimension': only a scored item can be reverse-keyed")
    meta = data.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise _fail(source, where, "field 'meta' must be a mapping")
    return Item(
        id=iid,
        part=part,
        text=text,
        dimension=dimension,
        variants=variants,
        catch=catch,
        reverse=reverse,
        meta=dict(meta),
    )


# --------------------------------------------------------------------------- scoring block


def _parse_scoring(
    raw: Any, source: str, dimensions: tuple[str, ...], items: dict[str, Item]
) -> dict[str, Any]:
    if raw is None:
        raw = {}
    data = _keys(raw, source, "field 'scoring'", (), SCORING_KEYS)
    centre = data.get("centre", "none")
    if centre not in CENTRES:
        raise _fail(source, "field 'scoring.centre'", f"must be one of {list(CENTRES)}, got {centre!r:.40}")
    levels_raw = data.get("levels") or {}
    if not isinstance(levels_raw, Mapping):
        raise _fail(source, "field 'scoring.levels'", "must be a mapping of level -> {group: [dimensions]}")
    levels: dict[str, dict[str, list[str]]] = {}
    for level, groups in levels_raw.items():
        where = f"field 'scoring.levels.{level}'"
        if str(level) == RESERVED_LEVEL:
            raise _fail(source, where, f"'{RESERVED_LEVEL}' is the level of the dimensions themselves")
        if not isinstance(groups, Mapping) or not groups:
            raise _fail(source, where, "must be a non-empty mapping of group -> [dimensions]")
        levels[str(level)] = {}
        for group, members in groups.items():
            names = _text_list(members, source, f"{where}.{group}")
            unknown = [m for m in names if m not in dimensions]
            if unknown:
                raise _fail(source, f"{where}.{group}", f"unknown dimension {unknown[0]!r}")
            levels[str(level)][str(group)] = names
    catch_raw = data.get("catch") or []
    if not isinstance(catch_raw, list):
        raise _fail(source, "field 'scoring.catch'", "must be a list of {item, fail_if, threshold}")
    rules: list[dict[str, Any]] = []
    for i, rule in enumerate(catch_raw):
        where = f"field 'scoring.catch[{i}]'"
        rule = _keys(rule, source, where, ("item", "fail_if", "threshold"), {"item", "fail_if", "threshold"})
        iid = str(rule["item"])
        if iid not in items:
            raise _fail(source, where, f"unknown item {iid!r}")
        if not items[iid].catch:
            raise _fail(source, f"item '{iid}'", "is used by a catch rule but is not marked 'catch: true'")
        if rule["fail_if"] not in CATCH_OPS:
            raise _fail(
                source, where, f"fail_if must be one of {list(CATCH_OPS)}, got {rule['fail_if']!r:.20}"
            )
        rules.append(
            {
                "item": iid,
                "fail_if": rule["fail_if"],
                "threshold": _number(rule["threshold"], source, f"{where}.threshold"),
            }
        )
    labels = data.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise _fail(source, "field 'scoring.labels'", "must be a mapping of dimension -> label")
    return {
        "centre": centre,
        "levels": levels,
        "catch": rules,
        "labels": {str(k): str(v) for k, v in labels.items()},
    }


# --------------------------------------------------------------------------- the whole file


def instrument_from_dict(data: Any, source: str = "instrument") -> Instrument:
    """Validate a parsed YAML mapping and build the :class:`Instrument`."""
    data = _keys(data, source, "<root>", TOP_REQUIRED, set(TOP_REQUIRED + TOP_OPTIONAL))
    iid = _ident(data["id"], source, "field 'id'")
    name = _text(data["name"], source, "field 'name'")
    citation = _text(data["citation"], source, "field 'citation'")
    licence = _text(data["licence"], source, "field 'licence'")
    wordings = tuple(
        _text_list(data.get("wordings") or [], source, "field 'wordings'", allow_empty_list=True)
    )
    if not isinstance(data["parts"], list) or not data["parts"]:
        raise _fail(source, "field 'parts'", "must be a non-empty list of parts")
    parts: dict[str, Part] = {}
    for i, raw in enumerate(data["parts"]):
        part = _parse_part(raw, i, source)
        if part.id in parts:
            raise _fail(source, f"part '{part.id}'", "duplicate part id")
        parts[part.id] = part
    dimensions = tuple(_text_list(data["dimensions"], source, "field 'dimensions'"))
    if not isinstance(data["items"], list) or not data["items"]:
        raise _fail(source, "field 'items'", "the instrument has no items")
    if len(data["items"]) > limits.MAX_ITEMS:
        raise _fail(source, "field 'items'", f"{len(data['items'])} items; at most {limits.MAX_ITEMS} are accepted")
    items: dict[str, Item] = {}
    for i, raw in enumerate(data["items"]):
        item = _parse_item(raw, i, source, parts, set(dimensions), wordings)
        if item.id in items:
            raise _fail(source, f"item '{item.id}'", "duplicate item id")
        items[item.id] = item
    unused = [d for d in dimensions if not any(it.dimension == d for it in items.values())]
    if unused:
        raise _fail(source, "field 'dimensions'", f"dimension {unused[0]!r} has no item")
    scoring = _parse_scoring(data.get("scoring"), source, dimensions, items)
    return Instrument(
        id=iid,
        name=name,
        citation=citation,
        licence=licence,
        parts=parts,
        items=tuple(items.values()),
        dimensions=dimensions,
        scoring=scoring,
        wordings=wordings,
    )
