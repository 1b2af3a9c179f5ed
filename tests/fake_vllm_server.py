"""A FAKE vLLM server, for the process supervisor's own behaviour only (not vLLM's): it has vLLM's process
shape (a server process that starts an engine-core worker and answers /health and /v1/models) so tests can
start it the way ServerEngine starts vLLM and make it misbehave on purpose, in milliseconds instead of minutes.

    python fake_vllm_server.py --port N [--served-model-name NAME] [--never-healthy]
                               [--worker-leaves-group] [--worker-ignores-sigterm] [--ready-file PATH]
                               [--crash-at-request K]

It streams a few canned chat-completion chunks per POST; with --crash-at-request K the server SIGKILLs itself
once its K-th request is mid-stream (its worker lives on, as a crashed vLLM's engine core may): a server
killed mid-cell, deterministically, with no test thread racing to kill it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def worker(leave_group: bool, ignore_sigterm: bool, ready_file: str | None) -> None:
    if leave_group:
        os.setpgid(0, 0)  # still in the server's session, no longer in its process group
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if ready_file:
        Path(ready_file).write_text(str(os.getpid()))
    while True:
        time.sleep(1)


def chunk(payload: object) -> bytes:
    """One SSE event as one HTTP/1.1 chunk: a stream cut short is then visibly incomplete, as vLLM's would be."""
    data = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def handler(served_name: str, healthy: bool, crash_at: int | None) -> type[BaseHTTPRequestHandler]:
    requests = iter(range(1, 1 << 62))
    count_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with count_lock:
                number = next(requests)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "a"}}]}))
            self.wfile.flush()
            if number == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)  # a crash: no clean shutdown, open streams cut
            self.wfile.write(chunk({"choices": [{"index": 0, "delta": {"content": " b"}, "finish_reason": "length"}]}))
            usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
            self.wfile.write(chunk({"choices": [], "usage": usage}) + chunk("[DONE]") + b"0\r\n\r\n")

        def do_GET(self) -> None:
            if self.path == "/health" and healthy:
                self._answer(200, b"")
            elif self.path == "/v1/models":
                self._answer(200, json.dumps({"object": "list", "data": [{"id": served_name}]}).encode())
            else:
                self._answer(503 if self.path == "/health" else 404, b"")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", default="fake")
    parser.add_argument("--never-healthy", action="store_true")
    parser.add_argument("--worker-leaves-group", action="store_true")
    parser.add_argument("--worker-ignores-sigterm", action="store_true")
    parser.add_argument("--ready-file")
    parser.add_argument("--crash-at-request", type=int)
    args = parser.parse_args()
    ThreadingHTTPServer.request_queue_size = 256  # a whole batch connects at once
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), handler(args.served_model_name, not args.never_healthy, args.crash_at_request)
    )
    context = multiprocessing.get_context("spawn")  # as vLLM starts its engine core
    core = context.Process(
        target=worker, args=(args.worker_leaves_group, args.worker_ignores_sigterm, args.ready_file), daemon=False
    )
    core.start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # the server exits at once; its worker may not
    print(f"fake vLLM server on port {args.port}, worker pid {core.pid}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
