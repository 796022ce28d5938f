"""The canary for real: the controller process (its image's command, POLICY=canary) against the fake Kubernetes API,
a real Prometheus scraping Istio-shaped metrics from the exporter, and a webhook receiver on loopback.

Intervals are short (3 s, polls every 1 s, scrapes every 1 s) so the file runs in a few minutes; every wait is on
a condition with a bounded timeout.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.controller.canary import CanaryPolicy, parse_settings
from apps.shark.component import shark_route
from tests.support.controller_harness import ControllerHarness, WebhookReceiver, rolled_out_deployment
from tests.support.istio_exporter import IstioExporter
from tests.support.servers import PrometheusServer, free_port, wait_until

NS = "apps"
INTERVAL = 3.0
POLL = 1.0
SCRAPE = 1.0
IMAGE = "registry.example/shark:v2-new"
SETTINGS: dict[str, Any] = {
    "revision": "rev-old",
    "stableRevision": "rev-stable",
    "canaryImage": IMAGE,
    "target": "shark-v2",
    "steps": [5, 10, 25, 50, 100],
    "intervalSeconds": INTERVAL,
    "maxErrorPercent": 1.0,
    "maxP99Ms": 500.0,
    "maxRegressionPercent": None,
    "minRequests": 20,
    "progressDeadlineSeconds": 60,
    "onDeadline": "hold",
    "failureLimit": 2,
    "metrics": {"namespace": NS, "app": "shark", "stableVersion": "v1", "canaryVersion": "v2"},
}


def deployment(revision: str) -> dict[str, Any]:
    """shark-v2 fully rolled out at `revision`."""
    return rolled_out_deployment("shark-v2", NS, {"app": "shark", "version": "v2"}, revision, IMAGE)


class Canary:
    """The harness around one canary controller, plus what the tests read and do as Pulumi."""

    def __init__(self, tmp_path: Path, exporter: IstioExporter, live_share: int = 20, **settings: Any) -> None:
        self.tmp_path = tmp_path
        self.mesh = ControllerHarness(
            tmp_path,
            [exporter.target],
            "canary",
            shark_route(NS, live_share),
            {**SETTINGS, **settings},
            live_share=live_share,
            scrape_interval=f"{SCRAPE:g}s",
        )
        self.mesh.kube.set_object(deployment("rev-old"))
        self.controller = None

    def start(self, webhook_url: str | None = None) -> None:
        env = {"POLL_SECONDS": f"{POLL:g}"}
        if webhook_url is not None:
            url_file = self.tmp_path / f"webhook-url-{len(self.mesh.controllers)}"
            url_file.write_text(webhook_url + "\n")
            env["WEBHOOK_URL_FILE"] = str(url_file)
        self.controller = self.mesh.start("canary", **env)
        # First start: the live route is taken over as it is.
        wait_until(lambda: self.mesh.status().get("phase") == "Idle", 15, "the first decision")

    def new_revision(self, revision: str = "rev-new", ready: bool = True) -> float:
        """`pulumi up` with a new v2 image: the intent first, then the rolled-out Deployment; returns when."""
        at = time.monotonic()
        self.mesh.set_intent(settings={**self.mesh.settings, "revision": revision})
        if ready:
            self.mesh.kube.set_object(deployment(revision))
        return at

    def phase(self) -> str | None:
        return self.mesh.status().get("phase")

    def wait_phase(self, phase: str, timeout: float) -> dict[str, str]:
        try:
            wait_until(lambda: self.phase() == phase, timeout, f"phase {phase}", 0.1)
        except TimeoutError:
            raise AssertionError(f"no {phase}: status {self.mesh.status()}\n{self.log()[-3000:]}") from None
        return self.mesh.status()

    def applies(self) -> list[tuple[float, int]]:
        """(when, share) of every VirtualService write that happened."""
        found = []
        for request in self.mesh.kube.applies():
            weighted = next(rule for rule in request.body["spec"]["http"] if rule.get("name") == "weighted")
            found.append((request.at, int(weighted["route"][1]["weight"])))
        return found

    def count(self, name: str, **labels: str) -> float:
        return self.mesh.count(name, **labels)

    def log(self) -> str:
        return "".join(controller.log() for controller in self.mesh.controllers)

    def stop(self) -> None:
        self.mesh.stop()


@pytest.fixture()
def exporter() -> Iterator[IstioExporter]:
    with IstioExporter(namespace=NS, app="shark") as served:
        served.set_traffic("v1", rps=100, latency_ms=20)
        served.set_traffic("v2", rps=40, latency_ms=20)
        yield served


@pytest.fixture()
def canary(tmp_path, exporter) -> Iterator[Canary]:
    made = Canary(tmp_path, exporter)
    yield made
    made.stop()


def every_override_reaches_v2(manifest: dict[str, Any]) -> bool:
    """The rules ahead of the weighted one (header match, sticky cookie) all send their requests to v2."""
    rules = manifest["spec"]["http"]
    overrides = [rule for rule in rules if rule.get("name") != "weighted"]
    return bool(overrides) and all([r["destination"]["subset"] for r in rule["route"]] == ["v2"] for rule in overrides)


# -- the queries, proven by Prometheus ---------------------------------------------------------------------------


def test_the_queries_answer_numbers_on_prometheus_with_no_traffic_no_errors_and_errors(tmp_path):
    settings = parse_settings({**SETTINGS, "maxRegressionPercent": 10})
    queries = CanaryPolicy().queries(settings)
    with IstioExporter(namespace=NS, app="shark") as exporter:
        prometheus = PrometheusServer(tmp_path, [exporter.target], f"{SCRAPE:g}s")
        try:

            def read() -> dict[str, float]:
                values = {}
                for name, query in queries.items():
                    body = httpx.get(prometheus.url + "/api/v1/query", params={"query": query}, timeout=5).json()
                    assert body["status"] == "success", (name, body)
                    [sample] = body["data"]["result"]
                    values[name] = float(sample["value"][1])
                return values

            # No series at all yet: every query still answers (0), so low traffic is a wait, not a fault.
            wait_until(lambda: exporter.scrapes >= 2, 10, "two scrapes")
            assert read() == {name: 0.0 for name in queries}

            exporter.set_traffic("v1", rps=50, latency_ms=20)
            exporter.set_traffic("v2", rps=20, latency_ms={20: 0.5, 200: 0.5})
            wait_until(lambda: read()["requests"] > 55, 15, "a window of v2 traffic")
            values = read()
            # 20 req/s over 3 s, counted once although both reporters report each request.
            assert 55 < values["requests"] < 65
            assert 145 < values["stableRequests"] < 155
            assert values["errorPercent"] == 0 and values["stableErrorPercent"] == 0  # no 5xx series at all
            assert 245 < values["p99Ms"] <= 250  # in the (100, 250] bucket, interpolated
            assert 24 < values["stableP99Ms"] <= 25

            exporter.set_traffic("v2", error_share=0.073)
            wait_until(lambda: abs(read()["errorPercent"] - 7.3) < 0.05, 15, "a window of 7.3 % errors")
            assert read()["stableErrorPercent"] == 0
        finally:
            prometheus.stop()


# -- rollouts ------------------------------------------------------------------------------------------------------


def test_a_healthy_v2_is_promoted_through_every_step_each_held_an_interval(tmp_path, exporter):
    canary = Canary(tmp_path, exporter)
    receiver = WebhookReceiver()
    try:
        canary.start(webhook_url=receiver.url)
        # v2's traffic follows the route, as through the gateway: 5 % of 1000 req/s at the first step.
        exporter.set_split(1000, canary.mesh.share)
        assert canary.applies() == [], "a first start moves nothing"
        assert canary.mesh.share() == 20

        canary.new_revision()
        status = canary.wait_phase("Promoted", 60)
        shares = [share for _, share in canary.applies()]
        assert shares == [0, 5, 10, 25, 50, 100]
        times = [at for at, _ in canary.applies()]
        gaps = [b - a for a, b in itertools.pairwise(times[1:])]
        assert all(gap >= INTERVAL for gap in gaps), f"a step held less than {INTERVAL} s: {gaps}"
        assert all(every_override_reaches_v2(r.body) for r in canary.mesh.kube.applies())

        assert (status["weight"], status["step"], status["revision"]) == ("100", "5/5", "rev-new")
        passed = r"pass: error rate 0 % <= 1 %, p99 2[0-5](\.\d+)? ms <= 500 ms, ([\d.]+) requests at step 100"
        verdict = re.fullmatch(passed, status["lastVerdict"])
        assert verdict and 2000 < float(verdict.group(2)) <= 3100, status["lastVerdict"]  # 1000 req/s for 3 s
        promote = f"pulumi config set --path 'images.shark-v1' {IMAGE} -s primary && pulumi up -s primary"
        assert status["message"].endswith(promote)
        assert promote in canary.log()
        assert canary.count("meshburst_canary_phase", phase="Promoted") == 1
        assert canary.count("meshburst_canary_step") == 5
        assert canary.count("meshburst_canary_verdicts_total", result="pass") == 5
        assert canary.count("meshburst_canary_verdicts_total", result="fail") == 0

        # v2 made the new stable (pulumi up with images.shark-v1 = the v2 image): v1 takes the traffic back.
        canary.mesh.set_intent(settings={**canary.mesh.settings, "stableRevision": "rev-new"})
        status = canary.wait_phase("Idle", 10)
        assert (status["weight"], canary.mesh.share()) == ("0", 0)

        expected = [("Idle", "Waiting"), ("Waiting", "Progressing"), ("Progressing", "Promoted"), ("Promoted", "Idle")]
        wait_until(lambda: len(receiver.messages) == 4, 10, "the webhook messages")
        assert receiver.phases() == expected
        promoted = receiver.messages[2]
        assert promoted["route"] == "shark" and promoted["policy"] == "canary"
        assert promoted["status"]["message"].endswith(promote)
        time.sleep(2 * POLL)  # nothing more happens: still one message per phase change
        assert receiver.phases() == expected
    finally:
        receiver.stop()
        canary.stop()


def rolled_back_within_the_failure_limit(canary: Canary, started: float) -> dict[str, str]:
    """Waits for RolledBack; the weight went 0 -> 5 -> 0 and the rollback came within failureLimit windows."""
    status = canary.wait_phase("RolledBack", 30)
    applies = canary.applies()
    assert [share for _, share in applies] == [0, 5, 0]
    step_at, rollback_at = applies[1][0], applies[2][0]
    # failureLimit windows, each judged on the first tick after it ends, plus a scrape of lag.
    assert rollback_at - step_at <= SETTINGS["failureLimit"] * (INTERVAL + POLL) + SCRAPE + POLL
    assert rollback_at - started < 20
    assert (status["weight"], canary.mesh.share()) == ("0", 0)
    # The header override still reaches v2 with no weighted traffic on it.
    assert every_override_reaches_v2(canary.mesh.virtual_service())
    assert canary.count("meshburst_canary_verdicts_total", result="fail") == 2
    assert canary.count("meshburst_canary_phase", phase="RolledBack") == 1
    return status


def test_v2_answering_5_percent_errors_is_rolled_back_and_stays_there(canary, exporter):
    exporter.set_traffic("v2", error_share=0.05)
    dead = f"http://127.0.0.1:{free_port()}/hooks/T0KEN"  # nobody listens: delivery fails, nothing waits on it
    canary.start(webhook_url=dead)
    status = rolled_back_within_the_failure_limit(canary, canary.new_revision())
    verdict = re.fullmatch(r"fail: error rate ([\d.]+) % > 1 % at step 5", status["lastVerdict"])
    assert verdict and 4.5 <= float(verdict.group(1)) <= 5.5, status["lastVerdict"]
    assert status["message"].startswith(f"rolled back: {status['lastVerdict']} (2 failed in a row)")

    exporter.set_traffic("v2", error_share=0.0)  # healthy again: no new revision, so it stays rolled back
    polls = canary.count("meshburst_controller_polls_total")
    wait_until(lambda: canary.count("meshburst_controller_polls_total") >= polls + 4, 10, "more polls")
    assert canary.phase() == "RolledBack" and canary.mesh.share() == 0
    wait_until(lambda: canary.count("meshburst_controller_faults_total", kind="webhook") >= 1, 20, "dropped messages")

    canary.new_revision("rev-fixed")  # a fixed v2 starts again
    canary.wait_phase("Progressing", 10)
    assert canary.mesh.share() == 5


def test_v2_with_p99_over_the_limit_is_rolled_back(canary, exporter):
    exporter.set_traffic("v2", latency_ms={40: 0.9, 900: 0.1})
    canary.start()
    status = rolled_back_within_the_failure_limit(canary, canary.new_revision())
    verdict = re.fullmatch(r"fail: p99 ([\d.]+) ms > 500 ms at step 5", status["lastVerdict"])
    assert verdict and 900 < float(verdict.group(1)) <= 1000, status["lastVerdict"]


def test_v2_worse_than_v1_by_more_than_the_margin_is_rolled_back(tmp_path, exporter):
    # Within the absolute limits (p99 under 250 ms < 500), but more than 50 % slower than v1 (about 25 ms).
    exporter.set_traffic("v2", latency_ms=200)
    canary = Canary(tmp_path, exporter, maxRegressionPercent=50)
    try:
        canary.start()
        status = rolled_back_within_the_failure_limit(canary, canary.new_revision())
        verdict = re.fullmatch(r"fail: p99 ([\d.]+) ms > v1 ([\d.]+) ms \+ 50 % at step 5", status["lastVerdict"])
        assert verdict, status["lastVerdict"]
        assert 200 < float(verdict.group(1)) <= 250 and 20 < float(verdict.group(2)) <= 25
    finally:
        canary.stop()


@pytest.mark.parametrize(("on_deadline", "phase", "share"), [("hold", "Halted", 5), ("rollback", "RolledBack", 0)])
def test_too_little_traffic_waits_until_the_deadline_then_stops_as_configured(
    tmp_path, exporter, on_deadline: str, phase: str, share: int
):
    exporter.set_traffic("v2", rps=2, error_share=0.5)  # 6 requests a window < 20: neither pass nor fail
    canary = Canary(tmp_path, exporter, progressDeadlineSeconds=8, onDeadline=on_deadline)
    try:
        canary.start()
        canary.new_revision()
        canary.wait_phase("Progressing", 10)
        progressing_at = canary.applies()[-1][0]
        wait_until(lambda: "too little traffic to v2" in canary.mesh.status()["message"], 10, "a wait")
        assert canary.count("meshburst_canary_verdicts_total", result="wait") >= 1
        assert canary.mesh.share() == 5
        status = canary.wait_phase(phase, 20)
        stopped_at = time.monotonic()
        # The deadline counts from the decision that started the step, a few milliseconds before its write.
        assert stopped_at - progressing_at >= 8 - 0.1
        assert (status["weight"], canary.mesh.share()) == (str(share), share)
        assert status["message"].startswith("halted at step 1/5 (5 %): no verdict for" if share else "rolled back: no")
        assert "requests to v2 in 3 s < minRequests 20 at step 5" in status["message"]
        assert canary.count("meshburst_canary_verdicts_total", result="pass") == 0
        assert canary.count("meshburst_canary_verdicts_total", result="fail") == 0
    finally:
        canary.stop()


def test_prometheus_stopped_mid_rollout_changes_nothing_and_counts_faults(canary, exporter):
    canary.start()
    canary.new_revision()
    wait_until(lambda: canary.mesh.share() == 10, 30, "step 2")
    canary.mesh.prometheus.stop()
    writes = len(canary.applies())
    faults = canary.count("meshburst_controller_faults_total", kind="unreachable")
    wait_until(
        lambda: canary.count("meshburst_controller_faults_total", kind="unreachable") >= faults + 3 * 4,
        15,
        "four polls' worth of faults (three queries each)",
    )
    time.sleep(INTERVAL)  # longer than a window: a working Prometheus would have moved the step by now
    assert len(canary.applies()) == writes
    assert canary.mesh.share() == 10
    status = canary.mesh.status()
    assert (status["phase"], status["step"]) == ("Progressing", "2/5")
    assert "readings missing (errorPercent, p99Ms, requests): no verdict, no change" in canary.log()
    assert httpx.get(canary.controller.url + "/healthz").status_code == 200


def test_a_restarted_controller_resumes_at_the_same_step(canary, exporter):
    canary.start()
    canary.new_revision()
    # Step 3 persisted (the status is written just after the route): a stop now finds it there.
    wait_until(lambda: canary.mesh.state().get("share") == 25, 30, "step 3")
    canary.controller.stop()
    state = canary.mesh.state()
    assert (state["phase"], state["step"], state["share"]) == ("Progressing", 2, 25)
    before = len(canary.applies())

    canary.controller = canary.mesh.start("canary", POLL_SECONDS=f"{POLL:g}")
    resumed = canary.mesh.controllers[-1]
    wait_until(lambda: "at step 25: next step 4/5 (50 %)" in resumed.log(), 20, "step 4")
    assert "resuming from the persisted state" in resumed.log()
    assert [share for _, share in canary.applies()[before:]] == [50]
    wait_until(lambda: canary.mesh.status()["step"] == "4/5", 5, "the status of step 4")
