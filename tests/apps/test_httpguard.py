"""httpguard.py, the server-side bounds every app's image runs with; here on the shark site as its image runs it.

The worker, frontend and controller tests check the same bounds on their own apps.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.support.servers import ROOT, DockerfileApp, dockerfile_command, memory_growth_under, stopped_cleanly


@pytest.mark.parametrize("app", ["shark", "controller", "worker"])
def test_every_image_copies_the_one_guard_from_the_shared_context(app):
    copies = [line.split() for line in (ROOT / "apps" / app / "Dockerfile").read_text().splitlines()]
    [shared] = [words for words in copies if words[:2] == ["COPY", "--from=lib"]]
    assert {"httpguard.py", "envvars.py"} <= set(shared[2:-1]) and shared[-1] == "./"
    assert not (ROOT / "apps" / app / "httpguard.py").exists(), "one copy, in apps/lib"


@pytest.mark.parametrize("app", ["shark", "controller"])
def test_uvicorn_images_run_with_the_guard(app):
    command = dockerfile_command(f"apps/{app}")
    assert command[0] == "uvicorn"
    assert command[command.index("--http") + 1] == "httpguard:GuardedHttpTools"


@pytest.fixture(scope="module")
def shark(tmp_path_factory):
    server = DockerfileApp(
        "shark-guarded",
        "apps/shark",
        tmp_path_factory.mktemp("shark-guard"),
        env={"SHARK_VERSION": "v1", "HEADER_TIMEOUT_SECONDS": "1", "BODY_TIMEOUT_SECONDS": "1"},
    )
    yield server
    assert stopped_cleanly(server), server.log()


def seconds_until_closed(port: int, pieces: list[bytes]) -> tuple[float, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        started = time.monotonic()
        for piece in pieces:
            conn.sendall(piece)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
        return time.monotonic() - started, received


@pytest.mark.parametrize(
    "pieces",
    [[], [b"GET /sharks HTTP/1.1\r\nHo"], [b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", b"ab"]],
    ids=["nothing-sent", "partial-headers", "short-body"],
)
def test_a_stalled_client_is_closed_within_the_bound(shark, pieces):
    took, received = seconds_until_closed(shark.port, pieces)
    assert 0.9 <= took < 2.5, took
    assert b" 200 " not in received


def test_oversized_headers_are_431_and_the_site_keeps_serving(shark):
    big = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 20_000 + b"\r\n\r\n"
    _took, received = seconds_until_closed(shark.port, [big])
    assert received.startswith(b"HTTP/1.1 431 ")
    assert httpx.get(shark.url + "/sharks").status_code == 200


BAD_REQUESTS: list[tuple[str, str, dict[str, str | bytes], bytes]] = [
    *((m, p, {}, b"x") for m in ("POST", "PUT", "DELETE", "PATCH") for p in ("/", "/sharks", "/healthz")),
    ("GET", "/static/../app.py", {}, b""),
    ("GET", "/static/%2e%2e/app.py", {}, b""),
    ("GET", "/static/..%2fapp.py", {}, b""),
    ("GET", "/../../etc/passwd", {}, b""),
    ("GET", "/static/" + "a" * 8000, {}, b""),
    ("GET", "/sharks?" + "q=1&" * 2000, {}, b""),
    ("GET", "/sharks", {"accept-language": b"\xff\xfe"}, b""),
    ("POST", "/sharks", {"content-type": "application/json"}, b"[" * 10_000),
]


def test_bad_input_battery_is_never_a_5xx_and_never_leaks_source(shark):
    with httpx.Client(base_url=shark.url, timeout=5) as client:
        for method, path, headers, body in BAD_REQUESTS:
            response = client.request(method, path, headers=headers, content=body)
            assert response.status_code < 500, (method, path[:40], response.status_code)
            assert "SHARK_VERSION" not in response.text, f"{path[:40]} served the source"
        growth = memory_growth_under(client, shark, BAD_REQUESTS)
    assert growth < 4 * 1024 * 1024, f"RSS grew by {growth / 1024:.0f} KiB over 2,000 bad requests"
