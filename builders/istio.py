"""Helm values and Istio objects for the mesh, as pure functions (checked against the charts in tests)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pulumi

from apps.lib.meshroute import ISTIO_API  # the API version of every Istio object meshburst writes

ISTIO_CHART_REPO = "https://istio-release.storage.googleapis.com/charts"
ISTIO_NAMESPACE = "istio-system"
INGRESS_GATEWAY = "istio-ingressgateway"
EASTWEST_GATEWAY = "istio-eastwestgateway"
ISTIOD_HOST = f"istiod.{ISTIO_NAMESPACE}.svc.cluster.local"
# Ports a remote cluster needs on the primary: xDS/CA (15012) and the injection/validation webhook (15017).
ISTIOD_XDS_PORT = 15012
ISTIOD_WEBHOOK_PORT = 15017
# The gateway chart's own ports; its list is replaced, not merged, so they are repeated with the apps'.
INGRESS_DEFAULT_PORTS: Mapping[str, int] = MappingProxyType({"status-port": 15021, "http2": 80, "https": 443})


def base_values(remote: bool) -> dict[str, Any]:
    """`base` chart: CRDs and cluster roles. A remote takes the remote profile."""
    return {"profile": "remote"} if remote else {}


def _mesh_globals(cluster: str, mesh_id: str, network: str) -> dict[str, Any]:
    return {"meshID": mesh_id, "multiCluster": {"clusterName": cluster}, "network": network}


def istiod_primary_values(cluster: str, mesh_id: str, network: str) -> dict[str, Any]:
    """istiod on the primary, serving its own cluster and, through the east-west gateway, remotes."""
    return {
        "global": {**_mesh_globals(cluster, mesh_id, network), "externalIstiod": True},
        "meshConfig": {"accessLogFile": "/dev/stdout"},
    }


def istiod_remote_values(
    cluster: str, mesh_id: str, network: str, remote_pilot_address: pulumi.Input[str]
) -> dict[str, Any]:
    """The `istiod` chart on a remote: no istiod, just the webhooks and config pointing at the primary."""
    return {
        "profile": "remote",
        "global": {
            **_mesh_globals(cluster, mesh_id, network),
            "configCluster": True,
            "remotePilotAddress": remote_pilot_address,
        },
        "istiodRemote": {"injectionPath": f"/inject/cluster/{cluster}/net/{network}"},
    }


def ingress_gateway_values(address: pulumi.Input[str], app_ports: Mapping[str, int]) -> dict[str, Any]:
    """The public ingress gateway on a reserved address, selected by `istio: ingressgateway` in app Gateways.

    `app_ports` (port name -> port) are the ports apps serve on; the chart's own ones come first.
    """
    defaults = dict(INGRESS_DEFAULT_PORTS)
    named = {**defaults, **{name: port for name, port in app_ports.items() if name not in defaults}}
    clashes = sorted(name for name, port in app_ports.items() if name in defaults and defaults[name] != port)
    if clashes:
        raise ValueError(f"ingress ports {clashes} are the gateway chart's own, on other ports: {defaults}")
    ports = [{"name": name, "port": port, "protocol": "TCP", "targetPort": port} for name, port in named.items()]
    return {
        "name": INGRESS_GATEWAY,
        "labels": {"app": INGRESS_GATEWAY, "istio": "ingressgateway"},
        # A reserved regional address (GKE honours spec.loadBalancerIP): the URLs survive a recreated Service.
        "service": {"type": "LoadBalancer", "loadBalancerIP": address, "ports": ports},
    }


def eastwest_gateway_values(network: str, address: pulumi.Input[str]) -> dict[str, Any]:
    """The east-west gateway: istiod's ports on a reserved internal address of the shared VPC only.

    Remote clusters are configured with this address; were it ephemeral, a recreated Service would cut
    them off from their control plane without a word.
    """
    return {
        "name": EASTWEST_GATEWAY,
        # Makes the chart expose 15021/15443/15012/15017 and label the pods with the network.
        "networkGateway": network,
        "labels": {"app": EASTWEST_GATEWAY, "istio": "eastwestgateway", "topology.istio.io/network": network},
        "service": {
            "type": "LoadBalancer",
            "loadBalancerIP": address,
            "annotations": {
                "networking.gke.io/load-balancer-type": "Internal",
                # A burst cluster in another region of the same VPC can still reach istiod.
                "networking.gke.io/internal-load-balancer-allow-global-access": "true",
            },
        },
    }


def expose_istiod_objects() -> list[dict[str, Any]]:
    """Gateway + VirtualService routing 15012/15017 on the east-west gateway to istiod (Istio's sample)."""
    gateway_name = "istiod-gateway"
    ports = ((ISTIOD_XDS_PORT, "tls-istiod", ISTIOD_XDS_PORT), (ISTIOD_WEBHOOK_PORT, "tls-istiodwebhook", 443))
    gateway = {
        "apiVersion": ISTIO_API,
        "kind": "Gateway",
        "metadata": {"name": gateway_name, "namespace": ISTIO_NAMESPACE},
        "spec": {
            "selector": {"istio": "eastwestgateway"},
            "servers": [
                {
                    "port": {"name": name, "number": port, "protocol": "tls"},
                    "tls": {"mode": "PASSTHROUGH"},
                    "hosts": ["*"],
                }
                for port, name, _ in ports
            ],
        },
    }
    virtual_service = {
        "apiVersion": ISTIO_API,
        "kind": "VirtualService",
        "metadata": {"name": "istiod-vs", "namespace": ISTIO_NAMESPACE},
        "spec": {
            "hosts": ["*"],
            "gateways": [gateway_name],
            "tls": [
                {
                    "match": [{"port": port, "sniHosts": ["*"]}],
                    "route": [{"destination": {"host": ISTIOD_HOST, "port": {"number": target}}}],
                }
                for port, _, target in ports
            ],
        },
    }
    return [gateway, virtual_service]


def apps_namespace_labels() -> dict[str, str]:
    """Labels of the apps namespace: sidecar injection on."""
    return {"istio-injection": "enabled"}


def http_gateway(name: str, namespace: str, port: int) -> dict[str, Any]:
    """A Gateway on the public ingress gateway for plain HTTP on one port, any host."""
    return {
        "apiVersion": ISTIO_API,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": port, "name": f"http-{port}", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    }
