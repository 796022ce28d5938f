"""frontend ("String Hashr"): sends hashing work at a chosen rate and streams the results to browsers.

The server, not the browser, sends the work: POST /frequency {"rps": N} with `Authorization: Bearer
<token>` (the token from the file HASHR_TOKEN_FILE names, or HASHR_TOKEN) sets the rate, 0 stops it, at
most MAX_RPS (1..1000, default 1000). A scheduler posts random strings to PROCESSOR_URL at that rate
over one keep-alive connection pool, with at most MAX_IN_FLIGHT waiting and a timeout.
A reader follows the Redis results stream (common.py) from the last id it has seen, so a reconnect
resumes without loss, and matches every result to the request that caused it: each request is
counted once as ok, failed (error or timeout) or late (failed at HTTP, but its result arrived), and
an ok request whose result never arrives within RESULT_GRACE_SECONDS is counted lost.

Viewing is public (the page, /stats, /events); changing the rate needs the token. /readyz is ready
only while Redis answers and the results reader is connected.

The page also shows the worker split between the clusters and who sets it (`split` in the stats):
SPLIT_MODE=manual with SPLIT_SHARE_FILE, the worker route's intent as mounted from its ConfigMap (its `share`
is the percent the stack routes to the burst cluster, burstWeight: a new value reaches the file without a
restart); or SPLIT_MODE=auto with SPLIT_STATUS_URL, the burst controller's GET /status. Either is read every
SPLIT_POLL_SECONDS (default 5). Unset: the split is not shown. Neither being away ever affects the work.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import redis.asyncio as redis
from common import (
    STREAM,
    STREAM_FIELD,
    BodyTooLarge,
    parse_json,
    parse_result,
    read_body,
    redis_url,
)
from contract import BURST_PREFIX, WORKER_URL
from envvars import clip, env_int, env_seconds
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_MAX_RPS = 1000
MAX_RPS_LIMIT = 1000
"""The highest cap MAX_RPS may set: one frontend process delivers it on one core (bench/frontend_rate.py)."""
MIN_RPS = 0.1
MIN_TOKEN_LENGTH = 16
CONTROL_BODY_BYTES = 1024
TICK_S = 0.005
"""The scheduler wakes at most every 5 ms and sends what is due: at 1,000 req/s that is 5 per wake-up."""
FLUSH_S = 0.25
SHOWN_RESULTS = 20
PAGE = Path(__file__).resolve().parent / "static" / "index.html"
SPLIT_MODES = ("manual", "auto")
STATUS_TIMEOUT_S = 2.0
STATUS_BYTES = 16_384
IN_FLIGHT, OK, FAILED = 0, 1, 2
TEXT = {"content-type": "text/plain"}
log = logging.getLogger("frontend")


def burst_share(prefixes: Iterable[str]) -> float:
    """Fraction (0..1) of results that came from the burst cluster; 0 when there are none."""
    items = list(prefixes)
    return sum(1 for p in items if p == BURST_PREFIX) / len(items) if items else 0.0


def parse_rate(payload: object, max_rps: int) -> float:
    """The requested rate from a POST /frequency body, or ValueError saying what is allowed (input clipped)."""
    allowed = f"0 (to stop) or from {MIN_RPS:g} to {max_rps} requests per second"
    rps = payload.get("rps") if isinstance(payload, dict) else None
    if isinstance(rps, bool) or not isinstance(rps, int | float):
        shown = clip(json.dumps(payload) if payload is not None else "no JSON")
        raise ValueError(f'expected a JSON body {{"rps": <number>}} with rps {allowed}, got {shown}')
    if rps > max_rps:
        raise ValueError(f"rps {clip(f'{rps:g}')} is above this frontend's cap of {max_rps} requests per second")
    if rps != 0 and rps < MIN_RPS:
        raise ValueError(f"rps must be {allowed}, got {clip(f'{rps:g}')}")
    return float(rps)


def bearer_token(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_token() -> str:
    """The control token: from the file HASHR_TOKEN_FILE names (a mounted Secret), else from HASHR_TOKEN."""
    path = os.environ.get("HASHR_TOKEN_FILE", "").strip()
    if path:
        try:
            token, source = Path(path).read_text().strip(), f"the file HASHR_TOKEN_FILE={path!r}"
        except OSError as exc:
            raise ValueError(f"HASHR_TOKEN_FILE={path!r} cannot be read: {exc.strerror}") from None
    else:
        token, source = os.environ.get("HASHR_TOKEN", "").strip(), "HASHR_TOKEN"
    if not token:
        raise ValueError(
            f"HASHR_TOKEN is not set ({source} is empty): set HASHR_TOKEN, or HASHR_TOKEN_FILE to a file holding "
            "the token that POST /frequency requires (the primary stack's secret output hashrToken); refusing to "
            "start with an open control endpoint"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"{source} holds {len(token)} characters: the token needs at least {MIN_TOKEN_LENGTH}")
    return token


@dataclass(frozen=True)
class SplitSource:
    """Where the page's split comes from: the stack's setting (manual) or the burst controller (auto)."""

    mode: str
    share_file: str | None = None
    """manual: the worker route's intent.json, mounted from its ConfigMap; `share` is burstWeight."""
    status_url: str | None = None
    """auto: the burst controller's GET /status."""
    poll_s: float = 5.0

    @classmethod
    def from_env(cls) -> SplitSource | None:
        mode = os.environ.get("SPLIT_MODE", "").strip()
        if not mode:
            return None
        if mode not in SPLIT_MODES:
            raise ValueError(f"SPLIT_MODE={clip(mode)!r} is not one of {list(SPLIT_MODES)}")
        poll_s = env_seconds("SPLIT_POLL_SECONDS", 5.0, 0.2, 300.0)
        if mode == "manual":
            path = os.environ.get("SPLIT_SHARE_FILE", "").strip()
            if not path:
                raise ValueError(
                    "SPLIT_MODE=manual needs SPLIT_SHARE_FILE, the worker route's intent.json (share: burstWeight)"
                )
            return cls(mode, share_file=path, poll_s=poll_s)
        url = os.environ.get("SPLIT_STATUS_URL", "").strip()
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"SPLIT_MODE=auto needs SPLIT_STATUS_URL, the burst controller's http://.../status (got {clip(url)!r})"
            )
        return cls(mode, status_url=url, poll_s=poll_s)


def split_from_intent(text: str) -> dict:
    """The page's split from the worker route's intent while Pulumi writes the route (builders/routes.py: `share`)."""
    try:
        payload = json.loads(text)
    except ValueError:
        raise ValueError("the intent is not JSON") from None
    share = payload.get("share") if isinstance(payload, dict) else None
    if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100:
        raise ValueError(f"the intent has no share from 0 to 100 (got {clip(repr(share))})")
    return {"mode": "manual", "burst_share": share, "state": "", "writer": False, "updated": "", "error": ""}


def _read_small(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        text = file.read(STATUS_BYTES + 1)
    if len(text) > STATUS_BYTES:
        raise ValueError(f"{path} is larger than {STATUS_BYTES} bytes")
    return text


async def _get_small(client: aiohttp.ClientSession, url: str) -> bytes:
    async with client.get(url) as response:
        body = await response.content.read(STATUS_BYTES + 1)
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        if len(body) > STATUS_BYTES:
            raise ValueError(f"the status is larger than {STATUS_BYTES} bytes")
        return body


def split_from_status(payload: object) -> dict:
    """The page's split from the burst controller's /status JSON (contract: every status field is a string)."""
    if not isinstance(payload, dict):
        raise ValueError("the status is not a JSON object")
    try:
        share = round(float(payload["weight"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"the status has no numeric weight (got {clip(repr(payload.get('weight')))})") from None
    if not 0 <= share <= 100:
        raise ValueError(f"the status's weight {share} is not a percentage")
    return {
        "mode": "auto",
        "burst_share": share,
        "state": str(payload.get("mode") or payload.get("phase") or ""),
        "writer": payload.get("writer") in (True, "true"),
        "updated": str(payload.get("updated") or ""),
        "error": "",
    }


@dataclass(frozen=True)
class Settings:
    token: str
    max_rps: int
    processor_url: str
    bus_url: str
    window: int
    max_in_flight: int
    timeout: float
    result_grace: float
    split: SplitSource | None = None

    @classmethod
    def from_env(cls) -> Settings:
        token = read_token()
        return cls(
            token=token,
            max_rps=env_int("MAX_RPS", DEFAULT_MAX_RPS, 1, MAX_RPS_LIMIT),
            processor_url=os.environ.get("PROCESSOR_URL", WORKER_URL),
            bus_url=redis_url(),
            window=env_int("RESULT_WINDOW", 100, 1, 10_000),
            max_in_flight=env_int("MAX_IN_FLIGHT", 256, 1, 10_000),
            timeout=env_int("REQUEST_TIMEOUT_MS", 2000, 10, 60_000) / 1000,
            result_grace=env_int("RESULT_GRACE_SECONDS", 30, 1, 600),
            split=SplitSource.from_env(),
        )


@dataclass
class Counters:
    """Every sent request is in exactly one of ok, errors, timeouts, late or in_flight."""

    rate: float = 0.0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    late: int = 0
    """Failed at HTTP (error or timeout), yet the worker stored its result: it arrived afterwards."""
    in_flight: int = 0
    dropped: int = 0
    """Sends skipped because max_in_flight requests were already waiting on the workers (never sent)."""
    results: int = 0
    """Results of this frontend's requests that arrived: those of ok requests, plus the late ones."""
    awaiting: int = 0
    """ok requests whose result has not arrived yet."""
    lost: int = 0
    """ok requests whose result did not arrive within the grace period."""
    last_error: str = ""
    last_error_at: str | None = None
    recovered_at: str | None = None
    """When every failing part answered again after the last error; None while something still fails."""


class Pending:
    """One request this frontend sent, until its result arrives or its grace period ends."""

    __slots__ = ("failure", "result_seen", "sent_at", "state")

    def __init__(self, sent_at: float) -> None:
        self.state = IN_FLIGHT
        self.result_seen = False
        self.sent_at = sent_at
        self.failure = ""  # "errors" or "timeouts" once failed


class Hashr:
    """The frontend's state: the scheduler, the results reader and the browser streams."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = Counters()
        self.recent: deque[dict] = deque(maxlen=settings.window)
        self.unsent: deque[dict] = deque(maxlen=SHOWN_RESULTS)
        self.pending: dict[str, Pending] = {}
        self.failing: dict[str, bool] = {"worker": False, "redis": False}
        self.listeners: set[asyncio.Queue[str]] = set()
        self.rate_changed = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.in_flight: set[asyncio.Task] = set()
        self.reader_connected = False
        self.http: aiohttp.ClientSession | None = None
        self.split = self._initial_split(settings.split)
        # Readiness pings on their own client, so a blocked XREAD never delays them.
        self.probe = redis.Redis.from_url(
            settings.bus_url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )

    # What the page shows

    def stats(self) -> dict:
        return {
            **asdict(self.counters),
            "max_rps": self.settings.max_rps,
            "window": self.settings.window,
            "burst_share": round(burst_share(m["prefix"] for m in self.recent), 4),
            "recent": len(self.recent),
            "status": "degraded" if any(self.failing.values()) else "ok",
            "split": self.split,
        }

    @staticmethod
    def _initial_split(source: SplitSource | None) -> dict | None:
        if source is None:
            return None
        return {
            "mode": source.mode,
            "burst_share": None,
            "state": "",
            "writer": False,
            "updated": "",
            "error": "not read yet",
        }

    def _fault(self, part: str, message: str) -> None:
        self.failing[part] = True
        self.counters.last_error = message
        self.counters.last_error_at = now_iso()
        self.counters.recovered_at = None

    def _healthy(self, part: str) -> None:
        if not self.failing[part]:
            return
        self.failing[part] = False
        if self.counters.last_error_at and not any(self.failing.values()):
            self.counters.recovered_at = now_iso()
            log.info("recovered: every part answers again (last error at %s)", self.counters.last_error_at)

    async def ready(self) -> tuple[bool, str]:
        if not self.reader_connected:
            return False, "results reader not connected to Redis"
        try:
            await self.probe.ping()
        except (RedisError, OSError) as exc:
            return False, f"redis unreachable: {type(exc).__name__}"
        return True, "ready"

    # Lifecycle

    def set_rate(self, rps: float) -> None:
        self.counters.rate = rps
        self.rate_changed.set()
        self._broadcast("stats", self.stats())  # every tab shows the new rate at once
        log.info("rate set to %g requests/s", rps)

    async def start(self) -> None:
        # One pool of keep-alive connections for every send: a new connection per request costs more CPU
        # than the request itself at the top rate. aiohttp, not httpx: httpx's pool scans every connection
        # on each request and took the whole core at 200 req/s (profiled with py-spy).
        connector = aiohttp.TCPConnector(limit=self.settings.max_in_flight, keepalive_timeout=30)
        self.http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            skip_auto_headers=("User-Agent",),
        )
        self.tasks = [
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._read_loop()),
            asyncio.create_task(self._tick_loop()),
        ]
        source = self.settings.split
        if source is not None:
            self.tasks.append(asyncio.create_task(self._split_loop(source)))

    async def stop(self) -> None:
        for task in [*self.tasks, *self.in_flight]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.in_flight, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
        await self.probe.aclose()

    # Sending

    async def _send_loop(self) -> None:
        """Send `rate` requests per second on a schedule, in batches of what is due at each wake-up."""
        while True:
            rate = self.counters.rate
            if rate <= 0:
                self.rate_changed.clear()
                await self.rate_changed.wait()
                continue
            self.rate_changed.clear()
            started, issued = time.monotonic(), 0
            while not self.rate_changed.is_set():
                now = time.monotonic()
                due = int((now - started) * rate) - issued
                if due > rate:  # fell more than a second behind (loop was busy): skip the backlog, no burst
                    started, issued, due = now, 0, 1
                for _ in range(due):
                    self._launch()
                issued += due
                wait = max(TICK_S, started + (issued + 1) / rate - time.monotonic())
                try:
                    async with asyncio.timeout(wait):
                        await self.rate_changed.wait()
                except TimeoutError:
                    pass

    def _launch(self) -> None:
        if len(self.in_flight) >= self.settings.max_in_flight:
            self.counters.dropped += 1
            return
        task = asyncio.create_task(self._send_one())
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _send_one(self) -> None:
        assert self.http is not None
        body = secrets.token_hex(16)
        digest = hashlib.sha256(body.encode()).hexdigest()
        record = Pending(time.monotonic())
        self.pending[digest] = record
        self.counters.sent += 1
        self.counters.in_flight += 1
        url = self.settings.processor_url
        failure, message = "", ""
        try:
            async with self.http.post(url, data=body, headers=TEXT) as response:
                await response.read()
                if response.status != 200:
                    failure, message = "errors", f"HTTP {response.status} from {url}"
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors, some also ClientErrors: this comes first
            failure, message = "timeouts", f"timeout after {self.settings.timeout:g}s from {url}"
        except aiohttp.ClientConnectorError as exc:  # no connection: no worker saw it, it can never be late
            failure, message = "errors", f"{type(exc).__name__} from {url}"
            record.state = FAILED
        except aiohttp.ClientError as exc:
            failure, message = "errors", f"{type(exc).__name__} from {url}"
        finally:
            self.counters.in_flight -= 1
        if failure:
            self._fault("worker", message)
            self._settle_failed(digest, record, failure)
        else:
            self._healthy("worker")
            self._settle_ok(digest, record)

    def _settle_ok(self, digest: str, record: Pending) -> None:
        self.counters.ok += 1
        if record.result_seen:  # the result came through Redis before the HTTP answer
            self.counters.results += 1
            self.pending.pop(digest, None)
        else:
            record.state = OK
            self.counters.awaiting += 1

    def _settle_failed(self, digest: str, record: Pending, failure: str) -> None:
        if record.result_seen:  # failed at HTTP, yet its result is stored: late, not failed
            self.counters.late += 1
            self.counters.results += 1
            self.pending.pop(digest, None)
            return
        setattr(self.counters, failure, getattr(self.counters, failure) + 1)
        if record.state == FAILED:  # never reached a worker: nothing to wait for
            self.pending.pop(digest, None)
            return
        record.state, record.failure = FAILED, failure

    # Results

    def _on_result(self, message: dict) -> None:
        record = self.pending.get(message["hash"])
        if record is None:
            return  # not one of this process's requests (another replica's, or one already settled)
        if record.state == IN_FLIGHT:
            record.result_seen = True
        elif record.state == OK:
            self.counters.awaiting -= 1
            self.counters.results += 1
            del self.pending[message["hash"]]
        else:  # counted as failed: the result proves the worker did it, so it moves to late
            setattr(self.counters, record.failure, getattr(self.counters, record.failure) - 1)
            self.counters.late += 1
            self.counters.results += 1
            del self.pending[message["hash"]]
        self.recent.append(message)
        self.unsent.append(message)

    def _expire(self, now: float) -> None:
        """Forget requests past their grace period; an ok one whose result never came is lost."""
        grace = self.settings.result_grace
        while self.pending:
            digest, record = next(iter(self.pending.items()))
            if now - record.sent_at < grace or record.state == IN_FLIGHT:
                return
            if record.state == OK:
                self.counters.awaiting -= 1
                self.counters.lost += 1
            del self.pending[digest]

    async def _read_loop(self) -> None:
        """Follow the results stream from the last id seen; reconnect with backoff while Redis is away."""
        delay = 0.2
        last_id: bytes | None = None
        while True:
            client = redis.Redis.from_url(
                self.settings.bus_url, socket_connect_timeout=1, socket_timeout=3, retry=Retry(NoBackoff(), 0)
            )
            try:
                last_id = await self._resume_from(client, last_id)
                while True:
                    entries = await client.xread({STREAM: last_id}, count=1000, block=1000)
                    self.reader_connected = True
                    self._healthy("redis")
                    delay = 0.2
                    for _stream, items in entries:
                        for entry_id, fields in items:
                            last_id = entry_id
                            message = parse_result(fields.get(STREAM_FIELD.encode(), b""))
                            if message is not None:
                                self._on_result(message)
            except (RedisError, OSError) as exc:
                self.reader_connected = False
                self._fault("redis", f"redis: {type(exc).__name__}: {clip(str(exc), 120)}")
                log.warning("results reader lost Redis (%s); retrying in %.1fs", exc, delay)
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    @staticmethod
    async def _resume_from(client: redis.Redis, last_id: bytes | None) -> bytes:
        """Where to read from: the last id seen, unless the stream now ends before it (Redis restarted empty)."""
        newest = await client.xrevrange(STREAM, count=1)
        newest_id = newest[0][0] if newest else b"0-0"
        if last_id is None:
            return newest_id  # first start: only what comes from now on
        as_tuple = lambda i: tuple(int(x) for x in i.split(b"-"))  # noqa: E731
        return last_id if as_tuple(newest_id) >= as_tuple(last_id) else b"0-0"

    # The split, from the burst controller

    async def _split_loop(self, source: SplitSource) -> None:
        """Read the split now and every poll; an error is shown, the last split is kept."""
        timeout = aiohttp.ClientTimeout(total=STATUS_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout, skip_auto_headers=("User-Agent",)) as client:
            while True:
                before = dict(self.split or {})
                try:
                    if source.share_file is not None:
                        self.split = split_from_intent(await asyncio.to_thread(_read_small, source.share_file))
                    else:
                        self.split = split_from_status(json.loads(await _get_small(client, str(source.status_url))))
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:  # JSONDecodeError: ValueError
                    detail = str(exc) or type(exc).__name__
                    where = source.share_file or f"burst controller status {source.status_url}"
                    self.split = {**before, "error": f"{where}: {clip(detail, 120)}"}
                if self.split != before:
                    self._broadcast("stats", self.stats())
                await asyncio.sleep(source.poll_s)

    # Browsers

    async def _tick_loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(FLUSH_S)
            ticks += 1
            if self.unsent:
                self._broadcast("results", list(self.unsent))
                self.unsent.clear()
            if ticks % 4 == 0:
                self._expire(time.monotonic())
                self._broadcast("stats", self.stats())

    def _broadcast(self, event: str, data: object) -> None:
        if not self.listeners:
            return
        frame = f"event: {event}\ndata: {json.dumps(data)}\n\n"
        for queue in self.listeners:
            # A slow tab loses frames instead of growing memory without bound.
            if queue.qsize() < queue.maxsize:
                queue.put_nowait(frame)

    async def stream(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=100)
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


def error(status: int, message: str, **headers: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app() -> Starlette:
    settings = Settings.from_env()
    hashr = Hashr(settings)
    expected = settings.token.encode()

    async def index(_: Request) -> Response:
        return FileResponse(PAGE, headers={"cache-control": "no-cache"})

    async def frequency(request: Request) -> Response:
        given = bearer_token(request.headers.get("authorization"))
        # compare_digest takes the same time wherever the first difference is: no guessing by timing.
        if given is None or not hmac.compare_digest(given.encode(), expected):
            return error(
                401,
                "changing the rate needs the control token: send Authorization: Bearer <token> "
                "(pulumi stack output hashrToken --show-secrets -s primary)",
                **{"WWW-Authenticate": 'Bearer realm="hashr"'},
            )
        try:
            body = await read_body(request.stream(), request.headers.get("content-length"), CONTROL_BODY_BYTES)
            rps = parse_rate(parse_json(body), settings.max_rps)
        except BodyTooLarge:
            return error(413, f"body is larger than {CONTROL_BODY_BYTES} bytes")
        except ClientDisconnect:
            return error(400, "client disconnected before sending the whole body")
        except ValueError as exc:
            return error(422, str(exc))
        hashr.set_rate(rps)
        return JSONResponse({"rps": rps})

    async def stats(_: Request) -> Response:
        return JSONResponse({**hashr.stats(), "latest": list(hashr.recent)[-10:]})

    async def events(_: Request) -> Response:
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(hashr.stream(), media_type="text/event-stream", headers=headers)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        ready, detail = await hashr.ready()
        return PlainTextResponse(detail, status_code=200 if ready else 503)

    @asynccontextmanager
    async def lifespan(_: Starlette):
        await hashr.start()
        log.info(
            "frontend ready: processor=%s redis=%s max_rps=%d",
            settings.processor_url,
            settings.bus_url,
            settings.max_rps,
        )
        yield
        await hashr.stop()

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/frequency", frequency, methods=["POST"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/events", events, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.hashr = hashr
    return app


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
try:
    app = create_app()
except ValueError as exc:  # a missing or bad setting: one clear line, not a traceback
    raise SystemExit(f"frontend: {exc}") from None
