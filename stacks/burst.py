"""The burst half: a small autoscaling cluster joined to the primary's mesh as a remote."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from apps.contract import APPS_NAMESPACE
from apps.worker.component import BurstWorkers
from components.cloud_nat import same_region_gate
from components.gke_cluster import GkeCluster
from components.image_registry import repository_path
from components.istio_remote import IstioRemote
from components.mesh_firewall import MeshFirewall
from components.observability import KialiRemoteAccess
from components.remote_secret import RemoteSecret
from config.settings import ConfigError, Settings

PRIMARY_CLUSTER = "primary"
# Settings both stacks must share: (primary output, config key, what the burst stack's settings say).
SHARED_SETTINGS: tuple[tuple[str, str, Callable[[Settings], str]], ...] = (
    ("project", "gcp:project", lambda s: s.project),
    ("network", "meshburst:network", lambda s: s.network),
    ("istioVersion", "meshburst:istioVersion", lambda s: s.istio_version),
    ("meshId", "meshburst:meshId", lambda s: s.mesh_id),
    ("meshNetwork", "meshburst:meshNetwork", lambda s: s.mesh_network),
    ("kiali", "meshburst:addons.kiali", lambda s: str(s.addons.kiali).lower()),
)


def disagreements(stack: str, mine: Mapping[str, str], primary: Mapping[str, str]) -> list[str]:
    """One problem per shared setting (config key -> value) that differs from the primary's, with its fix."""

    def command(key: str) -> str:
        # A field inside an object key (addons.kiali) is set by path.
        path = "--path " if "." in key else ""
        return f"pulumi config set {path}{key.removeprefix('meshburst:')} {primary[key]} -s {stack}"

    return [
        f"{key} = {mine[key]!r} on the {stack} stack, but the primary stack runs {primary[key]!r}: set `{command(key)}`"
        for key in mine
        if mine[key] != primary[key]
    ]


def _agreement_gate(settings: Settings, primary: pulumi.StackReference) -> pulumi.Output[pulumi.Resource]:
    """The StackReference, once every shared setting agrees with the primary's; a mismatch fails it.

    Every top-level resource of this stack depends on the gate (children wait for their parent), so a
    mismatch registers nothing but the StackReference.
    """
    stack = pulumi.get_stack()
    mine = {key: read(settings) for _, key, read in SHARED_SETTINGS}
    theirs = pulumi.Output.all(*(primary.require_output(output) for output, _, _ in SHARED_SETTINGS))

    def check(values: list[Any]) -> pulumi.Resource:
        problems = disagreements(
            stack, mine, {key: str(v) for (_, key, _), v in zip(SHARED_SETTINGS, values, strict=True)}
        )
        if problems:
            raise ConfigError(problems)
        return primary

    return theirs.apply(check)


def build_burst(settings: Settings) -> dict[str, Any]:
    """Register the burst stack's resources and return its outputs (see DESIGN.md, outputs contract)."""
    primary = pulumi.StackReference(settings.primary_stack)
    # The burst's private nodes use the primary's Cloud NAT, which serves the primary's region only.
    gated = pulumi.ResourceOptions(
        depends_on=[
            _agreement_gate(settings, primary),
            same_region_gate(settings.zone, primary.require_output("zone"), primary),
        ]
    )

    def from_primary(key: str) -> pulumi.Output[Any]:
        return primary.require_output(key)

    cluster = GkeCluster(
        settings.cluster_name,
        {
            "project": settings.project,
            "zone": settings.zone,
            "network": settings.network,
            "machine_type": settings.machine_type,
            "disk_size_gb": settings.disk_size_gb,
            "deletion_protection": settings.deletion_protection,
            "autoscaling": (settings.min_nodes, settings.max_nodes),
            # The primary's repository (same project and region), where the worker image lives.
            "image_repository": repository_path(settings.project, settings.region),
            "security": settings.security,
            # istiod runs in the primary's pods and watches this API server over the VPC.
            "api_sources_in_vpc": [from_primary("podCidr")],
        },
        opts=gated,
    )
    firewall = MeshFirewall(
        "mesh",
        {
            "project": settings.project,
            "network": settings.network,
            "pod_cidrs": [from_primary("podCidr"), cluster.pod_cidr],
            "node_tags": [from_primary("nodeTag"), cluster.node_tag],
        },
        opts=gated,
    )
    remote = IstioRemote(
        "istio",
        {
            "version": settings.istio_version,
            "cluster": settings.cluster_name,
            "control_plane_cluster": PRIMARY_CLUSTER,
            "mesh_id": settings.mesh_id,
            "network": settings.mesh_network,
            "remote_pilot_address": from_primary("istiodAddress"),
            "apps_namespace": APPS_NAMESPACE,
        },
        opts=pulumi.ResourceOptions.merge(gated, pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})),
    )
    # istiod lives in the primary: the remote secret is written there with the primary's own credentials.
    primary_provider = k8s.Provider("primary-access", kubeconfig=from_primary("kubeconfig"), opts=gated)
    remote_secret = RemoteSecret(
        "remote-secret",
        {
            "cluster": settings.cluster_name,
            "endpoint": cluster.private_endpoint,
            "ca_certificate": cluster.ca_certificate,
            "remote_provider": cluster.provider,
            "primary_provider": primary_provider,
            # The reader's service account comes from `base`, its ClusterRole and binding from remote `istiod`.
            "reader_ready": remote.istiod,
        },
        opts=gated,
    )
    if settings.addons.kiali:
        # The primary's Kiali (addons.kiali, the same on both stacks: the gate checks it) reads this cluster too,
        # so its graph shows both, with a view-only token of its own. Without Kiali no such reader exists.
        KialiRemoteAccess(
            "kiali-remote",
            {
                "cluster": settings.cluster_name,
                "endpoint": cluster.private_endpoint,
                "ca_certificate": cluster.ca_certificate,
                "remote_provider": cluster.provider,
                "primary_provider": primary_provider,
                "namespace_ready": remote.istiod,
            },
            opts=gated,
        )
    BurstWorkers(
        "worker",
        {
            "namespace": remote.apps_namespace,
            # The primary stack built (or was given) the image; both clusters run the same worker.
            "worker_image": from_primary("workerImage"),
            "primary_pod_cidr": from_primary("podCidr"),
            "burst_pod_cidr": cluster.pod_cidr,
            "primary_provider": primary_provider,
        },
        # Burst pods need, before they can start and be ready: the injection webhook, which fails closed until
        # istiod can read this cluster (remote istiod + remote secret), and Redis in the primary (firewall).
        opts=pulumi.ResourceOptions.merge(
            gated,
            pulumi.ResourceOptions(
                providers={"kubernetes": cluster.provider}, depends_on=[*remote.ready, remote_secret, firewall]
            ),
        ),
    )
    return {
        "clusterName": cluster.cluster_name,
        "kubeconfig": cluster.kubeconfig,
        "podCidr": cluster.pod_cidr,
        "nodeTag": cluster.node_tag,
        "apiAccess": cluster.api_access,
    }
