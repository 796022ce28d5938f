"""Server-side bounds uvicorn lacks: header and body deadlines and a header size cap (an HTTP protocol class).

uvicorn only bounds idle kept-alive connections, so a client that opens a connection and sends its
headers or body slowly (or never) holds it forever. GuardedHttpTools is uvicorn's httptools protocol
plus: the request line and headers within HEADER_TIMEOUT_SECONDS of the connection (or of the
request's first byte on a kept-alive one) and at most MAX_HEADER_BYTES of them (431 past that), and
the body within BODY_TIMEOUT_SECONDS of the headers. Past a deadline the connection is closed.

Use it with `uvicorn --http httpguard:GuardedHttpTools` or `uvicorn.run(..., http=GuardedHttpTools)`;
the limits come from the environment, read at import (a bad value stops the process, naming it). It
depends on uvicorn only; every image copies it from the named build context `lib` (apps/lib), so there is
one copy (builders/images.py: SHARED_CONTEXTS).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from envvars import env_int, env_seconds
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

STATUS_TEXT = {431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    body_timeout: float
    idle_timeout: float
    max_header_bytes: int

    @classmethod
    def from_env(cls) -> Limits:
        """HEADER_TIMEOUT_SECONDS (10), BODY_TIMEOUT_SECONDS (15), IDLE_TIMEOUT_SECONDS (5, between requests on
        a kept-alive connection: pass it to uvicorn as timeout_keep_alive), MAX_HEADER_BYTES (16384)."""
        return cls(
            header_timeout=env_seconds("HEADER_TIMEOUT_SECONDS", 10, 0.1, 300),
            body_timeout=env_seconds("BODY_TIMEOUT_SECONDS", 15, 0.1, 600),
            idle_timeout=env_seconds("IDLE_TIMEOUT_SECONDS", 5, 0.1, 300),
            max_header_bytes=env_int("MAX_HEADER_BYTES", 16 * 1024, 1024, 1024 * 1024),
        )


try:
    LIMITS = Limits.from_env()
    """Read once at import: `uvicorn --http httpguard:GuardedHttpTools` has no other way to pass them."""
except ValueError as exc:
    raise SystemExit(f"httpguard: {exc}") from None


class HeadersTooLarge(Exception):
    """Raised inside the parser's callbacks; httptools turns it into a parser error."""


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a header size cap."""

    limits = LIMITS

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._headers_too_large = False

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            self._headers_too_large = True
            raise HeadersTooLarge

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout)  # also bounds a connection that never sends a byte

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._deadline is None:  # a later request on a kept-alive connection: from its first byte
            self._arm(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._arm(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._headers_too_large:
            super().send_400_response(msg)
            return
        body = f"request line and headers are larger than {self.limits.max_header_bytes} bytes".encode()
        self.transport.write(
            b"HTTP/1.1 431 " + STATUS_TEXT[431] + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()
