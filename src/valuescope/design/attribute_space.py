"""Attribute spaces for random personas, and the seeded sampler that draws from them.

An attribute space is a YAML file (format described in ``personas_data/lee2024_wvs.yaml``, which
holds the World Values Survey space of Lee, Cho & Lee 2024 and is the default). Every attribute
is drawn independently; a category's probability is its weight over the attribute's total weight
(equal weights unless given). A persona is then rendered through the space's ``template``.

Reproducibility: the sampler uses :class:`random.Random` seeded with the persona-set seed and
calls only ``random()``, one call per attribute per persona, in the order the attributes are
listed. ``random()`` is the one part of the module whose sequence Python guarantees across
versions for an integer seed, and no set or hash order is involved, so the same seed gives the
same personas on any machine and Python version. Draws continue across personas, so the first
``n`` personas of a seed are the same whatever the set size.
"""

from __future__ import annotations

import random
import string
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from valuescope.study.files import SpecError, read_yaml_file

DATA_DIR = Path(__file__).resolve().parent / "personas_data"
DEFAULT_SPACE = DATA_DIR / "lee2024_wvs.yaml"
HIDDEN = "n/a"  # recorded value of an attribute that ``show_if`` hides
GENDERS = ("male", "female")
_TOP_KEYS = {"id", "citation", "licence", "notes", "reference_year", "gender", "template", "attributes"}
_ATTR_KEYS = {"categories", "range", "show_if", "phrase"}
_CAT_KEYS = {"value", "text", "weight"}


@dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str, ...]  # recorded in Persona.attributes
    texts: tuple[str, ...]  # shown in the template
    cumulative: tuple[float, ...]  # running sums of the weights
    show_if: tuple[str, frozenset[str]] | None = None
    phrase: str | None = None

    def pick(self, u: float) -> int:
        """Index of the category for a uniform number ``u`` in [0, 1)."""
        i = bisect_right(self.cumulative, u * self.cumulative[-1])
        return min(i, len(self.values) - 1)


@dataclass(frozen=True)
class AttributeSpace:
    id: str
    source: str
    template: str
    attributes: tuple[Attribute, ...]
    reference_year: int | None = None
    gender_attribute: str | None = None
    gender_values: tuple[tuple[str, str], ...] = ()
    citation: str = ""
    licence: str = ""

    def draw(self, rng: random.Random) -> tuple[dict[str, str], str]:
        """One persona: (attributes as strings, rendered description)."""
        picked = {a.name: a.pick(rng.random()) for a in self.attributes}
        values = {a.name: a.values[picked[a.name]] for a in self.attributes}
        shown: dict[str, str] = {}
        recorded: dict[str, str] = {}
        for a in self.attributes:
            visible = a.show_if is None or values[a.show_if[0]] in a.show_if[1]
            text = a.texts[picked[a.name]]
            if a.phrase is not None:
                text = a.phrase.format(value=text) if visible else ""
            elif not visible:
                text = ""
            shown[a.name] = text
            recorded[a.name] = values[a.name] if visible else HIDDEN
        if self.reference_year is not None:
            shown["birth_year"] = str(self.reference_year - int(values["age"]))
        return recorded, self.template.format(**shown)

    def gender(self, attributes: dict[str, str]) -> str | None:
        if self.gender_attribute is None:
            return None
        return dict(self.gender_values).get(attributes.get(self.gender_attribute, ""))


def sample_space(space: AttributeSpace, n: int, seed: int) -> list[tuple[dict[str, str], str]]:
    """``n`` personas drawn with :class:`random.Random` (seed) from ``space``."""
    if seed < 0:
        raise SpecError(f"persona-set seeds must be >= 0, got {seed}")
    rng = random.Random(seed)
    return [space.draw(rng) for _ in range(n)]


# --------------------------------------------------------------------------- loading


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        raise SpecError(f"{where}: {value!r} is read by YAML as a boolean; quote it (e.g. \"Yes\")")
    if isinstance(value, str | int | float):
        text = str(value)
        if text.strip():
            return text
    raise SpecError(f"{where}: expected a non-empty text or number, got {value!r:.60}")


def _attribute(name: str, raw: Any, where: str) -> Attribute:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be a mapping with 'categories' or 'range'")
    unknown = set(raw) - _ATTR_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if ("categories" in raw) == ("range" in raw):
        raise SpecError(f"{where}: give exactly one of 'categories' or 'range'")
    values: list[str] = []
    texts: list[str] = []
    weights: list[float] = []
    if "range" in raw:
        r = raw["range"]
        if (not isinstance(r, list) or len(r) != 2 or not all(type(x) is int for x in r)
                or r[0] > r[1]):
            raise SpecError(f"{where}: 'range' must be [low, high], two integers with low <= high")
        values = [str(i) for i in range(r[0], r[1] + 1)]
        texts = list(values)
        weights = [1.0] * len(values)
    else:
        cats = raw["categories"]
        if not isinstance(cats, list) or not cats:
            raise SpecError(f"{where}: 'categories' must be a non-empty list")
        for j, c in enumerate(cats):
            cw = f"{where}: category {j + 1}"
            if isinstance(c, dict):
                bad = set(c) - _CAT_KEYS
                if bad or "value" not in c:
                    raise SpecError(f"{cw}: a category mapping needs 'value' (and may have 'text', 'weight')")
                value = _scalar(c["value"], cw)
                text = c.get("text", value)
                if text != "":  # an empty text shows nothing (the value is still recorded)
                    text = _scalar(text, cw)
                w = c.get("weight", 1)
                if isinstance(w, bool) or not isinstance(w, int | float) or not w > 0 or w != w:
                    raise SpecError(f"{cw}: 'weight' must be a positive number, got {w!r:.40}")
            else:
                value = _scalar(c, cw)
                text, w = value, 1
            values.append(value)
            texts.append(text)
            weights.append(float(w))
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise SpecError(f"{where}: duplicate categories {dupes}")
    cumulative, total = [], 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    phrase = raw.get("phrase")
    if phrase is not None:
        if not isinstance(phrase, str) or "{value}" not in phrase:
            raise SpecError(f"{where}: 'phrase' must be a text containing {{value}}")
        try:
            phrase.format(value="x")
        except (ValueError, IndexError, KeyError) as exc:
            raise SpecError(f"{where}: 'phrase' is not a valid template ({exc})") from None
    show_if = raw.get("show_if")
    cond = None
    if show_if is not None:
        if (not isinstance(show_if, dict) or len(show_if) != 1
                or not isinstance(next(iter(show_if.values())), list)):
            raise SpecError(f"{where}: 'show_if' must be {{other_attribute: [values, ...]}}")
        (other, allowed), = show_if.items()
        cond = (str(other), frozenset(_scalar(v, f"{where}: show_if") for v in allowed))
    return Attribute(name, tuple(values), tuple(texts), tuple(cumulative), cond, phrase)


def load_attribute_space(path: str | Path) -> AttributeSpace:
    """Read and check an attribute-space YAML file; every problem is one SpecError line."""
    p = Path(path)
    raw = read_yaml_file(p, "attribute space")
    if not isinstance(raw, dict):
        raise SpecError(f"{p}: an attribute space must be a mapping with 'template' and 'attributes'")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise SpecError(f"{p}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    attrs_raw = raw.get("attributes")
    if not isinstance(attrs_raw, dict) or not attrs_raw:
        raise SpecError(f"{p}: 'attributes' must be a non-empty mapping of name -> definition")
    attrs = []
    for name, spec in attrs_raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(f"{p}: attribute name {name!r} must be a plain identifier (letters, digits, _)")
        attrs.append(_attribute(name, spec, f"{p}: attribute '{name}'"))
    names = {a.name for a in attrs}
    by_name = {a.name: a for a in attrs}
    for a in attrs:
        if a.show_if is not None:
            other, allowed = a.show_if
            if other not in names or other == a.name:
                raise SpecError(f"{p}: attribute '{a.name}': show_if refers to unknown attribute '{other}'")
            missing = sorted(allowed - set(by_name[other].values))
            if missing:
                raise SpecError(f"{p}: attribute '{a.name}': show_if values {missing} are not "
                                f"categories of '{other}'")
    year = raw.get("reference_year")
    if year is not None:
        if type(year) is not int:
            raise SpecError(f"{p}: 'reference_year' must be an integer year")
        if "age" not in by_name or not all(v.lstrip("-").isdigit() for v in by_name["age"].values):
            raise SpecError(f"{p}: 'reference_year' needs an integer attribute 'age' "
                            f"(birth_year = reference_year - age)")
    template = raw.get("template")
    if not isinstance(template, str) or not template.strip():
        raise SpecError(f"{p}: 'template' must be a non-empty text with {{attribute}} placeholders")
    allowed_fields = names | ({"birth_year"} if year is not None else set())
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise SpecError(f"{p}: 'template' is not a valid template ({exc})") from None
    for f in fields:
        if f not in allowed_fields:
            raise SpecError(f"{p}: template placeholder {{{f}}} is not an attribute "
                            f"(known: {', '.join(sorted(allowed_fields))})")
    unused = [n for n in by_name if n not in fields]
    if unused:
        raise SpecError(f"{p}: attribute(s) {', '.join(unused)} not used in the template")
    gender_attr, gender_values = None, ()
    g = raw.get("gender")
    if g is not None:
        if not isinstance(g, dict) or set(g) != {"attribute", "values"} or not isinstance(g["values"], dict):
            raise SpecError(f"{p}: 'gender' must be {{attribute: NAME, values: {{category: male|female}}}}")
        gender_attr = str(g["attribute"])
        if gender_attr not in names:
            raise SpecError(f"{p}: gender attribute '{gender_attr}' is not an attribute")
        pairs = []
        for k, v in g["values"].items():
            k = _scalar(k, f"{p}: gender")
            if k not in by_name[gender_attr].values or v not in GENDERS:
                raise SpecError(f"{p}: gender: {k!r} -> {v!r}: the key must be a category of "
                                f"'{gender_attr}' and the value male or female")
            pairs.append((k, v))
        gender_values = tuple(pairs)
    space_id = raw.get("id", p.stem)
    if not isinstance(space_id, str) or not space_id.replace("-", "").replace("_", "").isalnum():
        raise SpecError(f"{p}: 'id' must be letters, digits, '-' or '_' (it prefixes persona ids)")
    space = AttributeSpace(
        id=space_id, source=str(p), template=template.strip(), attributes=tuple(attrs),
        reference_year=year, gender_attribute=gender_attr, gender_values=gender_values,
        citation=str(raw.get("citation", "")).strip(), licence=str(raw.get("licence", "")).strip(),
    )
    try:  # render once with the first category of each attribute
        space.draw(_FirstCategory())  # type: ignore[arg-type]
    except (KeyError, ValueError, IndexError) as exc:
        raise SpecError(f"{p}: template cannot be rendered ({exc})") from None
    return space


class _FirstCategory:
    @staticmethod
    def random() -> float:
        return 0.0


@cache
def default_space() -> AttributeSpace:
    """The WVS attribute space of Lee, Cho & Lee (2024) shipped with valuescope."""
    return load_attribute_space(DEFAULT_SPACE)
