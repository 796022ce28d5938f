"""The shark information site. One codebase, two versions: v1 tells friendly facts, v2 scarier ones.

The version is chosen at build time (Docker build argument SHARK_VERSION, baked into the image's
environment) and shown on every page and in the `x-shark-version` response header.
"""

from __future__ import annotations

import html
import logging
import os
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

VERSIONS = ("v1", "v2")
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_CACHE = "public, max-age=86400"
PAGE_CACHE = "no-cache"

FACTS: dict[str, dict[str, object]] = {
    "v1": {
        "headline": "Sharks are friendlier than you think",
        "facts": [
            "Whale sharks, the largest fish in the sea, eat plankton and let divers swim beside them.",
            "Most of the 500+ shark species are shorter than a person and harmless to us.",
            "Sharks have been around for over 400 million years, longer than trees.",
            "A shark can grow and lose thousands of teeth in its life; new rows move forward like a conveyor belt.",
        ],
    },
    "v2": {
        "headline": "Sharks: apex predators of the deep",
        "facts": [
            "A great white can sense a drop of blood in 100 litres of water and hear prey from 250 metres.",
            "Bull sharks swim up rivers and have been found thousands of kilometres from the sea.",
            "A shark's electroreceptors detect the heartbeat of a fish hiding in the sand.",
            "Tiger sharks eat almost anything: tyres, licence plates and other sharks have been found in them.",
        ],
    },
}

log = logging.getLogger("shark")


def _page(version: str, title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} ({version})</title>
<link rel="stylesheet" href="static/style.css">
</head>
<body class="shark-{version}">
<header><a href="./">Shark Info</a> <span class="version" id="version">version {version}</span></header>
<main>
{body}
</main>
</body>
</html>
"""


def landing_page(version: str) -> str:
    body = """<h1>Welcome to Shark Info</h1>
<p>Everything you wanted to know about sharks, and some things you did not.</p>
<form action="sharks" method="get"><button type="submit" id="get-shark-info">Get Shark Info</button></form>"""
    return _page(version, "Shark Info", body)


def facts_page(version: str) -> str:
    content = FACTS[version]
    items = "\n".join(f"  <li>{html.escape(str(fact))}</li>" for fact in content["facts"])  # type: ignore[union-attr]
    body = f"""<h1 id="headline">{html.escape(str(content["headline"]))}</h1>
<ul id="facts">
{items}
</ul>
<p><a href="./">Back</a></p>"""
    return _page(version, "Shark Facts", body)


class SharkHeaders:
    """Adds the version header to every response, cache headers by kind, and logs one line per request."""

    def __init__(self, app: ASGIApp, version: str) -> None:
        self.app = app
        self.version = version.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        logged = False
        cache = STATIC_CACHE if scope["path"].startswith("/static/") else PAGE_CACHE

        def log_request() -> None:
            nonlocal logged
            if not logged:
                logged = True
                log.info(
                    "%s %s %d %.1fms version=%s",
                    scope["method"],
                    scope["path"],
                    status,
                    (time.perf_counter() - started) * 1000,
                    self.version.decode(),
                )

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                headers += [(b"x-shark-version", self.version), (b"cache-control", cache.encode())]
                message = {**message, "headers": headers}
                # Written before the first byte leaves (as uvicorn's own access log is), so a client holding the
                # response finds its line in the log; logged after the app returned, it raced the client.
                log_request()
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # A request that failed before its response started (an app error) still gets its line.
            log_request()


def create_app(version: str) -> ASGIApp:
    if version not in VERSIONS:
        raise ValueError(f"SHARK_VERSION={version!r} is not one of {list(VERSIONS)}")

    async def landing(_: Request) -> Response:
        return HTMLResponse(landing_page(version))

    async def facts(_: Request) -> Response:
        return HTMLResponse(facts_page(version))

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def not_found(_: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        body = _page(version, "Not found", "<h1>No sharks here</h1><p><a href='./'>Back to Shark Info</a></p>")
        return HTMLResponse(body, status_code=status)

    app = Starlette(
        routes=[
            Route("/", landing),
            Route("/sharks", facts),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={404: not_found},
    )
    return SharkHeaders(app, version)


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
app = create_app(os.environ.get("SHARK_VERSION", "v1"))
