"""The worker for real: uvicorn on loopback with a real Redis from Debian's redis-server."""

from __future__ import annotations

import hashlib
import json
import threading

import httpx
import pytest
import redis

from tests.servers import RedisServer, UvicornApp, stopped_cleanly, wait_until


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="module")
def bus(logs):
    server = RedisServer(logs)
    yield server
    server.stop()


def start_worker(logs, bus, name: str, **env: str) -> UvicornApp:
    return UvicornApp(name, "apps/worker", "worker:app", logs, env={"REDIS_URL": bus.url, **env})


@pytest.fixture(scope="module")
def worker(logs, bus):
    server = start_worker(logs, bus, "worker-primary", CLUSTER_NAME="primary")
    yield server
    assert stopped_cleanly(server), server.log()


@pytest.fixture(scope="module")
def bursty(logs, bus):
    server = start_worker(logs, bus, "worker-burst", PREFIX="bursty-", CLUSTER_NAME="burst")
    yield server
    server.stop()


class Subscriber:
    """Collects messages from the calculation channel in a background thread."""

    def __init__(self, url: str) -> None:
        self.messages: list[dict] = []
        self.pubsub = redis.Redis.from_url(url).pubsub()
        self.pubsub.subscribe(calculation=lambda m: self.messages.append(json.loads(m["data"])))
        self.thread = self.pubsub.run_in_thread(sleep_time=0.01, daemon=True)
        client = redis.Redis.from_url(url)
        # Subscribed once the server counts this subscriber on the channel.
        wait_until(lambda: client.pubsub_numsub("calculation")[0][1] >= 1, 5, "subscription")
        client.close()

    def close(self) -> None:
        self.thread.stop()
        self.thread.join(timeout=2)
        self.pubsub.close()


@pytest.fixture()
def subscriber(bus):
    sub = Subscriber(bus.url)
    yield sub
    sub.close()


def test_text_body_gets_its_sha256(worker):
    body = "hello meshburst"
    response = httpx.post(worker.url + "/", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 200
    assert response.text == hashlib.sha256(body.encode()).hexdigest()


def test_json_body_gets_the_sha256_of_its_bytes(worker):
    body = b'{"n": 1, "s": "x"}'
    response = httpx.post(worker.url + "/", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert (response.status_code, response.text) == (200, hashlib.sha256(body).hexdigest())


def test_burst_worker_prefixes_its_results(bursty):
    response = httpx.post(bursty.url + "/", content="abc", headers={"content-type": "text/plain"})
    assert response.text == "bursty-" + hashlib.sha256(b"abc").hexdigest()


def test_every_result_is_published_on_the_calculation_channel(worker, bursty, subscriber):
    httpx.post(worker.url + "/", content="one", headers={"content-type": "text/plain"})
    httpx.post(bursty.url + "/", content="two", headers={"content-type": "text/plain"})
    wait_until(lambda: len(subscriber.messages) >= 2, 5, "two messages")
    first, second = subscriber.messages[:2]
    assert set(first) == {"hash", "prefix", "cluster", "received_at"}
    assert (first["hash"], first["prefix"], first["cluster"]) == (hashlib.sha256(b"one").hexdigest(), "", "primary")
    assert (second["hash"], second["prefix"], second["cluster"]) == (
        hashlib.sha256(b"two").hexdigest(),
        "bursty-",
        "burst",
    )
    assert first["received_at"].endswith("+00:00") and "T" in first["received_at"]


def test_wrong_method_is_405(worker):
    response = httpx.get(worker.url + "/")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_body_over_the_default_64_kib_cap_is_413(worker):
    limit = 64 * 1024
    at_limit = httpx.post(worker.url + "/", content=b"a" * limit, headers={"content-type": "text/plain"})
    assert at_limit.status_code == 200
    over = httpx.post(worker.url + "/", content=b"a" * (limit + 1), headers={"content-type": "text/plain"})
    assert over.status_code == 413
    assert over.json() == {"error": "body is larger than 65536 bytes"}


def test_body_cap_applies_to_chunked_bodies_too(logs, bus):
    with start_worker(logs, bus, "worker-small-cap", MAX_BODY_BYTES="100") as small:
        chunks = (b"x" * 60 for _ in range(3))  # no content-length: streamed
        response = httpx.post(small.url + "/", content=chunks, headers={"content-type": "text/plain"})
        assert (response.status_code, response.json()["error"]) == (413, "body is larger than 100 bytes")


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/xml", None])
def test_unsupported_content_type_is_415(worker, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(worker.url + "/", content=b"a=b", headers=headers)
    assert response.status_code == 415
    assert "text/plain" in response.json()["error"] and "application/json" in response.json()["error"]


def test_invalid_json_is_400(worker):
    response = httpx.post(worker.url + "/", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("body is not valid JSON")


def test_bad_max_body_setting_refuses_to_start(logs, bus):
    with pytest.raises(RuntimeError, match=r"MAX_BODY_BYTES='lots' is not a whole number"):
        start_worker(logs, bus, "worker-bad-cap", MAX_BODY_BYTES="lots")


def test_redis_down_gives_503_then_recovers_without_restart(logs):
    bus = RedisServer(logs)
    port = bus.port
    worker = start_worker(logs, bus, "worker-recovery")
    pid = worker.proc.pid
    post = lambda: httpx.post(worker.url + "/", content="x", headers={"content-type": "text/plain"})  # noqa: E731
    try:
        assert post().status_code == 200
        assert httpx.get(worker.url + "/readyz").status_code == 200
        bus.stop()
        down = post()
        assert down.status_code == 503
        assert down.headers["retry-after"] == "1"
        assert httpx.get(worker.url + "/readyz").status_code == 503
        assert httpx.get(worker.url + "/healthz").status_code == 200, "alive even while Redis is down"
        bus = RedisServer(logs, port=port)
        wait_until(lambda: post().status_code == 200, 10, "worker recovery")
        assert httpx.get(worker.url + "/readyz").status_code == 200
        assert worker.proc.pid == pid and worker.alive()
    finally:
        worker.stop()
        bus.stop()


def test_concurrent_requests_all_get_their_own_digest(worker):
    bodies = [f"body-{i}" for i in range(50)]
    results: dict[str, str] = {}

    def send(body: str) -> None:
        results[body] = httpx.post(worker.url + "/", content=body, headers={"content-type": "text/plain"}).text

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {b: hashlib.sha256(b.encode()).hexdigest() for b in bodies}
