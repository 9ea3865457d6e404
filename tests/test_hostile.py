"""Issue 29: every failure is one clear line (docs/reliability.md).

A table of hostile but realistic uses of the CLI on the synthetic backend: brackets in names, output
paths that cannot be written, read-only stores and folders, inputs that would exhaust memory, usage
errors. Each case asserts the exit code, exactly one error line on stderr (no traceback), the
message's key words, and, where the case must not write, that the store's rows are unchanged (a dump
of every table, not the bytes of its files). The disk-full and interrupt cases also assert that the
rerun completes to exactly the planned keys with the answers of an uninterrupted run.

Permission cases need a user that file modes apply to: as root they run under ``setpriv`` without
CAP_DAC_OVERRIDE; where neither is possible they are skipped.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from helpers import JSONHandler, LoopbackServer

SRC = str(Path(__file__).resolve().parents[1] / "src")  # the checkout under test, whatever is installed
TABLES = ("runs", "responses", "failures", "conversations", "run_conversations")
SYN = {"name": "syn", "backend": "synthetic"}
ITEMS = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT", "DECENCY", "MATH", "WEAK", "UNFAIRLY"]


def study(out: Path | str, **changes) -> dict:
    base = {"name": "hostile", "output": str(out), "report": False, "models": [SYN],
            "instruments": [{"name": "mfq30", "items": ITEMS}],
            "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 5, "seeds": [111]}]}}
    base.update(changes)
    return base


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
            "COLUMNS": "200"}


def _drop_dac() -> list[str] | None:
    """The prefix that makes file modes apply to this process (None: they cannot be made to)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``valuescope ARGS`` from ``cwd`` in this process, through the real entry point (``cli.entry``: usage
    errors too). What needs a process of its own runs in ``cli_batch`` (or, for a signal, its own process)."""
    return _in_process(args, cwd)


@dataclass
class Job:
    """One ``valuescope ARGS`` from ``cwd`` in the batch process, under a file-size limit (``ulimit -f``,
    bytes) where ``fsize`` is set."""
    args: list[str]
    cwd: Path
    fsize: int | None = None


def cli_batch(jobs: list[Job], timeout: float = 600) -> tuple[list[subprocess.CompletedProcess], bool]:
    """Every job, one after another, in ONE fresh process (an interpreter start costs 3-5 s under load), each
    through ``_in_process`` as the in-process cases: (results, whether file modes applied). File modes apply
    where they can be made to (without CAP_DAC_OVERRIDE, see ``_drop_dac``); a job's file-size limit is the
    process's soft RLIMIT_FSIZE while it runs (Python ignores SIGXFSZ: a write past it fails with EFBIG); what a
    fresh process prints (warnings, logging) is in its stderr."""
    prefix = _drop_dac()
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_hostile as t; "
            "print(json.dumps(t._run_jobs(json.loads(sys.argv[2]))))")
    spec = json.dumps([[job.args, str(job.cwd), job.fsize] for job in jobs])
    res = subprocess.run([*(prefix or []), sys.executable, "-c", code, str(Path(__file__).parent), spec],
                         capture_output=True, text=True, env=_env(), timeout=timeout)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    done = [subprocess.CompletedProcess(["valuescope", *job.args], code, out, err)
            for job, (code, out, err) in zip(jobs, json.loads(res.stdout.splitlines()[-1]), strict=True)]
    return done, prefix is not None


def _run_jobs(jobs: list[list]) -> list[tuple[int, str, str]]:
    """In the batch process: each job through ``_in_process``, under its file-size limit."""
    done = []
    for args, cwd, fsize in jobs:
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, hard))
        try:
            res = _in_process(args, Path(cwd))
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        done.append((res.returncode, res.stdout, res.stderr))
    return done


def _in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``cli.entry()`` with ``sys.argv`` set, stdout and stderr captured; an exception that escapes it is
    written as the traceback a process would print, and a warning that passes the filters as the line a
    process would print (deprecations aside: pytest shows those, a process does not)."""
    import contextlib
    import io
    import traceback
    import warnings

    from valuescope.cli import entry

    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = ["valuescope", *args]
    os.chdir(cwd)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            try:
                entry()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - reported as a process would report it
                stderr.write("Traceback (in-process)\n" + traceback.format_exc())
                code = 1
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    shown = [w for w in caught if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    text = stderr.getvalue() + "".join(f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n"
                                       for w in shown)
    return subprocess.CompletedProcess(["valuescope", *args], code, stdout.getvalue(), text)


def dump(directory: Path) -> dict[str, list] | None:
    """Every row of every table of the store (read-only, never through its WAL bytes); None: no store."""
    path = directory / "valuescope.sqlite"
    if not path.is_file():
        return None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: sorted(map(tuple, con.execute(f"SELECT * FROM {t}"))) for t in TABLES}
    finally:
        con.close()


def answers(directory: Path) -> dict[str, tuple]:
    con = sqlite3.connect(f"file:{directory / 'valuescope.sqlite'}?mode=ro", uri=True)
    try:
        return {k: (p, v, m) for k, p, v, m in con.execute("SELECT key, probs, valid, method FROM responses")}
    finally:
        con.close()


def error_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.strip()]


def assert_one_line(res: subprocess.CompletedProcess, code: int, words: tuple[str, ...], prefix: str = "error: "):
    lines = error_lines(res)
    detail = f"exit {res.returncode}\nstderr: {res.stderr[-1500:]}\nstdout: {res.stdout[-500:]}"
    assert "Traceback" not in res.stderr + res.stdout, detail
    assert res.returncode == code, detail
    assert len(lines) == 1, detail
    assert lines[0].startswith(prefix), detail
    for w in words:
        assert w.lower() in lines[0].lower(), f"{w!r} not in {lines[0]!r}"
    return lines[0]


# --------------------------------------------------------------------------- the shared store


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A folder with a complete synthetic store of two runs (models syn and syn2: ids share the prefix
    'hostile-syn'), a study file for it, and a plain file."""
    root = tmp_path_factory.mktemp("hostile")
    write_yaml(root / "study.yaml", study(root / "store", models=[SYN, {"name": "syn2", "backend": "synthetic"}]))
    res = cli(["run", "study.yaml", "-q"], root)
    assert res.returncode == 0, res.stderr
    (root / "afile.txt").write_text("not a folder\n")
    return root


def _runs(store: Path) -> list[str]:
    return [r[0] for r in dump(store)["runs"]]


@dataclass
class Case:
    name: str
    args: Callable[[Path, Path], list[str]]  # (case folder, base folder) -> CLI arguments
    code: int
    words: tuple[str, ...]
    files: dict[str, object] = field(default_factory=dict)  # name -> YAML data, bytes or text, in the case folder
    perms: bool = False  # run with file modes applying (see _drop_dac)
    setup: Callable[[Path, Path], None] | None = None
    store: str = "store"  # the store (under the case folder, copied from base) that must stay unchanged
    peak_mb: float | None = None  # an input that would exhaust memory: the most Python may allocate refusing it


def _ro_dir(name: str, empty: bool = True) -> Callable[[Path, Path], None]:
    def setup(case: Path, base: Path) -> None:
        d = case / name
        if empty:
            d.mkdir()
        else:
            shutil.copytree(base / "store", d)
        d.chmod(0o555)
    return setup


def _ro_file(case: Path, base: Path) -> None:
    (case / "store" / "valuescope.sqlite").chmod(0o444)


def _zero(case: Path, base: Path) -> None:
    (case / "zero").mkdir()
    (case / "zero" / "valuescope.sqlite").write_bytes(b"")


LAUGHS = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
                 for p, c in zip(["", *"abcdefgh"], "abcdefghi", strict=True))


def _instrument(**changes) -> dict:
    inst = {"id": "tiny", "name": "Tiny", "citation": "test", "licence": "CC0",
            "parts": [{"id": "p", "instructions": "How much is each like you?", "stem": "{item}",
                       "scale": {"labels": ["no", "yes"], "values": [0, 1]}}],
            "dimensions": ["Warmth"], "items": [{"id": "w1", "part": "p", "dimension": "Warmth", "text": "Kind."}]}
    inst.update(changes)
    return inst


def cases() -> list[Case]:
    o = lambda c, b: str(c / "store")  # noqa: E731 - the case's copy of the base store
    rid = lambda b: _runs(b / "store")[0]  # noqa: E731
    return [
        # 1. brackets and markup in names are printed literally
        Case("markup: missing study file with [/]", lambda c, b: ["run", "a[/]b.yaml", "-q"], 2, ("a[/]b.yaml",)),
        Case("markup: missing study file with [draft]", lambda c, b: ["run", "study [draft].yaml", "-q"], 2,
             ("study [draft].yaml",)),
        Case("markup: run id with [/x]", lambda c, b: ["show", "run[/x]", "--dir", o(c, b)], 2, ("run[/x]",)),
        Case("markup: instrument mfq[/]30", lambda c, b: ["run", "s.yaml", "-q"], 2, ("mfq[/]30",),
             files={"s.yaml": study("store", instruments=[{"name": "mfq[/]30"}])}),
        Case("markup: store folder res[/]", lambda c, b: ["ls", "res[/]"], 2, ("res[/]",)),
        Case("markup: emoji code in a path", lambda c, b: ["ls", "a:smile:b"], 2, ("a:smile:b",)),
        Case("markup: [bold] in a persona file name", lambda c, b: ["run", "s.yaml", "-q"], 2, ("[bold]x.jsonl",),
             files={"s.yaml": study("store", population={"sources": [{"kind": "file", "path": "[bold]x.jsonl"}]})}),
        # 2. output paths
        Case("run -o at a file", lambda c, b: ["run", "s.yaml", "-q", "-o", str(b / "afile.txt")], 2,
             ("afile.txt", "not a folder"), files={"s.yaml": study("store")}),
        Case("run -o under a file", lambda c, b: ["run", "s.yaml", "-q", "-o", str(b / "afile.txt" / "x")], 2,
             ("afile.txt", "not a folder"), files={"s.yaml": study("store")}),
        Case("run -o under a read-only folder", lambda c, b: ["run", "s.yaml", "-q", "-o", "ro/x"], 2,
             ("permission", "ro/x"), files={"s.yaml": study("store")}, perms=True, setup=_ro_dir("ro")),
        Case("run -o an empty read-only folder", lambda c, b: ["run", "s.yaml", "-q", "-o", "ro"], 2,
             ("permission", "ro"), files={"s.yaml": study("store")}, perms=True, setup=_ro_dir("ro")),
        Case("run on a read-only .sqlite", lambda c, b: ["run", "s.yaml", "-q", "-o", "store"], 2,
             ("read-only", "valuescope.sqlite"), files={"s.yaml": study("store", seed=5)}, perms=True,
             setup=_ro_file),
        Case("export --out /dev/null/x", lambda c, b: ["export", rid(b), "--dir", o(c, b), "--out", "/dev/null/x"],
             2, ("/dev/null", "not a folder")),
        Case("export --out a file", lambda c, b: ["export", rid(b), "--dir", o(c, b), "--out", str(b / "afile.txt")],
             2, ("afile.txt", "not a folder")),
        Case("export --out a read-only folder", lambda c, b: ["export", rid(b), "--dir", o(c, b), "--out", "ro/exp"],
             2, ("permission", "ro/exp"), perms=True, setup=_ro_dir("ro")),
        Case("report --out under a file", lambda c, b: ["report", rid(b), "--dir", o(c, b), "--out",
                                                        str(b / "afile.txt" / "r")], 2, ("afile.txt",)),
        # 5. bounded sizes
        Case("wvs n: 1000000000", lambda c, b: ["run", "s.yaml", "-q"], 2, ("population.sources.0", "n"),
             peak_mb=20,
             files={"s.yaml": study("store", population={"sources": [{"kind": "wvs", "n": 1_000_000_000}]})}),
        Case("population over the limit", lambda c, b: ["run", "s.yaml", "-q"], 2, ("personas", "at most"),
             peak_mb=20, files={"s.yaml": study("store", population={"sources": [{"kind": "wvs", "n": 100_000,
                                                                     "seeds": [1, 2, 3]}]})}),
        Case("queries over the limit", lambda c, b: ["run", "s.yaml", "-q"], 2, ("queries", "at most"),
             files={"s.yaml": study("store", instruments=[{"name": "mfq30"}], repeats=100,
                                    population={"sources": [{"kind": "wvs", "n": 1000}]})}),
        Case("seeds over the limit", lambda c, b: ["run", "s.yaml", "-q"], 2, ("seeds",),
             files={"s.yaml": study("store", population={"sources": [{"kind": "wvs", "n": 1,
                                                                     "seeds": list(range(1001))}]})}),
        Case("repeats over the limit", lambda c, b: ["run", "s.yaml", "-q"], 2, ("repeats",),
             files={"s.yaml": study("store", repeats=101)}),
        Case("conversation of 10^6 messages", lambda c, b: ["run", "s.yaml", "-q"], 2, ("n_messages",),
             files={"s.yaml": study("store", contexts={"topics": ["chess"], "n_messages": [1_000_000]})}),
        Case("a billion laughs", lambda c, b: ["run", "s.yaml", "-q"], 2, ("alias",), files={"s.yaml": LAUGHS},
             peak_mb=20),
        Case("an alias that contains itself", lambda c, b: ["run", "s.yaml", "-q"], 2, ("alias",),
             files={"s.yaml": "name: &a [x, *a]\n"}),
        # (20,000 elements: what costs nothing to report however large it is, test_error_values_are_formatted_lazily)
        Case("a 20,000-element value in an error", lambda c, b: ["run", "s.yaml", "-q"], 2, ("seed", "..."),
             files={"s.yaml": "name: big\nseed: [" + "1," * 20_000 + "1]\n"}),
        Case("a 10 MB persona line", lambda c, b: ["run", "s.yaml", "-q"], 2, ("description", "at most"),
             files={"s.yaml": study("store", population={"sources": [{"kind": "file", "path": "p.jsonl"}]}),
                    "p.jsonl": json.dumps({"description": "x" * 10_000_000}) + "\n"}),
        Case("an instrument of 10001 items", lambda c, b: ["run", "s.yaml", "-q"], 2, ("items", "at most"),
             files={"s.yaml": study("store", instruments=[{"path": "i.yaml"}]),
                    "i.yaml": "".join(["id: tiny\nname: Tiny\ncitation: t\nlicence: CC0\ndimensions: [W]\n"
                                       "parts: [{id: p, instructions: '?', stem: '{item}', "
                                       "scale: {labels: [a, b], values: [0, 1]}}]\n"
                                       "items:\n", *(f"- {{id: w{i}, part: p, dimension: W, text: K}}\n"
                                                     for i in range(10_001))])}),
        Case("an instrument of 27 options", lambda c, b: ["run", "s.yaml", "-q"], 2, ("options",),
             files={"s.yaml": study("store", instruments=[{"path": "i.yaml"}]),
                    "i.yaml": _instrument(parts=[{"id": "p", "instructions": "?", "stem": "{item}",
                                                  "scale": {"labels": [f"o{i}" for i in range(27)],
                                                            "values": list(range(27))}}])}),
        # 6. the smaller ones
        Case("ambiguous run-id prefix", lambda c, b: ["show", "hostile-syn", "--dir", o(c, b)], 2,
             ("ambiguous", "hostile-syn-", "hostile-syn2-")),
        Case("power --effect ...=inf", lambda c, b: ["power", "s.yaml", "--effect", "sex=Female:Harm=inf",
                                                     "--sizes", "20", "--reps", "2", "-o", "pw"], 2,
             ("--effect", "finite number"), files={"s.yaml": study("store")}),
        Case("power --effect ...=1e308", lambda c, b: ["power", "s.yaml", "--effect", "sex=Female:Harm=1e308",
                                                       "--sizes", "20", "--reps", "2", "-o", "pw"], 2,
             ("--effect", "between -20 and 20"), files={"s.yaml": study("store")}),
        Case("power: an .inf effect in a synthetic spec", lambda c, b: ["power", "s.yaml", "--synthetic", "m.yaml",
                                                                        "--sizes", "20", "--reps", "2", "-o", "pw"],
             2, ("m.yaml", "effects.sex=Female.Harm", "finite number"),
             files={"s.yaml": study("store"), "m.yaml": "effects:\n  sex=Female:\n    Harm: .inf\n"}),
        Case("report without run ids", lambda c, b: ["report", "--dir", o(c, b)], 2, ("missing argument",)),
        Case("an unknown option", lambda c, b: ["ls", "--colour"], 2, ("no such option",)),
        Case("reverse: true without a dimension", lambda c, b: ["run", "s.yaml", "-q"], 2, ("reverse", "dimension"),
             files={"s.yaml": study("store", instruments=[{"path": "i.yaml"}]),
                    "i.yaml": _instrument(items=[{"id": "w1", "part": "p", "dimension": "Warmth", "text": "Kind."},
                                                 {"id": "x", "part": "p", "text": "Odd.", "reverse": True}])}),
        Case("ls on a 0-byte store", lambda c, b: ["ls", "zero"], 2, ("empty",), setup=_zero),
        # already good: unknown run, missing store, a study that is not a mapping
        Case("unknown run", lambda c, b: ["show", "nope", "--dir", o(c, b)], 2, ("no run", "nope")),
        Case("no store", lambda c, b: ["ls", "nowhere"], 2, ("no valuescope store",)),
        Case("export of an unknown run", lambda c, b: ["export", "nope", "--dir", o(c, b)], 2, ("no run",)),
        Case("a study that is a list", lambda c, b: ["run", "s.yaml", "-q"], 2, ("mapping",), files={"s.yaml": [1]}),
        Case("study and --preset", lambda c, b: ["run", "s.yaml", "--preset", "demo", "-q"], 2, ("not both",),
             files={"s.yaml": study("store")}),
        Case("presets show of an unknown preset", lambda c, b: ["presets", "show", "nope"], 2, ("nope",)),
        Case("migrate without a store", lambda c, b: ["migrate", "nowhere"], 2, ("no valuescope store",)),
        Case("--ray-workers 0", lambda c, b: ["run", "s.yaml", "-q", "--ray-workers", "0"], 2, ("ray-workers",),
             files={"s.yaml": study("store")}),
    ]


def _materialise(case: Case, folder: Path, base: Path) -> None:
    folder.mkdir()
    shutil.copytree(base / "store", folder / "store")
    for name, data in case.files.items():
        if isinstance(data, bytes):
            (folder / name).write_bytes(data)
        elif isinstance(data, str):
            (folder / name).write_text(data)
        else:
            write_yaml(folder / name, data)
    if case.setup is not None:
        case.setup(folder, base)


CASES = cases()
# a case about file modes needs a process without CAP_DAC_OVERRIDE: all of them run in the module's one batch
# process (the fixture ``batch``); every other case runs in this process (well under a second each)
PARAMS = [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.perms else []) for c in CASES]
RO_COMMANDS = (["ls", "ro"], ["show", "{rid}", "--dir", "ro"], ["export", "{rid}", "--dir", "ro", "--out", "exp"],
               ["report", "{rid}", "--dir", "ro", "--out", "rep"])
FULL_RUN, FULL_OUTPUTS = 160_000, 2_000  # file-size limits (bytes): mid-run, and before an output is written


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict[str, tuple]]:
    """The hostile study run once, uninterrupted, in this process: (its store folder, its answers), what every
    interrupted or disk-full run must end with."""
    root = tmp_path_factory.mktemp("clean")
    write_yaml(root / "clean.yaml", study("clean"))
    res = cli(["run", "clean.yaml", "-q", "--no-report"], root)
    assert res.returncode == 0, res.stderr
    return root / "clean", answers(root / "clean")


@pytest.fixture(scope="module")
def batch(base: Path, clean, tmp_path_factory):
    """ONE process (``cli_batch``) runs every command that needs a process of its own but no signal: what a
    fresh process prints (a 26-option report), a file-size limit (a run, an export, a report), and, without
    CAP_DAC_OVERRIDE, every file-mode case (each in its own folder, its store dumped before) and the four
    commands of ``test_readonly_folder_is_read``. {name: (folder, store rows before, results)}; the file-mode
    entries only where file modes applied."""
    root = tmp_path_factory.mktemp("batch")
    jobs: list[Job] = []
    found: dict[str, tuple[Path, object, slice]] = {}

    def add(name: str, folder: Path, before, new: list[Job]) -> None:
        found[name] = (folder, before, slice(len(jobs), len(jobs) + len(new)))
        jobs.extend(new)

    # first, so that nothing run before it in the process has shown a warning it would show
    add("26 options", root / "options", None, [Job(["run", "s.yaml", "-q"], _options_study(root / "options"))])
    full = root / "full"
    full.mkdir()
    write_yaml(full / "full.yaml", study("full"))
    add("disk full: run", full, None, [Job(["run", "full.yaml", "-q", "--no-report"], full, FULL_RUN)])
    store, _ = clean
    rid = _runs(store)[0]
    for command in ("export", "report"):
        folder = root / command
        folder.mkdir()
        add(f"disk full: {command}", folder, dump(store),
            [Job([command, rid, "--dir", str(store), "--out", "outs"], folder, FULL_OUTPUTS)])
    jailed = _drop_dac() is not None
    if jailed:
        for i, case in enumerate(c for c in CASES if c.perms):
            folder = root / f"case{i}"
            _materialise(case, folder, base)
            add(case.name, folder, dump(folder / case.store), [Job(case.args(folder, base), folder)])
        # the read-only folder: a copy of the base store, its WAL merged and removed, the folder made read-only
        folder = root / "readonly"
        ro = folder / "ro"
        shutil.copytree(base / "store", ro)
        con = sqlite3.connect(ro / "valuescope.sqlite")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        assert sorted(os.listdir(ro)) == ["valuescope.sqlite"]
        rid = _runs(base / "store")[0]  # (not from ro: a read there as root would create its -wal)
        # (the rows of base: a read of ro itself here would create its -wal and -shm files)
        add("ro", folder, dump(base / "store"),
            [Job([a.format(rid=rid) for a in args], folder) for args in RO_COMMANDS])
        ro.chmod(0o555)
    try:
        results, applied = cli_batch(jobs)
    finally:
        if jailed:
            ro.chmod(0o755)
    assert applied == jailed
    return {name: (f, rows, results[where]) for name, (f, rows, where) in found.items()}


def _from_batch(batch: dict, name: str):
    if name not in batch:
        pytest.skip("running as root without setpriv: file modes cannot be tested")
    return batch[name]


@pytest.mark.parametrize("case", PARAMS)
def test_hostile_case_is_one_line(case: Case, base: Path, tmp_path: Path, request) -> None:
    if case.perms:  # run in the module's one batch process, without CAP_DAC_OVERRIDE
        folder, before, [res] = _from_batch(request.getfixturevalue("batch"), case.name)
    else:
        folder = tmp_path / "case"
        _materialise(case, folder, base)
        before = dump(folder / case.store)
        if case.peak_mb is None:
            res = cli(case.args(folder, base), folder)
        else:
            import tracemalloc

            tracemalloc.start()
            try:
                res = cli(case.args(folder, base), folder)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < case.peak_mb * 1e6, f"{peak / 1e6:.0f} MB allocated to refuse it"
    assert_one_line(res, case.code, case.words)
    assert dump(folder / case.store) == before  # no case writes an answer, a run or a schema
    if case.name == "ls on a 0-byte store":
        assert (folder / "zero" / "valuescope.sqlite").stat().st_size == 0


# --------------------------------------------------------------------------- things that must work


@pytest.mark.slow  # the batch process (shared with the file-mode cases), a report among its commands
def test_readonly_folder_is_read(batch) -> None:
    """ls, show, export and report read a store in a folder this user cannot write (immutable mode)."""
    folder, before, results = _from_batch(batch, "ro")
    for args, res in zip(RO_COMMANDS, results, strict=True):
        assert res.returncode == 0, (args, res.stderr)
        assert "Traceback" not in res.stderr
    assert (folder / "exp" / "responses.csv").is_file()
    assert (folder / "rep").is_dir()
    assert sorted(os.listdir(folder / "ro")) == ["valuescope.sqlite"]  # no -wal, -shm or journal created
    assert dump(folder / "ro") == before


def test_brackets_in_names_work_and_print_literally(tmp_path: Path) -> None:
    """A study file, a store folder and a study name with brackets and spaces run, and every line shows them
    as they are; the hint is shell-quoted."""
    write_yaml(tmp_path / "study [draft].yaml", study("res [/x] out", name="s[x]y"))  # [/x]: Rich's MarkupError
    res = cli(["run", "study [draft].yaml"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "s[x]y-syn-" in res.stdout
    assert "--dir 'res [/x] out'" in res.stdout
    assert "Traceback" not in res.stderr
    ls = cli(["ls", "res [/x] out"], tmp_path)
    assert ls.returncode == 0 and "s[x]y-syn-" in ls.stdout


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e308", "21"])
def test_power_effect_must_be_finite_and_bounded(value: str) -> None:
    """``power --effect`` parses through parse_effect: a non-finite or absurd effect is one SpecError line."""
    from valuescope.study.files import SpecError
    from valuescope.study.synthetic_spec import parse_effect

    with pytest.raises(SpecError, match="finite number between -20 and 20"):
        parse_effect(f"a=b:Care={value}")
    assert parse_effect("a=b:Care=0.5") == ("a=b", "Care", 0.5)


def test_error_values_are_formatted_lazily() -> None:
    """A value shown in an error is cut without being formatted in full: a list of 10^9 (shared) elements,
    what an alias-expanded YAML value can be, costs no more to show than a short one."""
    from valuescope.study.files import short_repr

    huge: list = [1] * 10
    for _ in range(8):
        huge = [huge] * 10
    text = short_repr(huge)
    assert len(text) <= 60 and text.startswith("[[[") and text.endswith("...")


class _RefusingServer(LoopbackServer):
    """A loopback OpenAI-compatible server that refuses every key with 401, echoing the Authorization header
    it received in the error body (as careless gateways do)."""

    def __init__(self) -> None:
        class Handler(JSONHandler):
            def _refuse(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_json(401, {"error": {"message": f"invalid key in header {self.headers.get('Authorization')}",
                                               "type": "invalid_request_error"}})

            do_GET = do_POST = _refuse  # noqa: N815

        super().__init__(Handler)


def test_refused_key_keeps_the_placeholder(base: Path, tmp_path: Path, monkeypatch) -> None:
    """A 401 from a (loopback) server that echoes the key: one line, exit 2, the key masked as ``[api key]``
    and the placeholder printed as it is (it looked like Rich markup: ``Bearer  (key )``); no answer stored."""
    secret = "sk-hostile-29-SECRET-c0ffee"
    monkeypatch.setenv("VS_HOSTILE_KEY", secret)
    shutil.copytree(base / "store", tmp_path / "store")
    before = dump(tmp_path / "store")
    with _RefusingServer() as url:
        write_yaml(tmp_path / "s.yaml", study("store", models=[
            {"name": "served", "backend": "openai", "base_url": url, "model": "m", "api_key_env": "VS_HOSTILE_KEY",
             "max_retries": 1}]))
        res = cli(["run", "s.yaml", "-q"], tmp_path)
    line = assert_one_line(res, 2, ("refused the API key", "Bearer [api key]"))
    assert secret not in res.stdout + res.stderr and secret[-8:] not in line
    assert dump(tmp_path / "store") == before


def test_progress_prints_the_phase_literally() -> None:
    """The progress bar (a terminal's) shows a phase holding markup as it is."""
    import io

    from rich.console import Console

    from valuescope.core.progress import ProgressBar

    buf = io.StringIO()
    bar = ProgressBar(Console(file=buf, force_terminal=True, width=120, color_system=None))
    bar("mfq[/]30 [bold]x", 3, 10)
    bar.close()
    assert "mfq[/]30 [bold]x" in buf.getvalue() and "3/10" in buf.getvalue()


def _options_study(folder: Path) -> Path:
    """A study with a 26-option instrument and a persona of the longest description accepted, reported."""
    from valuescope.study import limits

    folder.mkdir()
    labels = [f"option {chr(65 + i)}" for i in range(26)]
    write_yaml(folder / "i.yaml", _instrument(parts=[{"id": "p", "instructions": "Pick one.", "stem": "{item}",
                                                      "scale": {"labels": labels, "values": list(range(26))}}]))
    long = ("words of a persona " * limits.MAX_PERSONA_CHARS)[:limits.MAX_PERSONA_CHARS]
    (folder / "p.jsonl").write_text("".join(json.dumps({"description": d}) + "\n" for d in [long, "A nurse."]))
    write_yaml(folder / "s.yaml", study("out", instruments=[{"path": "i.yaml"}], report=True, population={
        "baseline": True, "sources": [{"kind": "wvs", "n": 3, "seeds": [111]}, {"kind": "file", "path": "p.jsonl"}]}))
    return folder


@pytest.mark.slow  # the batch process (what a process prints), a report
def test_twenty_six_options_report_without_warnings(batch) -> None:
    """A 26-option instrument and a persona of the longest description accepted (50,000 characters) run and
    report with no warning printed (matplotlib's included: a 10 MB persona line printed some), in a fresh
    process (warnings filters and logging as a user's)."""
    folder, _, [res] = batch["26 options"]
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", res.stderr
    assert (folder / "out" / "report").is_dir()


# --------------------------------------------------------------------------- full disk


def _planned(store: Path) -> int:
    con = sqlite3.connect(f"file:{store / 'valuescope.sqlite'}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT planned FROM runs").fetchone()[0])
    finally:
        con.close()


@pytest.mark.slow  # the batch process, and a rerun
def test_disk_full_during_run_then_rerun_completes(batch, clean) -> None:
    """A file-size limit (``ulimit -f``) hit while answers are written: one line, exit 1, the stored count;
    the same command without the limit completes to exactly the planned keys with the uninterrupted answers."""
    _, uninterrupted = clean
    folder, _, [res] = batch["disk full: run"]
    line = assert_one_line(res, 1, ("disk full (or file size limit) while writing", "valuescope.sqlite",
                                    "answers are stored", "run the same command again"))
    stored = int(line.split(": ")[-1].split(" answers")[0]) if "answers are stored" in line else -1
    got = answers(folder / "full")
    assert 0 < len(got) < len(uninterrupted) and stored == len(got)
    assert all(uninterrupted[k] == v for k, v in got.items())
    again = cli(["run", "full.yaml", "-q", "--no-report"], folder)
    assert again.returncode == 0, again.stderr
    assert answers(folder / "full") == uninterrupted
    assert _planned(folder / "full") == len(uninterrupted)


def test_database_full_during_run_then_rerun_completes(clean, tmp_path: Path, monkeypatch) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL, what a full volume gives, here a ``max_page_count``
    8 pages above the new store's schema) mid-run: the disk-full line, exit 1 (it read "cannot rollback - no
    transaction is active": SQLite had rolled back itself); the rerun completes to the uninterrupted answers."""
    import valuescope.store.sqlite as store_sqlite

    _, uninterrupted = clean
    opened = store_sqlite.open_writable

    def small_disk(path: Path, *, migrate: bool):
        db, migrated_from, backup = opened(path, migrate=migrate)
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0] + 8}")
        return db, migrated_from, backup

    monkeypatch.setattr(store_sqlite, "open_writable", small_disk)
    write_yaml(tmp_path / "full.yaml", study("full"))
    res = cli(["run", "full.yaml", "-q", "--no-report"], tmp_path)
    line = assert_one_line(res, 1, ("disk full (or file size limit) while writing", "valuescope.sqlite",
                                    "answers are stored", "run the same command again"))
    got = answers(tmp_path / "full")
    assert 0 < len(got) < len(uninterrupted) and f": {len(got)} answers are stored" in line
    assert all(uninterrupted[k] == v for k, v in got.items())
    monkeypatch.setattr(store_sqlite, "open_writable", opened)
    again = cli(["run", "full.yaml", "-q", "--no-report"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert answers(tmp_path / "full") == uninterrupted
    assert _planned(tmp_path / "full") == len(uninterrupted)


@pytest.mark.slow  # the batch process
@pytest.mark.parametrize("command", ["export", "report"])
def test_disk_full_while_writing_outputs(batch, clean, command: str) -> None:
    folder, before, [res] = batch[f"disk full: {command}"]
    assert_one_line(res, 1, ("disk full (or file size limit) while writing", "outs", "answers are stored"))
    assert dump(clean[0]) == before


# --------------------------------------------------------------------------- interrupts

HARNESS = '''
import os, signal, sys, time
from pathlib import Path
# Ctrl-C as in a terminal, however the test run was started (a shell's background job inherits SIGINT ignored,
# and Python then installs no KeyboardInterrupt handler)
signal.signal(signal.SIGINT, signal.default_int_handler)
from valuescope.backends.synthetic import SyntheticBackend
from valuescope.store.sqlite import Store

AFTER, MARK = int(sys.argv[1]), Path(sys.argv[2])
GO = MARK.with_name(MARK.name + ".go")
stored = 0
write = Store.write_responses
score = SyntheticBackend.score

def counting(self, pairs):
    global stored
    n = write(self, pairs)
    stored += n
    return n

def slow(self, requests):
    if stored >= AFTER:  # the injected delay: the interrupt lands here, with exactly `stored` answers stored
        if not MARK.exists():
            MARK.write_text(str(stored))
        deadline = time.monotonic() + 120
        while not GO.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return score(self, requests)

Store.write_responses = counting
SyntheticBackend.score = slow
sys.argv = ["valuescope", *sys.argv[3:]]
from valuescope.cli import entry
entry()
'''


@pytest.mark.slow  # a signalled process and two runs: 26 s at load 12
@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_interrupt_says_what_is_stored_and_rerun_completes(tmp_path: Path, clean, sig, code, word) -> None:
    _, clean = clean
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    write_yaml(tmp_path / "cut [1].yaml", study("cut"))  # the command that continues is shell-quoted
    mark = tmp_path / "mark"
    proc = subprocess.Popen([sys.executable, str(harness), "20", str(mark), "run", "cut [1].yaml", "-q", "--no-report"],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mark.exists(), proc.communicate()[1]
    stored = int(mark.read_text())
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    res = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_one_line(res, code, (f"{stored} of {len(clean)} answers are stored", "run the same command again",
                                "valuescope run 'cut [1].yaml' -q --no-report"), prefix=word)
    assert len(answers(tmp_path / "cut")) == stored
    again = cli(["run", "cut [1].yaml", "-q", "--no-report"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert answers(tmp_path / "cut") == clean


@pytest.mark.slow  # a paused process beside a run: 18 s at load 12
def test_two_processes_count_what_the_other_stored(tmp_path: Path, clean) -> None:
    """Process A pauses after 20 answers; process B runs the same study to the end; A then finds every
    remaining answer stored and says so instead of "0 new"."""
    _, clean = clean
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    write_yaml(tmp_path / "two.yaml", study("two"))
    mark = tmp_path / "mark"
    a = subprocess.Popen([sys.executable, str(harness), "20", str(mark), "run", "two.yaml", "-q", "--no-report"],
                         cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not mark.exists() and a.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mark.exists(), a.communicate()[1]
    first = int(mark.read_text())
    b = cli(["run", "two.yaml", "-q", "--no-report"], tmp_path)
    assert b.returncode == 0, b.stderr
    mark.with_name("mark.go").write_text("go")
    out, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    others = len(clean) - first
    assert f"{len(clean)} queries planned, 0 already stored, {first} new" in out, out
    assert f"{others} stored meanwhile by another process" in out, out
    assert answers(tmp_path / "two") == clean
