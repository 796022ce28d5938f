"""The shark site for real: its image's own command on loopback for v1 and v2, then a click in headless Chromium."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import httpx
import pytest

from tests.support.browser import chromium
from tests.support.servers import DockerfileApp, stopped_cleanly


@pytest.fixture(scope="module", params=["v1", "v2"])
def shark(request, tmp_path_factory):
    version = request.param
    server = DockerfileApp(
        f"shark-{version}", "apps/shark", tmp_path_factory.mktemp("logs"), env={"SHARK_VERSION": version}
    )
    server.version = version
    yield server
    assert stopped_cleanly(server), f"shark did not shut down cleanly on SIGTERM:\n{server.log()}"


def test_landing_page_has_the_button_and_version(shark):
    response = httpx.get(shark.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-shark-version"] == shark.version
    assert response.headers["cache-control"] == "no-cache"
    assert 'id="get-shark-info">Get Shark Info</button>' in response.text
    assert f"version {shark.version}" in response.text


def test_facts_page_shows_the_version_facts(shark):
    response = httpx.get(shark.url + "/sharks")
    assert response.status_code == 200
    assert response.headers["x-shark-version"] == shark.version
    headline = re.search(r'<h1 id="headline">(.*?)</h1>', response.text).group(1)
    expected = {"v1": "Sharks are friendlier than you think", "v2": "Sharks: apex predators of the deep"}
    assert headline == expected[shark.version]
    assert response.text.count("<li>") == 4


def test_healthz(shark):
    response = httpx.get(shark.url + "/healthz")
    assert (response.status_code, response.text, response.headers["x-shark-version"]) == (200, "ok", shark.version)


def test_unknown_path_is_a_real_404(shark):
    response = httpx.get(shark.url + "/no-such-page")
    assert response.status_code == 404
    assert "No sharks here" in response.text
    assert response.headers["x-shark-version"] == shark.version
    assert httpx.get(shark.url + "/static/missing.css").status_code == 404


def test_static_assets_are_cached(shark):
    response = httpx.get(shark.url + "/static/style.css")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.headers["content-type"].startswith("text/css")
    assert "etag" in response.headers


def test_one_log_line_per_request(shark):
    before = shark.log().count("version=")
    httpx.get(shark.url + "/sharks?probe=log")
    lines = [line for line in shark.log().splitlines() if "version=" in line]
    assert len(lines) == before + 1
    assert re.search(rf"GET /sharks 200 [0-9.]+ms version={shark.version}$", lines[-1])


@pytest.mark.parametrize("path", ["/sharks", "/static/style.css", "/no-such-page"])
def test_the_log_line_is_written_before_the_response_starts(path: str, caplog: pytest.LogCaptureFixture):
    # The order the race above depends on, checked in process: nothing reaches the client before the line.
    from apps.shark.app import create_app

    app = create_app("v2")
    sent: list[tuple[str, int]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, object]:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays connected; a response that listens for it is cancelled
        raise AssertionError("unreachable")

    async def send(message: dict[str, object]) -> None:
        sent.append((str(message["type"]), len(caplog.records)))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http"}
    scope |= {"path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": []}
    # A loop of its own, never installed as the thread's loop: asyncio.run would leave the main thread with
    # none, which Pulumi's mock runtime in later tests then fails to find.
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.INFO, logger="shark"):
            loop.run_until_complete(app(scope, receive, send))
    finally:
        loop.close()
    assert sent[0] == ("http.response.start", 1)
    assert [record.getMessage().endswith("version=v2") for record in caplog.records] == [True]


def test_v1_and_v2_differ_only_where_promised(tmp_path):
    servers = {
        v: DockerfileApp(f"shark-cmp-{v}", "apps/shark", tmp_path, env={"SHARK_VERSION": v}) for v in ("v1", "v2")
    }
    try:
        pages = {v: httpx.get(s.url + "/sharks").text for v, s in servers.items()}
        assert pages["v1"] != pages["v2"]
        assert "friendlier" in pages["v1"] and "friendlier" not in pages["v2"]
        assert "apex predators" in pages["v2"] and "apex predators" not in pages["v1"]
    finally:
        for server in servers.values():
            server.stop()


def test_an_unknown_version_refuses_to_start(tmp_path):
    with pytest.raises(RuntimeError, match="SHARK_VERSION='v3' is not one of"):
        DockerfileApp("shark-v3", "apps/shark", tmp_path, env={"SHARK_VERSION": "v3"})


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_browser_clicks_get_shark_info_and_sees_the_version(version: str, tmp_path: Path):
    with (
        DockerfileApp(f"shark-browser-{version}", "apps/shark", tmp_path, env={"SHARK_VERSION": version}) as server,
        chromium() as browser,
    ):
        page = browser.new_page()
        page.goto(server.url + "/")
        assert page.title() == f"Shark Info ({version})"
        page.click("#get-shark-info")
        page.wait_for_url(re.compile(r".*/sharks\?$|.*/sharks$"))
        page.screenshot(path=str(tmp_path / f"sharks-{version}.png"))
        assert page.title() == f"Shark Facts ({version})"
        assert page.inner_text("#version") == f"version {version}"
        assert page.locator("#facts li").count() == 4
        # The stylesheet loaded (v2 has a red button on the landing page, v1 a blue one).
        page.goto(server.url + "/")
        colour = page.eval_on_selector("#get-shark-info", "e => getComputedStyle(e).backgroundColor")
        assert colour == {"v1": "rgb(38, 128, 194)", "v2": "rgb(186, 37, 37)"}[version]
