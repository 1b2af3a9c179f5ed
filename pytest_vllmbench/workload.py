"""Read and validate OpenAI Batch API JSONL files (one reader for every mode)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
SUPPORTED_URLS = (CHAT_URL, COMPLETIONS_URL)
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
CONTENT_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
MAX_REPORTED_ERRORS = 50
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    url: str
    body: dict[str, Any]
    line: int

    @property
    def model(self) -> str:
        return self.body["model"]

    @property
    def is_chat(self) -> bool:
        return self.url == CHAT_URL

    @property
    def max_tokens(self) -> int | None:
        return self.body.get("max_completion_tokens", self.body.get("max_tokens"))


class BatchFileError(Exception):
    """A batch file with one or more invalid lines; `errors` holds `FILE:LINE: what` texts."""

    def __init__(self, path: Path, errors: list[str], total: int) -> None:
        """`total` counts invalid lines; 0 means a file-level error (missing, empty)."""
        self.path = path
        self.errors = errors
        self.total = total
        header = f"{path}: {total} invalid line(s)\n" if total else ""
        more = f"\n... and {total - len(errors)} more" if total > len(errors) else ""
        super().__init__(header + "\n".join(errors) + more)


def read_batch(path: Path | str, limit: int | None = None) -> list[BatchRequest]:
    """Every request of `path` (the first `limit` if given); raises BatchFileError listing the bad lines."""
    path = Path(path)
    if not path.is_file():
        raise BatchFileError(path, [f"{path}: no such file"], 0)
    requests: list[BatchRequest] = []
    errors: list[str] = []
    total_errors = 0
    for item in iter_batch(path):
        if isinstance(item, str):
            total_errors += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(item)
        elif limit is None or len(requests) < limit:
            requests.append(item)
    if not requests and not total_errors:
        raise BatchFileError(path, [f"{path}: empty file (no requests)"], 0)
    if total_errors:
        raise BatchFileError(path, errors, total_errors)
    return requests


def iter_batch(path: Path) -> Iterator[BatchRequest | str]:
    """Yield a BatchRequest per good line and a `FILE:LINE: message` string per bad one."""
    seen: dict[str, int] = {}
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield f"{path}: cannot open: {exc.strerror}"
        return
    with handle:
        pending_blank: list[int] = []
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            if not raw.strip():
                pending_blank.append(number)  # blank lines only matter when a request follows
                continue
            for blank in pending_blank:
                yield f"{path}:{blank}: empty line"
            pending_blank.clear()
            try:
                parsed = parse_line(raw)
            except ValueError as exc:
                yield f"{path}:{number}: {exc}"
                continue
            custom_id = parsed["custom_id"]
            if custom_id in seen:
                yield f"{path}:{number}: duplicate custom_id {custom_id!r} (first on line {seen[custom_id]})"
                continue
            seen[custom_id] = number
            yield BatchRequest(custom_id, parsed["url"], parsed["body"], number)


def parse_line(raw: bytes) -> dict[str, Any]:
    """Decode and validate one JSONL line; ValueError says what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    _check_envelope(obj)
    return obj


def _check_envelope(obj: dict[str, Any]) -> None:
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise ValueError("missing custom_id (a non-empty string)")
    if obj.get("method") != "POST":
        raise ValueError(f"method must be 'POST', got {obj.get('method')!r}")
    url = obj.get("url")
    if url not in SUPPORTED_URLS:
        raise ValueError(f"url must be one of {', '.join(SUPPORTED_URLS)}, got {url!r}")
    body = obj.get("body")
    if not isinstance(body, dict):
        raise ValueError("missing body (a JSON object)")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ValueError("body.model must be a non-empty string")
    if url == CHAT_URL:
        _check_messages(body.get("messages"))
    else:
        _check_prompt(body.get("prompt"))
    _check_sampling(body)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError("body.messages must be a non-empty list")
    for index, message in enumerate(messages):
        where = f"body.messages[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where} must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"{where}.role {role!r} is not one of {', '.join(sorted(ROLES))}")
        content = message.get("content")
        if content is None and role == "assistant" and message.get("tool_calls"):
            continue
        if isinstance(content, str):
            continue
        if isinstance(content, list) and content:
            for part_index, part in enumerate(content):
                _check_content_part(part, f"{where}.content[{part_index}]")
            continue
        raise ValueError(f"{where}.content must be a string or a non-empty list of content parts")


def _check_content_part(part: Any, where: str) -> None:
    if not isinstance(part, dict) or part.get("type") not in CONTENT_PART_TYPES:
        raise ValueError(f"{where} must be an object whose type is one of {', '.join(sorted(CONTENT_PART_TYPES))}")
    if part["type"] == "text" and not isinstance(part.get("text"), str):
        raise ValueError(f"{where}.text must be a string")


def _check_prompt(prompt: Any) -> None:
    if isinstance(prompt, str) and prompt:
        return
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str) and prompt[0]:
        return
    if isinstance(prompt, list) and prompt and all(_is_int(p) and p >= 0 for p in prompt):
        return
    raise ValueError("body.prompt must be a non-empty string or a list of token ids (one prompt per line)")


def _check_sampling(body: dict[str, Any]) -> None:
    for key in ("max_tokens", "max_completion_tokens", "n"):
        if key in body and body[key] is not None and not (_is_int(body[key]) and body[key] >= 1):
            raise ValueError(f"body.{key} must be a positive integer, got {body[key]!r}")
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = body.get(key)
        if value is not None and not (_is_number(value) and low <= value <= high):
            raise ValueError(f"body.{key} must be a number in [{low}, {high}], got {value!r}")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise ValueError(f"body.seed must be an integer, got {seed!r}")
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise ValueError("body.stop must be a string or a list of strings")
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict) or response_format.get("type") not in RESPONSE_FORMATS
    ):
        raise ValueError(f"body.response_format.type must be one of {', '.join(sorted(RESPONSE_FORMATS))}")
    if response_format is not None and response_format["type"] == "json_schema" and not isinstance(
        (response_format.get("json_schema") or {}).get("schema"), dict
    ):
        raise ValueError("body.response_format.json_schema.schema must be a JSON object")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def select(requests: list[BatchRequest], sample: int | None, seed: int) -> list[BatchRequest]:
    """`sample` requests drawn without replacement, kept in file order; all when sample is None."""
    if sample is None or sample >= len(requests):
        return requests
    import random

    picked = sorted(random.Random(seed).sample(range(len(requests)), sample))
    return [requests[i] for i in picked]



RANDOM_PREFIX = "random:"


def parse_random_spec(spec: str) -> tuple[int, int, int]:
    """`random:IN:OUT:N` (vLLM's random dataset: N prompts of IN random tokens, exactly OUT tokens out)."""
    parts = spec[len(RANDOM_PREFIX):].split(":")
    try:
        input_len, output_len, count = (int(part) for part in parts)
    except ValueError:
        raise ValueError(f"--dataset {spec!r}: expected random:INPUT_LEN:OUTPUT_LEN:NUM_PROMPTS") from None
    if min(input_len, output_len, count) < 1:
        raise ValueError(f"--dataset {spec!r}: every figure must be >= 1")
    return input_len, output_len, count


def random_requests(spec: str, seed: int = 0) -> list[BatchRequest]:
    """Completions of random token ids (in a range every registry tokenizer has), generating past EOS."""
    import random

    input_len, output_len, count = parse_random_spec(spec)
    rng = random.Random(seed)
    return [
        BatchRequest(
            f"random-{index:06d}", COMPLETIONS_URL,
            {"model": "random", "prompt": [rng.randrange(100, 30_000) for _ in range(input_len)],
             "max_tokens": output_len, "ignore_eos": True, "temperature": 1.0, "top_p": 1.0},
            index + 1,
        )
        for index in range(count)
    ]
