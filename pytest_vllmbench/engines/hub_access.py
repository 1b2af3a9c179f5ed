"""Whether a model's weights can be had here before any engine starts: a local folder, the Hugging Face cache,
or a reachable model hub. Without one, vLLM would spend a minute retrying the hub and then fail."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

OFFLINE_VALUES = ("1", "true", "yes", "on")
PROBE_TIMEOUT_S = 3.0


def in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the hub library refuses is not in its cache either
        return False


def hub_unreachable() -> str | None:
    """Why the model hub cannot be reached (HF_HUB_OFFLINE, or no connection within PROBE_TIMEOUT_S), or None."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in OFFLINE_VALUES:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"no connection to {host}:{port} ({exc.strerror or type(exc).__name__})"


def weights_unavailable(source: str) -> str | None:
    """Why `source` (what vLLM would load) cannot be loaded here, or None when it may be."""
    if Path(source).expanduser().exists() or in_hf_cache(source):
        return None
    reason = hub_unreachable()
    if reason is None:
        return None
    return (
        f"the weights of {source} are neither a local folder nor in the Hugging Face cache, and the model hub "
        f"cannot be reached ({reason}); download them where the hub is reachable, point --model at a local folder, "
        "or size the model with --load-format=dummy"
    )
