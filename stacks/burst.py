"""The burst half: a small autoscaling cluster joined to the primary's mesh as a remote."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from apps.worker.component import WorkerApp
from components.gke_cluster import GkeCluster
from components.istio_remote import IstioRemote
from components.mesh_firewall import MeshFirewall
from components.remote_secret import RemoteSecret
from components.settings import Settings

PRIMARY_CLUSTER = "primary"


def must_agree(key: str, burst_value: str, primary_value: str) -> str:
    """Both stacks must run one mesh: a burst setting that differs from the primary's stops the run."""
    if burst_value != primary_value:
        raise ValueError(
            f"meshburst:{key} = {burst_value!r} on the burst stack, but the primary stack runs {primary_value!r}: "
            f"set `pulumi config set {key} {primary_value}` on the burst stack"
        )
    return burst_value


def build_burst(settings: Settings) -> dict[str, Any]:
    """Register the burst stack's resources and return its outputs (see DESIGN.md, outputs contract)."""
    primary = pulumi.StackReference(settings.primary_stack)

    def from_primary(key: str) -> pulumi.Output[Any]:
        return primary.require_output(key)

    agreed = {
        key: from_primary(key).apply(lambda value, key=key, mine=mine: must_agree(key, mine, value))
        for key, mine in (
            ("istioVersion", settings.istio_version),
            ("meshId", settings.mesh_id),
            ("meshNetwork", settings.mesh_network),
            ("network", settings.network),
        )
    }

    # The Istio releases only resolve their version once every shared mesh setting agrees with the primary.
    checked_istio_version = pulumi.Output.all(*agreed.values()).apply(lambda _: settings.istio_version)

    cluster = GkeCluster(
        settings.cluster_name,
        {
            "project": settings.project,
            "zone": settings.zone,
            "network": agreed["network"],
            "machine_type": settings.machine_type,
            "disk_size_gb": settings.disk_size_gb,
            "deletion_protection": settings.deletion_protection,
            "autoscaling": (settings.min_nodes, settings.max_nodes),
        },
    )
    MeshFirewall(
        "mesh",
        {
            "project": settings.project,
            "network": agreed["network"],
            "pod_cidrs": [from_primary("podCidr"), cluster.pod_cidr],
            "node_tags": [from_primary("nodeTag"), cluster.node_tag],
        },
    )
    remote = IstioRemote(
        "istio",
        {
            "version": checked_istio_version,
            "cluster": settings.cluster_name,
            "control_plane_cluster": PRIMARY_CLUSTER,
            "mesh_id": settings.mesh_id,
            "network": settings.mesh_network,
            "remote_pilot_address": from_primary("istiodAddress"),
        },
        opts=pulumi.ResourceOptions(providers={"kubernetes": cluster.provider}),
    )
    # istiod lives in the primary: the remote secret is written there with the primary's own credentials.
    primary_provider = k8s.Provider("primary-access", kubeconfig=from_primary("kubeconfig"))
    RemoteSecret(
        "remote-secret",
        {
            "cluster": settings.cluster_name,
            "endpoint": cluster.endpoint,
            "ca_certificate": cluster.ca_certificate,
            "remote_provider": cluster.provider,
            "primary_provider": primary_provider,
            "reader_ready": remote.base,
        },
    )
    WorkerApp(
        "worker",
        {
            "cluster": settings.cluster_name,
            "namespace": remote.apps_namespace,
            # The primary stack built (or was given) the image; both clusters run the same worker.
            "images": {"worker": from_primary("workerImage")},
            "burst_weight": 0,
            "weights_owned_by_controller": False,
            "primary_pod_cidr": from_primary("podCidr"),
            "burst_pod_cidr": cluster.pod_cidr,
            "primary_provider": primary_provider,
        },
        opts=pulumi.ResourceOptions(providers={"kubernetes": cluster.provider}, depends_on=remote.ready),
    )
    return {
        "clusterName": cluster.cluster_name,
        "kubeconfig": cluster.kubeconfig,
        "podCidr": cluster.pod_cidr,
        "nodeTag": cluster.node_tag,
    }
