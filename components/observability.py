"""ObservabilityAddons: Prometheus (as Istio's own addon is set up), and optionally Grafana and Kiali.

KialiRemoteAccess (burst stack): lets the primary's Kiali read the burst cluster, so its graph shows both.
"""

from __future__ import annotations

import hashlib
from typing import NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from builders.dashboards import DashboardSettings, dashboard_config_maps
from builders.istio import ISTIO_NAMESPACE
from builders.observability import (
    GRAFANA_CHART,
    KIALI_CHART,
    KIALI_REMOTE_RULES,
    KIALI_SERVICE_ACCOUNT,
    PROMETHEUS_CHART,
    PROMETHEUS_URL,
    grafana_values,
    kiali_network_policy,
    kiali_remote_secret_metadata,
    kiali_values,
    prometheus_values,
)
from resources.kubernetes import account_token_kubeconfig, helm_release

KIALI_RESTART_ANNOTATION = "meshburst.io/remote-clusters"
"""Pod-template annotation of Kiali's Deployment that the burst stack owns: Kiali reads remote cluster secrets
only when it starts, so a new or changed secret restarts it."""


class ObservabilityAddonsArgs(TypedDict):
    prometheus: bool
    grafana: bool
    kiali: bool
    istio_version: NotRequired[str]
    """The pinned Istio version, whose dashboards Grafana gets (needed with grafana)."""
    dashboards: NotRequired[DashboardSettings]
    """What the meshburst dashboard shows (thresholds, routes, who sets the weights); defaults otherwise."""
    home_cluster: NotRequired[str]
    """Istio's name for this cluster, Kiali's home cluster (default primary)."""
    remote_clusters: NotRequired[list[str]]
    """Istio's names of the remote clusters Kiali reads (default [burst]): their secrets come from
    KialiRemoteAccess in the remote's stack."""


class ObservabilityAddons(pulumi.ComponentResource):
    prometheus_url: str | None
    """In-cluster Prometheus address, when Prometheus is on."""
    releases: list[pulumi.Resource]
    """The add-ons' Helm releases (what a reader of their metrics waits for)."""

    def __init__(self, name: str, args: ObservabilityAddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:observability:ObservabilityAddons", name, None, opts)
        if args["grafana"] and "istio_version" not in args:
            raise ValueError(f"ObservabilityAddons {name}: grafana needs istio_version, to provision its dashboards")
        # Refusals first: the dashboards of an Istio version that is not vendored fail before any resource.
        dashboards = (
            dashboard_config_maps(args["istio_version"], args.get("dashboards", DashboardSettings()))
            if args["grafana"]
            else []
        )
        child = pulumi.ResourceOptions(parent=self)
        self.releases = []
        self.prometheus_url = None
        if args["prometheus"]:
            self.releases.append(
                helm_release(f"{name}-prometheus", "prometheus", *PROMETHEUS_CHART, prometheus_values(), child)
            )
            self.prometheus_url = PROMETHEUS_URL
        if args["grafana"]:
            # The chart mounts these ConfigMaps as required volumes: Grafana's pod starts once they exist.
            maps = [
                k8s.core.v1.ConfigMap(
                    f"{name}-dashboards-{m['metadata']['labels']['grafana-dashboard-provider']}",
                    metadata=m["metadata"],
                    data=m["data"],
                    opts=child,
                )
                for m in dashboards
            ]
            self.releases.append(
                helm_release(
                    f"{name}-grafana",
                    "grafana",
                    *GRAFANA_CHART,
                    grafana_values(),
                    pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=maps)),
                )
            )
        if args["kiali"]:
            policy = kiali_network_policy()
            k8s.networking.v1.NetworkPolicy(
                f"{name}-kiali-ingress", metadata=policy["metadata"], spec=policy["spec"], opts=child
            )
            values = kiali_values(
                with_grafana=args["grafana"],
                home_cluster=args.get("home_cluster", "primary"),
                remote_clusters=args.get("remote_clusters", ["burst"]),
            )
            self.releases.append(helm_release(f"{name}-kiali", "kiali", *KIALI_CHART, values, child))
        self.register_outputs({"prometheusUrl": self.prometheus_url, "releases": self.releases})


class KialiRemoteAccessArgs(TypedDict):
    cluster: str
    """Istio's name of this (remote) cluster: the key Kiali knows it by."""
    endpoint: pulumi.Input[str]
    """The remote's API server address as Kiali (in the primary's pods) reaches it: its private endpoint."""
    ca_certificate: pulumi.Input[str]
    """The remote's CA certificate (base64)."""
    remote_provider: k8s.Provider
    """Provider of the remote cluster, where Kiali's reader and its token live."""
    primary_provider: k8s.Provider
    """Provider of the primary cluster, where Kiali reads the secret."""
    namespace_ready: pulumi.Resource
    """What creates istio-system in the remote (the remote's Istio release)."""


class KialiRemoteAccess(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    """Token kubeconfig Kiali reads the remote with (secret)."""

    def __init__(self, name: str, args: KialiRemoteAccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:observability:KialiRemoteAccess", name, None, opts)
        cluster = args["cluster"]
        remote = pulumi.ResourceOptions(parent=self, provider=args["remote_provider"])
        account = k8s.core.v1.ServiceAccount(
            f"{name}-reader",
            metadata={"name": KIALI_SERVICE_ACCOUNT, "namespace": ISTIO_NAMESPACE},
            opts=pulumi.ResourceOptions.merge(remote, pulumi.ResourceOptions(depends_on=[args["namespace_ready"]])),
        )
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-viewer",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{KIALI_SERVICE_ACCOUNT}-viewer"),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"])
                for r in KIALI_REMOTE_RULES
            ],
            opts=remote,
        )
        binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-viewer-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{KIALI_SERVICE_ACCOUNT}-viewer"),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role.metadata.name
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=KIALI_SERVICE_ACCOUNT, namespace=ISTIO_NAMESPACE)
            ],
            opts=remote,
        )
        self.kubeconfig = account_token_kubeconfig(
            f"{name}-reader-token",
            KIALI_SERVICE_ACCOUNT,
            cluster,
            args["endpoint"],
            args["ca_certificate"],
            pulumi.ResourceOptions.merge(remote, pulumi.ResourceOptions(depends_on=[account, binding])),
        )
        primary = pulumi.ResourceOptions(parent=self, provider=args["primary_provider"])
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(**kiali_remote_secret_metadata(cluster)),
            string_data={cluster: self.kubeconfig},
            opts=primary,
        )
        # Kiali mounts the secret optional (it starts before this stack exists) and reads it only at start.
        digest: pulumi.Output[str] = pulumi.Output.secret(
            self.kubeconfig.apply(lambda text: hashlib.sha256(text.encode()).hexdigest())
        )
        k8s.apps.v1.DeploymentPatch(
            f"{name}-kiali-restart",
            metadata={"name": "kiali", "namespace": ISTIO_NAMESPACE},
            spec={"template": {"metadata": {"annotations": {KIALI_RESTART_ANNOTATION: digest}}}},
            opts=pulumi.ResourceOptions.merge(primary, pulumi.ResourceOptions(depends_on=[secret])),
        )
        self.register_outputs({"kubeconfig": self.kubeconfig})
