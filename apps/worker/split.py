"""WorkerSplit: who owns the share of worker traffic sent to the burst cluster, and the route that carries it.

`manual`: Pulumi owns the weights (`burstWeight`). `auto`: the burstwatch controller owns them and Pulumi
deploys it; `burstWeight` is then only the split the route starts with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import pulumi

from apps.burstwatch.component import Burstwatch, BurstwatchArgs
from apps.worker.contract import (
    CLUSTER_TYPE_LABEL,
    CLUSTER_TYPES,
    FRONTEND_APP,
    SERVICE_PORT,
    WORKER_ROUTE,
    WORKER_SERVICE,
)
from builders.routes import RouteSpec
from components.weighted_route import WeightedRoute

MODES = ("manual", "auto")


def worker_route(namespace: str, burst_weight: int) -> RouteSpec:
    """worker-service split between the clusters' workers by their `cluster-type` label, burst second."""
    return RouteSpec(
        name=WORKER_ROUTE,
        namespace=namespace,
        host=WORKER_SERVICE,
        subsets={cluster: {CLUSTER_TYPE_LABEL: label} for cluster, label in CLUSTER_TYPES.items()},
        share_to_second=burst_weight,
        port=SERVICE_PORT,
        gateways=["mesh"],
        load_balancer="RANDOM",
    )


def burstwatch_args(
    namespace: str, image: pulumi.Input[str], prometheus_url: str, high_rps: float, low_rps: float
) -> BurstwatchArgs:
    """The controller that owns the split in `auto` mode: the route, subsets and rate it watches come from here."""
    return {
        "namespace": namespace,
        "image": image,
        "route_name": WORKER_ROUTE,
        "subsets": tuple(CLUSTER_TYPES),
        "destination_service": f"{WORKER_SERVICE}.{namespace}.svc.cluster.local",
        "source_workload": FRONTEND_APP,
        "prometheus_url": prometheus_url,
        "high_rps": high_rps,
        "low_rps": low_rps,
    }


class WorkerSplitArgs(TypedDict):
    namespace: str
    """Apps namespace, where the route and the controller live."""
    mode: str
    """`manual` (Pulumi owns the weights) or `auto` (burstwatch owns them)."""
    burst_weight: int
    """Percent of worker traffic for the burst cluster (in `auto`, only the starting split)."""
    high_rps: float
    """auto: above this request rate, work goes to the burst cluster."""
    low_rps: float
    """auto: below this request rate, work comes back."""
    controller_image: pulumi.Input[str]
    """auto: the burstwatch image."""
    prometheus_url: str | None
    """auto: the in-cluster Prometheus the controller asks for the request rate."""
    metrics_ready: Sequence[pulumi.Resource]
    """auto: what must run before the controller can read the rate (the Prometheus release)."""


class WorkerSplit(pulumi.ComponentResource):
    def __init__(self, name: str, args: WorkerSplitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:apps:WorkerSplit", name, None, opts)
        mode = args["mode"]
        if mode not in MODES:
            raise ValueError(f"WorkerSplit {name}: mode must be one of {list(MODES)}, got {mode!r}")
        stack, project = pulumi.get_stack(), pulumi.get_project()
        route = WeightedRoute(
            f"{name}-split",
            {"spec": worker_route(args["namespace"], args["burst_weight"]), "weights_owned_elsewhere": mode == "auto"},
            pulumi.ResourceOptions(
                parent=self,
                # Until the split had its own component, the route was a child of WorkerApp(name).
                aliases=[pulumi.Alias(parent=f"urn:pulumi:{stack}::{project}::meshburst:apps:WorkerApp::{name}")],
            ),
        )
        if mode == "auto":
            prometheus_url = args["prometheus_url"]
            if prometheus_url is None:
                raise ValueError(f"WorkerSplit {name}: auto mode needs Prometheus (prometheus_url is None)")
            Burstwatch(
                "burstwatch",
                burstwatch_args(
                    args["namespace"], args["controller_image"], prometheus_url, args["high_rps"], args["low_rps"]
                ),
                pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[route, *args["metrics_ready"]],
                    # It was a top-level resource before it belonged to the split.
                    aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)],
                ),
            )
        self.register_outputs({})
