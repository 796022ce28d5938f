"""burstwatch for real: a real Prometheus scraping Istio-shaped counters, a recording Kubernetes API."""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest

from apps.burstwatch.component import controller_env
from apps.worker.split import burstwatch_args, worker_route
from builders.routes import virtual_service_manifest
from tests.support.fake_mesh import FakeKubeApi, RateExporter
from tests.support.paths import ROOT
from tests.support.servers import (
    DockerfileApp,
    PrometheusServer,
    dockerfile_command,
    memory_growth_under,
    stopped_cleanly,
    wait_until,
)

VS_PATH = "/apis/networking.istio.io/v1/namespaces/meshburst/virtualservices/worker-split"
FAST = {"INTERVAL_SECONDS": "0.5", "WINDOW": "4s", "MIN_DWELL_SECONDS": "2", "HIGH_RPS": "15", "LOW_RPS": "10"}


def metric(controller: DockerfileApp, name: str) -> float:
    text = httpx.get(controller.url + "/metrics").text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def start_controller(tmp_path, kube: FakeKubeApi, prometheus_url: str, **env: str) -> DockerfileApp:
    """burstwatch started with its Dockerfile's own command, from its directory, with the environment its
    component gives it (faster intervals for the test)."""
    deployed = controller_env(burstwatch_args("meshburst", "burstwatch", prometheus_url, 15, 10))
    return DockerfileApp(
        "burstwatch",
        "apps/burstwatch",
        tmp_path,
        env={**deployed, **FAST, "KUBE_API_URL": kube.url, **env},
    )


@pytest.fixture()
def mesh(tmp_path):
    exporter = RateExporter(rate=5.0)
    prometheus = PrometheusServer(tmp_path, [exporter.target], scrape_interval="1s")
    kube = FakeKubeApi(virtual_service_manifest(worker_route("meshburst", 0)))
    yield exporter, prometheus, kube
    kube.stop()
    prometheus.stop()
    exporter.stop()


def test_bursts_above_high_and_returns_below_low_with_exact_requests(mesh, tmp_path):
    exporter, prometheus, kube = mesh
    controller = start_controller(tmp_path, kube, prometheus.url)
    try:
        time.sleep(5)  # 5 req/s for a while: nothing to do
        assert kube.patches() == []
        assert metric(controller, 'burstwatch_mode{mode="natural"}') == 1

        exporter.set_rate(40)
        wait_until(lambda: len(kube.patches()) == 1, 20, "the switch to burst")
        assert kube.weights() == (0, 100)
        [patch] = kube.patches()
        assert (patch.method, patch.path, patch.query) == ("PATCH", VS_PATH, {"fieldManager": ["burstwatch"]})
        assert patch.content_type == "application/json-patch+json"
        assert patch.body == [
            {"op": "test", "path": "/spec/http/0/route/0/destination/subset", "value": "primary"},
            {"op": "test", "path": "/spec/http/0/route/1/destination/subset", "value": "burst"},
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 100},
        ]
        assert metric(controller, 'burstwatch_mode{mode="burst"}') == 1
        assert metric(controller, 'burstwatch_decisions_total{to="burst"}') == 1

        exporter.set_rate(2)
        wait_until(lambda: len(kube.patches()) == 2, 20, "the switch back")
        assert kube.weights() == (100, 0)
        assert kube.patches()[1].body[2:] == [
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 0},
        ]
        assert [r.method for r in kube.requests] == ["GET", "PATCH", "PATCH"], "one read at start, then writes"
        assert metric(controller, 'burstwatch_decisions_total{to="natural"}') == 1
        assert 0 <= metric(controller, "burstwatch_last_rate_rps") < 10
        assert len(re.findall(r"switch to (burst|natural)", controller.log())) == 2
    finally:
        assert stopped_cleanly(controller), controller.log()


def test_prometheus_stopped_mid_run_changes_nothing_and_counts_errors(mesh, tmp_path):
    exporter, prometheus, kube = mesh
    with start_controller(tmp_path, kube, prometheus.url) as controller:
        wait_until(lambda: metric(controller, "burstwatch_last_rate_rps") > 0, 15, "a first reading")
        prometheus.stop()
        exporter.set_rate(100)  # would be a burst, but nobody can see it
        polls = metric(controller, "burstwatch_polls_total")
        wait_until(lambda: metric(controller, "burstwatch_polls_total") >= polls + 6, 10, "polls while down")
        assert kube.patches() == []
        assert kube.weights() == (100, 0)
        assert metric(controller, 'burstwatch_errors_total{kind="unreachable"}') >= 5
        assert httpx.get(controller.url + "/healthz").status_code == 200
        assert "keeping the current split" in controller.log()


def test_a_restart_in_burst_keeps_burst(mesh, tmp_path):
    exporter, prometheus, kube = mesh
    kube.virtual_service = virtual_service_manifest(worker_route("meshburst", 100))
    exporter.set_rate(12)
    # Thresholds far on either side of every reading: the fixture's exporter ran at 5 req/s until now, and a
    # 4 s window over 1 s scrapes still shows some of that (or scrape jitter) in the first readings.
    wide = {"HIGH_RPS": "40", "LOW_RPS": "2"}
    with start_controller(tmp_path, kube, prometheus.url, **wide) as controller:
        wait_until(lambda: metric(controller, "burstwatch_polls_total") >= 8, 15, "several polls")
        assert kube.patches() == []
        assert metric(controller, 'burstwatch_mode{mode="burst"}') == 1
        assert metric(controller, 'burstwatch_weight{subset="burst"}') == 100


def test_kubernetes_conflicts_are_retried_with_backoff(mesh, tmp_path):
    exporter, prometheus, kube = mesh
    with start_controller(tmp_path, kube, prometheus.url) as controller:
        wait_until(lambda: len(kube.requests) >= 1, 10, "the initial read")
        kube.fail_next = [409, 503]
        exporter.set_rate(40)
        wait_until(lambda: kube.weights() == (0, 100), 20, "the switch, after retries")
        patches = kube.patches()
        assert len(patches) == 3 and all(p.body == patches[-1].body for p in patches)
        gaps = [b.at - a.at for a, b in itertools.pairwise(patches)]
        assert gaps[0] >= 0.15 and gaps[1] >= 0.35, f"backoff should double: {gaps}"
        assert metric(controller, 'burstwatch_errors_total{kind="kube_conflict"}') == 1
        assert metric(controller, 'burstwatch_errors_total{kind="kube_http_503"}') == 1
        assert metric(controller, 'burstwatch_decisions_total{to="burst"}') == 1


def test_a_forbidden_write_is_not_retried_and_the_split_is_re_read(mesh, tmp_path):
    exporter, prometheus, kube = mesh
    with start_controller(tmp_path, kube, prometheus.url) as controller:
        wait_until(lambda: len(kube.requests) >= 1, 10, "the initial read")
        kube.fail_next = [403]
        exporter.set_rate(40)
        wait_until(lambda: kube.weights() == (0, 100), 20, "the switch on the next try")
        methods = [r.method for r in kube.requests]
        assert methods[:4] == ["GET", "PATCH", "GET", "PATCH"], methods
        assert metric(controller, 'burstwatch_errors_total{kind="kube_http_403"}') == 1


def test_bad_settings_refuse_to_start(tmp_path):
    with FakeKubeApi(virtual_service_manifest(worker_route("meshburst", 0))) as kube:
        with pytest.raises(RuntimeError, match=r"thresholds must satisfy 0 < low < high"):
            start_controller(tmp_path, kube, "http://127.0.0.1:1", HIGH_RPS="5", LOW_RPS="10")
        with pytest.raises(RuntimeError, match=r"INTERVAL_SECONDS='soon' is not a number"):
            start_controller(tmp_path, kube, "http://127.0.0.1:1", INTERVAL_SECONDS="soon")


class BadPrometheus:
    """A Prometheus that is slow or answers errors: burstwatch must keep the split and count the fault."""

    def __init__(self, delay: float = 0.0, status: int = 200, body: bytes = b"{}") -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(delay)
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


NAN_ANSWER = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}'


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        ({"delay": 1.0}, "timeout"),
        ({"status": 500}, "http_error"),
        ({"status": 400, "body": b'{"status":"error","error":"bad query"}'}, "bad_response"),
        ({"body": NAN_ANSWER}, "nan"),
        ({"body": b'{"status":"success","data":{"resultType":"vector","result":[]}}'}, "empty"),
    ],
)
def test_slow_or_failing_prometheus_keeps_the_split(tmp_path, bad, kind):
    prometheus = BadPrometheus(**bad)
    kube = FakeKubeApi(virtual_service_manifest(worker_route("meshburst", 0)))
    controller = start_controller(tmp_path, kube, prometheus.url, PROMETHEUS_TIMEOUT_SECONDS="0.3")
    try:
        wait_until(lambda: metric(controller, f'burstwatch_errors_total{{kind="{kind}"}}') >= 3, 15, f"{kind} errors")
        assert kube.patches() == []
        assert metric(controller, 'burstwatch_mode{mode="natural"}') == 1
        assert "burstwatch_last_rate_rps NaN" in httpx.get(controller.url + "/metrics").text
    finally:
        controller.stop()
        kube.stop()
        prometheus.stop()


def test_the_image_runs_uvicorn_with_the_http_guard():
    assert dockerfile_command("apps/burstwatch")[-4:] == [
        "--http",
        "httpguard:GuardedHttpTools",
        "--timeout-keep-alive",
        "5",
    ]


BAD_REQUESTS: list[tuple[str, str, dict[str, str | bytes], bytes]] = [
    *((m, p, {}, b"") for m in ("POST", "PUT", "DELETE", "PATCH") for p in ("/metrics", "/healthz")),
    ("POST", "/metrics", {"content-type": "application/json"}, b"[" * 5000),
    ("GET", "/metrics?" + "q=1&" * 2000, {}, b""),
    ("GET", "/../../etc/passwd", {}, b""),
    ("GET", "/%2e%2e/controller.py", {}, b""),
    ("GET", "/" + "a" * 8000, {}, b""),
    ("GET", "/healthz", {"x-bad": b"\xff\xfe"}, b""),
]


def test_bad_input_battery_is_never_a_5xx_and_memory_stays_flat(mesh, tmp_path):
    _exporter, prometheus, kube = mesh
    with (
        start_controller(tmp_path, kube, prometheus.url) as controller,
        httpx.Client(base_url=controller.url, timeout=5) as client,
    ):
        for method, path, headers, body in BAD_REQUESTS:
            response = client.request(method, path, headers=headers, content=body)
            assert response.status_code < 500, (method, path[:40], response.status_code)
        growth = memory_growth_under(client, controller, BAD_REQUESTS)
        assert growth < 4 * 1024 * 1024, f"RSS grew by {growth / 1024:.0f} KiB over 2,000 bad requests"
        assert kube.patches() == []
        assert "Traceback" not in controller.log()


def test_slow_clients_are_closed_by_the_image_s_timeouts(mesh, tmp_path):
    _exporter, prometheus, kube = mesh
    with start_controller(tmp_path, kube, prometheus.url, HEADER_TIMEOUT_SECONDS="1") as controller:
        for pieces in ([], [b"GET /metrics HTTP/1.1\r\nHo"]):
            with socket.create_connection(("127.0.0.1", controller.port), timeout=10) as conn:
                started = time.monotonic()
                for piece in pieces:
                    conn.sendall(piece)
                assert conn.recv(1024) == b""
                assert 0.9 <= time.monotonic() - started < 2.5
        big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n"
        with socket.create_connection(("127.0.0.1", controller.port), timeout=10) as conn:
            conn.sendall(big)
            assert conn.recv(1024).startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize(
    "missing", ["NAMESPACE", "VIRTUAL_SERVICE", "SUBSETS", "DESTINATION_SERVICE", "PROMETHEUS_URL"]
)
def test_the_image_copies_no_names_its_component_must_set_them(missing: str):
    env = controller_env(burstwatch_args("meshburst", "burstwatch", "http://127.0.0.1:9", 15, 10))
    del env[missing]
    result = subprocess.run(
        [sys.executable, "-c", "import controller"],
        cwd=ROOT / "apps" / "burstwatch",
        env={"PATH": os.environ["PATH"], "KUBE_API_URL": "http://127.0.0.1:9", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{missing} is not set: the Burstwatch component (apps/burstwatch/component.py) sets it" in result.stderr


def test_subsets_must_name_two_different_ones():
    env = controller_env(burstwatch_args("meshburst", "burstwatch", "http://127.0.0.1:9", 15, 10))
    result = subprocess.run(
        [sys.executable, "-c", "import controller"],
        cwd=ROOT / "apps" / "burstwatch",
        env={"PATH": os.environ["PATH"], "KUBE_API_URL": "http://127.0.0.1:9", **env, "SUBSETS": "primary,primary"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "SUBSETS='primary,primary' must name two different subsets: normal,burst" in result.stderr
