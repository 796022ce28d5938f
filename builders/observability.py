"""The observability add-ons' charts, addresses and Helm values (Prometheus as Istio's own addon is set up)."""

from __future__ import annotations

from typing import Any

from builders.istio import ISTIO_NAMESPACE

PROMETHEUS_CHART = ("https://prometheus-community.github.io/helm-charts", "prometheus", "27.46.0")
GRAFANA_CHART = ("https://grafana.github.io/helm-charts", "grafana", "8.0.0")
KIALI_CHART = ("https://kiali.org/helm-charts", "kiali-server", "2.5.0")
PROMETHEUS_URL = f"http://prometheus.{ISTIO_NAMESPACE}:9090"
GRAFANA_URL = f"http://grafana.{ISTIO_NAMESPACE}:3000"
# Shorter than Istio's 15 s: burstwatch reacts within one scrape plus two of its polls.
SCRAPE_INTERVAL = "5s"
# Every global is stated: Helm merges `server.global` key by key over the chart's (scrape_timeout 10s,
# evaluation_interval 1m), and Prometheus refuses a timeout longer than the interval. A scrape gives up
# before the next one starts.
SCRAPE_TIMEOUT = "4s"
# No rules are installed; rules added later evaluate as often as samples arrive.
EVALUATION_INTERVAL = SCRAPE_INTERVAL
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}


def prometheus_values() -> dict[str, Any]:
    """Server only, no sidecar, no persistence, service prometheus:9090 (what Istio's addon and docs use)."""
    return {
        "alertmanager": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "kube-state-metrics": {"enabled": False},
        "prometheus-node-exporter": {"enabled": False},
        "server": {
            "fullnameOverride": "prometheus",
            "podLabels": NO_SIDECAR,
            "persistentVolume": {"enabled": False},
            "service": {"servicePort": 9090},
            "readinessProbeInitialDelay": 0,
            "global": {
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_TIMEOUT,
                "evaluation_interval": EVALUATION_INTERVAL,
            },
            "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        },
    }


def grafana_values() -> dict[str, Any]:
    """Grafana with Prometheus as its default data source; the chart generates the admin password."""
    return {
        "fullnameOverride": "grafana",
        "podLabels": NO_SIDECAR,
        "testFramework": {"enabled": False},
        "service": {"port": 3000},
        "datasources": {
            "datasources.yaml": {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "type": "prometheus",
                        "url": PROMETHEUS_URL,
                        "access": "proxy",
                        "isDefault": True,
                    }
                ],
            }
        },
    }


def kiali_values(with_grafana: bool) -> dict[str, Any]:
    """Kiali reading the mesh's Prometheus; login with a service-account token, not anonymous."""
    return {
        "auth": {"strategy": "token"},
        "deployment": {"pod_labels": NO_SIDECAR},
        "external_services": {
            "prometheus": {"url": PROMETHEUS_URL},
            "grafana": {"enabled": with_grafana, "internal_url": GRAFANA_URL},
        },
    }
