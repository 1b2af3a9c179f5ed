"""A tiny OpenAI-compatible server for tests: /v1/models and streaming /v1/chat/completions, in a thread."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class StubServer:
    def __init__(self, served: list[str], words: int = 3, metrics: str | None = None) -> None:
        self.served = served
        self.words = words
        self.metrics = metrics  # Prometheus text served at /metrics; None: no /metrics (404)
        self.seen: list[dict] = []  # path, query, authorization and body of every request
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _note(self, body: dict | None) -> None:
                parts = urlsplit(self.path)
                stub.seen.append({"path": parts.path, "query": parts.query, "body": body,
                                  "authorization": self.headers.get("Authorization")})

            def do_GET(self) -> None:
                self._note(None)
                if urlsplit(self.path).path == "/metrics" and stub.metrics is not None:
                    data = stub.metrics.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if urlsplit(self.path).path != "/v1/models":
                    self.send_error(404)
                    return
                self._json({"object": "list", "data": [{"id": name, "object": "model"} for name in stub.served]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._note(body)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                n = body.get("n", 1)
                for index in range(n):
                    for word in range(stub.words):
                        choice = {"index": index, "delta": {"content": f"w{word} "}, "finish_reason": None}
                        chunk = {"choices": [choice]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                usage = {"prompt_tokens": 5, "completion_tokens": n * stub.words, "total_tokens": 5 + n * stub.words}
                self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())

            def _json(self, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
