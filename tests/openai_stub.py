"""A tiny OpenAI-compatible server for tests: /v1/models and streaming /v1/chat/completions, in a thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # a burst of connects (a client catching up) must not hit a full listen backlog


def _sender_pid(peer_port: int, port: int) -> int | None:
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == peer_port and conn.raddr and conn.raddr.port == port:
            return conn.pid
    return None


class StubServer:
    def __init__(
        self,
        served: list[str],
        words: int = 3,
        usage_delay_s: float = 0.0,
        metrics: str | None = None,
        peer_pids: bool = False,
        delay: Callable[[dict], float] | None = None,
    ) -> None:
        self.served = served
        self.delay = delay  # seconds a request's answer waits, from its body
        self.peer_pids = peer_pids  # note which process sent each request (a look through every TCP socket)
        self.words = words
        self.usage_delay_s = usage_delay_s  # a server slow to send the trailing usage chunk after the last token
        self.metrics = metrics  # Prometheus text served at /metrics; None: no /metrics (404)
        # path, query, authorization and body of every request, with when it arrived (time.perf_counter) and,
        # for a stream, when its last content chunk and its usage chunk were written
        self.seen: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _note(self, body: dict | None) -> dict:
                parts = urlsplit(self.path)
                seen = {
                    "path": parts.path,
                    "query": parts.query,
                    "body": body,
                    "authorization": self.headers.get("Authorization"),
                    "at": time.perf_counter(),
                }
                if stub.peer_pids:
                    seen["peer_pid"] = _sender_pid(self.client_address[1], stub.port)
                stub.seen.append(seen)
                return seen

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
                seen = self._note(body)
                if stub.delay is not None:
                    time.sleep(stub.delay(body))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                n = body.get("n", 1)
                for index in range(n):
                    for word in range(stub.words):
                        choice = {"index": index, "delta": {"content": f"w{word} "}, "finish_reason": None}
                        chunk = {"choices": [choice]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                seen["last_content_at"] = time.perf_counter()
                if stub.usage_delay_s:
                    time.sleep(stub.usage_delay_s)
                seen["usage_at"] = time.perf_counter()
                usage = {"prompt_tokens": 5, "completion_tokens": n * stub.words, "total_tokens": 5 + n * stub.words}
                self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())

            def _json(self, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
