"""GET with a total deadline and a byte cap (counted after decompression): a server that trickles bytes or
sends a gzip bomb costs at most `deadline_s` and `max_bytes`, never the session."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

QueryParams = Sequence[tuple[str, str | int | float | bool | None]]


class ResponseTooLarge(Exception):
    """The body grew past the cap (after decompression)."""


class DeadlineExceeded(Exception):
    """The whole exchange took longer than its deadline."""


@dataclass(frozen=True)
class BoundedResponse:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def bounded_get(
    url: str, headers: Mapping[str, str], params: QueryParams, deadline_s: float, max_bytes: int
) -> BoundedResponse:
    """GET `url` and read at most `max_bytes`, all within `deadline_s` seconds. Raises httpx.HTTPError,
    DeadlineExceeded or ResponseTooLarge. Call it where no event loop runs (a thread of its own is fine)."""
    return asyncio.run(_get(url, headers, params, deadline_s, max_bytes))


async def _get(
    url: str, headers: Mapping[str, str], params: QueryParams, deadline_s: float, max_bytes: int
) -> BoundedResponse:
    import httpx  # here, not at the top: every pytest session imports this module, few send a request

    try:
        async with asyncio.timeout(deadline_s):
            client = httpx.AsyncClient(headers=dict(headers), params=list(params), timeout=deadline_s)
            async with client, client.stream("GET", url) as response:
                body = bytearray()
                async for piece in response.aiter_bytes():  # decoded: the cap holds after gzip too
                    body += piece
                    if len(body) > max_bytes:
                        raise ResponseTooLarge(f"answer larger than {max_bytes} bytes")
                return BoundedResponse(response.status_code, bytes(body))
    except TimeoutError:
        raise DeadlineExceeded(f"no complete answer within {deadline_s:g} s") from None
