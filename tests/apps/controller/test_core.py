"""The controller core in process, against the fake Kubernetes API (through lightkube) and a stub Prometheus:
the order of its calls, what it writes and when it writes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from apps.controller.burst import BurstPolicy, build_rate_query
from apps.controller.core import (
    Controller,
    CoreConfig,
    IntentError,
    parse_intent,
    route_differs,
    target_ready,
)
from apps.controller.kube import Kube
from apps.controller.metrics import Metrics
from apps.controller.notify import Notifier
from apps.controller.policy import REVISION_ANNOTATION, Decision, Observation
from apps.worker.split import burst_settings, worker_route
from builders.routes import intent_document, virtual_service_manifest
from tests.support.controller_harness import StubPrometheus, config_map, intent_config_map
from tests.support.fake_kube import APPLY, MERGE, FakeKube, write_kubeconfig

T = TypeVar("T")
NS = "meshburst"
ROUTE = worker_route(NS, 0)
# The core's behaviour, on one reading (the sustained rate) and a 30 s dwell: pinned, not the shipped windows.
SETTINGS = {**burst_settings(NS, 15, 10), "minDwellSeconds": 30, "window": "30s", "fastWindow": None}
QUERY = build_rate_query("source", f"worker-service.{NS}.svc.cluster.local", "frontend", "30s")
VS_PATH = f"/apis/networking.istio.io/v1/namespaces/{NS}/virtualservices/worker-split"
INTENT_PATH = f"/api/v1/namespaces/{NS}/configmaps/worker-split-intent"
STATUS_PATH = f"/api/v1/namespaces/{NS}/configmaps/worker-split-status"
NOW = 1_800_000_000.0


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on a private loop: asyncio.run would unset the main thread's loop, which Pulumi's mocks use later."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


class Rig:
    """FakeKube holding the worker route, its intent and status; a stub Prometheus; a Controller to tick."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_share: int | None = 0) -> None:
        self.kube = FakeKube()
        self.prometheus = StubPrometheus()
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", self.kube, NS)))
        if live_share is not None:
            self.kube.set_object(virtual_service_manifest(ROUTE.with_share(live_share)))
        self.kube.set_object(intent_config_map(ROUTE, "burst", SETTINGS))
        self.kube.set_object(config_map("worker-split-status", NS))
        self.metrics = Metrics()
        self.config = CoreConfig(
            NS, "worker-split", "worker-split-intent", "worker-split-status", self.prometheus.url, 1
        )

    def rate(self, value: float | None) -> None:
        self.prometheus.values.clear()
        if value is not None:
            self.prometheus.values[QUERY] = value

    async def ticks(self, *times: float, policy: Any = None) -> Controller:
        kube = Kube.from_env(NS, 2.0)
        async with httpx.AsyncClient(timeout=1.0) as prometheus:
            notifier = Notifier(None, lambda: None)
            controller = Controller(self.config, policy or BurstPolicy(), kube, prometheus, self.metrics, notifier)
            for now in times:
                await controller.tick(now)
        await kube.aclose()
        return controller

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, {"route": "worker-split", **labels})

    def calls(self) -> list[tuple[str, str, str]]:
        return [(r.method, r.path, r.content_type) for r in self.kube.requests]

    def share(self) -> int:
        live = self.kube.get("VirtualService", NS, "worker-split")
        assert live is not None
        return int(live["spec"]["http"][-1]["route"][1]["weight"])

    def status(self) -> dict[str, str]:
        return (self.kube.get("ConfigMap", NS, "worker-split-status") or {}).get("data") or {}

    def stop(self) -> None:
        self.kube.stop()
        self.prometheus.stop()


@pytest.fixture()
def rig(tmp_path, monkeypatch):
    made = Rig(tmp_path, monkeypatch)
    yield made
    made.stop()


def test_a_switch_reads_route_then_intent_then_status_and_applies_onto_the_version_read(rig):
    rig.rate(40.0)
    rv = rig.kube.get("VirtualService", NS, "worker-split")["metadata"]["resourceVersion"]
    run(rig.ticks(NOW))
    assert rig.calls() == [
        ("GET", VS_PATH, ""),
        ("GET", INTENT_PATH, ""),
        ("GET", STATUS_PATH, ""),
        ("PATCH", VS_PATH, APPLY),
        ("PATCH", STATUS_PATH, MERGE),
    ]
    apply, status = rig.kube.writes()
    assert apply.query == {"fieldManager": ["meshburst-controller"], "force": ["true"]}
    assert apply.body == {
        **virtual_service_manifest(ROUTE.with_share(100)),
        "metadata": {"name": "worker-split", "namespace": NS, "resourceVersion": rv},
    }
    assert apply.token == rig.kube.token
    assert status.query == {"fieldManager": ["meshburst-controller"]}
    assert status.body == {
        "data": {
            "phase": "burst",
            "mode": "burst",
            "weight": "100",
            "lastVerdict": "rate 40.00 req/s > high 15",
            "message": "above 15 req/s the split goes to burst (100 %), below 10 back to natural",
            "state": json.dumps({"changedAt": NOW, "mode": "burst"}),
            "updated": "2027-01-15T08:00:00Z",
        }
    }
    assert rig.share() == 100
    assert rig.prometheus.queries == [QUERY]
    assert rig.sample("meshburst_controller_writes_total") == 1
    assert rig.sample("meshburst_controller_weight", subset="primary") == 0
    assert rig.sample("meshburst_controller_weight", subset="burst") == 100
    assert rig.sample("meshburst_burst_switches_total", to="burst") == 1
    assert rig.sample("meshburst_burst_rate_rps") == 40.0
    assert rig.sample("meshburst_burst_threshold_rps", bound="high") == 15
    assert rig.sample("meshburst_controller_is_writer") == 1


def test_nothing_is_written_when_the_route_and_status_already_say_it(rig):
    rig.rate(12.0)  # between the thresholds: natural stays natural
    run(rig.ticks(NOW, NOW + 2, NOW + 4))
    writes = rig.kube.writes()
    assert [(w.path, w.content_type) for w in writes] == [(STATUS_PATH, MERGE)], "the status once, the route never"
    assert [c for c in rig.calls() if c[0] == "GET"] == [
        ("GET", VS_PATH, ""),
        ("GET", INTENT_PATH, ""),
        ("GET", STATUS_PATH, ""),
    ] + [("GET", VS_PATH, ""), ("GET", INTENT_PATH, "")] * 2
    assert rig.sample("meshburst_controller_polls_total") == 3
    assert rig.sample("meshburst_controller_writes_total") == 0


def test_with_pulumi_as_writer_it_reads_the_route_and_intent_only(rig):
    rig.kube.set_object(intent_config_map(ROUTE, "burst", SETTINGS, writer="pulumi"))
    rig.rate(40.0)
    controller = run(rig.ticks(NOW, NOW + 2))
    assert rig.calls() == [("GET", VS_PATH, ""), ("GET", INTENT_PATH, "")] * 2
    assert rig.prometheus.queries == []
    assert rig.sample("meshburst_controller_is_writer") == 0
    assert controller.status_view() == {"policy": "burst", "writer": False}


def test_pulumi_writing_between_the_read_and_the_apply_wins_and_the_conflict_is_counted(rig):
    rig.rate(40.0)
    pulumis_route = virtual_service_manifest(ROUTE.with_share(30))

    def pulumi_takes_over(request) -> None:
        # Pulumi's order on a switch to manual: the intent first, then the route.
        if request.path == VS_PATH and not rig.kube.recorded(content_type=APPLY)[:-1]:
            rig.kube.set_object(intent_config_map(ROUTE, "burst", SETTINGS, writer="pulumi"))
            rig.kube.set_object(pulumis_route)

    rig.kube.before_write(pulumi_takes_over)
    controller = run(rig.ticks(NOW, NOW + 2))
    [apply] = rig.kube.recorded(content_type=APPLY)
    assert apply.status == 409
    assert rig.share() == 30, "Pulumi's write stands"
    assert rig.sample("meshburst_controller_faults_total", kind="conflict") == 1
    assert rig.kube.recorded(path_part="status", content_type=MERGE) == [], "a failed write commits nothing"
    assert rig.calls()[-2:] == [("GET", VS_PATH, ""), ("GET", INTENT_PATH, "")], "then it reads writer=pulumi"
    assert controller.state is None and controller.writer is False


def test_a_restart_resumes_from_the_persisted_state_not_from_scratch(rig):
    rig.kube.set_object(virtual_service_manifest(ROUTE.with_share(100)))
    persisted = {"mode": "burst", "changedAt": NOW - 10}
    rig.kube.set_object(config_map("worker-split-status", NS, {"state": json.dumps(persisted), "mode": "burst"}))
    rig.rate(1.0)  # below low, but the switch to burst was 10 s ago and the dwell is 30 s
    controller = run(rig.ticks(NOW))
    assert rig.kube.recorded(content_type=APPLY) == []
    assert controller.state == persisted
    assert rig.status()["lastVerdict"] == "rate 1.00 req/s < low 10 but dwelling after a switch"
    run(rig.ticks(NOW + 20))  # another restart, past the dwell
    assert rig.share() == 0
    assert json.loads(rig.status()["state"]) == {"mode": "natural", "changedAt": NOW + 20}


def test_without_a_persisted_state_it_continues_from_what_is_live(rig):
    rig.kube.set_object(virtual_service_manifest(ROUTE.with_share(100)))
    rig.rate(12.0)
    controller = run(rig.ticks(NOW))
    assert controller.state == {"mode": "burst", "changedAt": None}
    assert rig.kube.recorded(content_type=APPLY) == []


def test_an_unreadable_persisted_state_is_a_fault_and_what_is_live_is_kept(rig):
    rig.kube.set_object(virtual_service_manifest(ROUTE.with_share(100)))
    rig.kube.set_object(config_map("worker-split-status", NS, {"state": json.dumps({"step": 3})}))
    rig.rate(12.0)
    controller = run(rig.ticks(NOW))
    assert rig.sample("meshburst_controller_faults_total", kind="state") == 1
    assert controller.state == {"mode": "burst", "changedAt": None}
    assert rig.kube.recorded(content_type=APPLY) == []


def test_nothing_live_yet_is_created_at_the_intent_s_share(tmp_path, monkeypatch):
    rig = Rig(tmp_path, monkeypatch, live_share=None)
    try:
        rig.rate(None)
        run(rig.ticks(NOW))
        [apply] = rig.kube.recorded(content_type=APPLY)
        assert "resourceVersion" not in apply.body["metadata"], "a create has no version to match"
        assert rig.share() == 0
        assert rig.sample("meshburst_controller_faults_total", kind="empty") == 1
    finally:
        rig.stop()


def test_a_failed_status_write_is_retried_and_the_route_is_not_rewritten(rig):
    rig.rate(40.0)
    rig.kube.fail(503, method="PATCH", path_part="status")
    run(rig.ticks(NOW, NOW + 2))
    assert rig.sample("meshburst_controller_faults_total", kind="server_error") == 1
    assert len(rig.kube.applies()) == 1
    assert [w.status for w in rig.kube.writes("status")] == [503, 200]
    assert rig.status()["mode"] == "burst"


@pytest.mark.parametrize(
    ("status", "kind"), [(403, "forbidden"), (401, "unauthorized"), (500, "server_error"), (404, "not_found")]
)
def test_a_refused_apply_is_counted_by_kind_and_retried_next_tick(rig, status, kind):
    rig.rate(40.0)
    rig.kube.fail(status, method="PATCH", path_part="virtualservices")
    run(rig.ticks(NOW, NOW + 2))
    assert rig.sample("meshburst_controller_faults_total", kind=kind) == 1
    assert [a.status for a in rig.kube.recorded(content_type=APPLY)] == [status, 200]
    assert rig.share() == 100
    assert rig.sample("meshburst_burst_switches_total", to="burst") == 1, "counted once, when written"


def test_a_failed_read_writes_nothing(rig):
    rig.rate(40.0)
    rig.kube.fail(503, method="GET", path_part="intent")
    run(rig.ticks(NOW))
    assert rig.calls() == [("GET", VS_PATH, ""), ("GET", INTENT_PATH, "")]
    assert rig.sample("meshburst_controller_faults_total", kind="server_error") == 1


def test_an_unreachable_api_server_is_a_fault(rig):
    rig.rate(40.0)
    rig.kube.stop()
    run(rig.ticks(NOW))
    assert rig.sample("meshburst_controller_faults_total", kind="unreachable") == 1


def test_a_slow_api_server_is_a_timeout(rig):
    rig.rate(40.0)
    rig.kube.delay(2.5, method="GET")
    run(rig.ticks(NOW))
    assert rig.sample("meshburst_controller_faults_total", kind="timeout") == 1
    assert rig.kube.writes() == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "the intent ConfigMap does not exist"),
        ({}, "the intent ConfigMap has no data key 'intent.json'"),
        ({"intent.json": "{not json"}, "intent.json is not JSON"),
        ({"intent.json": "[1]"}, "intent.json must be a JSON object, got list"),
        ({"intent.json": json.dumps({"version": 2})}, "version='2': this controller reads version 1"),
        ({"intent.json": json.dumps({"version": 1, "writer": "kubectl"})}, "writer='kubectl': must be one of"),
        (
            {"intent.json": intent_document(ROUTE, "controller", "canary", SETTINGS)},
            "policy='canary': this controller runs policy 'burst'",
        ),
        (
            {"intent.json": intent_document(worker_route("other", 0), "controller", "burst", SETTINGS)},
            "route is other/worker-split, but this controller owns meshburst/worker-split",
        ),
        (
            {
                "intent.json": json.dumps(
                    {"version": 1, "writer": "controller", "policy": "burst", "route": {"name": 1}}
                )
            },
            "route is not a RouteSpec",
        ),
        (
            {"intent.json": intent_document(ROUTE, "controller", "burst", {**SETTINGS, "lowRps": 20})},
            "bad settings: settings lowRps=20 highRps=15: thresholds must satisfy 0 < low < high",
        ),
    ],
)
def test_intent_problems_are_faults_that_write_nothing(rig, data, reason):
    if data is None:
        rig.kube.delete_object("ConfigMap", NS, "worker-split-intent")
    else:
        rig.kube.set_object(config_map("worker-split-intent", NS, data))
    rig.rate(40.0)
    run(rig.ticks(NOW, NOW + 2))
    assert rig.kube.writes() == []
    assert rig.sample("meshburst_controller_faults_total", kind="intent") == 2
    intent = rig.kube.get("ConfigMap", NS, "worker-split-intent")
    with pytest.raises(IntentError, match=reason.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse_intent(intent, BurstPolicy(), "worker-split", NS)


def test_an_intent_with_pulumi_as_writer_needs_no_route_or_settings():
    intent = parse_intent(
        config_map("x", NS, {"intent.json": intent_document(ROUTE, "pulumi", "burst", {})}), BurstPolicy(), "w", NS
    )
    assert (intent.writer, intent.route, intent.settings) == ("pulumi", None, None)


class TargetPolicy:
    """A policy with a target Deployment: records what the core observed."""

    name = "burst"

    def __init__(self) -> None:
        self.observations: list[Observation] = []

    def parse_settings(self, settings: Mapping[str, Any]) -> Any:
        return dict(settings)

    def queries(self, settings: Any) -> Mapping[str, str]:
        return {}

    def target(self, settings: Any) -> str | None:
        return "shark-v2"

    def initial_state(self, settings: Any, live_share: int | None, initial_share: int, now: float) -> Mapping[str, Any]:
        return {"share": live_share if live_share is not None else initial_share}

    def decide(self, settings: Any, state: Mapping[str, Any], observation: Observation) -> Decision:
        self.observations.append(observation)
        return Decision(state=state, share=state["share"], status={"phase": "Idle"}, log="idle")

    def record(self, metrics: Any, route: str, decision: Decision, observation: Observation) -> None:
        return None


def deployment(revision: str, generation: int = 2, observed: int = 2, counts: tuple[int, int, int] = (2, 2, 2)) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shark-v2", "namespace": NS, "generation": generation},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shark"}},
            "template": {
                "metadata": {"labels": {"app": "shark"}, "annotations": {REVISION_ANNOTATION: revision}},
                "spec": {"containers": [{"name": "shark", "image": "shark:v2"}]},
            },
        },
        "status": {
            "observedGeneration": observed,
            "replicas": counts[0],
            "updatedReplicas": counts[1],
            "availableReplicas": counts[2],
        },
    }


def test_the_target_s_rollout_is_read_and_judged_against_the_intent_s_revision(rig):
    rig.kube.set_object(intent_config_map(ROUTE, "burst", {"revision": "abc123"}))
    rig.kube.set_object(deployment("abc123"))
    policy = TargetPolicy()
    run(rig.ticks(NOW, policy=policy))
    assert policy.observations[-1].target_ready is True
    assert ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/shark-v2", "") in rig.calls()
    rig.kube.set_object(deployment("abc123", counts=(3, 2, 2)))  # an old pod is still there
    run(rig.ticks(NOW, policy=policy))
    assert policy.observations[-1].target_ready is False
    rig.kube.delete_object("Deployment", NS, "shark-v2")
    run(rig.ticks(NOW, policy=policy))
    assert policy.observations[-1].target_ready is False
    rig.kube.fail(403, path_part="deployments")
    run(rig.ticks(NOW, policy=policy))
    assert policy.observations[-1].target_ready is None
    assert rig.sample("meshburst_controller_faults_total", kind="forbidden") == 1


@pytest.mark.parametrize(
    ("obj", "ready"),
    [
        (deployment("r1"), True),
        (deployment("r0"), False),
        (deployment("r1", generation=3, observed=2), False),
        (deployment("r1", counts=(2, 1, 2)), False),
        (deployment("r1", counts=(2, 2, 1)), False),
        (deployment("r1", counts=(3, 2, 2)), False),
        (None, False),
    ],
    ids=["rolled-out", "other-revision", "not-observed", "not-updated", "not-available", "old-pod-left", "absent"],
)
def test_target_ready_means_the_revision_fully_rolled_out(obj, ready):
    assert target_ready(obj, "r1") is ready


def test_target_ready_needs_a_revision_to_compare():
    assert target_ready(deployment("r1"), None) is False
    assert target_ready(deployment(""), "") is False


def test_route_differs_on_spec_or_its_own_labels_only():
    rendered = virtual_service_manifest(ROUTE.with_share(30))
    live = json.loads(json.dumps(rendered))
    live["metadata"].update(resourceVersion="7", labels={"extra": "x"}, managedFields=[{"manager": "pulumi"}])
    assert route_differs(live, rendered) is False
    live["spec"]["http"][-1]["route"][1]["weight"] = 31
    assert route_differs(live, rendered) is True
    assert route_differs(None, rendered) is True
