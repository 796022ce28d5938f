"""The String Hashr frontend for real, as its image runs it: Redis, workers, a 50/50 split, faults, Chromium."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from apps.worker.split import worker_route
from builders.routes import intent_document
from tests.support.browser import chromium
from tests.support.mesh_split import WeightedSplitter
from tests.support.servers import (
    DockerfileApp,
    RedisServer,
    hashr_app,
    memory_growth_under,
    stopped_cleanly,
    wait_until,
)

TOKEN = "test-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def start_frontend(name: str, logs: Path, **env: str) -> DockerfileApp:
    return hashr_app(name, "frontend", logs, env={"HASHR_TOKEN": TOKEN, **env})


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """Redis, two workers (one `bursty-`), a 50/50 splitter in front of them, and the frontend."""
    logs = tmp_path_factory.mktemp("hashr-logs")
    bus = RedisServer(logs)
    started: list = [bus]
    try:
        primary = hashr_app("worker-p", "worker", logs, env={"REDIS_URL": bus.url, "CLUSTER_NAME": "primary"})
        started.append(primary)
        burst = hashr_app(
            "worker-b", "worker", logs, env={"REDIS_URL": bus.url, "PREFIX": "bursty-", "CLUSTER_NAME": "burst"}
        )
        started.append(burst)
        split = WeightedSplitter([primary.url, burst.url], [50, 50])
        frontend = start_frontend(
            "frontend", logs, REDIS_URL=bus.url, PROCESSOR_URL=split.url, RESULT_WINDOW="40", MAX_RPS="500"
        )
        yield {"frontend": frontend, "split": split, "bus": bus}
        set_rate(frontend, 0)
        assert stopped_cleanly(frontend), frontend.log()
        split.stop()
    finally:
        for server in reversed(started):
            server.stop()


def stats(frontend) -> dict:
    return httpx.get(frontend.url + "/stats").json()


def set_rate(frontend, rps, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(frontend.url + "/frequency", json={"rps": rps}, headers=AUTH if headers is None else headers)


def assert_counters_add_up(s: dict) -> None:
    """Every sent request is ok, failed or late (or still in flight); every result is an ok or a late one."""
    assert s["sent"] == s["ok"] + s["errors"] + s["timeouts"] + s["late"] + s["in_flight"], s
    assert s["results"] == s["ok"] - s["awaiting"] - s["lost"] + s["late"], s


def settle(frontend) -> dict:
    set_rate(frontend, 0)
    wait_until(lambda: stats(frontend)["in_flight"] == 0, 10, "in-flight requests to finish")
    wait_until(lambda: stats(frontend)["awaiting"] == 0, 10, "every ok request's result")
    return stats(frontend)


# Starting up


def test_the_token_can_come_from_a_mounted_file(tmp_path):
    (tmp_path / "token").write_text("from-a-file-0123456789\n")
    with (
        RedisServer(tmp_path) as bus,
        start_frontend(
            "frontend-token-file", tmp_path, REDIS_URL=bus.url, HASHR_TOKEN="", HASHR_TOKEN_FILE=str(tmp_path / "token")
        ) as frontend,
    ):
        assert set_rate(frontend, 0, headers={"authorization": "Bearer from-a-file-0123456789"}).status_code == 200
        assert set_rate(frontend, 0).status_code == 401


def test_tests_start_the_frontend_with_the_images_command(system):
    frontend = system["frontend"]
    assert frontend.argv[1:] == ["serve.py"]
    assert "frontend ready" in frontend.log() and "max_rps=500" in frontend.log()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HASHR_TOKEN": ""}, r"frontend: HASHR_TOKEN is not set \(HASHR_TOKEN is empty\)"),
        ({"HASHR_TOKEN": "short"}, "frontend: HASHR_TOKEN holds 5 characters: the token needs at least 16"),
        ({"HASHR_TOKEN_FILE": "/nonexistent/token"}, "frontend: HASHR_TOKEN_FILE='/nonexistent/token' cannot be read"),
        ({"MAX_RPS": "lots"}, r"frontend: MAX_RPS='lots' is not a whole number \(allowed: 1..1000\)"),
        ({"MAX_RPS": "0"}, r"frontend: MAX_RPS=0 is out of range \(allowed: 1..1000\)"),
        ({"MAX_RPS": "5000"}, r"frontend: MAX_RPS=5000 is out of range \(allowed: 1..1000\)"),
        ({"SPLIT_MODE": "sometimes"}, r"frontend: SPLIT_MODE='sometimes' is not one of \['manual', 'auto'\]"),
        ({"SPLIT_MODE": "manual"}, "frontend: SPLIT_MODE=manual needs SPLIT_SHARE_FILE"),
        (
            {"SPLIT_MODE": "manual", "SPLIT_SHARE_FILE": "x", "SPLIT_POLL_SECONDS": "0"},
            r"frontend: SPLIT_POLL_SECONDS",
        ),
        ({"SPLIT_MODE": "auto"}, "frontend: SPLIT_MODE=auto needs SPLIT_STATUS_URL"),
    ],
)
def test_missing_token_or_bad_cap_refuses_to_start(tmp_path, env, message):
    with pytest.raises(RuntimeError, match=message) as refused:
        start_frontend("frontend-refused", tmp_path, REDIS_URL="redis://127.0.0.1:1", **env)
    assert "Traceback" not in str(refused.value)


# The control endpoint


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token-0123456789"},
        {"authorization": TOKEN},
        {"authorization": "Basic " + TOKEN},
    ],
)
def test_changing_the_rate_without_the_token_is_401_and_changes_nothing(system, headers):
    frontend = system["frontend"]
    response = set_rate(frontend, 20, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="hashr"'
    assert "Authorization: Bearer" in response.json()["error"]
    assert stats(frontend)["rate"] == 0


def test_viewing_is_public(system):
    frontend = system["frontend"]
    assert httpx.get(frontend.url + "/").status_code == 200
    assert httpx.get(frontend.url + "/stats").status_code == 200
    with httpx.stream("GET", frontend.url + "/events", timeout=5) as events:
        assert events.status_code == 200
        assert next(events.iter_lines()) == "event: stats"


def test_a_rate_above_max_rps_is_422_naming_the_cap(system):
    response = set_rate(system["frontend"], 501)
    assert response.status_code == 422
    assert response.json()["error"] == "rps 501 is above this frontend's cap of 500 requests per second"
    assert stats(system["frontend"])["rate"] == 0


@pytest.mark.parametrize("bad", [-1, "20", None, True, 5e-324, 0.05, [1], {"rps": 1}])
def test_a_rate_that_is_not_0_or_0_1_to_the_cap_is_refused(system, bad):
    response = set_rate(system["frontend"], bad)
    assert response.status_code == 422
    assert "0 (to stop) or from 0.1 to 500 requests per second" in response.json()["error"]
    assert stats(system["frontend"])["rate"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"fast", "Expecting value"),
        (b'{"rps": NaN}', "NaN is not valid JSON"),
        (b'{"rps": Infinity}', "Infinity is not valid JSON"),
        (b'{"rps": 1e999}', "above this frontend's cap"),
        (b'{"rps": ' + b"9" * 1000 + b"}", "above this frontend's cap"),
        (b"[" * 100 + b"]" * 100, "nested deeper than 64 levels"),
        (b'{"rps": "\xff"}', "not UTF-8"),
    ],
)
def test_bad_json_is_422_never_500(system, body, message):
    response = httpx.post(system["frontend"].url + "/frequency", content=body, headers=AUTH)
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert len(response.content) < 400, "the answer never echoes the input whole"


def test_a_huge_body_is_413_and_not_echoed(system):
    huge = b'{"rps": "' + b"9" * 20_000_000 + b'"}'
    response = httpx.post(system["frontend"].url + "/frequency", content=huge, headers=AUTH, timeout=10)
    assert response.status_code == 413
    assert response.json() == {"error": "body is larger than 1024 bytes"}


# Sending and results


def test_sender_keeps_the_rate_and_every_result_comes_back(system):
    frontend = system["frontend"]
    before = stats(frontend)
    assert set_rate(frontend, 50).json() == {"rps": 50.0}
    time.sleep(2.0)
    after = settle(frontend)
    sent = after["sent"] - before["sent"]
    assert 80 <= sent <= 115, f"expected about 100 requests in 2 s at 50/s, sent {sent}"
    assert after["ok"] - before["ok"] == sent
    assert after["results"] - before["results"] == sent and after["lost"] == 0
    assert_counters_add_up(after)
    latest = after["latest"]
    assert {m["cluster"] for m in latest} <= {"primary", "burst"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", m["hash"]) for m in latest)


def test_burst_share_reflects_the_split(system):
    frontend = system["frontend"]
    set_rate(frontend, 100)
    wait_until(lambda: stats(frontend)["recent"] == 40, 10, "a full window of results")
    time.sleep(0.5)
    share = settle(frontend)["burst_share"]
    assert 0.2 <= share <= 0.8, f"a 50/50 split should show about half from burst, got {share}"


def test_ready_only_while_redis_answers(system):
    assert httpx.get(system["frontend"].url + "/readyz").text == "ready"


def test_a_failing_worker_is_counted_not_piled_up(tmp_path):
    # Nothing listens on this port: every send fails fast and is counted as an error.
    with (
        RedisServer(tmp_path) as bus,
        start_frontend(
            "frontend-failing", tmp_path, REDIS_URL=bus.url, PROCESSOR_URL="http://127.0.0.1:9/"
        ) as frontend,
    ):
        set_rate(frontend, 40)
        time.sleep(1.0)
        set_rate(frontend, 0)
        wait_until(lambda: stats(frontend)["in_flight"] == 0, 5, "no requests in flight")
        s = stats(frontend)
        assert s["ok"] == 0 and s["errors"] == s["sent"] > 20
        assert s["last_error"].startswith("ClientConnectorError from http://127.0.0.1:9/")
        assert s["status"] == "degraded" and s["last_error_at"] and s["recovered_at"] is None
        assert_counters_add_up(s)


def test_a_slow_worker_is_bounded_by_max_in_flight_and_timeout(tmp_path):
    # A socket that accepts connections but never answers: every request waits for its timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(200)
    port = silent.getsockname()[1]
    bus = RedisServer(tmp_path)
    frontend = start_frontend(
        "frontend-slow",
        tmp_path,
        REDIS_URL=bus.url,
        PROCESSOR_URL=f"http://127.0.0.1:{port}/",
        MAX_IN_FLIGHT="5",
        REQUEST_TIMEOUT_MS="500",
    )
    try:
        set_rate(frontend, 100)
        time.sleep(1.2)
        peak = stats(frontend)
        set_rate(frontend, 0)
        assert peak["in_flight"] <= 5
        assert peak["dropped"] > 50, peak
        wait_until(lambda: stats(frontend)["in_flight"] == 0, 5, "timeouts to release the slots")
        s = stats(frontend)
        assert s["timeouts"] >= 5 and s["ok"] == 0
        assert s["last_error"] == f"timeout after 0.5s from http://127.0.0.1:{port}/"
        assert_counters_add_up(s)
    finally:
        frontend.stop()
        bus.stop()
        silent.close()


# Faults under load: nothing lost, counters add up, readiness follows Redis, the last error clears.

OUTAGE_S = 10


@contextmanager
def loaded_system(logs: Path, **frontend_env: str) -> Iterator[tuple[RedisServer, DockerfileApp, DockerfileApp]]:
    bus = RedisServer(logs)
    worker = hashr_app("fault-worker", "worker", logs, env={"REDIS_URL": bus.url})
    frontend = start_frontend("fault-frontend", logs, REDIS_URL=bus.url, PROCESSOR_URL=worker.url + "/", **frontend_env)
    try:
        yield bus, worker, frontend
    finally:
        frontend.stop()
        worker.stop()
        bus.stop()


def ready(frontend) -> bool:
    return httpx.get(frontend.url + "/readyz", timeout=5).status_code == 200


def assert_recovered_without_loss(frontend, fault_started: float) -> dict:
    wait_until(lambda: stats(frontend)["status"] == "ok", 15, "recovery")
    wait_until(lambda: ready(frontend), 10, "ready again")
    s = settle(frontend)
    assert s["lost"] == 0, s
    assert_counters_add_up(s)
    assert s["last_error_at"] is not None and s["recovered_at"] is not None
    assert s["recovered_at"] >= s["last_error_at"]
    assert s["ok"] > 0 and s["errors"] + s["timeouts"] + s["late"] > 0, "the fault was seen"
    return s


def test_redis_killed_for_10_s_under_load_loses_no_result(tmp_path):
    with loaded_system(tmp_path) as (bus, _worker, frontend):
        set_rate(frontend, 50)
        wait_until(lambda: stats(frontend)["results"] >= 50, 10, "results flowing")
        port, started = bus.port, time.monotonic()
        bus.kill()
        wait_until(lambda: not ready(frontend), 5, "not ready while Redis is down")
        wait_until(lambda: stats(frontend)["status"] == "degraded", 5, "the fault shown")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
        assert not ready(frontend)
        bus = RedisServer(tmp_path, port=port)
        try:
            time.sleep(2)  # keep sending after the restart: these results must not be lost either
            s = assert_recovered_without_loss(frontend, started)
            assert s["errors"] > 0
        finally:
            bus.stop()


def test_redis_paused_for_10_s_under_load_loses_no_result(tmp_path):
    with loaded_system(tmp_path) as (bus, _worker, frontend):
        set_rate(frontend, 50)
        wait_until(lambda: stats(frontend)["results"] >= 50, 10, "results flowing")
        started = time.monotonic()
        bus.pause()
        try:
            wait_until(lambda: not ready(frontend), 5, "not ready while Redis hangs")
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
            assert not ready(frontend)
        finally:
            bus.resume()
        time.sleep(2)
        assert_recovered_without_loss(frontend, started)


def test_worker_paused_under_load_counts_late_results_once(tmp_path):
    with loaded_system(tmp_path, REQUEST_TIMEOUT_MS="1000") as (_bus, worker, frontend):
        set_rate(frontend, 50)
        wait_until(lambda: stats(frontend)["results"] >= 50, 10, "results flowing")
        started = time.monotonic()
        worker.pause()
        try:
            wait_until(lambda: stats(frontend)["timeouts"] > 0, 5, "timeouts while the worker hangs")
            time.sleep(3)
            assert ready(frontend), "Redis is fine: the frontend stays ready while a worker hangs"
        finally:
            worker.resume()
        time.sleep(2)
        s = assert_recovered_without_loss(frontend, started)
        # The hung worker finished the requests it had already read: their results came after the timeout,
        # so those requests moved from timeouts to late (once each: the counters still add up).
        assert s["late"] > 0, s


# Bad input on every endpoint

BAD_REQUESTS: list[tuple[str, str, dict[str, str | bytes], bytes]] = [
    *((m, p, {}, b"") for m in ("PUT", "DELETE", "PATCH") for p in ("/", "/stats", "/healthz", "/readyz", "/events")),
    ("GET", "/frequency", AUTH, b""),
    ("POST", "/stats", AUTH, b"{}"),
    ("POST", "/frequency", {}, b'{"rps": 1000}'),
    ("POST", "/frequency", {"authorization": b"Bearer \xff\xfe"}, b'{"rps": 1}'),
    ("POST", "/frequency", {"authorization": "Basic " + "a" * 8000}, b'{"rps": 1}'),
    ("POST", "/frequency", AUTH, b""),
    ("POST", "/frequency", AUTH, b"\x00\x01"),
    ("POST", "/frequency", AUTH, b'{"rps": -0}'),
    ("POST", "/frequency", AUTH, b'{"rps": 10, "extra": ' + b"[" * 500 + b"]" * 500 + b"}"),
    ("POST", "/frequency", AUTH, b"9" * 2000),
    ("GET", "/../../etc/passwd", {}, b""),
    ("GET", "/static/../frontend.py", {}, b""),
    ("GET", "/%2e%2e/%2e%2e/etc/passwd", {}, b""),
    ("GET", "/" + "a" * 8000, {}, b""),
    ("GET", "/stats?" + "q=1&" * 2000, {}, b""),
]


def test_bad_input_battery_is_never_a_5xx_and_memory_stays_flat(system):
    frontend = system["frontend"]
    with httpx.Client(base_url=frontend.url, timeout=5) as client:
        for method, path, headers, body in BAD_REQUESTS:
            response = client.request(method, path, headers=headers, content=body)
            assert response.status_code < 500, (method, path[:40], response.status_code, response.text[:200])
            assert len(response.content) < 20_000
        growth = memory_growth_under(client, frontend, BAD_REQUESTS)
    assert growth < 4 * 1024 * 1024, f"RSS grew by {growth / 1024:.0f} KiB over 2,000 bad requests"
    assert stats(frontend)["rate"] == 0, "no bad request changed the rate"
    assert "Traceback" not in frontend.log()


def test_a_stalled_request_to_the_frontend_is_closed_by_its_timeouts(tmp_path):
    with (
        RedisServer(tmp_path) as bus,
        start_frontend(
            "frontend-strict", tmp_path, REDIS_URL=bus.url, HEADER_TIMEOUT_SECONDS="1", BODY_TIMEOUT_SECONDS="1"
        ) as frontend,
    ):
        head = f"POST /frequency HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n"
        for pieces, low, high in (([b"GET / HTTP/1.1\r\nHo"], 0.9, 2.5), ([head.encode(), b"{}"], 0.9, 2.5)):
            with socket.create_connection(("127.0.0.1", frontend.port), timeout=10) as conn:
                started = time.monotonic()
                for piece in pieces:
                    conn.sendall(piece)
                assert conn.recv(1024) == b"", "closed without an answer"
                assert low <= time.monotonic() - started < high


# The page, in Chromium


def test_browser_needs_the_token_to_change_the_rate_and_asks_for_it_once(system, tmp_path):
    frontend = system["frontend"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(frontend.url + "/")
        assert page.title() == "String Hashr"
        assert page.is_visible("#token")

        # No token: the page asks for it and nothing changes.
        page.fill("#rate", "20")
        page.click("#set-rate")
        page.wait_for_function("() => document.getElementById('error').textContent !== ''", timeout=5_000)
        assert page.inner_text("#error").startswith("Enter the control token")
        # A wrong token: the server says 401, the page says so, and the rate stays 0.
        page.fill("#token", "not-the-token-at-all")
        page.click("#set-rate")
        page.wait_for_function("() => document.getElementById('error').textContent.includes('401')", timeout=5_000)
        assert page.inner_text("#error") == (
            "The control token was refused (401): the rate did not change. Enter the token again."
        )
        assert stats(frontend)["rate"] == 0
        assert page.evaluate("sessionStorage.getItem('hashrToken')") is None

        # The right token: the rate changes, and the token is kept for the session.
        page.fill("#token", TOKEN)
        page.click("#set-rate")
        page.wait_for_function("() => document.getElementById('stat-rate').textContent === '20'", timeout=5_000)
        assert page.inner_text("#error") == ""
        assert not page.is_visible("#token")
        page.wait_for_function(
            "() => document.querySelectorAll('#hashes li.burst').length > 0"
            " && document.querySelectorAll('#hashes li.primary').length > 0",
            timeout=10_000,
        )
        page.screenshot(path=str(tmp_path / "hashr-running.png"))
        hashes = page.locator("#hashes li").all_inner_texts()
        assert any(re.match(r"bursty-[0-9a-f]{64} \(burst\)$", h) for h in hashes)
        assert any(re.match(r"[0-9a-f]{64} \(primary\)$", h) for h in hashes)
        # The share comes with the stats, once a second: wait for the first one that has seen both clusters.
        page.wait_for_function("() => !['0%', '100%'].includes(document.getElementById('burst-share').textContent)")
        share = int(page.inner_text("#burst-share").rstrip("%"))
        assert 1 <= share <= 99
        assert page.eval_on_selector("#bar-burst", "e => e.style.width") == f"{share}%"
        assert page.inner_text("#health") == "no errors"
        assert page.inner_text("#max-rps") == "500"

        # After a reload the token is still there: no second prompt.
        page.reload()
        assert not page.is_visible("#token")
        page.fill("#rate", "0")
        page.click("#set-rate")
        page.wait_for_function("() => document.getElementById('stat-rate').textContent === '0'", timeout=5_000)
        time.sleep(2.5)  # in-flight requests finish; results stop
        settled = page.inner_text("#stat-results")
        time.sleep(1.5)
        assert page.inner_text("#stat-results") == settled, "results kept arriving after the rate was set to 0"

        page.fill("#rate", "5000")
        page.click("#set-rate")
        page.wait_for_function("() => document.getElementById('error').textContent !== ''", timeout=5_000)
        assert page.inner_text("#error") == "rps 5000 is above this frontend's cap of 500 requests per second"


# The split and who sets it, beside the stats; the rate field shows the rate in force


class ControllerStatus:
    """The burst controller's GET /status (contract: the status fields as strings, plus policy and writer)."""

    def __init__(self, status: dict) -> None:
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(owner.status).encode()
                self.send_response(200 if self.path == "/status" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/status"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


BURST_STATUS = {
    "policy": "burst",
    "writer": True,
    "phase": "Burst",
    "mode": "burst",
    "weight": "100",
    "lastVerdict": "",
    "message": "",
    "updated": "2026-11-23T05:00:00Z",
    "state": "{}",
}


def test_page_shows_the_manual_split_and_the_rate_in_force_when_it_opens(tmp_path):
    # The worker route's intent as kubelet mounts it from its ConfigMap: written the way the program writes it.
    intent = tmp_path / "split" / "intent.json"
    intent.parent.mkdir()
    intent.write_text(intent_document(worker_route("meshburst", 30), "pulumi", "burst", {}))
    with (
        RedisServer(tmp_path) as bus,
        start_frontend(
            "frontend-manual-split",
            tmp_path,
            REDIS_URL=bus.url,
            PROCESSOR_URL="http://127.0.0.1:9/",
            SPLIT_MODE="manual",
            SPLIT_SHARE_FILE=str(intent),
            SPLIT_POLL_SECONDS="0.2",
        ) as frontend,
    ):
        set_rate(frontend, 8)  # from a shell, before anyone opens the page
        wait_until(lambda: stats(frontend)["split"]["burst_share"] == 30, 5, "the split read from the intent")
        assert stats(frontend)["split"] == {
            "mode": "manual",
            "burst_share": 30,
            "state": "",
            "writer": False,
            "updated": "",
            "error": "",
        }
        with chromium() as browser:
            page = browser.new_page()
            page.goto(frontend.url + "/")
            page.wait_for_function("() => document.getElementById('stat-rate').textContent === '8'", timeout=5_000)
            assert page.input_value("#rate") == "8"
            assert page.inner_text("#split-share") == "30%"
            assert page.inner_text("#split-mode") == "manual (burstWeight)"
            assert page.inner_text("#split-error") == ""
            # `pulumi config set burstWeight 60 && pulumi up`: kubelet updates the mounted file, no restart.
            intent.write_text(intent_document(worker_route("meshburst", 60), "pulumi", "burst", {}))
            page.wait_for_function("() => document.getElementById('split-share').textContent === '60%'", timeout=5_000)
            # A file that says nothing readable: the last split stays, with the reason.
            intent.write_text("{}")
            page.wait_for_function("() => document.getElementById('split-error').textContent !== ''", timeout=5_000)
            assert page.inner_text("#split-error") == f"{intent}: the intent has no share from 0 to 100 (got None)"
            assert page.inner_text("#split-share") == "60%"
            # Set elsewhere: the field follows, as long as nobody is typing in it.
            set_rate(frontend, 12)
            page.wait_for_function("() => document.getElementById('rate').value === '12'", timeout=5_000)
            page.fill("#rate", "3")
            set_rate(frontend, 0)
            page.wait_for_function("() => document.getElementById('stat-rate').textContent === '0'", timeout=5_000)
            assert page.input_value("#rate") == "3", "what someone is typing is not overwritten"
            page.screenshot(path=str(tmp_path / "hashr-manual-split.png"))


def test_page_shows_the_burst_controllers_split_and_mode_and_follows_it(tmp_path):
    controller = ControllerStatus(dict(BURST_STATUS))
    try:
        with (
            RedisServer(tmp_path) as bus,
            start_frontend(
                "frontend-auto-split",
                tmp_path,
                REDIS_URL=bus.url,
                SPLIT_MODE="auto",
                SPLIT_STATUS_URL=controller.url,
                SPLIT_POLL_SECONDS="0.2",
            ) as frontend,
            chromium() as browser,
        ):
            page = browser.new_page()
            page.goto(frontend.url + "/")
            page.wait_for_function("() => document.getElementById('split-share').textContent === '100%'", timeout=5_000)
            assert page.inner_text("#split-mode") == "auto (burst controller: burst)"
            assert page.input_value("#rate") == "0"
            controller.status = {**BURST_STATUS, "mode": "natural", "weight": "0"}
            page.wait_for_function("() => document.getElementById('split-share').textContent === '0%'", timeout=5_000)
            assert page.inner_text("#split-mode") == "auto (burst controller: natural)"
            # The controller away: the last split stays, with the reason it may be stale; the work goes on.
            controller.stop()
            page.wait_for_function("() => document.getElementById('split-error').textContent !== ''", timeout=5_000)
            assert page.inner_text("#split-error").startswith(f"burst controller status {controller.url}: ")
            assert page.inner_text("#split-share") == "0%"
            assert ready(frontend)
    finally:
        controller.server.server_close()
