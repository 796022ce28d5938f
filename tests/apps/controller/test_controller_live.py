"""The controller for real, burst policy: its image's command, a real Prometheus scraping Istio-shaped counters,
the fake Kubernetes API through the same kubeconfig code path as in a cluster."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from apps.worker.split import burst_settings, worker_route
from builders.routes import virtual_service_manifest
from tests.support.controller_harness import (
    ControllerHarness,
    StubPrometheus,
    WebhookReceiver,
    intent_config_map,
    metric_value,
    metrics_of,
)
from tests.support.fake_kube import APPLY, MERGE
from tests.support.fake_mesh import RateExporter
from tests.support.paths import ROOT
from tests.support.servers import dockerfile_command, memory_growth_under, stopped_cleanly, wait_until

NS = "meshburst"
ROUTE = worker_route(NS, 0)
SETTINGS = {**burst_settings(NS, 15, 10), "minDwellSeconds": 2, "window": "4s"}
FAST = {"POLL_SECONDS": "0.5"}
VS_PATH = f"/apis/networking.istio.io/v1/namespaces/{NS}/virtualservices/worker-split"


@pytest.fixture()
def exporter():
    with RateExporter(rate=5.0) as made:
        yield made


@pytest.fixture()
def mesh(tmp_path, exporter):
    with ControllerHarness(tmp_path, [exporter.target], "burst", ROUTE, SETTINGS, live_share=0) as made:
        yield made


@pytest.fixture()
def quiet(tmp_path):
    """The fake API without Prometheus: for what the HTTP side and the start-up checks do."""
    with ControllerHarness(tmp_path, [], "burst", ROUTE, SETTINGS, live_share=0, prometheus=False) as made:
        yield made


def test_bursts_above_high_and_returns_below_low_with_exact_writes(mesh, exporter, tmp_path):
    with WebhookReceiver() as receiver:
        hook = tmp_path / "webhook-url"
        hook.write_text(receiver.url)
        controller = mesh.start(**FAST, WEBHOOK_URL_FILE=str(hook))
        wait_until(lambda: mesh.count("meshburst_burst_rate_rps") > 0, 15, "a first reading")
        assert mesh.kube.applies() == []
        assert mesh.metric("meshburst_burst_mode", mode="natural") == 1

        exporter.set_rate(40)
        wait_until(lambda: mesh.share() == 100, 20, "the switch to burst")
        [apply] = mesh.kube.applies()
        assert (apply.method, apply.path, apply.content_type) == ("PATCH", VS_PATH, APPLY)
        assert apply.query == {"fieldManager": ["meshburst-controller"], "force": ["true"]}
        assert apply.body["spec"] == virtual_service_manifest(ROUTE.with_share(100))["spec"]
        assert apply.body["metadata"]["resourceVersion"] == "101", "the version Pulumi left"
        wait_until(lambda: mesh.status().get("mode") == "burst", 5, "the status")
        assert mesh.status()["weight"] == "100"
        assert mesh.state()["mode"] == "burst"
        assert mesh.metric("meshburst_burst_switches_total", to="burst") == 1
        assert mesh.metric("meshburst_controller_weight", subset="burst") == 100

        exporter.set_rate(2)
        wait_until(lambda: mesh.share() == 0, 20, "the switch back")
        assert len(mesh.kube.applies()) == 2
        wait_until(lambda: len(receiver.messages) == 2, 10, "two webhook messages")
        assert [(m["previous"], m["phase"]) for m in receiver.messages] == [("natural", "burst"), ("burst", "natural")]
        first = receiver.messages[0]
        assert first["route"] == "worker-split" and first["policy"] == "burst"
        assert first["reason"].startswith("rate ") and "> high 15" in first["reason"]
        assert first["status"]["mode"] == "burst" and first["at"].endswith("Z")

        samples = metrics_of(controller.url)
        route = ("route", "worker-split")
        assert samples[("meshburst_controller_writes_total", frozenset({route}))] == 2
        assert samples[("meshburst_burst_switches_total", frozenset({route, ("to", "natural")}))] == 1
        assert samples[("meshburst_burst_threshold_rps", frozenset({route, ("bound", "high")}))] == 15
        assert samples[("meshburst_burst_threshold_rps", frozenset({route, ("bound", "low")}))] == 10
        assert samples[("meshburst_controller_is_writer", frozenset({route}))] == 1
        assert samples[("meshburst_controller_polls_total", frozenset({route}))] >= 10
        assert 0 <= samples[("meshburst_burst_rate_rps", frozenset({route}))] < 10
        assert ("meshburst_controller_faults_total", frozenset({route, ("kind", "webhook")})) not in samples

        status = httpx.get(controller.url + "/status").json()
        assert {k: status[k] for k in ("policy", "writer", "mode", "weight")} == {
            "policy": "burst",
            "writer": True,
            "mode": "natural",
            "weight": "0",
        }
        assert json.loads(status["state"])["mode"] == "natural"
        log = controller.log()
        assert log.count("switch to burst: rate") == 1 and log.count("switch to natural: rate") == 1
        assert receiver.url not in log and "T0KEN" not in log, "the webhook URL is a secret"
        assert "webhook 127.0.0.1" in log
        assert stopped_cleanly(controller), log


def test_prometheus_stopped_mid_run_changes_nothing_and_counts_faults(mesh, exporter):
    controller = mesh.start(**FAST)
    wait_until(lambda: mesh.count("meshburst_burst_rate_rps") > 0, 15, "a first reading")
    mesh.prometheus.stop()
    exporter.set_rate(100)  # would be a burst, but nobody can see it
    polls = mesh.count("meshburst_controller_polls_total")
    wait_until(lambda: mesh.count("meshburst_controller_polls_total") >= polls + 6, 10, "polls while down")
    assert mesh.kube.applies() == []
    assert mesh.share() == 0
    assert mesh.count("meshburst_controller_faults_total", kind="unreachable") >= 5
    assert 'meshburst_burst_rate_rps{route="worker-split"} NaN' in httpx.get(controller.url + "/metrics").text
    assert httpx.get(controller.url + "/healthz").status_code == 200
    assert mesh.status()["lastVerdict"] == "rate unknown (Prometheus gave no reading)"
    assert "keeping the current split" in controller.log()


def test_a_restart_in_burst_resumes_from_the_status_and_writes_nothing(mesh, exporter):
    exporter.set_rate(40)
    first = mesh.start(**FAST)
    wait_until(lambda: mesh.share() == 100, 20, "the switch to burst")
    wait_until(lambda: mesh.state().get("mode") == "burst", 5, "the persisted state")
    persisted = mesh.state()
    assert stopped_cleanly(first), first.log()
    exporter.set_rate(12)  # between the thresholds: a new controller must neither flip nor rewrite
    requests_before = len(mesh.kube.requests)
    second = mesh.start(**FAST)
    wait_until(lambda: mesh.count("meshburst_controller_polls_total", second) >= 6, 15, "several polls")
    assert len(mesh.kube.applies()) == 1
    assert mesh.state() == persisted
    assert mesh.metric("meshburst_burst_mode", second, mode="burst") == 1
    assert mesh.metric("meshburst_controller_weight", second, subset="burst") == 100
    assert "resuming from the persisted state" in second.log()
    statuses = [r for r in mesh.kube.requests[requests_before:] if r.path.endswith("-status")]
    assert [r.method for r in statuses][:1] == ["GET"], "read once, at the first tick"


def test_writer_handover_pulumi_then_controller(mesh, exporter):
    mesh.set_intent(writer="pulumi")
    exporter.set_rate(40)
    controller = mesh.start(**FAST)
    wait_until(lambda: mesh.count("meshburst_controller_polls_total") >= 8, 15, "polls as a bystander")
    assert mesh.kube.writes() == [], "no write of any kind while Pulumi is the writer"
    assert mesh.metric("meshburst_controller_is_writer") == 0
    assert httpx.get(controller.url + "/status").json() == {"policy": "burst", "writer": False}

    mesh.set_intent(writer="controller")
    wait_until(lambda: mesh.share() == 100, 15, "the controller writing")
    assert mesh.metric("meshburst_controller_is_writer") == 1
    assert httpx.get(controller.url + "/status").json()["writer"] is True
    assert "writer is now controller: taking over the route" in controller.log()


def test_pulumi_writing_between_the_controller_s_read_and_apply_is_a_counted_conflict(mesh, exporter):
    pulumis = virtual_service_manifest(ROUTE.with_share(0))
    pulumis["metadata"]["labels"] = {"written-by": "pulumi"}

    def switch_to_manual(request) -> None:
        if request.content_type == APPLY and not mesh.kube.recorded(content_type=APPLY)[:-1]:
            mesh.kube.set_object(intent_config_map(ROUTE, "burst", SETTINGS, writer="pulumi"))
            mesh.kube.set_object(pulumis)

    mesh.kube.before_write(switch_to_manual)
    exporter.set_rate(40)
    controller = mesh.start(**FAST)
    wait_until(lambda: mesh.count("meshburst_controller_faults_total", kind="conflict") == 1, 20, "the conflict")
    polls = mesh.count("meshburst_controller_polls_total")
    wait_until(lambda: mesh.count("meshburst_controller_polls_total") >= polls + 4, 10, "polls after it")
    [apply] = mesh.kube.recorded(content_type=APPLY)
    assert apply.status == 409
    assert mesh.virtual_service()["metadata"]["labels"] == {"written-by": "pulumi"}
    assert mesh.share() == 0, "Pulumi's route stands"
    assert [w for w in mesh.kube.recorded(content_type=MERGE) if w.at > apply.at] == [], "nothing committed"
    assert mesh.state()["mode"] == "natural"
    assert mesh.metric("meshburst_controller_is_writer") == 0
    assert "conflict" in controller.log()


def test_kubernetes_errors_are_counted_and_the_write_happens_on_a_later_tick(mesh, exporter):
    mesh.kube.fail(503, method="GET", path_part="virtualservices", times=2)
    mesh.kube.fail(403, method="PATCH", path_part="virtualservices")
    exporter.set_rate(40)
    controller = mesh.start(**FAST)
    wait_until(lambda: mesh.share() == 100, 20, "the switch, after the faults")
    assert [a.status for a in mesh.kube.recorded(content_type=APPLY)] == [403, 200]
    assert mesh.count("meshburst_controller_faults_total", kind="server_error") == 2
    assert mesh.count("meshburst_controller_faults_total", kind="forbidden") == 1
    assert mesh.count("meshburst_burst_switches_total", to="burst") == 1
    assert "forbidden" in controller.log()


def test_a_bad_intent_is_a_fault_logged_with_its_reason_and_nothing_is_written(mesh, exporter):
    mesh.set_intent(settings={**SETTINGS, "lowRps": 50})
    exporter.set_rate(40)
    controller = mesh.start(**FAST)
    wait_until(lambda: mesh.count("meshburst_controller_faults_total", kind="intent") >= 4, 15, "intent faults")
    assert mesh.kube.writes() == []
    log = controller.log()
    assert log.count("thresholds must satisfy 0 < low < high") == 1, "logged once per distinct problem"
    mesh.set_intent(settings=SETTINGS)
    wait_until(lambda: mesh.share() == 100, 15, "the switch once the intent is good")
    assert "is readable again" in controller.log()


def test_a_dead_webhook_receiver_blocks_nothing(mesh, exporter, tmp_path):
    hook = tmp_path / "webhook-url"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        hook.write_text(f"http://127.0.0.1:{s.getsockname()[1]}/hook")
    exporter.set_rate(40)
    controller = mesh.start(**FAST, WEBHOOK_URL_FILE=str(hook))
    wait_until(lambda: mesh.share() == 100, 20, "the switch")
    exporter.set_rate(2)
    wait_until(lambda: mesh.share() == 0, 20, "the switch back, while the webhook keeps failing")
    # Each message is tried 5 times over 0.5+1+2+4 s, then dropped and counted; the ticks went on meanwhile.
    wait_until(lambda: mesh.count("meshburst_controller_faults_total", kind="webhook") >= 1, 15, "a drop")
    assert httpx.get(controller.url + "/healthz").status_code == 200
    assert "webhook to 127.0.0.1: ConnectError after 5 tries; message about burst dropped" in controller.log()


NAN_ANSWER = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}'


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        ({"delay": 1.0}, "timeout"),
        ({"status": 500, "body": b"oops"}, "http_error"),
        ({"status": 400, "body": b'{"status":"error","error":"bad query"}'}, "bad_response"),
        ({"body": NAN_ANSWER}, "nan"),
        ({"body": b'{"status":"success","data":{"resultType":"vector","result":[]}}'}, "empty"),
    ],
)
def test_slow_or_failing_prometheus_keeps_the_split(tmp_path, bad, kind):
    with (
        StubPrometheus(**bad) as prometheus,
        ControllerHarness(tmp_path, [], "burst", ROUTE, SETTINGS, live_share=0, prometheus=False) as mesh,
    ):
        controller = mesh.start(**FAST, PROMETHEUS_URL=prometheus.url, PROMETHEUS_TIMEOUT_SECONDS="0.3")
        wait_until(lambda: mesh.count("meshburst_controller_faults_total", kind=kind) >= 3, 15, f"{kind} faults")
        assert mesh.kube.applies() == []
        assert mesh.metric("meshburst_burst_mode", mode="natural") == 1
        assert 'meshburst_burst_rate_rps{route="worker-split"} NaN' in httpx.get(controller.url + "/metrics").text


def test_the_image_runs_uvicorn_with_the_http_guard():
    assert dockerfile_command("apps/controller") == [
        "uvicorn",
        "main:app",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
        "--http",
        "httpguard:GuardedHttpTools",
        "--timeout-keep-alive",
        "5",
    ]


BAD_REQUESTS: list[tuple[str, str, dict[str, str | bytes], bytes]] = [
    *((m, p, {}, b"") for m in ("POST", "PUT", "DELETE", "PATCH") for p in ("/metrics", "/healthz", "/status")),
    ("POST", "/status", {"content-type": "application/json"}, b"[" * 5000),
    ("GET", "/metrics?" + "q=1&" * 2000, {}, b""),
    ("GET", "/../../etc/passwd", {}, b""),
    ("GET", "/%2e%2e/main.py", {}, b""),
    ("GET", "/" + "a" * 8000, {}, b""),
    ("GET", "/status", {"x-bad": b"\xff\xfe"}, b""),
]


def test_bad_input_battery_is_never_a_5xx_and_memory_stays_flat(quiet):
    controller = quiet.start(**FAST)
    with httpx.Client(base_url=controller.url, timeout=5) as client:
        for method, path, headers, body in BAD_REQUESTS:
            response = client.request(method, path, headers=headers, content=body)
            assert response.status_code < 500, (method, path[:40], response.status_code)
            assert "PROMETHEUS_URL" not in response.text
        growth = memory_growth_under(client, controller, BAD_REQUESTS)
    assert growth < 4 * 1024 * 1024, f"RSS grew by {growth / 1024:.0f} KiB over 2,000 bad requests"
    assert quiet.kube.applies() == []
    assert "Traceback" not in controller.log()


def test_slow_clients_are_closed_by_the_image_s_timeouts(quiet):
    controller = quiet.start(**FAST, HEADER_TIMEOUT_SECONDS="1")
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


def import_main(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`import main` as the image does, from apps/controller with apps/lib beside it."""
    return subprocess.run(
        [sys.executable, "-c", "import main"],
        cwd=ROOT / "apps" / "controller",
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT / "apps" / "lib"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("missing", ["NAMESPACE", "ROUTE", "INTENT", "STATUS"])
def test_the_image_copies_no_names_its_component_must_set_them(quiet, missing):
    env = quiet.env()
    del env[missing]
    result = import_main(env)
    assert result.returncode != 0
    assert f"{missing} is not set: the RouteController component (apps/controller/component.py) sets it" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"POLICY": "rollout"}, "POLICY='rollout' is not a policy (allowed: canary or burst)"),
        ({"POLL_SECONDS": "soon"}, "POLL_SECONDS='soon' is not a number of seconds (allowed: 0.1..3600)"),
        ({"POLL_SECONDS": "0"}, "POLL_SECONDS='0' is out of range"),
        ({"PROMETHEUS_TIMEOUT_SECONDS": "nan"}, "PROMETHEUS_TIMEOUT_SECONDS='nan' is out of range"),
        ({"PROMETHEUS_URL": "prometheus:9090"}, "PROMETHEUS_URL='prometheus:9090' is not an http(s) URL"),
        ({"ROUTE": "Worker_Split"}, "ROUTE='Worker_Split' is not a Kubernetes object name"),
        ({"KUBECONFIG": "/nonexistent/kubeconfig"}, "no Kubernetes configuration"),
        ({"WEBHOOK_URL_FILE": "/nonexistent/url"}, "WEBHOOK_URL_FILE='/nonexistent/url' cannot be read"),
    ],
)
def test_bad_settings_refuse_to_start_naming_the_variable(quiet, change, message):
    result = import_main({**quiet.env(), **change})
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_page_serves_every_contract_name(quiet):
    controller = quiet.start(**FAST)
    wait_until(lambda: quiet.count("meshburst_controller_polls_total") >= 2, 10, "two ticks")
    text = httpx.get(controller.url + "/metrics").text
    for name in (
        "meshburst_controller_weight",
        "meshburst_controller_writes_total",
        "meshburst_controller_faults_total",
        "meshburst_controller_polls_total",
        "meshburst_controller_is_writer",
        "meshburst_burst_rate_rps",
        "meshburst_burst_mode",
        "meshburst_burst_switches_total",
        "meshburst_burst_threshold_rps",
        "meshburst_canary_phase",
        "meshburst_canary_step",
        "meshburst_canary_verdicts_total",
        "meshburst_canary_last_error_percent",
        "meshburst_canary_last_p99_ms",
        "meshburst_canary_last_requests",
    ):
        assert f"# TYPE {name.removesuffix('_total')} " in text or f"# TYPE {name} " in text, name
    assert metric_value(controller.url, "meshburst_controller_weight", route="worker-split", subset="primary") == 100
