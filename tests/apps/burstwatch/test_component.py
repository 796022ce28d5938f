"""apps/burstwatch/component.py: the controller and the least RBAC it needs."""

from __future__ import annotations

import pytest

from tools.mockrun import Run, run_stack


@pytest.fixture(scope="module")
def auto_run() -> Run:
    return run_stack("primary", {"burstMode": "auto", "burstHighRps": "25", "burstLowRps": "12.5"})


def test_manual_mode_deploys_no_controller(primary_run: Run):
    assert primary_run.of_type("meshburst:apps:Burstwatch") == []
    assert [r for r in primary_run.resources if "burstwatch" in r.name and r.type.startswith("kubernetes:")] == []


def test_auto_mode_deploys_the_controller_with_its_settings(auto_run: Run):
    deployment = auto_run.one("kubernetes:apps/v1:Deployment", "burstwatch-controller")
    assert deployment.get("spec.replicas") == 1
    pod = deployment.get("spec.template.spec")
    assert pod["serviceAccountName"] == "burstwatch"
    assert pod["automountServiceAccountToken"] is True
    [container] = pod["containers"]
    assert container["image"].startswith("us-west1-docker.pkg.dev/meshburst-test-123/meshburst/burstwatch@sha256:")
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "PROMETHEUS_URL": "http://prometheus.istio-system:9090",
        "NAMESPACE": "meshburst",
        "VIRTUAL_SERVICE": "worker-split",
        "SUBSETS": "primary,burst",
        "DESTINATION_SERVICE": "worker-service.meshburst.svc.cluster.local",
        "SOURCE_WORKLOAD": "frontend",
        "HIGH_RPS": "25",
        "LOW_RPS": "12.5",
        "INTERVAL_SECONDS": "2",
        "WINDOW": "30s",
        "MIN_DWELL_SECONDS": "30",
        "BURST_SHARE": "100",
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert deployment.get("spec.template.metadata.annotations") == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }
    pdb = auto_run.one("kubernetes:policy/v1:PodDisruptionBudget", "burstwatch-controller-pdb")
    assert pdb.get("spec.selector.matchLabels") == {"app": "burstwatch"}


def test_rbac_allows_get_and_patch_on_one_virtual_service_only(auto_run: Run):
    role = auto_run.one("kubernetes:rbac.authorization.k8s.io/v1:Role", "burstwatch-role")
    assert role.get("metadata.namespace") == "meshburst"
    assert role.get("rules") == [
        {
            "apiGroups": ["networking.istio.io"],
            "resources": ["virtualservices"],
            "resourceNames": ["worker-split"],
            "verbs": ["get", "patch"],
        }
    ]
    binding = auto_run.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "burstwatch-binding")
    assert binding.get("roleRef") == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "burstwatch"}
    assert binding.get("subjects") == [{"kind": "ServiceAccount", "name": "burstwatch", "namespace": "meshburst"}]
    assert not auto_run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    account = auto_run.one("kubernetes:core/v1:ServiceAccount", "burstwatch-account")
    assert account.get("automountServiceAccountToken") is False, "only the controller pod mounts the token"


def test_controller_waits_for_the_route_and_prometheus(auto_run: Run):
    component = auto_run.one("meshburst:apps:Burstwatch", "burstwatch")
    # depends_on a component waits for every resource inside it, the worker route among them.
    assert auto_run.named("worker-split-virtual-service").urn in component.dependencies
    assert auto_run.named("observability-prometheus").urn in component.dependencies
