"""What the worker and the frontend share: the Redis channel, its message, and settings from the environment."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

CHANNEL = "calculation"
BURST_PREFIX = "bursty-"
DEFAULT_REDIS_URL = "redis-cache-service:6379"


def redis_url(value: str | None = None) -> str:
    """REDIS_URL as a redis:// URL; a bare host:port (as in the original app) is accepted."""
    raw = (value if value is not None else os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)).strip()
    if not raw:
        raise ValueError("REDIS_URL is empty: expected host:port or redis://host:port")
    return raw if "://" in raw else f"redis://{raw}"


def env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number (allowed: {low}..{high})") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is out of range (allowed: {low}..{high})")
    return value


def result_message(digest: str, prefix: str, cluster: str, received_at: datetime | None = None) -> str:
    """The JSON published on CHANNEL for every hashed request."""
    when = (received_at or datetime.now(UTC)).isoformat(timespec="milliseconds")
    return json.dumps({"hash": digest, "prefix": prefix, "cluster": cluster, "received_at": when})


def parse_result(raw: str | bytes) -> dict[str, Any] | None:
    """A message from CHANNEL, or None when it is not one of ours."""
    try:
        message = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("hash"), str):
        return None
    message.setdefault("prefix", "")
    return message
