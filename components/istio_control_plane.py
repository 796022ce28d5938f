"""IstioControlPlane: istiod on the primary, its gateways, and istiod exposed to remote clusters."""

from __future__ import annotations

from typing import TypedDict

import pulumi

from components import istio_values as iv
from components.istio_core import after, install_istio_core
from components.k8s_objects import custom_resource, istio_release, load_balancer_ip


class IstioControlPlaneArgs(TypedDict):
    version: str
    """Istio chart version, e.g. 1.30.3."""
    cluster: str
    """Istio cluster name of the primary (multiCluster.clusterName)."""
    mesh_id: str
    """Mesh ID shared by every cluster of the mesh."""
    network: str
    """Istio network name; one network, since the clusters share a flat VPC."""


class IstioControlPlane(pulumi.ComponentResource):
    istiod_address: pulumi.Output[str]
    """Internal IP of the east-west gateway, where remotes reach istiod."""
    ingress_ip: pulumi.Output[str]
    """Public IP of the ingress gateway."""
    apps_namespace: str
    """Namespace of the apps, sidecar injection on."""

    def __init__(self, name: str, args: IstioControlPlaneArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:istio:IstioControlPlane", name, None, opts)
        version = args["version"]
        core = install_istio_core(
            self,
            name,
            version,
            args["network"],
            iv.base_values(remote=False),
            iv.istiod_primary_values(args["cluster"], args["mesh_id"], args["network"]),
        )
        # Gateways are injected by istiod's webhook, so they come after istiod is ready.
        ingress = istio_release(
            f"{name}-ingress",
            iv.INGRESS_GATEWAY,
            "gateway",
            version,
            iv.ingress_gateway_values(),
            after(self, core.istiod),
        )
        eastwest = istio_release(
            f"{name}-eastwest",
            iv.EASTWEST_GATEWAY,
            "gateway",
            version,
            iv.eastwest_gateway_values(args["network"]),
            after(self, core.istiod),
        )
        for obj in iv.expose_istiod_objects():
            custom_resource(f"{name}-{obj['metadata']['name']}", obj, after(self, core.base, eastwest))

        self.istiod_address = load_balancer_ip(
            f"{name}-eastwest-service", f"{iv.ISTIO_NAMESPACE}/{iv.EASTWEST_GATEWAY}", after(self, eastwest)
        )
        self.ingress_ip = load_balancer_ip(
            f"{name}-ingress-service", f"{iv.ISTIO_NAMESPACE}/{iv.INGRESS_GATEWAY}", after(self, ingress)
        )
        self.apps_namespace = iv.APPS_NAMESPACE
        # Apps depend on these: the namespace exists and the ingress gateway is there to bind Gateways to.
        self.ready: list[pulumi.Resource] = [core.apps_namespace, ingress]
        self.register_outputs({"istiodAddress": self.istiod_address, "ingressIp": self.ingress_ip})
