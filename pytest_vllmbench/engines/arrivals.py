"""When each request of a rate-limited batch is sent: Poisson arrivals scheduled against one fixed start.

As `vllm bench serve` schedules them: request i goes at start + gap_0 + ... + gap_i, so a late send does not
push every later one back (sleeping a gap after each send lets delays add up and the real rate fall short).
The exponential gaps are scaled so that the n requests span exactly n / rate seconds, as vLLM does, so the
achieved rate does not depend on the seed's luck.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time


def arrival_offsets(count: int, rate: float, rng: random.Random) -> list[float]:
    """Seconds after the start at which each of `count` requests is due, for `rate` requests/s."""
    if count <= 0:
        return []
    sums = list(itertools.accumulate(rng.expovariate(rate) for _ in range(count)))
    if sums[-1] <= 0:  # every draw was exactly 0: nothing to scale, so all are due at the end
        return [count / rate] * count
    scale = count / rate / sums[-1]
    return [total * scale for total in sums]


async def wait_until(due: float) -> None:
    """Sleep until time.perf_counter() reaches `due`; return at once if it already has."""
    delay = due - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
