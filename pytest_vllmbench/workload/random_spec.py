"""vLLM's random workload, `random:IN:OUT:N`: random token ids in, exactly OUT tokens out."""

from __future__ import annotations

import random

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.workload.batch import BatchRequest
from pytest_vllmbench.workload.batch_line import COMPLETIONS_URL

RANDOM_PREFIX = "random:"


def is_random(spec: object) -> bool:
    """Whether a --dataset value names vLLM's random workload rather than a file."""
    return str(spec).startswith(RANDOM_PREFIX)


def parse_random_spec(spec: str) -> tuple[int, int, int]:
    """`random:IN:OUT:N` (vLLM's random dataset: N prompts of IN random tokens, exactly OUT tokens out)."""
    parts = spec[len(RANDOM_PREFIX) :].split(":")
    try:
        input_len, output_len, count = (int(part) for part in parts)
    except ValueError:
        raise UsageError(f"--dataset {spec!r}: expected random:INPUT_LEN:OUTPUT_LEN:NUM_PROMPTS") from None
    if min(input_len, output_len, count) < 1:
        raise UsageError(f"--dataset {spec!r}: every figure must be >= 1")
    return input_len, output_len, count


def random_requests(spec: str, seed: int = 0) -> list[BatchRequest]:
    """Completions of random token ids (in a range every registry tokenizer has), generating past EOS."""
    input_len, output_len, count = parse_random_spec(spec)
    rng = random.Random(seed)
    return [
        BatchRequest(
            f"random-{index:06d}",
            COMPLETIONS_URL,
            {
                "model": "random",
                "prompt": [rng.randrange(100, 30_000) for _ in range(input_len)],
                "max_tokens": output_len,
                "ignore_eos": True,
                "temperature": 1.0,
                "top_p": 1.0,
            },
            index + 1,
        )
        for index in range(count)
    ]
