"""Persona populations, and how a persona becomes chat messages.

Sources (``valuescope.study.spec.PopulationSpec.sources``), expanded in order after the baseline:

``wvs``
    Random personas as in Lee, Cho & Lee (2024): every World Values Survey attribute drawn
    independently with equal probability per category (sex; age 20-80; income decile 1-10;
    children; marital status; 9 education levels; employment; occupation, shown only when
    employed; ethnicity; religion; country of origin and of residence, drawn separately from the
    91 WVS wave-7 countries), rendered with the paper's template. Age follows the paper's text
    (uniform over 20..80) rather than its code (20..89, not uniform), and ``birth_year`` is
    ``2024 - age`` with the fixed reference year 2024, so a seed gives the same text forever.
    Seeded with :class:`random.Random` (see :mod:`valuescope.design.attribute_space`): ids
    ``wvs-s{seed}-{index:04d}``, population ``wvs:seed={seed}``. A user's own attribute space
    (YAML, same format as ``personas_data/lee2024_wvs.yaml``) gives ids ``{id}-s{seed}-{index}``.
``named``
    Kovač et al. (2024): ``tolkien`` (60 characters), ``famous_people`` (the paper's 50 real
    people, 39 male / 11 female) and ``real_world_people`` (the later gender-balanced 25 / 25
    list). Message "You are " + a one-line description written for this project; the paper's
    exact message is available with ``wording="paper"``.
``file``
    Free-text personas: ``.txt`` (one per line; blank lines and lines starting with ``#`` are
    skipped), ``.csv`` or ``.jsonl`` with a ``description`` column/field, optional ``id``,
    ``name`` and ``gender`` (male/female/m/f/man/woman, another gender such as non-binary, or empty) and any
    other columns kept as
    attributes (an empty or null value is recorded as "n/a").

The baseline (no persona) is :data:`valuescope.core.types.BASELINE`: no persona message at all.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from valuescope.core.types import BASELINE, SIDES, Message, Persona
from valuescope.design.attribute_space import (
    DATA_DIR,
    HIDDEN,
    AttributeSpace,
    default_space,
    load_attribute_space,
    sample_space,
)
from valuescope.study import limits
from valuescope.study.spec import FileSource, NamedSource, PopulationSpec, SpecError, WVSSource

IDENTITY_TEXT = {"liberal": "Politically, you are a liberal: you stand on the left.",
                 "conservative": "Politically, you are a conservative: you stand on the right."}
PERSONA_ACK = "OK"  # the assistant's acknowledgement when the persona goes in a user message
NAMED_LISTS = ("tolkien", "famous_people", "real_world_people")
MAX_FILE_BYTES = 50_000_000
_GENDER_WORDS = {"male": "male", "m": "male", "man": "male", "female": "female", "f": "female",
                 "woman": "female"}


# --------------------------------------------------------------------------- population


def build_population(spec: PopulationSpec) -> list[Persona]:
    """The baseline first (when ``spec.baseline``), then each source in order. Persona ids must
    be unique across the population."""
    out: list[Persona] = [BASELINE] if spec.baseline else []
    for src in spec.sources:
        if isinstance(src, WVSSource):
            _check_population(len(out) + src.n * len(src.seeds))
            for seed in src.seeds:
                out.extend(wvs_personas(src.n, seed, src.attributes, identity=getattr(src, "identity", False)))
        elif isinstance(src, NamedSource):
            wording = getattr(src, "wording", "project")
            out.extend(named_personas(src.list, limit=src.limit, wording=wording))
        elif isinstance(src, FileSource):
            out.extend(file_personas(src.path, limit=src.limit))
        else:  # pragma: no cover - the spec's discriminated union admits nothing else
            raise SpecError(f"population: unknown persona source {src!r}")
        _check_population(len(out))
    seen: set[str] = set()
    for p in out:
        if p.id in seen:
            raise SpecError(f"population: persona id {p.id!r} appears twice (a source listed twice, "
                            f"or a seed repeated?)")
        seen.add(p.id)
    return out


def _check_population(n: int) -> None:
    if n > limits.MAX_PERSONAS:
        raise SpecError(f"population: {n} personas; at most {limits.MAX_PERSONAS} are accepted (split the study "
                        "into several)")


def wvs_personas(n: int, seed: int, attributes: str | Path | None = None, *, identity: bool = False) -> list[Persona]:
    """``n`` random personas for persona-set ``seed`` from the WVS space of Lee et al. (2024), or
    from the attribute space in the YAML file ``attributes``.

    ``identity=True`` adds a political identity to the *same* people (same attributes and text for the
    same seed, one sentence appended, see :data:`IDENTITY_TEXT`): attribute ``identity`` = liberal /
    conservative, alternating from a coin seeded by ``seed`` (so a set is balanced within one), ids
    ``{space}-pol-s{seed}-{index}``, population ``...+identity``. Lee et al.'s space itself is unchanged.
    """
    space: AttributeSpace = default_space() if attributes is None else load_attribute_space(attributes)
    population = f"wvs:seed={seed}" if attributes is None else f"wvs:{space.id}:seed={seed}"
    start = int(random.Random(f"valuescope-identity-{seed}").random() < 0.5)
    personas = []
    for i, (attrs, text) in enumerate(sample_space(space, n, seed)):
        pid = f"{space.id}-s{seed}-{i:04d}"
        if identity:
            side = SIDES[(i + start) % 2]
            attrs = {**attrs, "identity": side}
            text = f"{text} {IDENTITY_TEXT[side]}"
            pid = f"{space.id}-pol-s{seed}-{i:04d}"
        personas.append(Persona(
            id=pid, kind="wvs", description=text,
            gender=space.gender(attrs),  # type: ignore[arg-type]
            attributes=attrs, population=population + ("+identity" if identity else ""), set_seed=seed,
        ))
    return personas


# --------------------------------------------------------------------------- named lists


@cache
def _named_data() -> dict[str, Any]:
    return yaml.safe_load((DATA_DIR / "named.yaml").read_text(encoding="utf-8"))


def slug(text: str) -> str:
    """ASCII id fragment: "Sméagol" -> "smeagol", "Gothmog (Balrog)" -> "gothmog-balrog"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def named_personas(list_name: str, limit: int | None = None,
                   wording: Literal["project", "paper"] = "project") -> list[Persona]:
    """A named population of Kovač et al. (2024), in the paper's order.

    ``wording="project"``: "You are " + this project's one-line description;
    ``wording="paper"``: the paper's exact message ("You are Gandalf from J. R. R. Tolkien's
    Middle-earth legendarium." / "You are " + the paper's one-liner for real people).
    """
    if list_name not in NAMED_LISTS:
        raise SpecError(f"population: unknown named list {list_name!r}; known: {', '.join(NAMED_LISTS)}")
    if wording not in ("project", "paper"):
        raise SpecError(f"population: named wording must be 'project' or 'paper', got {wording!r}")
    data = _named_data()
    template = data["paper_template"][list_name]
    entries = data[list_name][:limit] if limit is not None else data[list_name]
    out = []
    for e in entries:
        if wording == "paper":
            text = template.format(name=e["name"], paper_description=e.get("paper_description", ""))
        else:
            text = "You are " + e["description"]
        out.append(Persona(
            id=f"{list_name}-{slug(e['name'])}", kind="named", description=text, name=e["name"],
            gender=e["gender"], attributes={"gender": e["gender"]}, population=list_name,
        ))
    return out


# --------------------------------------------------------------------------- files


def _gender(value: Any, where: str) -> str | None:
    """male / female (m, f, man, woman), any other gender as written (lower case, e.g. "non-binary"; the
    instruments' wording falls back to a gender-neutral one), or None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip().lower()
    if len(text) > 40 or not text.replace("-", "").replace(" ", "").isalpha():
        raise SpecError(f"{where}: gender must be a word such as male, female or non-binary (or empty), "
                        f"got {value!r:.40}")
    return _GENDER_WORDS.get(text, text)


def _attr_value(value: Any, where: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return HIDDEN
    if isinstance(value, bool | int | float | str):
        return str(value)
    raise SpecError(f"{where}: attribute values must be text or numbers, got {type(value).__name__}")


def _record_persona(rec: dict[str, Any], where: str, default_id: str, population: str) -> Persona:
    desc = rec.get("description")
    if not isinstance(desc, str) or not desc.strip():
        raise SpecError(f"{where}: 'description' is missing or empty")
    if len(desc) > limits.MAX_PERSONA_CHARS:
        raise SpecError(f"{where}: 'description' has {len(desc)} characters; at most {limits.MAX_PERSONA_CHARS} "
                        "are accepted")
    name = rec.get("name")
    if name is not None and not isinstance(name, str):
        raise SpecError(f"{where}: 'name' must be text")
    pid = rec.get("id")
    pid = default_id if pid is None or str(pid).strip() == "" else str(pid).strip()
    attrs = {str(k): _attr_value(v, f"{where}: field '{k}'") for k, v in rec.items()
             if k not in ("description", "name", "id", "gender")}
    gender = _gender(rec.get("gender"), where)
    if gender is not None:
        attrs["gender"] = gender
    return Persona(id=pid, kind="text", description=desc.strip(), name=(name or "").strip() or None,
                   gender=gender, attributes=attrs, population=population)


def file_personas(path: str | Path, limit: int | None = None) -> list[Persona]:
    """Free-text personas from a ``.txt``, ``.csv`` or ``.jsonl`` file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"persona file not found: {p}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise SpecError(f"{p}: persona file is larger than {MAX_FILE_BYTES // 1_000_000} MB")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    suffix = p.suffix.lower()
    stem = slug(p.stem) or "personas"
    population = f"file:{p.name}"
    records: list[tuple[dict[str, Any], str]] = []  # (record, where)
    if suffix == ".txt":
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                records.append(({"description": line}, f"{p}: line {lineno}"))
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        if "description" not in header:
            raise SpecError(f"{p}: a CSV persona file needs a 'description' column (header: {header})")
        if len(set(header)) != len(header) or any(not h for h in header):
            raise SpecError(f"{p}: the CSV header has empty or repeated column names: {header}")
        try:
            for row in reader:
                where = f"{p}: line {reader.line_num}"
                if None in row or any(v is None for v in row.values()):
                    raise SpecError(f"{where}: expected {len(header)} columns as in the header")
                records.append((dict(row), where))
        except csv.Error as exc:
            raise SpecError(f"{p}: malformed CSV at line {reader.line_num}: {exc}") from None
    elif suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{p}: line {lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpecError(f"{where}: invalid JSON ({exc.msg})") from None
            except RecursionError:
                raise SpecError(f"{where}: invalid JSON (nested too deeply)") from None
            if not isinstance(rec, dict):
                raise SpecError(f"{where}: each line must be a JSON object with a 'description'")
            records.append((rec, where))
    else:
        raise SpecError(f"{p}: persona files must end in .txt, .csv or .jsonl")
    if not records:
        raise SpecError(f"{p}: no personas in the file")
    if limit is not None:
        records = records[:limit]
    out = [_record_persona(rec, where, f"file-{stem}-{i:04d}", population)
           for i, (rec, where) in enumerate(records)]
    seen: dict[str, int] = {}
    for i, persona in enumerate(out):
        if persona.id in seen:
            raise SpecError(f"{records[i][1]}: persona id {persona.id!r} already used")
        seen[persona.id] = i
    return out


# --------------------------------------------------------------------------- messages


def persona_messages(persona: Persona, system_role: bool = True) -> list[Message]:
    """The messages that put the model in role: none for the baseline; a system message; or, for
    chat templates without a system role, a user message followed by the assistant's "OK"
    (Kovač et al. 2024, appendix A.2)."""
    if persona.is_baseline:
        return []
    if not persona.description:
        raise ValueError(f"persona {persona.id!r} has no description")
    if system_role:
        return [Message("system", persona.description)]
    return [Message("user", persona.description), Message("assistant", PERSONA_ACK)]
