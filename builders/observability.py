"""The observability add-ons' charts, addresses and Helm values (Prometheus as Istio's own addon is set up)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from builders.dashboards import DATASOURCE_UID, dashboard_providers, dashboards_config_maps
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
    """Grafana with Prometheus as its default data source and the stack's dashboards; the chart generates the
    admin password. Dashboards: one file provider per ConfigMap the program creates (builders/dashboards.py)."""
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
                        "uid": DATASOURCE_UID,
                        "type": "prometheus",
                        "url": PROMETHEUS_URL,
                        "access": "proxy",
                        "isDefault": True,
                    }
                ],
            }
        },
        "dashboardProviders": dashboard_providers(),
        "dashboardsConfigMaps": dashboards_config_maps(),
    }


KIALI_SECRETS_DIR = "/kiali-remote-cluster-secrets"
"""Kiali reads every file under KIALI_SECRETS_DIR/<secret>/ as the kubeconfig of the cluster the file is named after."""
KIALI_MULTI_CLUSTER_LABEL = {"kiali.io/multiCluster": "true"}
KIALI_METRICS_PORT = 9090
"""The chart's `server.observability.metrics.port`, which its pod annotates for Prometheus to scrape."""


def kiali_remote_secret_name(cluster: str) -> str:
    return f"kiali-remote-cluster-secret-{cluster}"


def kiali_values(
    with_grafana: bool, home_cluster: str = "primary", remote_clusters: Sequence[str] = ("burst",)
) -> dict[str, Any]:
    """Kiali reading the mesh's Prometheus, showing the home cluster and each remote of the primary-remote mesh.

    A remote is read with the kubeconfig in its remote cluster secret (the burst stack writes it, after this
    stack: KialiRemoteAccess), mounted optional so Kiali starts before it exists. Kiali supports only the
    anonymous and OpenID strategies with remote clusters, so it is anonymous and view-only: its Service is
    internal, reached with `kubectl port-forward` (a NetworkPolicy admits no pod), so seeing it takes the
    Kubernetes rights to port-forward in istio-system.
    """
    return {
        "auth": {"strategy": "anonymous"},
        "deployment": {
            "pod_labels": NO_SIDECAR,
            "view_only_mode": True,
            "custom_secrets": [
                {
                    "name": kiali_remote_secret_name(cluster),
                    "mount": f"{KIALI_SECRETS_DIR}/{kiali_remote_secret_name(cluster)}",
                    "optional": True,
                }
                for cluster in remote_clusters
            ],
        },
        # The secrets are named above: no look-up of labelled secrets at render time (Helm's `lookup`, which
        # sees only what exists when the chart renders, and mounts them as required volumes).
        "clustering": {"autodetect_secrets": {"enabled": False}},
        "kubernetes_config": {"cluster_name": home_cluster},
        "external_services": {
            "prometheus": {"url": PROMETHEUS_URL},
            "grafana": {"enabled": with_grafana, "internal_url": GRAFANA_URL},
        },
    }


KIALI_SERVICE_ACCOUNT = "kiali-remote-reader"
"""The service account Kiali reads a remote cluster with (in the remote's istio-system)."""
_READ = ["get", "list", "watch"]
KIALI_REMOTE_RULES: list[dict[str, Any]] = [
    # The kiali-server chart's view-only ClusterRole (templates/role-viewer.yaml), less its OpenShift rules.
    {"apiGroups": [""], "resources": ["configmaps", "endpoints", "pods/log"], "verbs": _READ},
    {"apiGroups": [""], "resources": ["namespaces", "pods", "replicationcontrollers", "services"], "verbs": _READ},
    {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create", "post"]},
    {
        "apiGroups": ["extensions", "apps"],
        "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"],
        "verbs": _READ,
    },
    {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": _READ},
    {
        "apiGroups": [
            "networking.istio.io",
            "security.istio.io",
            "extensions.istio.io",
            "telemetry.istio.io",
            "gateway.networking.k8s.io",
        ],
        "resources": ["*"],
        "verbs": _READ,
    },
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"], "verbs": _READ},
]


def kiali_remote_secret_metadata(cluster: str) -> dict[str, Any]:
    """Kiali's remote cluster secret: in Kiali's namespace, its data key the cluster's name (Kiali's name for it)."""
    return {
        "name": kiali_remote_secret_name(cluster),
        "namespace": ISTIO_NAMESPACE,
        "labels": dict(KIALI_MULTI_CLUSTER_LABEL),
        "annotations": {"kiali.io/cluster": cluster},
    }


def kiali_network_policy() -> dict[str, Any]:
    """Kiali is anonymous: no pod may reach it but Prometheus (its metrics). `kubectl port-forward` still does:
    the kubelet enters the pod's own network namespace, which no NetworkPolicy filters."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "kiali", "namespace": ISTIO_NAMESPACE},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kiali"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
                    "ports": [{"protocol": "TCP", "port": KIALI_METRICS_PORT}],
                }
            ],
        },
    }
