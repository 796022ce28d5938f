"""The String Hashr frontend for real: Redis, a primary and a bursty worker, a 50/50 split, Chromium."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.browser import chromium
from tests.mesh_split import WeightedSplitter
from tests.servers import RedisServer, UvicornApp, stopped_cleanly, wait_until


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """Redis, two workers (one `bursty-`), a 50/50 splitter in front of them, and the frontend."""
    logs = tmp_path_factory.mktemp("hashr-logs")
    bus = RedisServer(logs)
    started: list = [bus]
    try:
        primary = UvicornApp(
            "worker-p", "apps/worker", "worker:app", logs, env={"REDIS_URL": bus.url, "CLUSTER_NAME": "primary"}
        )
        started.append(primary)
        burst = UvicornApp(
            "worker-b",
            "apps/worker",
            "worker:app",
            logs,
            env={"REDIS_URL": bus.url, "PREFIX": "bursty-", "CLUSTER_NAME": "burst"},
        )
        started.append(burst)
        split = WeightedSplitter([primary.url, burst.url], [50, 50])
        frontend = UvicornApp(
            "frontend",
            "apps/worker",
            "frontend:app",
            logs,
            env={"REDIS_URL": bus.url, "PROCESSOR_URL": split.url, "RESULT_WINDOW": "40"},
        )
        yield {"frontend": frontend, "split": split, "bus": bus}
        httpx.post(frontend.url + "/frequency", json={"rps": 0})
        assert stopped_cleanly(frontend), frontend.log()
        split.stop()
    finally:
        for server in reversed(started):
            server.stop()


def stats(frontend) -> dict:
    return httpx.get(frontend.url + "/stats").json()


def set_rate(frontend, rps) -> httpx.Response:
    return httpx.post(frontend.url + "/frequency", json={"rps": rps})


@pytest.mark.parametrize("bad", [-1, 1001, "20", None, True])
def test_rate_outside_0_to_1000_is_refused(system, bad):
    response = set_rate(system["frontend"], bad)
    assert response.status_code == 422
    assert "0" in response.json()["error"] and "1000" in response.json()["error"]
    assert stats(system["frontend"])["rate"] == 0


def test_rate_body_that_is_not_json_is_refused(system):
    response = httpx.post(system["frontend"].url + "/frequency", content=b"fast")
    assert response.status_code == 422
    assert response.json()["error"].startswith('expected a JSON body {"rps"')


def test_sender_keeps_the_rate_and_results_come_back_through_redis(system):
    frontend = system["frontend"]
    before = stats(frontend)
    assert set_rate(frontend, 50).json() == {"rps": 50.0}
    time.sleep(2.0)
    set_rate(frontend, 0)
    wait_until(lambda: stats(frontend)["in_flight"] == 0, 5, "in-flight requests to finish")
    after = stats(frontend)
    sent = after["sent"] - before["sent"]
    assert 80 <= sent <= 115, f"expected about 100 requests in 2 s at 50/s, sent {sent}"
    assert after["ok"] - before["ok"] == sent
    wait_until(lambda: stats(frontend)["results"] - before["results"] == sent, 5, "every result back from Redis")
    latest = stats(frontend)["latest"]
    assert {m["cluster"] for m in latest} <= {"primary", "burst"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", m["hash"]) for m in latest)


def test_burst_share_reflects_the_split(system):
    frontend = system["frontend"]
    set_rate(frontend, 100)
    wait_until(lambda: stats(frontend)["recent"] == 40, 10, "a full window of results")
    time.sleep(0.5)
    set_rate(frontend, 0)
    share = stats(frontend)["burst_share"]
    assert 0.2 <= share <= 0.8, f"a 50/50 split should show about half from burst, got {share}"


def test_a_failing_worker_is_counted_not_piled_up(tmp_path):
    # Nothing listens on this port: every send fails fast and is counted as an error.
    with UvicornApp(
        "frontend-failing",
        "apps/worker",
        "frontend:app",
        tmp_path,
        env={"REDIS_URL": "redis://127.0.0.1:1", "PROCESSOR_URL": "http://127.0.0.1:9/"},
    ) as frontend:
        set_rate(frontend, 40)
        time.sleep(1.0)
        set_rate(frontend, 0)
        wait_until(lambda: stats(frontend)["in_flight"] == 0, 5, "no requests in flight")
        s = stats(frontend)
        assert s["ok"] == 0 and s["errors"] == s["sent"] > 20
        assert s["last_error"].startswith("ConnectError from http://127.0.0.1:9/")


def test_a_slow_worker_is_bounded_by_max_in_flight_and_timeout(tmp_path):
    import socket

    # A socket that accepts connections but never answers: every request waits for its timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(200)
    port = silent.getsockname()[1]
    frontend = UvicornApp(
        "frontend-slow",
        "apps/worker",
        "frontend:app",
        tmp_path,
        env={
            "REDIS_URL": "redis://127.0.0.1:1",
            "PROCESSOR_URL": f"http://127.0.0.1:{port}/",
            "MAX_IN_FLIGHT": "5",
            "REQUEST_TIMEOUT_MS": "500",
        },
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
    finally:
        frontend.stop()
        silent.close()


def test_browser_sets_20_per_second_and_sees_both_clusters_then_stops(system, tmp_path):
    frontend = system["frontend"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(frontend.url + "/")
        assert page.title() == "String Hashr"
        page.fill("#rate", "20")
        page.click("#set-rate")
        page.wait_for_function(
            "() => document.querySelectorAll('#hashes li.burst').length > 0"
            " && document.querySelectorAll('#hashes li.primary').length > 0",
            timeout=10_000,
        )
        page.wait_for_function("() => document.getElementById('stat-results').textContent !== '0'", timeout=5_000)
        page.screenshot(path=str(tmp_path / "hashr-running.png"))
        hashes = page.locator("#hashes li").all_inner_texts()
        assert any(re.match(r"bursty-[0-9a-f]{64} \(burst\)$", h) for h in hashes)
        assert any(re.match(r"[0-9a-f]{64} \(primary\)$", h) for h in hashes)
        share = int(page.inner_text("#burst-share").rstrip("%"))
        assert 1 <= share <= 99
        width = page.eval_on_selector("#bar-burst", "e => e.style.width")
        assert width == f"{share}%"
        page.wait_for_function("() => document.getElementById('stat-rate').textContent === '20'", timeout=5_000)

        page.fill("#rate", "0")
        page.click("#set-rate")
        page.wait_for_function("() => document.getElementById('stat-rate').textContent === '0'", timeout=5_000)
        time.sleep(2.5)  # in-flight requests finish; results stop
        settled = page.inner_text("#stat-results")
        time.sleep(2.0)
        assert page.inner_text("#stat-results") == settled, "results kept arriving after the rate was set to 0"

        page.fill("#rate", "5000")
        page.click("#set-rate")
        page.wait_for_function("() => document.getElementById('error').textContent !== ''", timeout=5_000)
        assert page.inner_text("#error") == "rps must be from 0 to 1000 requests per second, got 5000"
