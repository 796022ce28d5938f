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


def test_apps_wait_for_the_injecting_namespace_not_the_ingress_gateway(primary_run: Run):
    canary = primary_run.one("meshburst:apps:SharkCanary", "shark")
    assert primary_run.named("istio-apps-namespace").urn in canary.dependencies
    # The namespace itself waits for istiod: no app pod can start before its sidecar can be injected.
    assert primary_run.named("istio-istiod").urn in primary_run.created_before(
        primary_run.named("istio-apps-namespace")
    )
    assert primary_run.named("istio-ingress").urn not in primary_run.created_before(
        primary_run.one("kubernetes:apps/v1:Deployment", "shark-shark-v1")
    )


def comparable(run: Run) -> dict[str, str]:
    return {r.urn: json.dumps(r.inputs, sort_keys=True) for r in run.resources}


def test_changing_canary_weight_moves_only_the_route():
    at_20 = comparable(run_stack("primary", {"canaryWeight": "20"}))
    at_50 = comparable(run_stack("primary", {"canaryWeight": "50"}))
    assert at_20.keys() == at_50.keys()
    changed = [urn.split("::")[-1] for urn in at_20 if at_20[urn] != at_50[urn]]
    # The VirtualService, and the intent that records which share Pulumi wrote; no pod restarts.
    assert sorted(changed) == ["shark-route-intent", "shark-route-virtual-service"]


def test_shark_url_output(primary_run: Run):
    assert primary_run.outputs["sharkUrl"] == "http://35.3.3.3/"


PREBUILT = {name: f"ghcr.io/acme/{name}:1.0" for name in ("shark-v1", "shark-v2", "worker", "frontend", "controller")}


def progressive(**images: str) -> Run:
    return run_stack("primary", {"canaryMode": "progressive", "images": PREBUILT | images})


def settings(run: Run) -> dict:
    return json.loads(run.one("kubernetes:core/v1:ConfigMap", "shark-route-intent").get("data")["intent.json"])[
        "settings"
    ]


def test_progressive_intent_carries_the_revisions_steps_and_limits():
    run = run_stack(
        "primary",
        {
            "canaryMode": "progressive",
            "canarySteps": "[10, 50, 100]",
            "canaryInterval": "30",
            "canaryMaxErrorPercent": "2.5",
            "canaryMaxP99Ms": "250",
            "canaryMaxRegressionPercent": "10",
            "canaryMinRequests": "50",
            "canaryProgressDeadline": "300",
            "canaryOnDeadline": "rollback",
            "canaryFailureLimit": "3",
        },
    )
    found = settings(run)
    assert len(found.pop("revision")) == 16 and len(found.pop("stableRevision")) == 16
    assert found.pop("canaryImage").startswith("us-west1-docker.pkg.dev/meshburst-test-123/meshburst/shark-v2@sha256:")
    assert found == {
        "target": "shark-v2",
        "steps": [10, 50, 100],
        "intervalSeconds": 30,
        "maxErrorPercent": 2.5,
        "maxP99Ms": 250.0,
        "maxRegressionPercent": 10.0,
        "minRequests": 50,
        "progressDeadlineSeconds": 300,
        "onDeadline": "rollback",
        "failureLimit": 3,
        "metrics": {"namespace": "meshburst", "app": "shark", "stableVersion": "v1", "canaryVersion": "v2"},
    }


def test_a_new_v2_image_is_a_new_revision_and_only_v2_and_the_intent_change():
    before, after = progressive(), progressive(**{"shark-v2": "ghcr.io/acme/shark-v2:1.1"})
    assert settings(before)["revision"] != settings(after)["revision"]
    assert settings(before)["stableRevision"] == settings(after)["stableRevision"]
    changed = {
        r.name for r in after.resources if r.inputs != next(b for b in before.resources if b.urn == r.urn).inputs
    }
    assert changed == {"shark-route-intent", "shark-shark-v2"}


def test_v2_pods_carry_their_revision_and_wait_for_the_intent():
    run = progressive()
    v2 = run.one("kubernetes:apps/v1:Deployment", "shark-shark-v2")
    annotations = v2.get("spec.template.metadata.annotations")
    assert annotations == {"meshburst.dev/revision": settings(run)["revision"]}
    # The controller learns of a new revision (and moves v2's share to 0) before the new pods exist.
    assert run.one("kubernetes:core/v1:ConfigMap", "shark-route-intent").urn in v2.dependencies
    v1 = run.one("kubernetes:apps/v1:Deployment", "shark-shark-v1")
    assert v1.get("spec.template.metadata").get("annotations") is None


def test_v1_running_v2s_image_is_the_same_revision():
    # Making v2 the new stable is `pulumi config set --path images.shark-v1 <v2's image>`: the revisions then agree.
    run = progressive(**{"shark-v1": PREBUILT["shark-v2"]})
    assert settings(run)["stableRevision"] == settings(run)["revision"]
    assert settings(progressive())["stableRevision"] != settings(progressive())["revision"]


def test_progressive_mode_output(primary_run: Run):
    assert primary_run.outputs["canaryMode"] == "manual"
    assert progressive().outputs["canaryMode"] == "progressive"
