"""A stdlib HTTP server whose every answer is a test's function: trickling, endless, gzip bombs, echoed headers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = Callable[[BaseHTTPRequestHandler], None]


class HostileServer:
    """`answer(handler)` writes the whole response for every GET and POST; `url` is http://127.0.0.1:PORT."""

    def __init__(self, answer: Answer) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                try:
                    answer(self)
                except OSError:  # the client hung up, as it should when a cap or deadline is hit
                    pass
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def head(handler: BaseHTTPRequestHandler, content_type: str, *extra: tuple[str, str], status: int = 200) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    for name, value in extra:
        handler.send_header(name, value)
    handler.send_header("Connection", "close")
    handler.end_headers()
