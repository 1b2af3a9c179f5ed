"""A zero-work OpenAI-style streaming server: canned chat-completion SSE chunks, as fast as it can.

Usage: python sse_stub.py PORT CHUNKS_PER_RESPONSE [MODEL]   (prints "ready" once listening; MODEL defaults to stub)
"""

from __future__ import annotations

import asyncio
import json
import sys


def canned_stream(chunks: int) -> list[bytes]:
    def event(payload: object) -> bytes:
        data = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"  # one HTTP chunk per SSE event

    base = {"id": "stub", "object": "chat.completion.chunk", "model": "stub"}
    events = [event(base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    events += [event(base | {"choices": [{"index": 0, "delta": {"content": f" tok{i}"}}]}) for i in range(chunks)]
    usage = {"prompt_tokens": 100, "completion_tokens": chunks, "total_tokens": 100 + chunks}
    events += [event(base | {"choices": [], "usage": usage}), event("[DONE]"), b"0\r\n\r\n"]
    return events


HEADERS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: keep-alive\r\n\r\n"
)


def model_list(model: str) -> bytes:
    return json.dumps({"object": "list", "data": [{"id": model, "object": "model", "root": model}]}).encode()


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: list[bytes], models: bytes
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if head.startswith(b"GET"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(models)).encode()
                    + b"\r\n\r\n"
                    + models
                )
            else:
                writer.write(HEADERS)
                for piece in stream:
                    writer.write(piece)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, chunks: int, model: str = "stub") -> None:
    stream, models = canned_stream(chunks), model_list(model)
    server = await asyncio.start_server(lambda r, w: handle(r, w, stream, models), "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:4]))
