"""`valuescope judge-eval`: a judge model (the embedded SmolLM2) and the rule-based parser scored on
labelled replies; the sample file's reader and its one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from valuescope.backends.extraction import judge_eval, parse_choice, read_labelled_samples
from valuescope.study.spec import SpecError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "judge_sample.jsonl"
PVQ = ["Not like me at all", "Not like me", "A little like me", "Moderately like me", "Like me",
       "Very much like me"]


def vs(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "valuescope", *args], capture_output=True, text=True,
                          timeout=timeout)


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


@pytest.mark.slow
def test_judge_eval_on_the_example_with_the_embedded_judge():
    samples = read_labelled_samples(EXAMPLE)
    res = vs("judge-eval", "--sample", str(EXAMPLE), "--judge", "backend=llamacpp,name=smol")
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert f"judge-eval: {len(samples)} samples from {EXAMPLE}; judge smol (llamacpp)" in text
    m = re.search(r"judge accuracy: ([\d.]+)  rule accuracy: ([\d.]+)  n: (\d+)  judge invalid: (\d+)", text)
    assert m, text
    accuracy, rule_acc, n, invalid = float(m[1]), float(m[2]), int(m[3]), int(m[4])
    assert n == len(samples) and 0 <= invalid <= n
    assert rule_acc == pytest.approx(rule_accuracy(samples), abs=5e-4)
    # the confusion table: one row per gold label, counts summing to n, its diagonal = accuracy * n
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if cells and (cells[0] in "ABCDEF" or cells[0] == "none") and all(c.isdigit() for c in cells[1:]):
            rows[cells[0]] = [int(c) for c in cells[1:]]
    header = next(ln for ln in text.splitlines() if "gold" in ln and "┃" in ln)
    cols = [c.strip() for c in header.split("┃") if c.strip()][1:]
    assert set(rows) == {"A", "B", "C", "D", "E", "F", "none"}
    assert sum(map(sum, rows.values())) == n
    for g, counts in rows.items():
        assert sum(counts) == sum(1 for *_, gold in samples if ("none" if gold is None else "ABCDEF"[gold]) == g)
    diagonal = sum(counts[cols.index(g)] for g, counts in rows.items() if g in cols)
    assert accuracy == pytest.approx(diagonal / n, abs=5e-4)
    judged_none = sum(counts[cols.index("none")] for counts in rows.values()) if "none" in cols else 0
    assert invalid == judged_none


@pytest.mark.slow
def test_json_output_matches_the_library_function(tmp_path, embedded_backend):
    rows = [json.loads(line) for line in EXAMPLE.read_text().splitlines()[:8]]
    p = write_jsonl(tmp_path / "few.jsonl", rows)
    res = vs("judge-eval", "-s", str(p), "--judge", "backend=llamacpp", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    samples = read_labelled_samples(p)
    want = judge_eval(embedded_backend, samples)  # same model, same prompts: the same answers
    assert report == {"judge": "smollm2-135m", "backend": "llamacpp", **want}
    assert report["n"] == 8 and report["rule_accuracy"] == rule_accuracy(samples)
