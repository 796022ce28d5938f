"""apps/worker/split.py: who owns the worker split, and the route that carries it."""

from __future__ import annotations

import json

import pytest

from tools.mockrun import Run, run_stack


@pytest.fixture(scope="module")
def auto_run() -> Run:
    return run_stack("primary", {"burstMode": "auto", "burstHighRps": "25", "burstLowRps": "12.5"})


VS = "kubernetes:networking.istio.io/v1:VirtualService"


def split(run: Run) -> dict[str, int]:
    vs = run.one(VS, "worker-split-virtual-service")
    [rule] = vs.get("spec.http")
    return {r["destination"]["subset"]: r["weight"] for r in rule["route"]}


def test_auto_mode_hands_the_route_to_the_controller_with_its_settings(auto_run: Run):
    assert [r for r in auto_run.of_type(VS) if r.name == "worker-split-virtual-service"] == []
    intent = json.loads(auto_run.one("kubernetes:core/v1:ConfigMap", "worker-split-intent").get("data")["intent.json"])
    assert intent["writer"] == "controller" and intent["policy"] == "burst"
    assert intent["settings"] == {
        "policy": "switch",
        "highRps": 25.0,
        "lowRps": 12.5,
        "capacityRps": 40.0,
        "minDwellSeconds": 15,
        "burstShare": 100,
        "window": "30s",
        "fastWindow": "15s",
        "shareStep": 5,
        "headroomPercent": 10,
        "hysteresisPercent": 10,
        "leadPercent": 50,
        "reporter": "source",
        "destinationService": "worker-service.meshburst.svc.cluster.local",
        "sourceWorkload": "frontend",
    }
    assert intent["route"]["name"] == "worker-split" and intent["route"]["share_to_second"] == 0


def intent_settings(run: Run) -> dict:
    config_map = run.one("kubernetes:core/v1:ConfigMap", "worker-split-intent")
    return json.loads(config_map.get("data")["intent.json"])["settings"]


def test_the_overflow_policy_and_the_primary_s_capacity_reach_the_controller_s_intent():
    run = run_stack("primary", {"burstMode": "auto", "burstPolicy": "overflow", "primaryCapacityRps": "55.5"})
    settings = intent_settings(run)
    assert (settings["policy"], settings["capacityRps"]) == ("overflow", 55.5)
    from apps.controller.burst import parse_settings

    parsed = parse_settings(settings)  # what the controller makes of it
    assert (parsed.policy, parsed.capacity_rps, parsed.primary_target_rps) == ("overflow", 55.5, pytest.approx(49.95))


def test_changing_the_policy_changes_only_the_intent():
    def inputs(policy: str) -> dict[str, str]:
        run = run_stack("primary", {"burstMode": "auto", "burstPolicy": policy})
        return {r.urn: json.dumps(r.inputs, sort_keys=True) for r in run.resources}

    switch, overflow = inputs("switch"), inputs("overflow")
    assert switch.keys() == overflow.keys()
    assert [u.split("::")[-1] for u in switch if switch[u] != overflow[u]] == ["worker-split-intent"]


def test_worker_split_subsets_by_cluster_type_with_random_balancing(primary_run: Run):
    rule = primary_run.one("kubernetes:networking.istio.io/v1:DestinationRule", "worker-split-destination-rule")
    assert rule.get("spec") == {
        "host": "worker-service",
        "subsets": [
            {"name": "primary", "labels": {"cluster-type": "primary-cluster"}},
            {"name": "burst", "labels": {"cluster-type": "burst-cluster"}},
        ],
        "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
    }
    vs = primary_run.one(VS, "worker-split-virtual-service")
    assert vs.get("spec.hosts") == ["worker-service"]
    assert vs.get("spec.gateways") == ["mesh"]
    assert vs.ignore_changes == [], "in manual mode Pulumi owns the weights"


@pytest.mark.parametrize("burst_weight", [0, 50, 100])
def test_burst_weight_sets_the_split(burst_weight: int):
    run = run_stack("primary", {"burstWeight": str(burst_weight)})
    assert split(run) == {"primary": 100 - burst_weight, "burst": burst_weight}


def test_changing_burst_weight_moves_only_the_worker_route():
    def inputs(weight: str) -> dict[str, str]:
        run = run_stack("primary", {"burstWeight": weight})
        return {r.urn: json.dumps(r.inputs, sort_keys=True) for r in run.resources}

    at_0, at_50 = inputs("0"), inputs("50")
    assert at_0.keys() == at_50.keys()
    # The VirtualService, and the intent the Hashr page reads the share from (mounted: the frontend is not restarted).
    changed = sorted(u.split("::")[-1] for u in at_0 if at_0[u] != at_50[u])
    assert changed == ["worker-split-intent", "worker-split-virtual-service"]
