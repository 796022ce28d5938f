"""The controller for real with the burst policy's `overflow` split: its image's command, a real Prometheus
scraping Istio-shaped counters, the fake Kubernetes API through the same kubeconfig code path as in a cluster."""

from __future__ import annotations

import itertools

import pytest

from apps.controller.burst import BurstPolicy, parse_settings
from apps.worker.split import burst_settings, worker_route
from tests.support.controller_harness import ControllerHarness, StubPrometheus
from tests.support.fake_mesh import RateExporter
from tests.support.servers import stopped_cleanly, wait_until

NS = "meshburst"
ROUTE = worker_route(NS, 0)
CAPACITY = 10.0
"""Less the 10 % headroom the primary is given 9 req/s: at 40 req/s, 1 - 9/40 = 77.5 %, so 80 % to burst."""
SHIPPED = burst_settings(NS, 15, 10, "overflow", CAPACITY)
SETTINGS = {**SHIPPED, "minDwellSeconds": 2, "window": "4s", "fastWindow": "3s", "leadPercent": 0}
"""Short windows for a 1 s scrape, and no look-ahead: a step in the rate then gives one share to wait for (the
lead is proven through the process by test_the_lead_on_a_rising_load_..., and on a ramp by the bench)."""
FAST = {"POLL_SECONDS": "0.5"}


@pytest.fixture()
def exporter():
    with RateExporter(rate=5.0) as made:
        yield made


@pytest.fixture()
def mesh(tmp_path, exporter):
    with ControllerHarness(tmp_path, [exporter.target], "burst", ROUTE, SETTINGS, live_share=0) as made:
        yield made


def shares(mesh: ControllerHarness) -> list[int]:
    """The burst share of every apply, oldest first."""
    return [int(a.body["spec"]["http"][-1]["route"][1]["weight"]) for a in mesh.kube.applies()]


def test_sends_only_the_share_above_capacity_and_brings_it_all_back(mesh, exporter):
    controller = mesh.start(**FAST)
    wait_until(lambda: mesh.count("meshburst_controller_polls_total") >= 4, 15, "polls under capacity")
    wait_until(lambda: mesh.status().get("mode") == "natural", 10, "a first status")
    assert mesh.kube.applies() == [], "5 req/s is under the primary's 9: nothing to move"
    assert mesh.metric("meshburst_burst_threshold_rps", bound="high") == pytest.approx(9.0)
    assert mesh.metric("meshburst_burst_threshold_rps", bound="low") == pytest.approx(9.0 / 1.1)

    exporter.set_rate(40)
    wait_until(lambda: mesh.share() == 80, 20, "80 % to burst")
    up = shares(mesh)
    assert up[-1] == 80 and all(s % 5 == 0 for s in up)
    assert up == sorted(set(up)), f"up in steps, never back on the way up: {up}"
    wait_until(lambda: mesh.status().get("weight") == "80", 5, "the status")
    status = mesh.status()
    assert status["mode"] == "burst"
    assert "primary up to 9: " in status["lastVerdict"]
    assert status["message"].startswith("overflow: the primary takes up to 9 req/s (90 % of its 10 req/s capacity)")
    assert mesh.state() == {**mesh.state(), "mode": "burst", "share": 80, "direction": "up"}
    assert mesh.metric("meshburst_burst_mode", mode="burst") == 1
    assert mesh.metric("meshburst_controller_weight", subset="primary") == 20

    exporter.set_rate(2)
    wait_until(lambda: mesh.share() == 0, 20, "all of it back")
    down = shares(mesh)[len(up) :]
    assert down[-1] == 0 and down == sorted(set(down), reverse=True), f"down in steps: {down}"
    wait_until(lambda: mesh.status().get("mode") == "natural", 5, "the status")
    assert mesh.count("meshburst_burst_switches_total", to="burst") == 1, "one phase change, however many moves"
    assert mesh.count("meshburst_burst_switches_total", to="natural") == 1
    assert mesh.count("meshburst_controller_writes_total") == len(up) + len(down)
    log = controller.log()
    assert log.count("move: rate") == len(up) + len(down)
    assert stopped_cleanly(controller), log


def test_a_rate_within_the_hysteresis_holds_the_share(mesh, exporter):
    exporter.set_rate(40)
    mesh.start(**FAST)
    wait_until(lambda: mesh.share() == 80, 20, "80 % to burst")
    writes = len(mesh.kube.applies())
    exporter.set_rate(37)  # 9/37 leaves 75.7 % for burst: 80 % still, and 37 is within 10 % of 40 anyway
    polls = mesh.count("meshburst_controller_polls_total")
    wait_until(lambda: mesh.count("meshburst_controller_polls_total") >= polls + 12, 15, "polls at 37 req/s")
    assert len(mesh.kube.applies()) == writes and mesh.share() == 80
    exporter.set_rate(60)  # 85 %: a rise is taken at once
    wait_until(lambda: mesh.share() == 85, 15, "85 % to burst")


def test_prometheus_stopped_mid_overflow_keeps_the_share_and_counts_faults(mesh, exporter):
    exporter.set_rate(40)
    mesh.start(**FAST)
    wait_until(lambda: mesh.share() == 80, 20, "80 % to burst")
    writes = len(mesh.kube.applies())
    mesh.prometheus.stop()
    exporter.set_rate(0)  # would bring it all back, but nobody can see it
    polls = mesh.count("meshburst_controller_polls_total")
    wait_until(lambda: mesh.count("meshburst_controller_polls_total") >= polls + 6, 10, "polls while down")
    assert len(mesh.kube.applies()) == writes and mesh.share() == 80
    assert mesh.count("meshburst_controller_faults_total", kind="unreachable") >= 10, "two queries a tick"
    assert mesh.status()["lastVerdict"] == "rate unknown (Prometheus gave no reading)"


def test_a_restart_resumes_the_share_and_its_dwell_from_the_status(mesh, exporter):
    exporter.set_rate(40)
    first = mesh.start(**FAST)
    wait_until(lambda: mesh.share() == 80, 20, "80 % to burst")
    wait_until(lambda: mesh.state().get("share") == 80, 5, "the persisted state")
    persisted = mesh.state()
    assert stopped_cleanly(first), first.log()
    writes = len(mesh.kube.applies())
    second = mesh.start(**FAST)
    wait_until(lambda: mesh.count("meshburst_controller_polls_total", second) >= 6, 15, "several polls")
    assert len(mesh.kube.applies()) == writes
    assert mesh.state() == persisted
    assert "resuming from the persisted state" in second.log()


def test_changing_the_policy_from_switch_continues_from_the_live_split(tmp_path, exporter):
    switch = {**SETTINGS, "policy": "switch"}
    with ControllerHarness(tmp_path, [exporter.target], "burst", ROUTE, switch, live_share=0) as mesh:
        exporter.set_rate(40)
        mesh.start(**FAST)
        wait_until(lambda: mesh.share() == 100, 20, "the switch to burst")
        wait_until(lambda: mesh.state().get("mode") == "burst", 5, "the switch policy's state")
        assert set(mesh.state()) == {"mode", "changedAt"}, "no share: the switch policy wrote it"
        mesh.set_intent(settings=SETTINGS)  # Pulumi rewrites the intent: burstPolicy overflow
        wait_until(lambda: mesh.share() == 80, 20, "the overflow share")
        assert shares(mesh) == [100, 80], "from the live 100 % straight to 80 %, never through 0"
        assert mesh.count("meshburst_burst_switches_total", to="natural") == 0
        assert all(b >= a for a, b in itertools.pairwise(shares(mesh)[1:]))


def test_the_lead_on_a_rising_load_reaches_the_route_through_the_process(tmp_path):
    """The two readings by their query names, as the image reads them: sustained 40 req/s, fast 48 req/s.
    Capacity 40 less 10 %: 36 req/s for the primary; 48 + 50 % x 8 = 52 req/s needs 31 %, so 35 % (25 % at 48)."""
    settings = {**SHIPPED, "capacityRps": 40.0, "minDwellSeconds": 2}
    queries = BurstPolicy().queries(parse_settings(settings))
    with (
        StubPrometheus() as prometheus,
        ControllerHarness(tmp_path, [], "burst", ROUTE, settings, live_share=0, prometheus=False) as mesh,
    ):
        prometheus.values.update({queries["rate"]: 40.0, queries["fastRate"]: 48.0})
        controller = mesh.start(**FAST, PROMETHEUS_URL=prometheus.url)
        wait_until(lambda: mesh.share() == 35, 15, "35 % to burst")
        assert sorted(set(prometheus.queries)) == sorted(queries.values())
        wait_until(lambda: "(rate 40.00, fastRate 48.00 req/s)" in controller.log(), 5, "the decision's log line")
        assert mesh.metric("meshburst_burst_rate_rps") == 48.0, "the gauge shows the higher reading, not the guess"
        prometheus.values[queries["fastRate"]] = 40.0  # the rise is over: down, once the dwell allows, to what
        wait_until(lambda: mesh.share() == 20, 15, "20 % to burst")  # 40 x 1.1 = 44 req/s needs: 18 %, so 20 %
        assert shares(mesh) == [35, 20]
