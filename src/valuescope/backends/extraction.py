"""Reading an answer out of generated text, and an optional judge model that does the same.

Rule-based extraction (:func:`parse_choice`) works in tiers and stops at the first tier that
names an option:

1. a declared answer: "Answer: C", "my answer is (C)", "I'd say B", "I choose option D", ...
2. a formatted letter: the whole reply is a letter ("C", "(C)", "C.", "**C**"), or "(C)"
   anywhere, or "C." / "C)" / "C:" at the start of a line;
3. the text of an option's label ("Very much like me"), the longest label winning where labels
   contain each other ("Not like me" over "Like me").

A tier that names two different options ("A or B", "(A) ... (C)") makes the reply ambiguous and
the answer unreadable: ``None``. So is a label preceded by a negation ("not at all like me" does
not select "Like me"), and so is a reply that names nothing ("I cannot answer that"). An
unreadable reply is never replaced by a guess: it is recorded invalid with its raw text.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from valuescope.core.types import OPTION_LETTERS, LetterScores, Message, ScoreRequest
from valuescope.study.files import MAX_SPEC_BYTES, SpecError

_DECLARE = re.compile(
    r"(?:\banswer(?:\s+is|\s+would\s+be|\s+will\s+be)?|\bchoice(?:\s+is|\s+would\s+be)?|\boption"
    r"|\bresponse(?:\s+is|\s+would\s+be)?"
    r"|\b(?:i(?:'d|\s+would|\s+will|'ll)?\s+(?:say|choose|pick|select|go\s+(?:with|for)))"
    r"|\b(?:i\s+)?(?:choose|pick|select|go\s+with))"
    r"\s*(?:option|letter)?\s*[:=\-]?\s*[*_\"'`]*\(?[*_\"'`]*([A-Za-z])(?![A-Za-z'])([^\S\n]*[).,:;!\]]?)",
    re.IGNORECASE,
)
_PAREN = re.compile(r"\(([A-Z])\)")
_LINE_START = re.compile(r"(?m)^[^\S\n]*(?:[-*>]+[^\S\n]*)?\(?([A-Z])(?:[).:]|\s*$|\s+[-\u2013\u2014]\s)")
_LONE = re.compile(r"^\W*([A-Za-z])\W*$")
_PAIR = re.compile(r"(?<![A-Za-z])\(?([A-Z])\)?\s*(?:or|and|/|&|,)\s*\(?([A-Z])\)?(?![A-Za-z])")
_NEGATION = re.compile(r"(?:\bnot|n't|\bnever|\bno|\bnor|\bhardly)\b[\w\s,]{0,12}$", re.IGNORECASE)


def _clean(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"[*_`]{1,3}", "", text).strip()


def _unique(found: list[int]) -> tuple[bool, int | None]:
    """(tier named something, the option if it named exactly one)."""
    if not found:
        return False, None
    distinct = set(found)
    return True, (found[0] if len(distinct) == 1 else None)


def _letter_tiers(text: str, letters: Sequence[str]) -> tuple[bool, int | None]:
    index = {c.upper(): i for i, c in enumerate(letters)}
    for a, b in _PAIR.findall(text):
        if a in index and b in index and a != b:
            return True, None  # "A or B": two options named side by side
    declared: list[int] = []
    for m in _DECLARE.finditer(text):
        ch, after = m.group(1), m.group(2)
        if ch.islower() and not after.strip() and m.end() < len(text):
            continue  # "the answer is a tough one": a lowercase letter must stand alone
        if ch.upper() in index:
            declared.append(index[ch.upper()])
    named, choice = _unique(declared)
    if named:
        return named, choice
    m = _LONE.match(text)
    if m and m.group(1).upper() in index:
        return True, index[m.group(1).upper()]
    formatted = [index[c] for c in _PAREN.findall(text) if c in index]
    formatted += [index[c] for c in _LINE_START.findall(text) if c in index]
    return _unique(formatted)


def _label_tier(text: str, labels: Sequence[str]) -> tuple[bool, int | None]:
    low = re.sub(r"\s+", " ", text.lower())
    taken: list[tuple[int, int]] = []
    found: list[int] = []
    order = sorted(range(len(labels)), key=lambda i: -len(labels[i]))
    for i in order:
        label = re.sub(r"\s+", " ", labels[i].strip().lower())
        if not label:
            continue
        for m in re.finditer(r"(?<!\w)" + re.escape(label) + r"(?!\w)", low):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            label_negated = re.match(r"(not|no|never)\b", label) is not None
            if not label_negated and _NEGATION.search(low[: m.start()]):
                return True, None  # "not at all like me" must not select "Like me"
            found.append(i)
    return _unique(found)


def parse_choice(text: str | None, letters: Sequence[str], labels: Sequence[str] = ()) -> int | None:
    """The option (index into ``letters``) a free-text reply chooses, or None if unreadable.

    >>> parse_choice("I'd say (B) because family comes first", "ABCDEF")
    1
    >>> parse_choice("A or B, hard to say", "ABCDEF") is None
    True
    """
    if not text or not text.strip():
        return None
    clean = _clean(text)
    named, choice = _letter_tiers(clean, letters)
    if named:
        return choice
    if labels:
        _, choice = _label_tier(clean, labels)
        return choice
    return None


def _one_hot(k: int, i: int) -> tuple[float, ...]:
    return tuple(1.0 if j == i else 0.0 for j in range(k))


def letter_scores_from_text(
    text: str | None, letters: Sequence[str], labels: Sequence[str] = (), *, method: str = "generate"
) -> LetterScores:
    """One-hot scores for the option a reply chooses; invalid (raw text kept) when unreadable."""
    k = len(letters)
    choice = parse_choice(text, letters, labels)
    if choice is None:
        return LetterScores(
            probs=tuple([math.nan] * k), outside_mass=math.nan, valid=False, raw=text,
            error="unreadable answer" if text and text.strip() else "empty answer", method=method,
        )
    return LetterScores(probs=_one_hot(k, choice), outside_mass=math.nan, valid=True, raw=text, method=method)


# --------------------------------------------------------------------------- judge

JUDGE_SYSTEM = (
    "You read a person's reply to a multiple-choice question and say which option the reply "
    "chooses. Answer with the option letter only."
)


def judge_request(text: str, letters: Sequence[str], labels: Sequence[str]) -> tuple[ScoreRequest, str]:
    """The prompt a judge model scores; the extra last letter means "no single option"."""
    none_letter = OPTION_LETTERS[len(letters)]
    lines = [f"({c}) {lab}" if lab else f"({c})" for c, lab in zip(letters, labels or [""] * len(letters),
                                                                 strict=True)]
    lines.append(f"({none_letter}) None of these, several of them, or the reply does not say")
    user = (
        "Options:\n" + "\n".join(lines) + f"\n\nReply:\n\"\"\"\n{text.strip()}\n\"\"\"\n\n"
        "Which option does the reply choose?"
    )
    req = ScoreRequest(
        messages=(Message("system", JUDGE_SYSTEM), Message("user", user)),
        letters=(*letters, none_letter),
        answer_prefix="Answer: (",
        labels=(*labels, "none") if labels else (),
    )
    return req, none_letter


def judge_extract(
    backend: Any, text: str | None, letters: Sequence[str], labels: Sequence[str] = ()
) -> LetterScores:
    """Ask a judge model (any backend) which option a free-text reply chooses.

    The judge scores the options plus one "none of these" letter; its most probable letter wins.
    "None" or an unreadable judge gives an invalid answer with the raw reply kept."""
    k = len(letters)
    invalid = tuple([math.nan] * k)
    if not text or not text.strip():
        return LetterScores(invalid, math.nan, valid=False, raw=text, error="empty answer", method="judge")
    req, _ = judge_request(text, letters, labels)
    [res] = backend.score([req])
    if not res.valid:
        return LetterScores(invalid, math.nan, valid=False, raw=text,
                            error=f"judge could not answer: {res.error}", method="judge")
    best = max(range(k + 1), key=lambda j: res.probs[j])
    if best == k:
        return LetterScores(invalid, math.nan, valid=False, raw=text,
                            error="judge: reply chooses no single option", method="judge")
    return LetterScores(_one_hot(k, best), math.nan, valid=True, raw=text, method="judge")


def judge_eval(backend: Any, samples: Sequence[tuple[str, Sequence[str], Sequence[str], int | None]]) -> dict:
    """Accuracy of a judge model, and of the rules, on labelled replies.

    ``samples`` are ``(text, letters, labels, gold)`` with ``gold`` the chosen option's index or
    None for a reply that chooses none. A prediction is right when it equals ``gold`` (an invalid
    answer counts as predicting None). Returns ``accuracy``, ``rule_accuracy``, ``n``,
    ``n_invalid`` and ``confusion`` (``{gold: {predicted: count}}`` with letters, "none" for None).
    """
    confusion: dict[str, Counter] = {}
    right = rule_right = invalid = 0
    for text, letters, labels, gold in samples:
        res = judge_extract(backend, text, letters, labels)
        pred = res.probs.index(1.0) if res.valid else None
        invalid += not res.valid
        right += pred == gold
        rule_right += parse_choice(text, letters, labels) == gold
        g = "none" if gold is None else letters[gold]
        p = "none" if pred is None else letters[pred]
        confusion.setdefault(g, Counter())[p] += 1
    n = len(samples)
    return {
        "n": n,
        "accuracy": right / n if n else math.nan,
        "rule_accuracy": rule_right / n if n else math.nan,
        "n_invalid": invalid,
        "confusion": {g: dict(c) for g, c in sorted(confusion.items())},
    }


# --------------------------------------------------------------------------- labelled samples

Sample = tuple[str, tuple[str, ...], tuple[str, ...], int | None]


def read_labelled_samples(path: str | Path) -> list[Sample]:
    """Labelled replies for :func:`judge_eval` from a JSONL file, one object per line::

        {"text": "I'd say B.", "labels": ["Not like me at all", "Not like me", ...], "gold": "B"}

    ``text`` is the reply; ``letters`` (a list, or a string such as "ABCDEF") and ``labels`` give
    the options (either may be left out: letters default to A, B, ... for the labels); ``gold`` is
    the letter the reply chooses, or null / "none" when it chooses no single option. Blank lines
    are skipped. A malformed file raises one :class:`SpecError` naming the line.
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"sample file not found: {p}")
    if p.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{p}: sample file is larger than {MAX_SPEC_BYTES // 1_000_000} MB")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    out: list[Sample] = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            out.append(_sample(line, f"{p} line {n}"))
    if not out:
        raise SpecError(f"{p}: no samples (one JSON object per line)")
    return out


def _sample(line: str, where: str) -> Sample:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise SpecError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - {"text", "letters", "labels", "gold"}
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: text, letters, labels, gold)")
    text = obj.get("text")
    if not isinstance(text, str):
        raise SpecError(f"{where}: 'text' must be a string (the reply)")
    labels = obj.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise SpecError(f"{where}: 'labels' must be a list of strings")
    letters = obj.get("letters", OPTION_LETTERS[: len(labels)])
    if isinstance(letters, str):
        letters = list(letters)
    if not isinstance(letters, list) or not all(isinstance(x, str) and len(x) == 1 and x.isalpha() for x in letters):
        raise SpecError(f"{where}: 'letters' must be single letters (a list or a string such as \"ABCDEF\")")
    letters = [c.upper() for c in letters]
    k = len(letters)
    if k < 2 or len(set(letters)) != k or k >= len(OPTION_LETTERS) or OPTION_LETTERS[k] in letters:
        raise SpecError(f"{where}: need 2 to 25 distinct option letters (give 'letters' or 'labels'), got {letters}")
    if labels and len(labels) != k:
        raise SpecError(f"{where}: {len(labels)} labels for {k} letters")
    if "gold" not in obj:
        raise SpecError(f"{where}: missing 'gold' (the chosen letter, or null for none)")
    gold = obj["gold"]
    if gold is None or (isinstance(gold, str) and gold.strip().lower() == "none"):
        return text, tuple(letters), tuple(labels), None
    if not isinstance(gold, str) or gold.strip().upper() not in letters:
        raise SpecError(f"{where}: 'gold' must be one of {''.join(letters)} or null, got {gold!r}")
    return text, tuple(letters), tuple(labels), letters.index(gold.strip().upper())
