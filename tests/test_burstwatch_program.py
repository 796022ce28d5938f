"""Automatic burst under mocks: Prometheus release, the controller, its RBAC and who owns the weights."""

from __future__ import annotations

import pytest

from components.settings import ConfigError
from tests.harness import Run, RunFailed, run_stack

RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.fixture(scope="module")
def auto_run() -> Run:
    return run_stack("primary", {"burstMode": "auto", "burstHighRps": "25", "burstLowRps": "12.5"})


def releases(run: Run) -> dict[str, object]:
    return {r.get("name"): r for r in run.of_type(RELEASE)}


def test_prometheus_is_installed_like_istios_addon(primary_run: Run):
    prometheus = releases(primary_run)["prometheus"]
    assert prometheus.get("repositoryOpts.repo") == "https://prometheus-community.github.io/helm-charts"
    assert (prometheus.get("chart"), prometheus.get("version"), prometheus.get("namespace")) == (
        "prometheus",
        "27.46.0",
        "istio-system",
    )
    values = prometheus.get("values")
    for subchart in ("alertmanager", "prometheus-pushgateway", "kube-state-metrics", "prometheus-node-exporter"):
        assert values[subchart] == {"enabled": False}, subchart
    server = values["server"]
    assert server["podLabels"] == {"sidecar.istio.io/inject": "false"}
    assert server["fullnameOverride"] == "prometheus"
    assert server["service"] == {"servicePort": 9090}
    assert server["persistentVolume"] == {"enabled": False}
    # Every global stated, none inherited from the chart (tests/test_prometheus_config.py runs promtool on it).
    assert server["global"] == {"scrape_interval": "5s", "scrape_timeout": "4s", "evaluation_interval": "5s"}


def test_grafana_and_kiali_are_off_by_default_and_wired_to_prometheus_when_on(primary_run: Run):
    assert set(releases(primary_run)) & {"grafana", "kiali"} == set()
    run = run_stack("primary", {"addons": {"grafana": True, "kiali": True}})
    found = releases(run)
    grafana, kiali = found["grafana"], found["kiali"]
    assert grafana.get("repositoryOpts.repo") == "https://grafana.github.io/helm-charts"
    [source] = grafana.get("values")["datasources"]["datasources.yaml"]["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus",
        "http://prometheus.istio-system:9090",
        True,
    )
    assert grafana.get("values")["podLabels"] == {"sidecar.istio.io/inject": "false"}
    assert kiali.get("chart") == "kiali-server"
    assert kiali.get("values")["external_services"] == {
        "prometheus": {"url": "http://prometheus.istio-system:9090"},
        "grafana": {"enabled": True, "internal_url": "http://grafana.istio-system:3000"},
    }
    assert kiali.get("values")["auth"] == {"strategy": "token"}


def test_prometheus_can_be_turned_off_in_manual_mode():
    run = run_stack("primary", {"addons": {"prometheus": False}})
    assert "prometheus" not in releases(run)


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


def test_auto_mode_hands_the_weights_to_the_controller(auto_run: Run, primary_run: Run):
    vs = auto_run.one("kubernetes:networking.istio.io/v1:VirtualService", "worker-split-virtual-service")
    assert vs.ignore_changes == ["spec.http[0].route[0].weight", "spec.http[0].route[1].weight"]
    manual = primary_run.one("kubernetes:networking.istio.io/v1:VirtualService", "worker-split-virtual-service")
    assert manual.ignore_changes == []
    # Back in manual mode Pulumi takes the weights back from burstwatch's field manager, not a conflict.
    assert "annotations" not in vs.get("metadata"), "in auto mode Pulumi must never force the controller's weights"
    assert manual.get("metadata.annotations") == {"pulumi.com/patchForce": "true"}


def test_controller_waits_for_the_route_and_prometheus(auto_run: Run):
    component = auto_run.one("meshburst:apps:Burstwatch", "burstwatch")
    # depends_on a component waits for every resource inside it, the worker route among them.
    assert auto_run.named("worker-split-virtual-service").urn in component.dependencies
    assert auto_run.named("observability-prometheus").urn in component.dependencies


def test_auto_mode_without_prometheus_stops_before_any_resource():
    with pytest.raises(RunFailed) as caught:
        run_stack("primary", {"burstMode": "auto", "addons": {"prometheus": False}})
    assert isinstance(caught.value.error, ConfigError)
    assert "burstMode = 'auto' needs Prometheus" in str(caught.value.error)
    assert caught.value.resources == []
