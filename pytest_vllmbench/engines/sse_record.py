"""Reading one streamed answer: its server-sent events under caps, then the request's record from them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.workload.batch import BatchRequest

if TYPE_CHECKING:
    import httpx

# One streamed answer is refused past these (documented kinds `too_large` and `too_many_events`): a server
# that streams without end must cost one failed request, not the machine's memory or a false passing cell.
MAX_STREAM_BYTES = 64 * 2**20  # after decompression
MAX_LINE_BYTES = 8 * 2**20  # one SSE line
MAX_STREAM_EVENTS = 262_144


class StreamRefused(Exception):
    """The answer broke a cap: its args[0] is the request's error kind."""


async def sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each server-sent event, read under MAX_STREAM_BYTES, MAX_LINE_BYTES and MAX_STREAM_EVENTS."""
    buffer = bytearray()
    data: list[bytes] = []
    received = events = 0
    async for piece in response.aiter_bytes():  # decoded, so a compressed stream is capped as it inflates
        received += len(piece)
        if received > MAX_STREAM_BYTES:
            raise StreamRefused("too_large")
        buffer += piece
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end]).removesuffix(b"\r")
            start = end + 1
            if line:
                field, _, value = line.partition(b":")
                if field == b"data":
                    data.append(value.removeprefix(b" "))
            elif data:
                events += 1
                if events > MAX_STREAM_EVENTS:
                    raise StreamRefused("too_many_events")
                yield b"\n".join(data).decode("utf-8", errors="replace")
                data = []
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES:
            raise StreamRefused("too_large")
    if data:  # a last event without its blank line
        yield b"\n".join(data).decode("utf-8", errors="replace")


# no request comes near 2**31 tokens; a larger count is a lie, and a few of them would overflow a cell's 64-bit sums
MAX_COUNT = 2**31


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNT


def _valid_choice(choice: Any, is_chat: bool) -> bool:
    if not isinstance(choice, dict):
        return False
    if not isinstance(choice.get("finish_reason"), (str, type(None))) or not _is_count(choice.get("index", 0)):
        return False
    if not is_chat:
        return "text" not in choice or isinstance(choice["text"], str)
    delta = choice.get("delta")
    if delta is None:
        return True
    return isinstance(delta, dict) and isinstance(delta.get("content"), (str, type(None)))


def _valid_chunk(chunk: Any, is_chat: bool) -> bool:
    """The fields the record reads have the shapes OpenAI's streaming format gives them (others are not read)."""
    if not isinstance(chunk, dict):
        return False
    choices, usage = chunk.get("choices"), chunk.get("usage")
    if choices is not None and not (isinstance(choices, list) and all(_valid_choice(c, is_chat) for c in choices)):
        return False
    if usage is None:
        return True
    counts = ("prompt_tokens", "completion_tokens")
    return isinstance(usage, dict) and all(_is_count(usage[key]) for key in counts if key in usage)


def _carries_token(choice: dict[str, Any], is_chat: bool) -> bool:
    """Whether a streamed choice stands for generated output. A token may decode to no text (vLLM then sends
    `content: ""`), so an empty string counts too, except in the opening chunk that only announces the role."""
    if not is_chat:
        return "text" in choice
    delta = choice.get("delta") or {}
    if "content" not in delta or delta["content"] is None:
        return False
    return bool(delta["content"]) or "role" not in delta


def record_from_stream(request: BatchRequest, sent: float, stamps: list[float], events: list[str]) -> RequestRecord:
    """Parse the stream once it is over: which chunks carried tokens, their text, and the server's usage.
    Any chunk that is not JSON or not shaped as OpenAI's format makes the request `bad_chunk`; a stream that ends
    without any of a stream's ends (a finish_reason, the usage chunk, [DONE]) is `cut_stream`."""
    content_stamps: list[float] = []
    parts: list[str] = []
    usage: dict[str, Any] | None = None
    finish_reason = None
    for stamp, data in zip(stamps, events, strict=True):
        if data == "[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            return RequestRecord(request.custom_id, error="bad_chunk")
        if isinstance(chunk, dict) and chunk.get("error"):
            return RequestRecord(request.custom_id, error="stream_error")
        if not _valid_chunk(chunk, request.is_chat):
            return RequestRecord(request.custom_id, error="bad_chunk")
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            finish_reason = choice.get("finish_reason") or finish_reason
            if _carries_token(choice, request.is_chat):
                content_stamps.append(stamp)
                if choice.get("index", 0) == 0:  # with n > 1 the text is the first choice's, as offline keeps
                    parts.append(
                        ((choice.get("delta") or {}).get("content") or "") if request.is_chat else choice["text"]
                    )
    if not stamps:
        return RequestRecord(request.custom_id, error="empty_stream")
    if usage is None and finish_reason is None and "[DONE]" not in events:  # the answer was cut: not a success
        return RequestRecord(request.custom_id, error="cut_stream")
    end = content_stamps[-1] if content_stamps else stamps[-1]  # vLLM's E2EL: not the trailing usage/[DONE]
    output_tokens = (usage or {}).get("completion_tokens", len(content_stamps))
    return RequestRecord(
        custom_id=request.custom_id,
        input_tokens=(usage or {}).get("prompt_tokens", 0),
        output_tokens=output_tokens,
        e2el_s=end - sent,
        ttft_s=content_stamps[0] - sent if content_stamps else None,
        itl_s=[b - a for a, b in pairwise(content_stamps)],
        text="".join(parts),
        finish_reason=finish_reason,
        done_at=end,
    )
