"""What the worker and the frontend share: the results stream, its message, JSON and body rules, settings.

Results travel on a Redis Stream (not pub/sub): the worker appends each result with XADD, trimmed to
about STREAM_MAXLEN entries, and the frontend reads with XREAD from the last id it has seen, so a
frontend that reconnects after a Redis or network fault resumes where it stopped instead of losing
whatever was written meanwhile. Burst workers write to the primary's Redis through the same contract.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from contract import REDIS_ADDRESS, STREAM, STREAM_FIELD, STREAM_MAXLEN  # noqa: F401 - the bus the apps share

DEFAULT_REDIS_URL = REDIS_ADDRESS
MAX_JSON_DEPTH = 64
"""Deeper JSON is refused: the parser recurses per level, and no real request nests this deep."""


class BodyTooLarge(Exception):
    pass


async def read_body(stream: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The request body, refused as soon as it passes `limit` bytes (declared or streamed): never read whole."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def redis_url(value: str | None = None) -> str:
    """REDIS_URL as a redis:// URL; a bare host:port (as in the original app) is accepted."""
    raw = (value if value is not None else os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)).strip()
    if not raw:
        raise ValueError("REDIS_URL is empty: expected host:port or redis://host:port")
    return raw if "://" in raw else f"redis://{raw}"


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes | str, exact_ints: bool = False) -> Any:
    """Strict JSON: no NaN/Infinity, at most MAX_JSON_DEPTH levels, integers of any length.

    Integers become floats (a 5,000-digit one becomes inf) unless `exact_ints`, which keeps their text:
    Python's int() refuses more than 4,300 digits, which would make valid JSON look invalid.
    Raises ValueError with a message that never contains the input.
    """
    if nested_too_deep(body):
        raise ValueError(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(body, parse_constant=_no_constant, parse_int=str if exact_ints else float)
    except UnicodeDecodeError:
        raise ValueError("body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nested_too_deep(body: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether brackets outside strings nest deeper than `limit`; found without recursion, at any depth."""
    data = body.encode(errors="replace") if isinstance(body, str) else body
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # too few brackets to nest that deep: the common case costs two C-level scans
    depth = 0
    for byte in _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


def result_message(digest: str, prefix: str, cluster: str, received_at: datetime | None = None) -> str:
    """The JSON written to STREAM for every hashed request."""
    when = (received_at or datetime.now(UTC)).isoformat(timespec="milliseconds")
    return json.dumps({"hash": digest, "prefix": prefix, "cluster": cluster, "received_at": when})


def parse_result(raw: str | bytes) -> dict[str, Any] | None:
    """A message from STREAM, or None when it is not one of ours."""
    try:
        message = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("hash"), str):
        return None
    message.setdefault("prefix", "")
    return message
