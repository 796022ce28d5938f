"""components/observability.py: Prometheus as Istio's addon, Grafana and Kiali when asked."""

from __future__ import annotations

import json

import yaml

from builders.dashboards import ISTIO_DASHBOARDS
from tools.mockrun import FAKE_READER_TOKEN, Run, run_both, run_stack

RELEASE = "kubernetes:helm.sh/v3:Release"


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
    # Kiali supports remote clusters only with the anonymous (or OpenID) strategy: view-only, and no pod reaches it.
    assert kiali.get("values")["auth"] == {"strategy": "anonymous"}
    assert kiali.get("values")["deployment"]["view_only_mode"] is True
    assert kiali.get("values")["kubernetes_config"] == {"cluster_name": "primary"}
    [policy] = [
        r for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy") if r.get("metadata.name") == "kiali"
    ]
    assert policy.get("spec.ingress") == [
        {
            "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
            "ports": [{"protocol": "TCP", "port": 9090}],
        }
    ]


def test_grafana_gets_istios_dashboards_and_meshburst_s_before_it_starts():
    run = run_stack("primary", {"addons": {"grafana": True}, "burstMode": "auto", "burstHighRps": 40})
    grafana = releases(run)["grafana"]
    values = grafana.get("values")
    assert values["dashboardsConfigMaps"] == {
        "istio": "istio-grafana-dashboards",
        "meshburst": "meshburst-grafana-dashboards",
    }
    maps = {m.get("metadata.name"): m for m in run.of_type("kubernetes:core/v1:ConfigMap")}
    istio, meshburst = maps["istio-grafana-dashboards"], maps["meshburst-grafana-dashboards"]
    assert sorted(istio.get("data")) == sorted(ISTIO_DASHBOARDS)
    board = json.loads(meshburst.get("data")["meshburst-dashboard.json"])
    rate = next(p for p in board["panels"] if p["title"] == "Offered request rate vs thresholds")
    assert [s["value"] for s in rate["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 10, 40]
    assert "Controller decisions" in {p["title"] for p in board["panels"]}, "auto mode: the controller's panels"
    # The chart mounts the ConfigMaps as required volumes: they exist before the release installs.
    assert {istio.urn, meshburst.urn} <= run.created_before(grafana)


def test_the_burst_stack_gives_kiali_a_view_only_token_kubeconfig_kept_secret():
    primary, burst = run_both({"addons": {"kiali": True}}, {"addons": {"kiali": True}})
    secret = next(r for r in burst.of_type("kubernetes:core/v1:Secret") if r.name == "kiali-remote-secret")
    assert burst.provider_name(secret) == "primary-access", "written where Kiali runs"
    assert secret.get("metadata.labels") == {"kiali.io/multiCluster": "true"}
    assert secret.get("metadata.annotations") == {"kiali.io/cluster": "burst"}
    assert secret.is_secret("stringData")
    kubeconfig = yaml.safe_load(secret.get("stringData")["burst"])
    assert kubeconfig["users"][0]["user"] == {"token": FAKE_READER_TOKEN}
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://10.128.0.3", "the burst's private endpoint"
    role = next(
        r
        for r in burst.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
        if r.name == "kiali-remote-viewer"
    )
    assert burst.provider_name(role) != "primary-access"
    verbs = {verb for rule in role.get("rules") for verb in rule["verbs"]}
    assert not verbs & {"patch", "update", "delete", "deletecollection"}, "view-only"
    # Kiali reads remote secrets when it starts: the burst stack restarts it once the secret is written.
    restart = next(r for r in burst.resources if r.type == "kubernetes:apps/v1:DeploymentPatch")
    assert restart.get("metadata") == {"name": "kiali", "namespace": "istio-system"}
    assert secret.urn in burst.created_before(restart)
    # The primary's Kiali mounts that secret, optional: it starts before the burst stack exists.
    kiali = releases(primary)["kiali"]
    assert kiali.get("values")["deployment"]["custom_secrets"] == [
        {
            "name": "kiali-remote-cluster-secret-burst",
            "mount": "/kiali-remote-cluster-secrets/kiali-remote-cluster-secret-burst",
            "optional": True,
        }
    ]
    assert secret.get("metadata.name") == "kiali-remote-cluster-secret-burst"


def test_without_kiali_the_burst_stack_restarts_nothing(burst_run: Run):
    assert not [r for r in burst_run.resources if r.type == "kubernetes:apps/v1:DeploymentPatch"]


def test_prometheus_can_be_turned_off_in_manual_mode():
    run = run_stack("primary", {"addons": {"prometheus": False}})
    assert "prometheus" not in releases(run)
