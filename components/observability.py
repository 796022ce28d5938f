"""ObservabilityAddons: Prometheus (as Istio's own addon is set up), and optionally Grafana and Kiali."""

from __future__ import annotations

from typing import TypedDict

import pulumi

from builders.observability import (
    GRAFANA_CHART,
    KIALI_CHART,
    PROMETHEUS_CHART,
    PROMETHEUS_URL,
    grafana_values,
    kiali_values,
    prometheus_values,
)
from resources.kubernetes import helm_release


class ObservabilityAddonsArgs(TypedDict):
    prometheus: bool
    grafana: bool
    kiali: bool


class ObservabilityAddons(pulumi.ComponentResource):
    prometheus_url: str | None
    """In-cluster Prometheus address, when Prometheus is on."""
    releases: list[pulumi.Resource]
    """The add-ons' Helm releases (what a reader of their metrics waits for)."""

    def __init__(self, name: str, args: ObservabilityAddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:observability:ObservabilityAddons", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.releases = []
        self.prometheus_url = None
        if args["prometheus"]:
            self.releases.append(
                helm_release(f"{name}-prometheus", "prometheus", *PROMETHEUS_CHART, prometheus_values(), child)
            )
            self.prometheus_url = PROMETHEUS_URL
        if args["grafana"]:
            self.releases.append(helm_release(f"{name}-grafana", "grafana", *GRAFANA_CHART, grafana_values(), child))
        if args["kiali"]:
            self.releases.append(
                helm_release(f"{name}-kiali", "kiali", *KIALI_CHART, kiali_values(with_grafana=args["grafana"]), child)
            )
        self.register_outputs({"prometheusUrl": self.prometheus_url, "releases": self.releases})
