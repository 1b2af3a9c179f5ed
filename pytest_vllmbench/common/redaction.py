"""Keep credentials out of everything saved, printed or rendered: URLs, engine args, free text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"
# segments (split at _ - . and case changes) of engine-arg and query-parameter names that hold credentials;
# whole segments only, so max_num_batched_tokens or tokenizer_mode stay visible
_SECRET_SEGMENTS = frozenset(
    {
        "apikey",
        "token",
        "password",
        "passwd",
        "pwd",
        "secret",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "signature",
        "sig",
        "key",
        "cookie",
        "bearer",
    }
)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{}]+")


def is_secret_name(name: str) -> bool:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower()
    segments = [segment for segment in re.split(r"[_.\-\s]+", spaced) if segment]
    return any(segment in _SECRET_SEGMENTS for segment in segments) or "apikey" in "".join(segments)


def redact_url(url: str) -> str:
    """`http://user:pw@host/v1?api_key=k&x=1` -> `http://<redacted>@host/v1?api_key=<redacted>&x=1`."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port, which we then hide wholesale below
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(key, REDACTED if is_secret_name(key) else value) for key, value in pairs], safe="<>")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Every URL in `text` redacted, and every known secret value replaced wherever it appears."""
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), str(text))
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Engine args as they may be saved: secret-named values hidden, URLs inside values redacted."""
    return {key: REDACTED if is_secret_name(key) else _redact_value(value) for key, value in args.items()}


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_args(value)
    if isinstance(value, list):
        return [_redact_value(item) for item in value]
    return value


def secret_values(url: str | None, args: Mapping[str, Any], api_key: str | None) -> list[str]:
    """The literal secrets a session knows, to scrub from text it did not write itself (server logs, errors)."""
    found = [api_key] if api_key else []
    if url:
        try:
            parts = urlsplit(url)
            if parts.password:
                found.append(parts.password)
            if parts.username:
                found.append(parts.username)
            found += [value for key, value in parse_qsl(parts.query) if is_secret_name(key)]
        except ValueError:
            pass
    found += [str(value) for key, value in args.items() if is_secret_name(key) and value not in (None, "")]
    return [value for value in found if value]


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def strip_paths(text: str) -> str:
    """Absolute paths cut to their last part: what a saved run says about a file, never where this machine keeps it."""
    return _ABSOLUTE_PATH.sub(r"\1", text)
