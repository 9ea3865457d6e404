"""`valuescope judge-eval`: a judge model (the embedded SmolLM2) and the rule-based parser scored on
labelled replies; the sample file's reader and its one-line errors.

Issue 28: the CLI runs in this process (helpers.cli_in_process: typer's runner, no interpreter start). The
text output (accuracy line, confusion table) is checked against a judge whose answers are known, on 8 of the
example's replies (every gold label, every option set); the embedded judge answers those 8 through the CLI
(--json), whose report must be the library function's on that judge's answers. Before: the embedded judge on
all 40 replies (text output, consistency only) and on the first 8 (--json), each in a process.
(about 2.7 CPU-s per judged reply with one llama.cpp thread here; the --json test judges each of its 8 once)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from helpers import cli_in_process

from valuescope.backends.extraction import judge_eval, parse_choice, read_labelled_samples
from valuescope.core.types import LetterScores
from valuescope.study.spec import SpecError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "judge_sample.jsonl"
# gold A, none, B, F, D, C, E, F; options: PVQ, PVQ permuted, MFQ relevance, MFQ agreement, donated coins
JUDGED_LINES = (4, 6, 10, 13, 15, 20, 29, 35)


def vs(*args: str) -> subprocess.CompletedProcess:
    return cli_in_process(*args, raise_errors=False)


def rule_accuracy(samples) -> float:
    return sum(parse_choice(t, lets, labs) == g for t, lets, labs, g in samples) / len(samples)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_example_sample_is_a_realistic_labelled_set():
    samples = read_labelled_samples(EXAMPLE)
    assert len(samples) >= 30
    golds = [g for *_, g in samples]
    assert golds.count(None) >= 3 and len({g for g in golds if g is not None}) == 6  # every letter, and "none"
    assert len({labs for _, _, labs, _ in samples}) >= 4  # PVQ, permuted PVQ, MFQ parts, donation
    # the rules get the easy ones; the hard ones (pairs, ordinal words, paraphrase) are for the judge
    assert 0.8 <= rule_accuracy(samples) < 1.0


def test_reader_accepts_letter_strings_none_and_lowercase(tmp_path):
    p = write_jsonl(tmp_path / "s.jsonl", [
        {"text": "I'd say b.", "letters": "abc", "gold": "b"},
        "",
        {"text": "No idea.", "labels": ["yes", "no"], "gold": "none"},
        {"text": "(A)", "letters": ["A", "B"], "labels": ["yes", "no"], "gold": None},
    ])
    assert read_labelled_samples(p) == [
        ("I'd say b.", ("A", "B", "C"), (), 1),
        ("No idea.", ("A", "B"), ("yes", "no"), None),
        ("(A)", ("A", "B"), ("yes", "no"), None),
    ]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"text": "B", "labels": ["x", "y"], "gold": "B"', "line 2: not valid JSON"),
        ('["B", "A"]', "line 2: expected a JSON object"),
        ('{"text": "B", "labels": ["x", "y"]}', "line 2: missing 'gold'"),
        ('{"text": "B", "labels": ["x", "y"], "gold": "C"}', "line 2: 'gold' must be one of AB or null"),
        ('{"text": "B", "letters": "ABC", "labels": ["x", "y"], "gold": "B"}', "line 2: 2 labels for 3 letters"),
        ('{"text": "B", "gold": "B"}', "line 2: need 2 to 25 distinct option letters"),
        ('{"text": "B", "letters": "AAB", "gold": "B"}', "line 2: need 2 to 25 distinct option letters"),
        ('{"text": 3, "labels": ["x", "y"], "gold": "B"}', "line 2: 'text' must be a string"),
        ('{"text": "B", "labels": "x,y", "gold": "B"}', "line 2: 'labels' must be a list of strings"),
        ('{"text": "B", "labels": ["x", "y"], "gold": "B", "lable": 1}', "line 2: unknown key(s) lable"),
    ],
)
def test_malformed_sample_file_gives_one_line_and_exit_2(tmp_path, line, needle):
    p = write_jsonl(tmp_path / "bad.jsonl", ['{"text": "A", "labels": ["x", "y"], "gold": "A"}', line])
    with pytest.raises(SpecError, match=re.escape(needle)):
        read_labelled_samples(p)
    res = vs("judge-eval", "--sample", str(p), "--judge", "backend=llamacpp")
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr


def test_missing_or_empty_files_and_a_bad_judge(tmp_path):
    res = vs("judge-eval", "--sample", str(tmp_path / "nope.jsonl"), "--judge", "backend=llamacpp")
    assert res.returncode == 2 and "sample file not found" in res.stderr
    empty = write_jsonl(tmp_path / "empty.jsonl", ["", "  "])
    res = vs("judge-eval", "--sample", str(empty), "--judge", "backend=llamacpp")
    assert res.returncode == 2 and "no samples" in res.stderr
    res = vs("judge-eval", "--sample", str(EXAMPLE), "--judge", str(tmp_path / "judge.gguf"))
    assert res.returncode == 2 and "no such model file" in res.stderr and "Traceback" not in res.stderr
    res = vs("judge-eval", "--sample", str(EXAMPLE), "--judge", "backend=telepathy")
    assert res.returncode == 2 and "--judge: field 'models.0.backend'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = vs("judge-eval", "--judge", "backend=llamacpp")
    assert res.returncode == 2 and "--sample" in res.stderr  # the sample file is required


def _judged_file(folder: Path) -> Path:
    lines = EXAMPLE.read_text().splitlines()
    return write_jsonl(folder / "few.jsonl", [lines[i] for i in JUDGED_LINES])


class CannotOrFirst:
    """A known-truth judge: the "none" letter for a reply that says it cannot answer, else the first option."""

    def score(self, requests):
        out = []
        for req in requests:
            k = 0 if "cannot" not in req.messages[-1].content else len(req.letters) - 1
            out.append(LetterScores(tuple(float(j == k) for j in range(len(req.letters))), 0.0))
        return out

    def close(self) -> None:
        pass


def test_judge_eval_table_from_a_known_judge(tmp_path, monkeypatch):
    """The command's text output (header, accuracy line, confusion table) for a judge whose every answer is
    known: the first option, or none for the one reply that says it cannot answer."""
    from valuescope.execution import runner

    p = _judged_file(tmp_path)
    samples = read_labelled_samples(p)
    assert {g for *_, g in samples} == {0, 1, 2, 3, 4, 5, None}  # every gold label, "none" included
    assert len({labs for _, _, labs, _ in samples}) == 5
    assert [t for t, *_ in samples if "cannot" in t] == [t for t, *_, g in samples if g is None]
    monkeypatch.setattr(runner, "make_backend", lambda spec: CannotOrFirst())
    res = vs("judge-eval", "--sample", str(p), "--judge", "backend=llamacpp,name=smol")
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert f"judge-eval: 8 samples from {p}; judge smol (llamacpp)" in text
    # right: the gold-A reply and the "cannot" reply; invalid: the "cannot" reply
    assert f"judge accuracy: 0.250  rule accuracy: {rule_accuracy(samples):.3f}  n: 8  judge invalid: 1" in text
    header = next(ln for ln in text.splitlines() if "gold" in ln and "┃" in ln)
    assert [c.strip() for c in header.split("┃") if c.strip()] == ["gold", *"ABCDEF", "none"]  # golds too
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if cells and (cells[0] in "ABCDEF" or cells[0] == "none") and all(c.isdigit() for c in cells[1:]):
            rows[cells[0]] = [int(c) for c in cells[1:]]
    first = {g: [n, 0, 0, 0, 0, 0, 0] for g, n in zip("ABCDEF", [1, 1, 1, 1, 1, 2], strict=True)}
    assert rows == {**first, "none": [0, 0, 0, 0, 0, 0, 1]}


class Recording:
    """The CLI's judge, wrapped: every request it scored and what it answered, in order."""

    def __init__(self, inner) -> None:
        self.inner, self.asked = inner, []

    def score(self, requests):
        out = self.inner.score(requests)
        self.asked += list(zip(requests, out, strict=True))
        return out

    def close(self) -> None:
        self.inner.close()


class Replay:
    """A judge that gives, for each request, what the recorded judge answered to that very request (a
    request it was not asked fails the test)."""

    def __init__(self, asked) -> None:
        self.answers = dict(asked)

    def score(self, requests):
        return [self.answers[r] for r in requests]


@pytest.mark.slow  # the embedded model judges 8 replies (about 2.3 s each on one core: ~145 prompt tokens apiece)
def test_json_output_matches_the_library_function(tmp_path, monkeypatch):
    """The CLI loads the embedded judge from ``backend=llamacpp`` and reports, as JSON, what the library
    function computes from that judge's answers. Issue 28: the library function reads the answers the CLI's
    model gave to the same prompts (a replay keyed by request: the library must ask exactly those prompts)
    instead of a second model judging the 8 replies again (answers depend only on the prompt:
    test_determinism); 8 evaluations instead of 16 (38.5 s in the quiet durations run)."""
    from valuescope.backends.llamacpp import LlamaCppBackend, embedded_model_path
    from valuescope.execution import runner

    judges: list[Recording] = []
    real = runner.make_backend

    def recorded(spec):
        judges.append(Recording(real(spec)))
        return judges[-1]

    monkeypatch.setattr(runner, "make_backend", recorded)
    p = _judged_file(tmp_path)
    res = vs("judge-eval", "-s", str(p), "--judge", "backend=llamacpp", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    (judge,) = judges
    assert isinstance(judge.inner, LlamaCppBackend) and judge.inner.model_path == embedded_model_path()
    samples = read_labelled_samples(p)
    assert len(judge.asked) == 8 and all(ans.valid for _, ans in judge.asked)  # a letter distribution each
    want = judge_eval(Replay(judge.asked), samples)
    assert report == {"judge": "smollm2-135m", "backend": "llamacpp", **want}
    assert report["n"] == 8 and report["rule_accuracy"] == rule_accuracy(samples)
    confusion = report["confusion"]
    assert sum(sum(row.values()) for row in confusion.values()) == 8
    assert report["accuracy"] == sum(row.get(g, 0) for g, row in confusion.items()) / 8
    assert report["n_invalid"] == sum(row.get("none", 0) for row in confusion.values())
