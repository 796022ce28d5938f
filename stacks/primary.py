"""The primary half: its cluster, the Istio control plane and the apps that live there."""

from __future__ import annotations

from typing import Any

import pulumi

from apps.contract import APPS_NAMESPACE, HASHR_PORT, INGRESS_PORTS
from apps.shark.component import SharkCanary
from apps.worker.component import HashrApp
from apps.worker.split import WorkerSplit
from builders.dashboards import DashboardSettings
from components.cloud_nat import CloudNat
from components.gke_cluster import GkeCluster
from components.image_registry import ImageRegistry
from components.istio_control_plane import IstioControlPlane
from components.observability import ObservabilityAddons
from config.settings import Settings


def dashboard_settings(settings: Settings) -> DashboardSettings:
    """What the meshburst dashboard draws for this stack: a weight is shown as configured in the manual modes; in
    progressive or auto mode the controller's own gauges show it."""
    canary = settings.canary
    return DashboardSettings(
        canary_weight=settings.canary_weight if canary.mode == "manual" else None,
        canary_steps=canary.steps,
        max_error_percent=canary.max_error_percent,
        max_p99_ms=canary.max_p99_ms,
        burst_weight=settings.burst_weight if settings.burst_mode == "manual" else None,
        high_rps=settings.burst_high_rps,
        low_rps=settings.burst_low_rps,
    )


def build_primary(settings: Settings) -> dict[str, Any]:
    """Register the primary stack's resources and return its outputs (see DESIGN.md, outputs contract)."""
    images = ImageRegistry(
        "images",
        {
            "project": settings.project,
            "region": settings.region,
            "prebuilt": settings.images,
            "kms_key": settings.security.kms_key,
        },
    )
    # Egress for both clusters' private nodes; in an auto-mode VPC the region's subnetwork bears the network's name.
    nat = CloudNat(
        "nat",
        {
            "project": settings.project,
            "region": settings.region,
            "network": settings.network,
            "subnetworks": [settings.network],
        },
    )
    cluster = GkeCluster(
        settings.cluster_name,
        {
            "project": settings.project,
            "zone": settings.zone,
            "network": settings.network,
            "machine_type": settings.machine_type,
            "disk_size_gb": settings.disk_size_gb,
            "deletion_protection": settings.deletion_protection,
            "node_count": settings.node_count,
            "image_repository": images.repository,
            "security": settings.security,
            "egress": [nat],
        },
    )
    in_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
    mesh = IstioControlPlane(
        "istio",
        {
            "version": settings.istio_version,
            "cluster": settings.cluster_name,
            "mesh_id": settings.mesh_id,
            "network": settings.mesh_network,
            "project": settings.project,
            "region": settings.region,
            "subnetwork": cluster.subnetwork,
            "apps_namespace": APPS_NAMESPACE,
            "ingress_ports": INGRESS_PORTS,
        },
        opts=in_cluster,
    )
    # Apps wait for the namespace (with injection) and the ingress gateway their Gateways bind to.
    apps = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider}, depends_on=mesh.ready)
    addons = ObservabilityAddons(
        "observability",
        {
            "prometheus": settings.addons.prometheus,
            "grafana": settings.addons.grafana,
            "kiali": settings.addons.kiali,
            "istio_version": settings.istio_version,
            "dashboards": dashboard_settings(settings),
        },
        # Only their namespace: they run in istio-system without sidecars and create no Istio object, so they
        # need neither istiod nor the apps' namespace nor the ingress gateway. (They waited for the last two,
        # `mesh.ready`: removed, it held Prometheus back until the gateway's load balancer was up, ~3 min.)
        opts=pulumi.ResourceOptions(providers={"kubernetes": cluster.provider}, depends_on=[mesh.system_namespace]),
    )
    SharkCanary(
        "shark",
        {
            "namespace": mesh.apps_namespace,
            "images": images.refs,
            "canary_weight": settings.canary_weight,
            "canary": settings.canary,
            "routing": settings.canary_routing,
            "controller_image": images.refs["controller"],
            "prometheus_url": addons.prometheus_url,
            "metrics_ready": addons.releases,
        },
        opts=apps,
    )
    hashr = HashrApp(
        "worker",
        {
            "namespace": mesh.apps_namespace,
            "worker_image": images.refs["worker"],
            "frontend_image": images.refs["frontend"],
            "max_rps": settings.hashr_max_rps,
            "split_mode": settings.burst_mode,
        },
        opts=apps,
    )
    WorkerSplit(
        "worker",
        {
            "namespace": mesh.apps_namespace,
            "mode": settings.burst_mode,
            "burst_weight": settings.burst_weight,
            "high_rps": settings.burst_high_rps,
            "low_rps": settings.burst_low_rps,
            "policy": settings.burst_policy,
            "capacity_rps": settings.primary_capacity_rps,
            "controller_image": images.refs["controller"],
            "prometheus_url": addons.prometheus_url,
            "metrics_ready": addons.releases,
        },
        opts=apps,
    )
    return {
        "clusterName": cluster.cluster_name,
        "zone": settings.zone,
        "kubeconfig": cluster.kubeconfig,
        "podCidr": cluster.pod_cidr,
        "nodeTag": cluster.node_tag,
        "apiAccess": cluster.api_access,
        "network": settings.network,
        "istiodAddress": mesh.istiod_address,
        "ingressIp": mesh.ingress_ip,
        "istioVersion": settings.istio_version,
        "meshId": settings.mesh_id,
        "meshNetwork": settings.mesh_network,
        "workerImage": images.refs["worker"],
        "project": settings.project,
        # The burst stack agrees on it: with Kiali on, it gives Kiali a reader of the burst cluster.
        "kiali": str(settings.addons.kiali).lower(),
        "sharkUrl": mesh.ingress_ip.apply(lambda ip: f"http://{ip}/"),
        "canaryWeight": settings.canary_weight,
        "canaryMode": settings.canary.mode,
        # Loud on purpose: true while v2 is being delayed or aborted on purpose (canaryFault).
        "canaryFaultActive": settings.canary_routing.fault is not None,
        "hashrUrl": mesh.ingress_ip.apply(lambda ip: f"http://{ip}:{HASHR_PORT}/"),
        "hashrToken": hashr.hashr_token,
        "burstMode": settings.burst_mode,
    }
