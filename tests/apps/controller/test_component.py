"""apps/controller/component.py: the controller of each route, its settings and the least RBAC it needs."""

from __future__ import annotations

import pytest

from tools.mockrun import Run, run_stack

ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


@pytest.fixture(scope="module")
def run() -> Run:
    return run_stack("primary", {"canaryMode": "progressive", "burstMode": "auto", "burstHighRps": "25"})


def test_manual_modes_deploy_no_controller(primary_run: Run):
    assert primary_run.of_type("meshburst:apps:RouteController") == []
    assert [r for r in primary_run.of_type(DEPLOYMENT) if "watch" in r.name] == []


@pytest.mark.parametrize(
    ("controller", "policy", "route", "poll"),
    [("canarywatch", "canary", "shark", "5"), ("burstwatch", "burst", "worker-split", "2")],
)
def test_each_route_gets_its_own_controller_named_for_its_objects(
    run: Run, controller: str, policy: str, route: str, poll: str
):
    deployment = run.one(DEPLOYMENT, f"{controller}-controller")
    assert deployment.get("spec.replicas") == 1
    assert deployment.get("spec.strategy") == {"type": "Recreate"}, "never two writers, not even during a rollout"
    pod = deployment.get("spec.template.spec")
    assert pod["serviceAccountName"] == controller
    assert pod["automountServiceAccountToken"] is True
    [container] = pod["containers"]
    assert container["image"].startswith("us-west1-docker.pkg.dev/meshburst-test-123/meshburst/controller@sha256:")
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "POLICY": policy,
        "NAMESPACE": "meshburst",
        "ROUTE": route,
        "INTENT": f"{route}-intent",
        "STATUS": f"{route}-status",
        "PROMETHEUS_URL": "http://prometheus.istio-system:9090",
        "POLL_SECONDS": poll,
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}


def test_canary_rbac_reaches_only_its_named_objects(run: Run):
    role = run.one(ROLE, "canarywatch-role")
    assert role.get("metadata.namespace") == "meshburst"
    assert role.get("rules") == [
        {
            "apiGroups": ["networking.istio.io"],
            "resources": ["virtualservices"],
            "resourceNames": ["shark"],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["shark-intent"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["shark-status"], "verbs": ["get", "patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["shark-v2"], "verbs": ["get"]},
    ]
    binding = run.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "canarywatch-binding")
    assert binding.get("subjects") == [{"kind": "ServiceAccount", "name": "canarywatch", "namespace": "meshburst"}]
    assert not run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")


def test_burst_rbac_has_no_deployment_rights(run: Run):
    rules = run.one(ROLE, "burstwatch-role").get("rules")
    assert [rule["resources"] for rule in rules] == [
        ["virtualservices"],
        ["virtualservices"],
        ["configmaps"],
        ["configmaps"],
    ]
    assert rules[0]["resourceNames"] == ["worker-split"]


def test_controllers_wait_for_their_route_and_prometheus(run: Run):
    for component, route in (("canarywatch", "shark-route"), ("burstwatch", "worker-split")):
        controller = run.one("meshburst:apps:RouteController", component)
        # depends_on a component waits for every resource inside it: the intent and the status object among them.
        assert run.one("kubernetes:core/v1:ConfigMap", f"{route}-intent").urn in controller.dependencies
        assert run.one("kubernetes:core/v1:ConfigMap", f"{route}-status").urn in controller.dependencies
        assert run.named("observability-prometheus").urn in controller.dependencies


def test_only_the_frontend_may_call_the_burst_controller(run: Run):
    burst = run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "burstwatch-controller-network-policy")
    peers = [peer for rule in burst.get("spec.ingress") for peer in rule.get("from", [])]
    assert {"podSelector": {"matchLabels": {"app": "frontend"}}} in peers
    canary = run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "canarywatch-controller-network-policy")
    canary_peers = [peer for rule in canary.get("spec.ingress") for peer in rule.get("from", [])]
    assert {"podSelector": {"matchLabels": {"app": "frontend"}}} not in canary_peers


def test_webhook_url_is_a_secret_mounted_as_a_file():
    url = "https://hooks.example.com/services/T000/B000/XXXX"
    run = run_stack("primary", {"canaryMode": "progressive", "canaryWebhookUrl": url}, secret_keys={"canaryWebhookUrl"})
    secret = run.one("kubernetes:core/v1:Secret", "canarywatch-webhook")
    assert secret.get("stringData") == {"url": url}
    assert secret.is_secret("stringData"), "the URL stays encrypted in Pulumi's state"
    pod = run.one(DEPLOYMENT, "canarywatch-controller").get("spec.template.spec")
    [container] = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["WEBHOOK_URL_FILE"] == "/etc/meshburst/webhook/url"
    assert url not in str(pod), "the URL is read from the mounted Secret, never from the pod spec"
    assert {
        "name": "secret-canarywatch-webhook",
        "secret": {"secretName": "canarywatch-webhook", "defaultMode": 0o440},
    } in (pod["volumes"])
    assert {"name": "secret-canarywatch-webhook", "mountPath": "/etc/meshburst/webhook", "readOnly": True} in (
        container["volumeMounts"]
    )
