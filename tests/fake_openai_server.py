"""``python tests/fake_openai_server.py``: a stand-in OpenAI-compatible server process for tests that are about
processes and connections, not about a model (tests/test_servers.py kills one midway).

It binds 127.0.0.1 on a port the kernel picks (no fixed port, no free-port race), prints ``PORT <n>`` on
stdout once it listens, and keeps connections alive (HTTP/1.1, as uvicorn does, so a client holds pooled
connections to it when it is killed). ``POST /v1/completions`` answers one token with fixed ``top_logprobs``
over the letters A-F; ``GET /v1/models`` lists one model. Test-only: nothing here is part of valuescope."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# log-probabilities of the next token: every option letter, the most likely first
TOP = {"A": -0.4, "B": -1.6, "C": -2.3, "D": -2.8, "E": -3.5, "F": -4.1}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real server

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "test"}]})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.rstrip("/") != "/v1/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        self._send(200, {
            "id": "cmpl-fake", "object": "text_completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "text": "A", "finish_reason": "length",
                         "logprobs": {"tokens": ["A"], "token_logprobs": [TOP["A"]], "top_logprobs": [TOP],
                                      "text_offset": [0]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
