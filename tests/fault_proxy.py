"""A fault-injecting HTTP proxy for tests: forwards POSTs to a real OpenAI-compatible server and,
for a seeded share of them, answers with a fault instead.

The fault of an attempt is a pure function of (seed, request body, attempt number for that body),
so a run is reproducible whatever order the client's threads send in. The first ``doomed``
distinct request bodies (or the bodies named with :meth:`FaultProxy.doom`, which makes the run independent
of the order the client's threads send in) fault on every attempt (so the "keeps failing" path is always
exercised).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import random
import socket
import struct
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from helpers import JSONHandler, LoopbackServer

FAULTS = ("timeout", "429", "500", "503", "reset", "truncated", "malformed", "nologprobs")
# the doomed bodies cycle through these (never "nologprobs" on every attempt: that is how a server
# without logprobs looks, and the backend rightly switches to generation then)
DOOMED_CYCLES = (("503", "reset", "malformed", "500"), ("timeout", "truncated", "429", "503"))


def body_key(body: bytes) -> str:
    """The request's identity: its prompt (or messages), without the parameters."""
    try:
        data = json.loads(body)
        ident = data.get("prompt") if "prompt" in data else data.get("messages")
    except (ValueError, AttributeError):
        ident = body.decode("latin-1")
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


class FaultProxy:
    def __init__(self, upstream: str, *, rate: float = 0.2, seed: int = 0, doomed: int = 2,
                 stall_s: float = 3.0, retry_after_s: int = 1) -> None:
        u = urlsplit(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.rate = rate
        self.seed = seed
        self.doomed_n = doomed
        self.stall_s = stall_s  # a "timeout" holds the connection this long without answering
        self.retry_after_s = retry_after_s
        self.enabled = True
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()  # body key -> requests seen
        self.outcomes: dict[str, list[str]] = defaultdict(list)  # body key -> fault per attempt ("ok")
        self.doomed: list[str] = []
        self.upstream_s: list[float] = []  # how long the real server took, per forwarded request
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                outer._forward(self, b"")

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer._handle(self, body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client gone mid-reply is expected
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ control
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def doom(self, keys: list[str]) -> None:
        """These body keys (:func:`prompt_key`) fault on every attempt, in place of the first distinct
        bodies to arrive."""
        with self.lock:
            self.doomed = list(keys)
            self.doomed_n = len(keys)

    def reset_counts(self) -> None:
        with self.lock:
            self.attempts.clear()
            self.outcomes.clear()

    # ------------------------------------------------------------------ faults
    def _choose(self, key: str) -> str:
        with self.lock:
            n = self.attempts[key]
            self.attempts[key] += 1
            if not self.enabled:
                fault = "ok"
            elif key in self.doomed or (n == 0 and len(self.doomed) < self.doomed_n):
                if key not in self.doomed:
                    self.doomed.append(key)
                cycle = DOOMED_CYCLES[self.doomed.index(key) % len(DOOMED_CYCLES)]
                fault = cycle[n % len(cycle)]
            else:
                rng = random.Random(f"{self.seed}:{key}:{n}")
                fault = rng.choice(FAULTS) if rng.random() < self.rate else "ok"
            self.outcomes[key].append(fault)
            return fault

    def _handle(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        fault = self._choose(body_key(body))
        if fault == "timeout":
            time.sleep(self.stall_s)
            h.close_connection = True
            return
        if fault == "reset":  # RST instead of an answer
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            return
        if fault in ("429", "500", "503"):
            headers = {"Retry-After": str(self.retry_after_s)} if fault == "429" else {}
            self._reply(h, int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode(), headers)
            return
        status, payload = self._upstream(h.path, body)
        if fault == "ok" or status != 200:
            self._reply(h, status, payload)
        elif fault == "nologprobs":
            data = json.loads(payload)
            for choice in data.get("choices", []):
                choice["logprobs"] = None
            self._reply(h, 200, json.dumps(data).encode())
        elif fault == "malformed":  # cut JSON with a Content-Length that matches it
            self._reply(h, 200, payload[: len(payload) // 2])
        elif fault == "truncated":  # promises the whole body, sends half, hangs up
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload[: len(payload) // 2])
            h.wfile.flush()
            h.close_connection = True

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        status, payload = self._upstream(h.path, body, method="GET")
        self._reply(h, status, payload)

    def _upstream(self, path: str, body: bytes, method: str = "POST") -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        t0 = time.monotonic()
        try:
            conn.request(method, path, body=body or None, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()
            with self.lock:
                self.upstream_s.append(time.monotonic() - t0)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)


def prompt_key(prompt: str) -> str:
    """:func:`body_key` of a completions request for ``prompt``."""
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


class FastUpstream(LoopbackServer):
    """An OpenAI-compatible completions server that answers at once, as ``llama_cpp.server`` shapes its
    replies (``text_completion``, ``logprobs.top_logprobs`` as a list of token -> logprob maps), with letter
    logprobs derived from the prompt: the upstream for tests about the client's retries and resume, where a
    real model's latency on a loaded machine would only add genuine timeouts."""

    def __init__(self) -> None:
        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                digest = hashlib.sha256(json.dumps(json.loads(body).get("prompt")).encode()).digest()
                weights = [b + 1 for b in digest[:6]]
                total = sum(weights) * 1.25  # a fifth of the mass on a non-letter token
                top = {c: math.log(w / total) for c, w in zip("ABCDEF", weights, strict=True)}
                top[" I"] = math.log(0.2)
                best = max(top, key=top.__getitem__)
                self.send_json(200, {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "x",
                            "choices": [{"text": best, "index": 0, "finish_reason": "length",
                                         "logprobs": {"tokens": [best], "text_offset": [0],
                                                      "token_logprobs": [top[best]], "top_logprobs": [top]}}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def do_GET(self):  # noqa: N802
                self.send_json(200, {"object": "list", "data": [{"id": "x", "object": "model", "owned_by": "me"}]})

        super().__init__(Handler)
