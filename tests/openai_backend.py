"""A scripted OpenAI-compatible server on loopback, for tests that drive plancode through its
remote backend (``backend = "openai"``) with replies they choose.

A test subclasses :class:`ScriptedBackend`, says what each request gets in ``reply``, and
serves it with :func:`serving`. Chat requests are answered as a server-sent event stream (one
content chunk, then the stop), raw completions as one completion chunk; ``/models`` lists one
model, so plancode's start-up check passes.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ScriptedBackend(http.server.BaseHTTPRequestHandler):
    """Answers every generation request with ``reply(body)``."""

    def reply(self, body: str) -> str:
        raise NotImplementedError

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # /models
        self._send("application/json", json.dumps(
            {"object": "list", "data": [{"id": "scripted", "object": "model"}]}).encode())

    def do_POST(self) -> None:
        text = self.reply(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        chunks = [{"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                  {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
        if "/completions" in self.path and "/chat/" not in self.path:
            chunks = [{"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}]
        self._send("text/event-stream", b"".join(
            f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n")

    def _send(self, kind: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serving(handler: type[ScriptedBackend]) -> Iterator[str]:
    """``handler`` served on a free loopback port; yields the base URL (``.../v1``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
