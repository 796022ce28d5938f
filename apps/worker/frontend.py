"""frontend ("String Hashr"): sends hashing work at a chosen rate and streams the results to browsers.

The server, not the browser, sends the work: POST /frequency {"rps": N} sets the rate (0 stops,
at most 1000/s); a sender posts random strings to PROCESSOR_URL at that rate with bounded
concurrency and a timeout; a subscriber reads results from Redis (`calculation`) and every open
tab receives them as server-sent events, with the share that came from the burst cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import redis.asyncio as redis
from common import BURST_PREFIX, CHANNEL, env_int, parse_result, redis_url
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

MAX_RPS = 1000
PAGE = Path(__file__).resolve().parent / "static" / "index.html"
log = logging.getLogger("frontend")


def burst_share(prefixes: Iterable[str]) -> float:
    """Fraction (0..1) of results that came from the burst cluster; 0 when there are none."""
    items = list(prefixes)
    return sum(1 for p in items if p == BURST_PREFIX) / len(items) if items else 0.0


def parse_rate(payload: object) -> float:
    """The requested rate from a POST /frequency body, or ValueError saying what is allowed."""
    rps = payload.get("rps") if isinstance(payload, dict) else None
    if isinstance(rps, bool) or not isinstance(rps, int | float):
        raise ValueError(f'expected a JSON body {{"rps": <number from 0 to {MAX_RPS}>}}, got {payload!r}')
    if not 0 <= rps <= MAX_RPS:
        raise ValueError(f"rps must be from 0 to {MAX_RPS} requests per second, got {rps}")
    return float(rps)


@dataclass
class Counters:
    rate: float = 0.0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    dropped: int = 0
    """Sends skipped because max_in_flight requests were already waiting on the workers."""
    in_flight: int = 0
    results: int = 0
    last_error: str = ""


class Hashr:
    """The frontend's state: the sender loop, the Redis subscriber and the browser streams."""

    def __init__(self, processor_url: str, bus_url: str, window: int, max_in_flight: int, timeout: float) -> None:
        self.processor_url = processor_url
        self.bus_url = bus_url
        self.window = window
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.counters = Counters()
        self.recent: deque[dict] = deque(maxlen=window)
        self.listeners: set[asyncio.Queue[str]] = set()
        self.rate_changed = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.in_flight: set[asyncio.Task] = set()
        self.http: httpx.AsyncClient | None = None

    def stats(self) -> dict:
        return {
            **asdict(self.counters),
            "window": self.window,
            "burst_share": round(burst_share(m["prefix"] for m in self.recent), 4),
            "recent": len(self.recent),
        }

    def set_rate(self, rps: float) -> None:
        self.counters.rate = rps
        self.rate_changed.set()
        self._broadcast("stats", self.stats())  # every tab shows the new rate at once
        log.info("rate set to %g requests/s", rps)

    async def start(self) -> None:
        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight)
        self.http = httpx.AsyncClient(timeout=self.timeout, limits=limits)
        self.tasks = [
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._subscribe_loop()),
            asyncio.create_task(self._stats_loop()),
        ]

    async def stop(self) -> None:
        for task in [*self.tasks, *self.in_flight]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.in_flight, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()

    async def _send_loop(self) -> None:
        """Send at the set rate, on a fixed schedule so slow workers do not slow the sender down."""
        next_at = time.monotonic()
        while True:
            if self.counters.rate <= 0:
                self.rate_changed.clear()
                await self.rate_changed.wait()
                next_at = time.monotonic()
                continue
            now = time.monotonic()
            if next_at > now:
                self.rate_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.rate_changed.wait(), next_at - now)
                if self.rate_changed.is_set():
                    next_at = time.monotonic()
                continue
            # Fell far behind (e.g. the loop was busy): skip the backlog rather than burst to catch up.
            next_at = max(next_at, now - 1.0) + 1.0 / self.counters.rate
            if len(self.in_flight) >= self.max_in_flight:
                self.counters.dropped += 1
                continue
            task = asyncio.create_task(self._send_one())
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    async def _send_one(self) -> None:
        assert self.http is not None
        self.counters.sent += 1
        self.counters.in_flight += 1
        try:
            response = await self.http.post(
                self.processor_url, content=secrets.token_hex(16), headers={"content-type": "text/plain"}
            )
            if response.status_code == 200:
                self.counters.ok += 1
            else:
                self.counters.errors += 1
                self.counters.last_error = f"HTTP {response.status_code} from {self.processor_url}"
        except httpx.TimeoutException:
            self.counters.timeouts += 1
            self.counters.last_error = f"timeout after {self.timeout}s from {self.processor_url}"
        except httpx.HTTPError as exc:
            self.counters.errors += 1
            self.counters.last_error = f"{type(exc).__name__} from {self.processor_url}"
        finally:
            self.counters.in_flight -= 1

    async def _subscribe_loop(self) -> None:
        """Relay results from Redis to every browser; reconnect with backoff while Redis is away."""
        delay = 0.2
        while True:
            client = redis.Redis.from_url(self.bus_url, socket_connect_timeout=1)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    delay = 0.2
                    async for raw in pubsub.listen():
                        if raw.get("type") != "message":
                            continue
                        message = parse_result(raw["data"])
                        if message is not None:
                            self.counters.results += 1
                            self.recent.append(message)
                            self._broadcast("result", message)
            except (RedisError, OSError) as exc:
                self.counters.last_error = f"redis: {exc}"
                log.warning("redis subscription lost (%s); retrying in %.1fs", exc, delay)
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(1)
            self._broadcast("stats", self.stats())

    def _broadcast(self, event: str, data: dict) -> None:
        frame = f"event: {event}\ndata: {json.dumps(data)}\n\n"
        for queue in self.listeners:
            # A slow tab loses frames instead of growing memory without bound.
            if queue.qsize() < queue.maxsize:
                queue.put_nowait(frame)

    async def stream(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=500)
        self.listeners.add(queue)
        try:
            yield f"event: stats\ndata: {json.dumps(self.stats())}\n\n"
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
        finally:
            self.listeners.discard(queue)


def create_app() -> Starlette:
    hashr = Hashr(
        processor_url=os.environ.get("PROCESSOR_URL", "http://worker-service"),
        bus_url=redis_url(),
        window=env_int("RESULT_WINDOW", 100, 1, 10_000),
        max_in_flight=env_int("MAX_IN_FLIGHT", 64, 1, 10_000),
        timeout=env_int("REQUEST_TIMEOUT_MS", 2000, 10, 60_000) / 1000,
    )

    async def index(_: Request) -> Response:
        return FileResponse(PAGE, headers={"cache-control": "no-cache"})

    async def frequency(request: Request) -> Response:
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        try:
            rps = parse_rate(payload)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        hashr.set_rate(rps)
        return JSONResponse({"rps": rps})

    async def stats(_: Request) -> Response:
        return JSONResponse({**hashr.stats(), "latest": list(hashr.recent)[-10:]})

    async def events(_: Request) -> Response:
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(hashr.stream(), media_type="text/event-stream", headers=headers)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    @asynccontextmanager
    async def lifespan(_: Starlette):
        await hashr.start()
        log.info("frontend ready: processor=%s redis=%s", hashr.processor_url, hashr.bus_url)
        yield
        await hashr.stop()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/frequency", frequency, methods=["POST"]),
            Route("/stats", stats),
            Route("/events", events),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
    app.state.hashr = hashr
    return app


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
app = create_app()
