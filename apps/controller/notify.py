"""Phase changes posted to a webhook, in the background: the control loop only queues a message.

A background task POSTs each message as JSON {route, policy, previous, phase, reason, status, at}, retrying
with capped exponential backoff for a bounded number of tries; a message that cannot be delivered is dropped
and counted as a fault of kind `webhook`, as is one that finds the queue full. The URL is a secret (it often
carries a token): it is never logged, only its host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("controller.notify")

QUEUE_SIZE = 100


def read_webhook_url(path: str) -> str:
    """The URL in the file WEBHOOK_URL_FILE names (mounted from a Secret); ValueError without echoing it."""
    try:
        url = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"WEBHOOK_URL_FILE={path!r} cannot be read: {exc.strerror}") from None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"WEBHOOK_URL_FILE={path!r} does not hold an http(s) URL with a host")
    return url


def host_of(url: str) -> str:
    """What a log may say about a webhook URL: its host, never its path or query (the secret part)."""
    return urlsplit(url).hostname or "?"


class Notifier:
    """Queues messages and delivers them from a background task; `send` never waits."""

    def __init__(
        self,
        url: str | None,
        on_fault: Callable[[], None],
        tries: int = 5,
        first_delay_s: float = 0.5,
        max_delay_s: float = 8.0,
        timeout_s: float = 3.0,
    ) -> None:
        self.url = url
        self.on_fault = on_fault
        self.tries = tries
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.delivered = 0
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.url is not None and self._task is None:
            self._task = asyncio.create_task(self._deliver_forever())

    def send(self, message: Mapping[str, Any]) -> None:
        """Queue one message; with no webhook configured, nothing happens."""
        if self.url is None:
            return
        try:
            self.queue.put_nowait(dict(message))
        except asyncio.QueueFull:
            self.dropped += 1
            self.on_fault()
            log.warning("webhook to %s: queue full (%d), message dropped", host_of(self.url), QUEUE_SIZE)

    async def _deliver_forever(self) -> None:
        assert self.url is not None
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
            while True:
                message = await self.queue.get()
                try:
                    await self._deliver(client, self.url, message)
                except Exception as exc:  # the task must outlive any one message
                    self.dropped += 1
                    self.on_fault()
                    log.warning("webhook to %s: %s; message dropped", host_of(self.url), type(exc).__name__)
                finally:
                    self.queue.task_done()

    async def _deliver(self, client: httpx.AsyncClient, url: str, message: Mapping[str, Any]) -> None:
        delay = self.first_delay_s
        problem = ""
        for attempt in range(1, self.tries + 1):
            try:
                response = await client.post(url, json=message)
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            else:
                if response.is_success:
                    self.delivered += 1
                    return
                problem = f"HTTP {response.status_code}"
            if attempt < self.tries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
        self.dropped += 1
        self.on_fault()
        log.warning(
            "webhook to %s: %s after %d tries; message about %s dropped",
            host_of(url),
            problem,
            self.tries,
            message.get("phase"),
        )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
