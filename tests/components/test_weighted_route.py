"""components/weighted_route.py: one writer per route object, and a mode switch either way without a conflict."""

from __future__ import annotations

import json

import pytest

from apps.lib.meshroute import RouteSpec, virtual_service_manifest
from tools.mockrun import Resource, Run, run_stack

VS = "kubernetes:networking.istio.io/v1:VirtualService"
CM = "kubernetes:core/v1:ConfigMap"
ROUTES = {"shark-route": ("shark", "canaryMode", "progressive"), "worker-split": ("worker-split", "burstMode", "auto")}


@pytest.fixture(scope="module")
def controlled_run() -> Run:
    """Both routes written by their controllers."""
    return run_stack("primary", {"canaryMode": "progressive", "burstMode": "auto"})


def intent(run: Run, route: str) -> dict:
    return json.loads(run.one(CM, f"{route}-intent").get("data")["intent.json"])


@pytest.mark.parametrize("route", list(ROUTES))
def test_manual_route_is_written_by_pulumi_and_kept_live_when_it_hands_over(primary_run: Run, route: str):
    vs = primary_run.one(VS, f"{route}-virtual-service")
    name = ROUTES[route][0]
    share = {"shark-route": 20, "worker-split": 0}[route]
    policy = {"shark-route": "canary", "worker-split": "burst"}[route]
    assert intent(primary_run, route) == {"version": 1, "writer": "pulumi", "policy": policy, "share": share}
    # The intent first: a controller still running during a switch back reads writer=pulumi before this lands.
    assert primary_run.one(CM, f"{route}-intent").urn in vs.dependencies
    # Dropping it from the program (a switch to the controller) leaves the live route for the controller to take.
    assert vs.retain_on_delete is True
    assert vs.get("metadata.annotations") == {"pulumi.com/patchForce": "true"}
    assert vs.ignore_changes == []
    assert primary_run.one(CM, f"{route}-intent").get("metadata.name") == f"{name}-intent"
    assert [r for r in primary_run.of_type(CM) if r.name == f"{route}-status"] == []


@pytest.mark.parametrize("route", list(ROUTES))
def test_controlled_route_has_no_pulumi_virtual_service(controlled_run: Run, route: str):
    assert [r for r in controlled_run.of_type(VS) if r.name == f"{route}-virtual-service"] == []
    document = intent(controlled_run, route)
    assert document["writer"] == "controller"
    spec = RouteSpec.from_json(document["route"])
    assert spec.name == ROUTES[route][0]
    # The controller renders what Pulumi would have: the same renderer, from the same spec.
    assert virtual_service_manifest(spec)["spec"]["http"][-1]["name"] == "weighted"
    status = controlled_run.one(CM, f"{route}-status")
    assert status.get("metadata.name") == f"{ROUTES[route][0]}-status"
    assert status.ignore_changes == ["data"], "only the controller writes the status data"
    assert "data" not in status.inputs
    assert status.get("metadata.labels")["meshburst.dev/route-writer"] == "controller"


def writers(run: Run) -> dict[str, list[str]]:
    """VirtualService name -> who may write it: Pulumi (a registered resource), controllers (a Role granting patch)."""
    found: dict[str, list[str]] = {}
    for vs in run.of_type(VS):
        found.setdefault(vs.get("metadata.name"), []).append("pulumi")
    for role in run.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role"):
        for rule in role.get("rules"):
            if rule.get("resources") == ["virtualservices"] and "patch" in rule["verbs"]:
                for name in rule["resourceNames"]:
                    found.setdefault(name, []).append(role.get("metadata.name"))
    return found


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, {"shark": ["pulumi"], "worker-split": ["pulumi"]}),
        ({"canaryMode": "progressive"}, {"shark": ["canarywatch"], "worker-split": ["pulumi"]}),
        ({"burstMode": "auto"}, {"shark": ["pulumi"], "worker-split": ["burstwatch"]}),
        (
            {"canaryMode": "progressive", "burstMode": "auto"},
            {"shark": ["canarywatch"], "worker-split": ["burstwatch"]},
        ),
    ],
)
def test_every_route_has_exactly_one_writer_in_every_mode(config: dict, expected: dict):
    found = writers(run_stack("primary", config))
    assert {name: found[name] for name in expected} == expected
    assert all(len(who) == 1 for who in found.values()), found


def by_name(run: Run) -> dict[str, Resource]:
    return {r.name: r for r in run.resources}


@pytest.mark.parametrize("route", list(ROUTES))
def test_switching_modes_either_way_changes_only_the_route_objects_and_the_controller(primary_run: Run, route: str):
    _, key, mode = ROUTES[route]
    controlled = by_name(run_stack("primary", {key: mode}))
    manual = by_name(primary_run)
    gone, added = set(manual) - set(controlled), set(controlled) - set(manual)
    assert gone == {f"{route}-virtual-service"}
    assert f"{route}-status" in added
    assert {n for n in added if not n.startswith(("canarywatch", "burstwatch"))} == {f"{route}-status"}
    changed = {n for n in set(manual) & set(controlled) if manual[n].inputs != controlled[n].inputs}
    # The intent flips its writer; in progressive mode v2 also carries its revision for the controller to wait on;
    # in auto mode the Hashr page reads the split from the controller instead of the intent.
    side_effects = {"shark-route": {"shark-shark-v2"}, "worker-split": {"worker-frontend"}}[route]
    assert changed == {f"{route}-intent"} | side_effects
