"""worker: hashes request bodies (SHA-256) and publishes each result on Redis.

POST / with a text or JSON body answers `<PREFIX><hex digest>` and publishes
{"hash", "prefix", "cluster", "received_at"} on the `calculation` channel. Environment:
PREFIX (e.g. `bursty-` in the burst cluster), REDIS_URL, CLUSTER_NAME, MAX_BODY_BYTES.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import asynccontextmanager

import redis.asyncio as redis
from common import CHANNEL, env_int, redis_url, result_message
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

ALLOWED_TYPES = ("text/plain", "application/json")
RETRY_AFTER_SECONDS = "1"
log = logging.getLogger("worker")


class BodyTooLarge(Exception):
    pass


def error(status: int, message: str, **headers: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app() -> Starlette:
    prefix = os.environ.get("PREFIX", "")
    cluster = os.environ.get("CLUSTER_NAME", "unknown")
    max_body = env_int("MAX_BODY_BYTES", 64 * 1024, 1, 16 * 1024 * 1024)
    # Short timeouts and no retries here: a request must fail fast with 503 while Redis is away. The pool
    # opens a fresh connection on the next request, so the worker recovers by itself when Redis is back.
    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=0.5, socket_timeout=0.5, retry_on_timeout=False)

    async def hash_body(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ALLOWED_TYPES:
            return error(
                415, f"content type {content_type or '(none)'!r} is not supported; send one of {ALLOWED_TYPES}"
            )
        try:
            body = await read_body(request, max_body)
        except BodyTooLarge:
            return error(413, f"body is larger than {max_body} bytes")
        except ClientDisconnect:
            return error(400, "client disconnected before sending the whole body")
        if content_type == "application/json":
            try:
                json.loads(body)
            except ValueError as exc:
                return error(400, f"body is not valid JSON: {exc}")
        digest = hashlib.sha256(body).hexdigest()
        try:
            await client.publish(CHANNEL, result_message(digest, prefix, cluster))
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
app = create_app()
