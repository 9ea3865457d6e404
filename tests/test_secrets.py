"""Issue 9: an API key comes from the environment only and is written nowhere.

A local OpenAI-compatible server checks the key (401 otherwise) and, like a careless gateway, echoes
the Authorization header it received in its error bodies. A study is run, resumed, shown, listed,
exported and reported through the CLI; the secret must not appear in the store (main file, -wal,
-shm), the exports, the report, or any command's output.

Issue 28: the first run (the one whose query fails, with the server's error stored) is a process, so that
its whole output, logging included, is what a user would see; the resume, ls, show, export, report and the
refused key run through the CLI in this process (helpers.cli_in_process, the key set with monkeypatch), their
printed output and every warning-level log record (what a process prints when nothing configured logging)
checked for the key. Each process cost ~4 CPU-s of imports. The resume no longer writes a report of its own:
the report command writes the one checked (both call the same function; each page cost ~19 s wall at load 15).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from helpers import JSONHandler, LoopbackServer, cli_in_process

SRC = str(Path(__file__).resolve().parents[1] / "src")  # the checkout under test, whatever is installed
SECRET = "sk-vs-test-SECRET-4f9c2e7a1b8d"
ENV = "VS_TEST_KEY"


class KeyCheckingServer(LoopbackServer):
    """/v1/chat/completions with top_logprobs over the letters A-F, derived from the request text.

    Wrong key: 401 echoing the header. The first distinct prompt (while ``doom`` is on): 500 echoing
    the header, so that a query fails and its error is stored."""

    def __init__(self, expected_key: str) -> None:
        self.expected = f"Bearer {expected_key}"
        self.doom = True
        self.doomed: str | None = None
        self.authorised = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(JSONHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                auth = self.headers.get("Authorization", "")
                if auth != outer.expected:
                    return self.send_json(401, {"error": {"message": f"invalid key in header {auth!r}"}})
                digest = hashlib.sha256(json.dumps(json.loads(body)["messages"]).encode()).hexdigest()
                with outer.lock:
                    outer.authorised += 1
                    if outer.doom and outer.doomed is None:
                        outer.doomed = digest
                    failing = outer.doom and outer.doomed == digest
                if failing:
                    return self.send_json(500, {"error": {"message": f"upstream failed for {auth}"}})
                weights = [int(digest[2 * i: 2 * i + 2], 16) + 1 for i in range(6)]
                total = sum(weights) * 1.25  # a fifth of the mass on a non-letter token
                top = [{"token": c, "logprob": math.log(w / total), "bytes": None}
                       for c, w in zip("ABCDEF", weights, strict=True)]
                top.append({"token": "I", "logprob": math.log(0.2), "bytes": None})
                self.send_json(200, {
                    "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "length",
                                 "message": {"role": "assistant", "content": "A"},
                                 "logprobs": {"content": [{"token": "A", "logprob": top[0]["logprob"],
                                                           "bytes": None, "top_logprobs": top}]}}],
                })

        super().__init__(Handler)


def vs(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, ENV: SECRET, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "valuescope", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def _study(tmp: Path, base_url: str, out: Path) -> Path:
    study = {
        "name": "secrets", "output": str(out),
        "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT",
                                                    "DECENCY", "MATH"]}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 3, "seeds": [111]}]},
        "models": [{"name": "served", "backend": "openai", "base_url": base_url, "model": "m",
                    "api_key_env": ENV, "max_retries": 1, "concurrency": 2}],
    }
    p = tmp / f"{out.name}.yaml"
    p.write_text(yaml.safe_dump(study))
    return p


def _leaks(root: Path) -> list[str]:
    needles = (SECRET.encode(), SECRET.encode("utf-16-le"), SECRET[-12:].encode())
    return [str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


@pytest.mark.slow  # a CLI process and a report page (~19 s wall at load 15 for the page alone)
def test_api_key_is_used_but_never_written(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING)  # what Python's last-resort handler prints in a process
    monkeypatch.setenv(ENV, SECRET)
    out = tmp_path / "out"
    outputs: list[str] = []
    server = KeyCheckingServer(SECRET)
    with server as base:
        study = _study(tmp_path, base, out)
        first = vs("run", str(study), "-q", "--no-report", cwd=tmp_path)
        outputs += [first.stdout, first.stderr]
        assert first.returncode == 1, first.stderr  # one query kept failing
        assert server.authorised > 0  # the key was sent, from the environment
        db = out / "valuescope.sqlite"
        # the failure is stored with the server's error, the echoed key masked
        con = sqlite3.connect(db)
        [(run_id, error)] = con.execute("SELECT run_id, error FROM failures").fetchall()
        con.close()
        assert "upstream failed for Bearer [api key]" in error

        server.doom = False
        # the report is written once, by the report command below (a run's own report is the same function)
        second = cli_in_process("run", str(study), "-q", "--no-report", cwd=tmp_path, raise_errors=False)
        outputs += [second.stdout, second.stderr]
        assert second.returncode == 0, second.stderr
        for args in (("ls", str(out)), ("show", run_id, "--dir", str(out), "--all"),
                     ("export", run_id, "--dir", str(out)), ("report", run_id, "--dir", str(out))):
            res = cli_in_process(*args, cwd=tmp_path, raise_errors=False)
            assert res.returncode == 0, (args, res.stderr)
            outputs += [res.stdout, res.stderr]

    # a refused key: one error line, the echoed key masked
    refusing = KeyCheckingServer("sk-some-other-key")
    with refusing as base:
        bad = cli_in_process("run", str(_study(tmp_path, base, tmp_path / "refused")), "-q", cwd=tmp_path,
                             raise_errors=False)
    outputs += [bad.stdout, bad.stderr]
    assert bad.returncode == 2 and "refused the API key" in bad.stderr
    assert len([ln for ln in bad.stderr.splitlines() if ln.strip()]) == 1

    exported = list((out / "export").rglob("*"))
    assert any(p.suffix == ".parquet" for p in exported) and any(p.suffix == ".csv" for p in exported)
    assert list((out / "report").rglob("*.html"))
    assert _leaks(tmp_path) == []  # store (+ -wal/-shm if any), exports, report, study files
    outputs += [r.getMessage() for r in caplog.records]
    for text in outputs:
        assert SECRET not in text and SECRET[-12:] not in text
