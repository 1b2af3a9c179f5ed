"""One line of an OpenAI Batch API JSONL file, parsed strictly and checked field by field: the rules every
mode's requests satisfy before any engine starts."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from pytest_vllmbench.common.cut import cut, key_text, one_line, shown

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
SUPPORTED_URLS = (CHAT_URL, COMPLETIONS_URL)
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
CONTENT_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
MAX_DEPTH = 64  # deeper lines are refused: Python's JSON codec and vLLM's schema compiler recurse
MAX_LOGPROBS = 20  # vLLM's default max_logprobs
INT32 = 2**31
# Body fields every mode honours the same way (offline maps them to SamplingParams), or that change no work
# (user, metadata, store, service_tier; stream and stream_options are set by the client). Anything else is
# refused at validation: a field only the server path would apply would make the modes do different work.
SAMPLING_FIELDS = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "n",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "seed",
        "stop",
        "stop_token_ids",
        "ignore_eos",
        "min_tokens",
        "logit_bias",
        "logprobs",
        "include_stop_str_in_output",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "response_format",
    }
)
INERT_FIELDS = frozenset({"model", "user", "metadata", "store", "service_tier", "stream", "stream_options"})
CHAT_FIELDS = SAMPLING_FIELDS | INERT_FIELDS | {"messages", "top_logprobs"}
COMPLETION_FIELDS = SAMPLING_FIELDS | INERT_FIELDS | {"prompt"}


def parse_line(raw: bytes) -> dict[str, Any]:
    """Decode and validate one JSONL line; ValueError says what is wrong (it never raises anything else)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})") from None
    try:
        obj = json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except _NonFinite as exc:
        raise ValueError(
            f"{exc.args[0]} is not a finite number: JSON has no NaN or Infinity, and no server accepts them"
        ) from None
    except _RepeatedKey as exc:
        raise ValueError(
            f"key {key_text(exc.args[0])} given twice in one object: readers differ on which counts"
        ) from None
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer longer than Python's int_max_str_digits
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    # cheap byte scans first: the full walks only run for lines that could fail them
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(obj) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if b"\\u" in raw and (b"\\ud" in raw or b"\\uD" in raw) and (where := _lone_surrogate(obj)):
        raise ValueError(f"{where} holds a lone UTF-16 surrogate (\\ud800-\\udfff): it cannot be sent as UTF-8")
    _check_envelope(obj)
    return obj


class _NonFinite(Exception):
    pass


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The object, unless a key comes twice: Python keeps the last, other readers the first or neither, so the
    request one tool checks would not be the one another sends."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> float:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise _NonFinite(text)
    return value


def _depth(root: Any) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _lone_surrogate(root: Any) -> str | None:
    """The JSON path of the first string (key or value) that UTF-8 cannot encode, or None."""
    stack: list[tuple[Any, str]] = [(root, "line")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(node, dict):
            for key, value in node.items():
                stack.append((key, f"a key of {where}"))
                stack.append((value, _member(where, key)))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(node))
    return None


def _member(where: str, key: str) -> str:
    """`where.key`, or `where['\\x1e']` for a key a message cannot show as it is (common/cut.key_text)."""
    text = key_text(key)
    if text != cut(key):
        return f"{where}[{text}]"
    return f"{where}.{text}" if where != "line" else text


def _check_envelope(obj: dict[str, Any]) -> None:
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise ValueError("missing custom_id (a non-empty string)")
    if one_line(custom_id) != custom_id:
        raise ValueError(
            f"custom_id {shown(custom_id)} holds a control character or line break: it is written into traces, "
            "outputs and messages, where it would break or forge lines"
        )
    if obj.get("method") != "POST":
        raise ValueError(f"method must be 'POST', got {_show(obj.get('method'))}")
    url = obj.get("url")
    if url not in SUPPORTED_URLS:
        raise ValueError(f"url must be one of {', '.join(SUPPORTED_URLS)}, got {_show(url)}")
    body = obj.get("body")
    if not isinstance(body, dict):
        raise ValueError("missing body (a JSON object)")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ValueError("body.model must be a non-empty string")
    is_chat = url == CHAT_URL
    unsupported = [key for key in body if key not in (CHAT_FIELDS if is_chat else COMPLETION_FIELDS)]
    if unsupported:
        supported = ", ".join(sorted(CHAT_FIELDS if is_chat else COMPLETION_FIELDS))
        raise ValueError(
            f"{_member('body', unsupported[0])} is not supported: every mode must do the same work, and offline "
            f"vLLM cannot honour it (supported: {supported})"
        )
    if is_chat:
        _check_messages(body.get("messages"))
    else:
        _check_prompt(body.get("prompt"))
    _check_sampling(body, is_chat)


def _show(value: Any) -> str:
    return shown(value)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError("body.messages must be a non-empty list")
    for index, message in enumerate(messages):
        where = f"body.messages[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where} must be an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise ValueError(f"{where}.role {_show(role)} is not one of {', '.join(sorted(ROLES))}")
        for key in ("name", "tool_call_id"):
            if key in message and not isinstance(message[key], str):
                raise ValueError(f"{where}.{key} must be a string")
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
    if not isinstance(part, dict) or not isinstance(part.get("type"), str) or part["type"] not in CONTENT_PART_TYPES:
        raise ValueError(f"{where} must be an object whose type is one of {', '.join(sorted(CONTENT_PART_TYPES))}")
    if part["type"] == "text" and not isinstance(part.get("text"), str):
        raise ValueError(f"{where}.text must be a string")


def _check_prompt(prompt: Any) -> None:
    if isinstance(prompt, str) and prompt:
        return
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str) and prompt[0]:
        return
    if isinstance(prompt, list) and prompt and all(_is_int(p) and 0 <= p < INT32 for p in prompt):
        return
    raise ValueError("body.prompt must be a non-empty string or a list of token ids (one prompt per line)")


def _int_in(low: int, high: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda value: _is_int(value) and low <= value <= high), f"an integer in [{low}, {high}]"


def _number_in(low: float, high: float, open_low: bool = False) -> tuple[Callable[[Any], bool], str]:
    def check(value: Any) -> bool:
        return _is_number(value) and (low < value if open_low else low <= value) and value <= high

    return check, f"a number in {'(' if open_low else '['}{low}, {high}]"


def _is_stop(value: Any) -> bool:
    return (isinstance(value, str) and bool(value)) or (
        isinstance(value, list) and all(isinstance(item, str) and item for item in value)
    )


_BOOL = (lambda value: isinstance(value, bool)), "true or false"
_STRING = (lambda value: isinstance(value, str)), "a string"
_OBJECT = (lambda value: isinstance(value, dict)), "an object"
# one check per field, run only for the fields a body has (most have five): vLLM's own ranges
FIELD_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_tokens": _int_in(1, INT32 - 1),
    "max_completion_tokens": _int_in(1, INT32 - 1),
    "n": _int_in(1, INT32 - 1),
    "min_tokens": _int_in(0, INT32 - 1),
    "top_k": _int_in(-1, INT32 - 1),
    "seed": _int_in(-(2**63), 2**63 - 1),
    "temperature": _number_in(0.0, 2.0),
    "top_p": _number_in(0.0, 1.0, open_low=True),
    "min_p": _number_in(0.0, 1.0),
    "presence_penalty": _number_in(-2.0, 2.0),
    "frequency_penalty": _number_in(-2.0, 2.0),
    "repetition_penalty": _number_in(0.0, float(INT32), open_low=True),
    "stop": (_is_stop, "a non-empty string or a list of non-empty strings"),
    "stop_token_ids": (
        (lambda value: isinstance(value, list) and all(_is_int(i) and 0 <= i < INT32 for i in value)),
        "a list of token ids (non-negative integers)",
    ),
    "user": _STRING,
    "service_tier": _STRING,
    "metadata": _OBJECT,
    "stream_options": _OBJECT,
    **{
        key: _BOOL
        for key in (
            "ignore_eos",
            "include_stop_str_in_output",
            "skip_special_tokens",
            "spaces_between_special_tokens",
            "stream",
            "store",
        )
    },
}


def _check_sampling(body: dict[str, Any], is_chat: bool) -> None:
    for key, value in body.items():
        check = FIELD_CHECKS.get(key)
        if check is not None and value is not None and not check[0](value):
            raise ValueError(f"body.{key} must be {check[1]}, got {_show(value)}")
    if (body.get("n") or 1) > 1 and body.get("temperature") == 0:
        raise ValueError("body.n > 1 needs a temperature above 0: vLLM refuses n > 1 with greedy sampling")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if _is_int(limit) and _is_int(body.get("min_tokens")) and body["min_tokens"] > limit:
        raise ValueError("body.min_tokens must not exceed max_tokens")
    _check_logit_bias(body.get("logit_bias"))
    _check_logprobs(body, is_chat)
    _check_response_format(body.get("response_format"))


def _check_logit_bias(bias: Any) -> None:
    if bias is None:
        return
    if not isinstance(bias, dict) or not all(
        key.isascii() and key.isdigit() and int(key) < INT32 and _is_number(value) and -100 <= value <= 100
        for key, value in bias.items()
    ):
        raise ValueError("body.logit_bias must map token ids (as strings) to numbers in [-100, 100]")


def _check_logprobs(body: dict[str, Any], is_chat: bool) -> None:
    logprobs, top = body.get("logprobs"), body.get("top_logprobs")
    if is_chat:
        if logprobs is not None and not isinstance(logprobs, bool):
            raise ValueError(f"body.logprobs must be true or false in a chat request, got {_show(logprobs)}")
        if top is not None and not (_is_int(top) and 0 <= top <= MAX_LOGPROBS):
            raise ValueError(f"body.top_logprobs must be an integer in [0, {MAX_LOGPROBS}], got {_show(top)}")
        if top and not logprobs:
            raise ValueError("body.top_logprobs needs body.logprobs set to true")
    elif logprobs is not None and not (_is_int(logprobs) and 0 <= logprobs <= MAX_LOGPROBS):
        raise ValueError(
            f"body.logprobs must be an integer in [0, {MAX_LOGPROBS}] in a completion request, got {_show(logprobs)}"
        )


def _check_response_format(response_format: Any) -> None:
    if response_format is None:
        return
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if not isinstance(kind, str) or kind not in RESPONSE_FORMATS:
        raise ValueError(f"body.response_format.type must be one of {', '.join(sorted(RESPONSE_FORMATS))}")
    if kind == "json_schema":
        json_schema = response_format.get("json_schema")
        if not isinstance(json_schema, dict):
            raise ValueError("body.response_format.json_schema must be a JSON object holding a schema")
        if not isinstance(json_schema.get("schema"), dict):
            raise ValueError("body.response_format.json_schema.schema must be a JSON object")
        if json_schema.get("name") is not None and not isinstance(json_schema["name"], str):
            raise ValueError("body.response_format.json_schema.name must be a string")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
