"""IstioControlPlane: istiod on the primary, its gateways, and istiod exposed to remote clusters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_gcp as gcp

from builders.istio import (
    EASTWEST_GATEWAY,
    INGRESS_GATEWAY,
    base_values,
    eastwest_gateway_values,
    expose_istiod_objects,
    ingress_gateway_values,
    istiod_primary_values,
)
from resources.istio_install import child_waiting_for, install_istio_core
from resources.kubernetes import custom_resource, istio_release


class IstioControlPlaneArgs(TypedDict):
    version: str
    """Istio chart version, e.g. 1.30.3."""
    cluster: str
    """Istio cluster name of the primary (multiCluster.clusterName)."""
    mesh_id: str
    """Mesh ID shared by every cluster of the mesh."""
    network: str
    """Istio network name; one network, since the clusters share a flat VPC."""
    project: str
    """GCP project where the gateways' addresses are reserved."""
    region: str
    """Region of the cluster; both addresses are regional."""
    subnetwork: pulumi.Input[str]
    """The cluster's subnetwork, where istiod's internal address is reserved."""
    apps_namespace: str
    """The apps' namespace, created with sidecar injection on."""
    ingress_ports: Mapping[str, int]
    """Ports the apps serve on at the public ingress gateway (port name -> port)."""


class IstioControlPlane(pulumi.ComponentResource):
    istiod_address: pulumi.Output[str]
    """Reserved internal IP of the east-west gateway, where remotes reach istiod."""
    ingress_ip: pulumi.Output[str]
    """Reserved public IP of the ingress gateway."""
    apps_namespace: str
    """Namespace of the apps, sidecar injection on."""
    ready: list[pulumi.Resource]
    """What apps wait for: their namespace (injection on) and the ingress gateway their Gateways bind to."""
    system_namespace: pulumi.Resource
    """istio-system, which add-ons installed there (no sidecar, no Istio object) need and nothing more."""

    def __init__(self, name: str, args: IstioControlPlaneArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:istio:IstioControlPlane", name, None, opts)
        version = args["version"]
        # Reserved up front, so the program knows both addresses without reading what its releases create
        # (a read of a missing Service would break every preview after a failed first run). On destroy they
        # go after the gateway releases: helm uninstall waits for the Services, whose load-balancer cleanup
        # finalizer holds them until GKE has released the forwarding rules that use these addresses.
        istiod_ip = gcp.compute.Address(
            f"{name}-istiod-address",
            name="meshburst-istiod",
            description="meshburst: the east-west gateway, where remote clusters reach istiod",
            project=args["project"],
            region=args["region"],
            subnetwork=args["subnetwork"],
            address_type="INTERNAL",
            opts=pulumi.ResourceOptions(parent=self),
        )
        ingress_ip = gcp.compute.Address(
            f"{name}-ingress-address",
            name="meshburst-ingress",
            description="meshburst: the public ingress gateway (shark site, String Hashr)",
            project=args["project"],
            region=args["region"],
            address_type="EXTERNAL",
            network_tier="PREMIUM",
            opts=pulumi.ResourceOptions(parent=self),
        )
        core = install_istio_core(
            self,
            name,
            version,
            args["network"],
            base_values(remote=False),
            istiod_primary_values(args["cluster"], args["mesh_id"], args["network"]),
            args["apps_namespace"],
        )
        # Gateways are injected by istiod's webhook, so they come after istiod is ready.
        istio_release(
            f"{name}-ingress",
            INGRESS_GATEWAY,
            "gateway",
            version,
            ingress_gateway_values(ingress_ip.address, args["ingress_ports"]),
            child_waiting_for(self, core.istiod),
        )
        eastwest = istio_release(
            f"{name}-eastwest",
            EASTWEST_GATEWAY,
            "gateway",
            version,
            eastwest_gateway_values(args["network"], istiod_ip.address),
            child_waiting_for(self, core.istiod),
        )
        for obj in expose_istiod_objects():
            custom_resource(f"{name}-{obj['metadata']['name']}", obj, child_waiting_for(self, core.base, eastwest))

        self.istiod_address = istiod_ip.address
        self.ingress_ip = ingress_ip.address
        self.apps_namespace = args["apps_namespace"]
        # Apps depend on the namespace, which waits for istiod, so every pod is injected. Not on the ingress gateway:
        # a Gateway binds to its pods whenever they come, and waiting for its load balancer cost the deploy ~1 min.
        self.ready = [core.apps_namespace]
        self.system_namespace = core.system_namespace
        self.register_outputs({"istiodAddress": self.istiod_address, "ingressIp": self.ingress_ip, "ready": self.ready})
