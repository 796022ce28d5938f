"""components/observability.py: Prometheus as Istio's addon, Grafana and Kiali when asked."""

from __future__ import annotations

from tools.mockrun import Run, run_stack

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
    assert kiali.get("values")["auth"] == {"strategy": "token"}


def test_prometheus_can_be_turned_off_in_manual_mode():
    run = run_stack("primary", {"addons": {"prometheus": False}})
    assert "prometheus" not in releases(run)
