"""The worker for real, as its image runs it (`python serve.py`), with a real Redis from Debian's redis-server."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time

import httpx
import pytest
import redis

from tests.support.servers import (
    DockerfileApp,
    RedisServer,
    dockerfile_command,
    hashr_app,
    memory_growth_under,
    stopped_cleanly,
    wait_until,
)

TEXT = {"content-type": "text/plain"}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="module")
def bus(logs):
    server = RedisServer(logs)
    yield server
    server.stop()


def start_worker(logs, bus, name: str, **env: str) -> DockerfileApp:
    return hashr_app(name, "worker", logs, env={"REDIS_URL": bus.url, **env})


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


def stream_after(bus: RedisServer, last_id: str) -> list[dict]:
    client = redis.Redis.from_url(bus.url)
    try:
        return [json.loads(fields[b"m"]) for _, fields in client.xrange("calculation", min=f"({last_id}")]
    finally:
        client.close()


def stream_tail(bus: RedisServer) -> str:
    client = redis.Redis.from_url(bus.url)
    try:
        newest = client.xrevrange("calculation", count=1)
        return newest[0][0].decode() if newest else "0-0"
    finally:
        client.close()


def test_tests_start_the_worker_with_the_images_command(worker):
    assert dockerfile_command("apps/worker") == ["python", "serve.py"]
    assert worker.argv[1:] == ["serve.py"]
    assert "Uvicorn running on http://127.0.0.1" in worker.log()


def test_text_body_gets_its_sha256(worker):
    body = "hello meshburst"
    response = httpx.post(worker.url + "/", content=body, headers=TEXT)
    assert response.status_code == 200
    assert response.text == hashlib.sha256(body.encode()).hexdigest()


def test_json_body_gets_the_sha256_of_its_bytes(worker):
    body = b'{"n": 1, "s": "x"}'
    response = httpx.post(worker.url + "/", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert (response.status_code, response.text) == (200, hashlib.sha256(body).hexdigest())


def test_burst_worker_prefixes_its_results(bursty):
    response = httpx.post(bursty.url + "/", content="abc", headers=TEXT)
    assert response.text == "bursty-" + hashlib.sha256(b"abc").hexdigest()


def test_every_result_is_in_the_stream_before_the_answer(worker, bursty, bus):
    start = stream_tail(bus)
    httpx.post(worker.url + "/", content="one", headers=TEXT)
    httpx.post(bursty.url + "/", content="two", headers=TEXT)
    first, second = stream_after(bus, start)  # no waiting: a 200 means the result is already stored
    assert set(first) == {"hash", "prefix", "cluster", "received_at"}
    assert (first["hash"], first["prefix"], first["cluster"]) == (hashlib.sha256(b"one").hexdigest(), "", "primary")
    assert (second["hash"], second["prefix"], second["cluster"]) == (
        hashlib.sha256(b"two").hexdigest(),
        "bursty-",
        "burst",
    )
    assert first["received_at"].endswith("+00:00") and "T" in first["received_at"]


def test_the_stream_is_bounded(worker, bus):
    client = redis.Redis.from_url(bus.url)
    try:
        info = client.xinfo_stream("calculation")
        assert info["length"] <= 20_000 + 100  # MAXLEN ~ trims in whole nodes, so a little over is allowed
    finally:
        client.close()


def test_wrong_method_is_405(worker):
    response = httpx.get(worker.url + "/")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_body_over_the_default_64_kib_cap_is_413(worker):
    limit = 64 * 1024
    at_limit = httpx.post(worker.url + "/", content=b"a" * limit, headers=TEXT)
    assert at_limit.status_code == 200
    over = httpx.post(worker.url + "/", content=b"a" * (limit + 1), headers=TEXT)
    assert over.status_code == 413
    assert over.json() == {"error": "body is larger than 65536 bytes"}


def test_body_cap_applies_to_chunked_bodies_too(logs, bus):
    with start_worker(logs, bus, "worker-small-cap", MAX_BODY_BYTES="100") as small:
        chunks = (b"x" * 60 for _ in range(3))  # no content-length: streamed
        response = httpx.post(small.url + "/", content=chunks, headers=TEXT)
        assert (response.status_code, response.json()["error"]) == (413, "body is larger than 100 bytes")


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/xml", None])
def test_unsupported_content_type_is_415(worker, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(worker.url + "/", content=b"a=b", headers=headers)
    assert response.status_code == 415
    assert "text/plain" in response.json()["error"] and "application/json" in response.json()["error"]


def test_invalid_json_is_400(worker):
    response = httpx.post(worker.url + "/", content=b"{nope", headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"].startswith("body is not valid JSON")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 1000 + b"]" * 1000, "nested deeper than 64 levels"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested deeper than 64 levels"),
        (b"NaN", "NaN is not valid JSON"),
        (b'{"x": -Infinity}', "-Infinity is not valid JSON"),
        (b'"\xff\xfe"', "not UTF-8"),
    ],
)
def test_json_that_python_would_choke_on_or_accept_wrongly_is_400(worker, body, reason):
    response = httpx.post(worker.url + "/", content=body, headers=JSON)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert "Traceback" not in worker.log() and "RecursionError" not in worker.log()


@pytest.mark.parametrize("body", [b"9" * 5000, b'{"n": -' + b"1" * 5000 + b"}", b"[" * 64 + b"]" * 64, b"1e400"])
def test_valid_json_of_any_number_size_is_hashed(worker, body):
    response = httpx.post(worker.url + "/", content=body, headers=JSON)
    assert (response.status_code, response.text) == (200, hashlib.sha256(body).hexdigest())


def test_deep_brackets_in_a_text_body_are_just_text(worker):
    body = b"[" * 10_000
    response = httpx.post(worker.url + "/", content=body, headers=TEXT)
    assert (response.status_code, response.text) == (200, hashlib.sha256(body).hexdigest())


def test_error_messages_never_echo_the_input(worker):
    huge_type = "application/" + "x" * 10_000
    response = httpx.post(worker.url + "/", content=b"a", headers={"content-type": huge_type})
    assert response.status_code == 415
    assert len(response.content) < 300


def test_bad_max_body_setting_refuses_to_start(logs, bus):
    with pytest.raises(RuntimeError, match=r"worker: MAX_BODY_BYTES='lots' is not a whole number"):
        start_worker(logs, bus, "worker-bad-cap", MAX_BODY_BYTES="lots")


@pytest.mark.parametrize(
    ("name", "value"), [("HEADER_TIMEOUT_SECONDS", "soon"), ("BODY_TIMEOUT_SECONDS", "0"), ("MAX_HEADER_BYTES", "1")]
)
def test_bad_server_limits_refuse_to_start(logs, bus, name, value):
    with pytest.raises(RuntimeError, match=rf"{name}='?{value}'? is "):
        start_worker(logs, bus, f"worker-bad-{name.lower()}", **{name: value})


def test_redis_down_gives_503_then_recovers_without_restart(logs):
    bus = RedisServer(logs)
    port = bus.port
    worker = start_worker(logs, bus, "worker-recovery")
    pid = worker.proc.pid
    post = lambda: httpx.post(worker.url + "/", content="x", headers=TEXT)  # noqa: E731
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


def test_redis_paused_gives_503_within_its_timeout_not_a_hang(logs):
    bus = RedisServer(logs)
    worker = start_worker(logs, bus, "worker-paused")
    try:
        bus.pause()
        started = time.monotonic()
        response = httpx.post(worker.url + "/", content="x", headers=TEXT, timeout=5)
        took = time.monotonic() - started
        assert response.status_code == 503 and took < 2.0, (response.status_code, took)
        assert httpx.get(worker.url + "/readyz", timeout=5).status_code == 503
        bus.resume()
        wait_until(lambda: httpx.get(worker.url + "/readyz").status_code == 200, 10, "ready again")
    finally:
        worker.stop()
        bus.stop()


def test_concurrent_requests_all_get_their_own_digest(worker):
    bodies = [f"body-{i}" for i in range(50)]
    results: dict[str, str] = {}

    def send(body: str) -> None:
        results[body] = httpx.post(worker.url + "/", content=body, headers=TEXT).text

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {b: hashlib.sha256(b.encode()).hexdigest() for b in bodies}


# Bad input, every endpoint: never a 5xx, never a hang, memory flat.

BAD_REQUESTS: list[tuple[str, str, dict[str, str | bytes], bytes]] = [
    *((m, p, {}, b"") for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD") for p in ("/", "/healthz")),
    ("POST", "/healthz", TEXT, b"x"),
    ("POST", "/readyz", JSON, b"{}"),
    ("POST", "/", JSON, b""),
    ("POST", "/", JSON, b"{"),
    ("POST", "/", JSON, b"\x00\x01\x02"),
    ("POST", "/", JSON, b"\xc3\x28"),
    ("POST", "/", JSON, b"[" * 10_000),
    ("POST", "/", JSON, b'{"a": NaN}'),
    ("POST", "/", JSON, b"Infinity"),
    ("POST", "/", {"content-type": b"text/plain; charset=\xff"}, b"x"),
    ("POST", "/", {"content-type": "image/png"}, b"\x89PNG"),
    ("GET", "/../../etc/passwd", {}, b""),
    ("GET", "/%2e%2e/%2e%2e/etc/passwd", {}, b""),
    ("POST", "/static/../worker.py", TEXT, b"x"),
    ("GET", "/" + "a" * 8000, {}, b""),
    ("GET", "/healthz?" + "q=1&" * 2000, {}, b""),
]


def test_bad_input_battery_is_never_a_5xx_and_memory_stays_flat(worker):
    with httpx.Client(base_url=worker.url, timeout=5) as client:
        for method, path, headers, body in BAD_REQUESTS:
            response = client.request(method, path, headers=headers, content=body)
            assert response.status_code < 500, (method, path[:40], response.status_code, response.text[:200])
        growth = memory_growth_under(client, worker, BAD_REQUESTS)
    assert growth < 4 * 1024 * 1024, f"RSS grew by {growth / 1024:.0f} KiB over 2,000 bad requests"
    assert "Traceback" not in worker.log()


def raw_exchange(url: str, data: bytes, timeout: float = 5) -> bytes:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_request_line_and_headers_over_16_kib_are_431(worker):
    long_url = b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert raw_exchange(worker.url, long_url).startswith(b"HTTP/1.1 431 ")
    long_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n"
    answer = raw_exchange(worker.url, long_header)
    assert answer.startswith(b"HTTP/1.1 431 ") and answer.endswith(b"larger than 16384 bytes")
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(3000)) + b"\r\n"
    assert raw_exchange(worker.url, many).startswith(b"HTTP/1.1 431 ")
    assert httpx.get(worker.url + "/healthz").status_code == 200


def test_malformed_http_is_400_not_a_crash(worker):
    assert raw_exchange(worker.url, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert httpx.get(worker.url + "/healthz").status_code == 200


# Slow clients: every server-side timeout closes the connection within its bound.

SLOW = {"HEADER_TIMEOUT_SECONDS": "1", "BODY_TIMEOUT_SECONDS": "1.5", "IDLE_TIMEOUT_SECONDS": "1"}


@pytest.fixture(scope="module")
def strict_worker(logs, bus):
    server = start_worker(logs, bus, "worker-strict", **SLOW)
    yield server
    server.stop()


def seconds_until_closed(url: str, send: list[bytes], read_reply: bool = False) -> tuple[float, bytes]:
    """Send the pieces, then wait (at most 10 s) until the server closes the connection."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        started = time.monotonic()
        for piece in send:
            conn.sendall(piece)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
        return time.monotonic() - started, received


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(strict_worker):
    took, received = seconds_until_closed(strict_worker.url, [])
    assert 0.9 <= took < 2.5 and received == b"", took


def test_partial_headers_are_closed_after_the_header_timeout(strict_worker):
    took, received = seconds_until_closed(strict_worker.url, [b"POST / HTTP/1.1\r\nHost: x\r\nContent-Ty"])
    assert 0.9 <= took < 2.5 and received == b"", took


def test_a_body_shorter_than_its_content_length_is_closed_after_the_body_timeout(strict_worker):
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
    took, received = seconds_until_closed(strict_worker.url, [head, b"ab"])
    assert 1.4 <= took < 3.0, took
    assert b" 200 " not in received


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(strict_worker):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    took, received = seconds_until_closed(strict_worker.url, [request])
    assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"ok")
    assert 0.9 <= took < 2.5, took


def test_a_slow_but_steady_client_within_the_bounds_is_served(strict_worker):
    port = int(strict_worker.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\n")
        time.sleep(0.4)
        conn.sendall(b"Content-Length: 4\r\n\r\nab")
        time.sleep(0.4)
        conn.sendall(b"cd")
        reply = b""
        while chunk := conn.recv(65536):  # the server closes after the answer (Connection: close)
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(hashlib.sha256(b"abcd").hexdigest().encode())
