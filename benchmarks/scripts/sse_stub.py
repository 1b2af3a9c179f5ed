"""A zero-work OpenAI-style streaming server: canned chat-completion SSE chunks, as fast as it can, or paced.

Usage: python sse_stub.py PORT CHUNKS_PER_RESPONSE [MODEL] [--running N --step-ms T]
(prints "ready" once listening; MODEL defaults to stub). Unpaced, each answer goes out in one write, so a client
reads many events at a time. Paced, the stub stands in for an engine's decode loop (it is not vLLM's behaviour,
only its shape): at most N answers stream at once, and each is sent one content chunk per step of T ms, in a write
of its own, as a server streaming token by token does; a client then reads about one event per read.
"""

from __future__ import annotations

import argparse
import asyncio
import json


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


class DecodeSteps:
    """At most `running` answers at once, each allowed one chunk per step of `step_s`."""

    def __init__(self, running: int, step_s: float) -> None:
        self.slots = asyncio.Semaphore(running)
        self.step_s = step_s
        self.tick = asyncio.Event()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.step_s)
            tick, self.tick = self.tick, asyncio.Event()
            tick.set()

    async def send(self, writer: asyncio.StreamWriter, stream: list[bytes]) -> None:
        async with self.slots:
            writer.write(HEADERS + stream[0])  # the role chunk: a prefill's answer
            for piece in stream[1:-3]:
                await self.tick.wait()
                writer.write(piece)
                await writer.drain()
            writer.write(b"".join(stream[-3:]))  # usage, [DONE] and the end of the body


async def handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    stream: list[bytes],
    models: bytes,
    steps: DecodeSteps | None,
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
            elif steps is not None:
                await steps.send(writer, stream)
            else:
                writer.write(HEADERS)
                for piece in stream:
                    writer.write(piece)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, chunks: int, model: str, running: int | None, step_ms: float) -> None:
    stream, models = canned_stream(chunks), model_list(model)
    steps = DecodeSteps(running, step_ms / 1000) if running else None
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, stream, models, steps), "127.0.0.1", port, backlog=4096
    )
    ticker = asyncio.create_task(steps.run()) if steps is not None else None
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
    if ticker is not None:
        ticker.cancel()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("chunks", type=int, help="content chunks in each answer")
    parser.add_argument("model", nargs="?", default="stub")
    parser.add_argument("--running", type=int, help="pace the answers: at most this many stream at once")
    parser.add_argument("--step-ms", type=float, default=20.0, help="paced: one content chunk per answer per step")
    return parser.parse_args()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    args = arguments()
    asyncio.run(main(args.port, args.chunks, args.model, args.running, args.step_ms))
