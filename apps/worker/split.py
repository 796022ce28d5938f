"""WorkerSplit: who owns the share of worker traffic sent to the burst cluster, and the route that carries it.

`manual`: Pulumi writes the route's weights (`burstWeight`). `auto`: the controller (apps/controller, burst
policy) writes the route from the intent Pulumi keeps, moving the split with the request rate Prometheus sees;
`burstWeight` is then only the split used while no route is live yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import pulumi

from apps.controller.component import RouteController
from apps.worker.contract import (
    CLUSTER_TYPE_LABEL,
    CLUSTER_TYPES,
    FRONTEND_APP,
    RATE_WINDOW,
    SERVICE_PORT,
    SPLIT_CONTROLLER,
    WORKER_ROUTE,
    WORKER_SERVICE,
)
from builders.routes import RouteSpec
from builders.workloads import from_pods
from components.weighted_route import WeightedRoute

MODES = ("manual", "auto")
POLICIES = ("switch", "overflow")
# How the controller reads the rate, against the sidecars' 5 s scrapes (builders/observability.py) and its own
# 2 s poll; bench/burst_end_to_end.py measures what these give and README "Cloud burst, automatic" says why.
FAST_WINDOW = "15s"
"""irate() over the last two scrapes (three fit, so one missed scrape still leaves two): sees a rise in 5-10 s."""
WINDOW = RATE_WINDOW
"""rate() over six scrapes: the split comes back only once the whole window is low (a 20 s one followed the
dips of a noisy load, and flapped)."""
MIN_DWELL_SECONDS = 15
"""Three scrapes: after a move, the new destination's series has the two samples irate() needs, and one more."""
SHARE_STEP = 5
HEADROOM_PERCENT = 10
"""overflow: the primary is given 90 % of its capacity, room for the 5-10 s the reading lags a rising rate."""
HYSTERESIS_PERCENT = 10
LEAD_PERCENT = 50
"""overflow: on a steady ramp the fast reading leads the sustained one by the rise over ~12 s, and the share must
hold until ~6 s ahead (the reading's age, the next poll, istiod's push): half that lead (bench/burst_overflow.py)."""


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


def burst_settings(
    namespace: str, high_rps: float, low_rps: float, policy: str = "switch", capacity_rps: float | None = None
) -> dict[str, Any]:
    """The burst policy's settings in the route's intent (apps/controller/burst.py reads them).

    `policy`: `switch` (all to burst above high_rps, back below low_rps) or `overflow` (only the share above
    capacity_rps, the primary's capacity in requests/s).
    """
    return {
        "policy": policy,
        "highRps": high_rps,
        "lowRps": low_rps,
        "capacityRps": capacity_rps,
        "minDwellSeconds": MIN_DWELL_SECONDS,
        "burstShare": 100,
        "window": WINDOW,
        "fastWindow": FAST_WINDOW,
        "shareStep": SHARE_STEP,
        "headroomPercent": HEADROOM_PERCENT,
        "hysteresisPercent": HYSTERESIS_PERCENT,
        "leadPercent": LEAD_PERCENT,
        # `source`: the frontend's sidecar reports every request, wherever it is served. Burst workers' own
        # (`destination`) reports live in the burst cluster, which this Prometheus does not scrape.
        "reporter": "source",
        "destinationService": f"{WORKER_SERVICE}.{namespace}.svc.cluster.local",
        "sourceWorkload": FRONTEND_APP,
    }


class WorkerSplitArgs(TypedDict):
    namespace: str
    """Apps namespace, where the route and the controller live."""
    mode: str
    """`manual` (Pulumi writes the weights) or `auto` (the controller does)."""
    burst_weight: int
    """Percent of worker traffic for the burst cluster (in `auto`, only while no route is live)."""
    high_rps: float
    """auto: above this request rate, work goes to the burst cluster."""
    low_rps: float
    """auto: below this request rate, work comes back."""
    policy: str
    """auto: `switch` (all work to burst above high_rps) or `overflow` (only the share above capacity_rps)."""
    capacity_rps: float
    """auto, overflow: the requests per second the primary's workers serve at most."""
    controller_image: pulumi.Input[str]
    """auto: the controller image."""
    prometheus_url: str | None
    """auto: the in-cluster Prometheus the controller asks for the request rate."""
    metrics_ready: Sequence[pulumi.Resource]
    """auto: what must run before the controller can read the rate (the Prometheus release)."""


class WorkerSplit(pulumi.ComponentResource):
    route: WeightedRoute

    def __init__(self, name: str, args: WorkerSplitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:apps:WorkerSplit", name, None, opts)
        mode, namespace = args["mode"], args["namespace"]
        if mode not in MODES:
            raise ValueError(f"WorkerSplit {name}: mode must be one of {list(MODES)}, got {mode!r}")
        if args["policy"] not in POLICIES:
            raise ValueError(f"WorkerSplit {name}: policy must be one of {list(POLICIES)}, got {args['policy']!r}")
        stack, project = pulumi.get_stack(), pulumi.get_project()
        self.route = WeightedRoute(
            f"{name}-split",
            {
                "spec": worker_route(namespace, args["burst_weight"]),
                "policy": "burst",
                "writer": "controller" if mode == "auto" else "pulumi",
                "settings": burst_settings(
                    namespace, args["high_rps"], args["low_rps"], args["policy"], args["capacity_rps"]
                ),
            },
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
            RouteController(
                SPLIT_CONTROLLER,
                {
                    "namespace": namespace,
                    "image": args["controller_image"],
                    "policy": "burst",
                    "route": self.route,
                    "prometheus_url": prometheus_url,
                    # The Hashr page shows the split and mode it reads from the controller's /status.
                    "readers": [from_pods({"app": FRONTEND_APP})],
                },
                pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[self.route, *args["metrics_ready"]],
                    # It was a Burstwatch, and before it belonged to the split, a top-level one.
                    aliases=[
                        pulumi.Alias(type_="meshburst:apps:Burstwatch"),
                        pulumi.Alias(type_="meshburst:apps:Burstwatch", parent=pulumi.ROOT_STACK_RESOURCE),
                    ],
                ),
            )
        self.register_outputs({})
