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
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{}]+")
# an Authorization header value echoed back by a server: `Basic dXNlcjpwYXNz`, `Bearer sk-...`
_AUTH_IN_TEXT = re.compile(r"\b(Basic|Bearer|Digest|Token)(\s+)[A-Za-z0-9+/=._~-]{4,}", re.IGNORECASE)
# a URL's query parameters whose values stay visible; every other value may be a key (`?code=`, `?sig=`)
_PLAIN_QUERY_NAMES = frozenset({"api-version", "api_version", "apiversion", "version", "format"})


def is_secret_name(name: str) -> bool:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower()
    segments = [segment for segment in re.split(r"[_.\-\s]+", spaced) if segment]
    return any(segment in _SECRET_SEGMENTS for segment in segments) or "apikey" in "".join(segments)


def redact_url(url: str) -> str:
    """`http://user:pw@host/v1?code=k&api-version=1#t` -> `http://<redacted>@host/v1?code=<redacted>&api-version=1#<redacted>`:
    userinfo, every query value but a version, and any fragment are hidden; a URL that does not parse keeps the rest
    as typed, so that its mistake can be seen."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return _redact_as_typed(url)
    if "@" in parts.path + parts.query + parts.fragment:  # userinfo urlsplit did not take for it: `user:pw@host`
        return _redact_as_typed(url)  # (no //), a password holding `/`, `?` or `#`
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(key, value if _plain_query(key) else REDACTED) for key, value in pairs], safe="<>")
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_as_typed(url: str) -> str:
    """A URL urlsplit refuses (`http://[::1/v1`, a bad port) or whose userinfo it would misplace, shown as typed, so
    that its mistake stays visible, less what may be credentials: all after the scheme up to the last `@` (a password
    may hold `/`, `?` or `#`), every query value but a version, any fragment."""
    scheme = _SCHEME.match(url)
    prefix = scheme.group(0) if scheme else ""
    rest = url[len(prefix) :]
    if "@" in rest:
        rest = f"{REDACTED}@{rest.rpartition('@')[2]}"
    rest, hash_mark, fragment = rest.partition("#")
    address, question_mark, query = rest.partition("?")
    query = "&".join(_redact_query_item(item) for item in query.split("&")) if query else ""
    fragment = REDACTED if fragment else ""
    return f"{prefix}{address}{question_mark}{query}{hash_mark}{fragment}"


def _redact_query_item(item: str) -> str:
    name, equals, _ = item.partition("=")
    if not equals:
        return REDACTED  # a bare item may be a key itself
    return item if _plain_query(name) else f"{name}={REDACTED}"


def _plain_query(name: str) -> bool:
    return name.lower() in _PLAIN_QUERY_NAMES and not is_secret_name(name)


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Every URL and Authorization value in `text` redacted, and every known secret value replaced wherever it
    appears."""
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), str(text))
    text = _AUTH_IN_TEXT.sub(lambda match: f"{match.group(1)}{match.group(2)}{REDACTED}", text)
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
            found += [value for key, value in parse_qsl(parts.query) if not _plain_query(key)]
            if parts.fragment:  # never sent, but printed where a URL is echoed: `#api_key=k` or a bare key
                found += [parts.fragment, *(value for _, value in parse_qsl(parts.fragment))]
        except ValueError:
            pass
    found += [str(value) for key, value in args.items() if is_secret_name(key) and value not in (None, "")]
    return [value for value in found if value]


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def strip_paths(text: str) -> str:
    """Absolute paths cut to their last part: what a saved run says about a file, never where this machine keeps it."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


def address_without_credentials(address: str) -> str:
    """A cluster address as it may be saved: as given, or only its `host:port` when it carries credentials
    (`ray://user:token@head:10001?auth=k` -> `head:10001`), so no token is ever kept."""
    rest = address.partition("://")[2] or address
    if not any(mark in rest for mark in "@?#"):
        return address
    host_port = rest.rpartition("@")[2]
    for mark in "?#/":
        host_port = host_port.partition(mark)[0]
    return host_port or REDACTED
