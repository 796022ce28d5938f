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


def test_auto_mode_hands_the_weights_to_the_controller(auto_run: Run, primary_run: Run):
    vs = auto_run.one("kubernetes:networking.istio.io/v1:VirtualService", "worker-split-virtual-service")
    assert vs.ignore_changes == ["spec.http[0].route[0].weight", "spec.http[0].route[1].weight"]
    manual = primary_run.one("kubernetes:networking.istio.io/v1:VirtualService", "worker-split-virtual-service")
    assert manual.ignore_changes == []
    # Back in manual mode Pulumi takes the weights back from burstwatch's field manager, not a conflict.
    assert "annotations" not in vs.get("metadata"), "in auto mode Pulumi must never force the controller's weights"
    assert manual.get("metadata.annotations") == {"pulumi.com/patchForce": "true"}


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


def test_changing_burst_weight_moves_only_the_worker_virtual_service():
    def inputs(weight: str) -> dict[str, str]:
        run = run_stack("primary", {"burstWeight": weight})
        return {r.urn: json.dumps(r.inputs, sort_keys=True) for r in run.resources}

    at_0, at_50 = inputs("0"), inputs("50")
    assert at_0.keys() == at_50.keys()
    assert [u.split("::")[-1] for u in at_0 if at_0[u] != at_50[u]] == ["worker-split-virtual-service"]
