"""worker: hashes request bodies (SHA-256) and appends each result to the Redis results stream.

POST / with a text or JSON body answers `<PREFIX><hex digest>` once the result
{"hash", "prefix", "cluster", "received_at"} is in the `calculation` stream (common.py), so a 200
means the result is stored where the frontend will read it. Environment: PREFIX (e.g. `bursty-` in
the burst cluster), REDIS_URL, CLUSTER_NAME, MAX_BODY_BYTES.
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import asynccontextmanager

import redis.asyncio as redis
from common import (
    STREAM,
    STREAM_FIELD,
    STREAM_MAXLEN,
    BodyTooLarge,
    parse_json,
    read_body,
    redis_url,
    result_message,
)
from envvars import clip, env_int
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

ALLOWED_TYPES = ("text/plain", "application/json")
RETRY_AFTER_SECONDS = "1"
log = logging.getLogger("worker")


def error(status: int, message: str, **headers: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app() -> Starlette:
    prefix = os.environ.get("PREFIX", "")
    cluster = os.environ.get("CLUSTER_NAME", "unknown")
    max_body = env_int("MAX_BODY_BYTES", 64 * 1024, 1, 16 * 1024 * 1024)
    # Short timeouts and no retries (redis-py retries 3 times by default): a request fails fast with 503 while
    # Redis is away, and an XADD that timed out is never sent twice (it may still land: the frontend then
    # counts that request as late). The pool reconnects on the next request, so the worker recovers by itself.
    client = redis.Redis.from_url(
        redis_url(), socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )

    async def hash_body(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ALLOWED_TYPES:
            shown = clip(content_type) if content_type else "(none)"
            return error(415, f"content type {shown!r} is not supported; send one of {ALLOWED_TYPES}")
        try:
            body = await read_body(request.stream(), request.headers.get("content-length"), max_body)
        except BodyTooLarge:
            return error(413, f"body is larger than {max_body} bytes")
        except ClientDisconnect:
            return error(400, "client disconnected before sending the whole body")
        if content_type == "application/json":
            try:
                parse_json(body, exact_ints=True)
            except ValueError as exc:
                return error(400, f"body is not valid JSON: {exc}")
        digest = hashlib.sha256(body).hexdigest()
        try:
            await client.xadd(
                STREAM, {STREAM_FIELD: result_message(digest, prefix, cluster)}, maxlen=STREAM_MAXLEN, approximate=True
            )
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable, answering 503: %s", exc)
            return error(503, "result bus (Redis) unavailable, try again", **{"Retry-After": RETRY_AFTER_SECONDS})
        return PlainTextResponse(prefix + digest)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            return error(503, f"redis unreachable: {exc}", **{"Retry-After": RETRY_AFTER_SECONDS})
        return PlainTextResponse("ready")

    @asynccontextmanager
    async def lifespan(_: Starlette):
        log.info("worker ready: prefix=%r cluster=%s redis=%s max_body=%d", prefix, cluster, redis_url(), max_body)
        yield
        await client.aclose()

    return Starlette(
        routes=[
            Route("/", hash_body, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
try:
    app = create_app()
except ValueError as exc:  # a bad setting: one clear line, not a traceback
    raise SystemExit(f"worker: {exc}") from None
