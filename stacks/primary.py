"""The primary half: its cluster, the Istio control plane and the apps that live there."""

from __future__ import annotations

from typing import Any

import pulumi

from apps.burstwatch.component import Burstwatch
from apps.shark.component import SharkCanary
from apps.worker.component import WorkerApp
from components.gke_cluster import GkeCluster
from components.image_registry import ImageRegistry
from components.istio_control_plane import IstioControlPlane
from components.istio_values import HASHR_PORT
from components.observability import ObservabilityAddons
from components.settings import Settings


def build_primary(settings: Settings) -> dict[str, Any]:
    """Register the primary stack's resources and return its outputs (see DESIGN.md, outputs contract)."""
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
        },
        opts=in_cluster,
    )
    images = ImageRegistry(
        "images", {"project": settings.project, "region": settings.region, "prebuilt": settings.images}
    )
    # Apps wait for the namespace (with injection) and the ingress gateway their Gateways bind to.
    apps = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider}, depends_on=mesh.ready)
    SharkCanary(
        "shark",
        {"namespace": mesh.apps_namespace, "images": images.refs, "canary_weight": settings.canary_weight},
        opts=apps,
    )
    addons = ObservabilityAddons(
        "observability",
        {"prometheus": settings.addons.prometheus, "grafana": settings.addons.grafana, "kiali": settings.addons.kiali},
        opts=apps,
    )
    workers = WorkerApp(
        "worker",
        {
            "cluster": settings.cluster_name,
            "namespace": mesh.apps_namespace,
            "images": images.refs,
            "burst_weight": settings.burst_weight,
            "weights_owned_by_controller": settings.burst_mode == "auto",
        },
        opts=apps,
    )
    if settings.burst_mode == "auto":
        # settings guarantee Prometheus is on in auto mode.
        assert addons.prometheus_url is not None and workers.route_name is not None
        Burstwatch(
            "burstwatch",
            {
                "namespace": mesh.apps_namespace,
                "image": images.refs["burstwatch"],
                "route_name": workers.route_name,
                "prometheus_url": addons.prometheus_url,
                "high_rps": settings.burst_high_rps,
                "low_rps": settings.burst_low_rps,
            },
            opts=pulumi.ResourceOptions(
                providers={"kubernetes": cluster.provider}, depends_on=[workers, *addons.releases]
            ),
        )
    return {
        "clusterName": cluster.cluster_name,
        "zone": settings.zone,
        "kubeconfig": cluster.kubeconfig,
        "podCidr": cluster.pod_cidr,
        "nodeTag": cluster.node_tag,
        "network": settings.network,
        "istiodAddress": mesh.istiod_address,
        "ingressIp": mesh.ingress_ip,
        "istioVersion": settings.istio_version,
        "meshId": settings.mesh_id,
        "meshNetwork": settings.mesh_network,
        "workerImage": images.refs["worker"],
        "sharkUrl": mesh.ingress_ip.apply(lambda ip: f"http://{ip}/"),
        "canaryWeight": settings.canary_weight,
        "hashrUrl": mesh.ingress_ip.apply(lambda ip: f"http://{ip}:{HASHR_PORT}/"),
        "burstMode": settings.burst_mode,
    }
