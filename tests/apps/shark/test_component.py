"""The shark canary under mocks: workloads, routing by canaryWeight, blast radius, images."""

from __future__ import annotations

import json

import pytest

from tools.mockrun import Run, run_stack

VS = "kubernetes:networking.istio.io/v1:VirtualService"
DR = "kubernetes:networking.istio.io/v1:DestinationRule"


def weights(run: Run) -> dict[str, int]:
    vs = run.one(VS, "shark-route-virtual-service")
    weighted = next(rule for rule in vs.get("spec.http") if rule["name"] == "weighted")
    return {r["destination"]["subset"]: r["weight"] for r in weighted["route"]}


@pytest.mark.parametrize("canary", [0, 1, 20, 50, 99, 100])
def test_canary_weight_sets_the_split(canary: int):
    run = run_stack("primary", {"canaryWeight": str(canary)})
    assert weights(run) == {"v1": 100 - canary, "v2": canary}
    assert run.outputs["canaryWeight"] == canary


def test_canary_weight_20_sends_80_percent_to_v1(primary_run: Run):
    assert weights(primary_run) == {"v1": 80, "v2": 20}


def test_canary_header_always_reaches_v2(primary_run: Run):
    vs = primary_run.one(VS, "shark-route-virtual-service")
    header_rule = vs.get("spec.http")[0]
    assert header_rule["match"] == [{"headers": {"canary": {"exact": "canary-tester"}}}]
    assert header_rule["route"] == [
        {"destination": {"host": "shark", "subset": "v2", "port": {"number": 8080}}, "weight": 100}
    ]
    assert vs.get("spec.gateways") == ["shark-gateway"]
    assert vs.get("spec.hosts") == ["*"]
    assert vs.get("metadata.namespace") == "meshburst"


def test_subsets_select_pods_by_version(primary_run: Run):
    rule = primary_run.one(DR, "shark-route-destination-rule")
    assert rule.get("spec.host") == "shark"
    assert rule.get("spec.subsets") == [
        {"name": "v1", "labels": {"version": "v1"}},
        {"name": "v2", "labels": {"version": "v2"}},
    ]
    vs = primary_run.one(VS, "shark-route-virtual-service")
    assert rule.urn in vs.dependencies


def test_gateway_serves_http_on_80_of_the_ingress_gateway(primary_run: Run):
    gateway = primary_run.one("kubernetes:networking.istio.io/v1:Gateway", "shark-gateway")
    assert gateway.get("spec") == {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 80, "name": "http-80", "protocol": "HTTP"}, "hosts": ["*"]}],
    }


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_shark_deployments_are_hardened(primary_run: Run, version: str):
    deployment = primary_run.one("kubernetes:apps/v1:Deployment", f"shark-shark-{version}")
    assert deployment.get("metadata.labels") == {"app": "shark", "version": version}
    pod = deployment.get("spec.template.spec")
    assert deployment.get("spec.template.metadata.labels") == {"app": "shark", "version": version}
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["image"].startswith(
        f"us-west1-docker.pkg.dev/meshburst-test-123/meshburst/shark-{version}@sha256:"
    )
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "250m", "memory": "128Mi"},
    }
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": 8080}
    pdb = primary_run.one("kubernetes:policy/v1:PodDisruptionBudget", f"shark-shark-{version}-pdb")
    assert pdb.get("spec") == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "shark", "version": version}}}


def test_shark_service(primary_run: Run):
    service = primary_run.one("kubernetes:core/v1:Service", "shark-service")
    assert service.get("metadata.name") == "shark"
    assert service.get("spec") == {
        "selector": {"app": "shark"},
        "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
    }


def test_apps_wait_for_the_mesh(primary_run: Run):
    canary = primary_run.one("meshburst:apps:SharkCanary", "shark")
    assert primary_run.named("istio-apps-namespace").urn in canary.dependencies
    assert primary_run.named("istio-ingress").urn in canary.dependencies


def comparable(run: Run) -> dict[str, str]:
    return {r.urn: json.dumps(r.inputs, sort_keys=True) for r in run.resources}


def test_changing_canary_weight_moves_only_the_virtual_service():
    at_20 = comparable(run_stack("primary", {"canaryWeight": "20"}))
    at_50 = comparable(run_stack("primary", {"canaryWeight": "50"}))
    assert at_20.keys() == at_50.keys()
    changed = [urn.split("::")[-1] for urn in at_20 if at_20[urn] != at_50[urn]]
    assert changed == ["shark-route-virtual-service"]


def test_shark_url_output(primary_run: Run):
    assert primary_run.outputs["sharkUrl"] == "http://35.3.3.3/"
