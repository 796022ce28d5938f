"""SharkCanary: shark v1 and v2 side by side, split by `canaryWeight`, v2 always for the canary header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import pulumi

from apps.contract import SHARK_PORT
from builders.istio import http_gateway
from builders.routes import HeaderOverride, RouteSpec
from builders.workloads import FROM_ISTIO_SYSTEM, Resources, WorkloadSpec, service_manifest
from components.weighted_route import WeightedRoute
from resources.kubernetes import custom_resource, register_workload, service

APP = "shark"
PORT = 8080
VERSIONS = ("v1", "v2")
CANARY_HEADER = HeaderOverride(name="canary", value="canary-tester", subset="v2")
GATEWAY = "shark-gateway"


def shark_workloads(images: Mapping[str, pulumi.Input[str]]) -> list[WorkloadSpec]:
    return [
        WorkloadSpec(
            name=f"{APP}-{version}",
            labels={"app": APP, "version": version},
            image=images[f"shark-{version}"],
            port=PORT,
            resources=Resources(cpu_request="50m", memory_request="64Mi", cpu_limit="250m", memory_limit="128Mi"),
            # Only the ingress gateway (istio-system) reaches the site.
            allow_from=[FROM_ISTIO_SYSTEM],
        )
        for version in VERSIONS
    ]


def shark_route(namespace: str, canary_weight: int) -> RouteSpec:
    return RouteSpec(
        name=APP,
        namespace=namespace,
        host=APP,
        subsets={version: {"version": version} for version in VERSIONS},
        share_to_second=canary_weight,
        port=PORT,
        hosts=["*"],
        gateways=[GATEWAY],
        header_override=CANARY_HEADER,
    )


class SharkCanaryArgs(TypedDict):
    namespace: str
    """Apps namespace (sidecar injection on)."""
    images: Mapping[str, pulumi.Input[str]]
    """Image references by name; uses shark-v1 and shark-v2."""
    canary_weight: int
    """Percent of traffic for v2."""


class SharkCanary(pulumi.ComponentResource):
    def __init__(self, name: str, args: SharkCanaryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:apps:SharkCanary", name, None, opts)
        namespace = args["namespace"]
        child = pulumi.ResourceOptions(parent=self)
        for spec in shark_workloads(args["images"]):
            register_workload(f"{name}-{spec.name}", spec, namespace, child)
        service(f"{name}-service", service_manifest(APP, namespace, {"app": APP}, PORT, PORT), child)
        custom_resource(f"{name}-gateway", http_gateway(GATEWAY, namespace, SHARK_PORT), child)
        WeightedRoute(f"{name}-route", {"spec": shark_route(namespace, args["canary_weight"])}, child)
        self.register_outputs({})
