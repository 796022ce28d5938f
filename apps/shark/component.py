"""SharkCanary: shark v1 and v2 side by side, v2 always for the canary header.

`manual`: the share reaching v2 is `canaryWeight`, written by Pulumi. `progressive`: the canary controller
(apps/controller, canary policy) owns the route: a new v2 revision starts a rollout through the steps, judged on
Istio's metrics, rolled back by itself; Pulumi keeps the intent (revisions, steps, limits) it follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypedDict

import pulumi

from apps.contract import SHARK_PORT
from apps.controller.component import RouteController, RouteControllerArgs
from apps.controller.policy import REVISION_ANNOTATION
from builders.istio import http_gateway
from builders.routes import FaultInjection, RequestMatch, RouteSpec, fault_filter_manifest
from builders.workloads import FROM_ISTIO_SYSTEM, Resources, WorkloadSpec, revision, service_manifest
from components.weighted_route import WeightedRoute
from config.routing import CanaryRouting, fault_summary
from config.settings import Canary
from resources.kubernetes import custom_resource, register_workload, service

APP = "shark"
PORT = 8080
VERSIONS = ("v1", "v2")
GATEWAY = "shark-gateway"
CONTROLLER = "canarywatch"


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


def shark_route(namespace: str, canary_weight: int, routing: CanaryRouting | None = None) -> RouteSpec:
    """The shark route: `canaryMatch` requests, then sticky clients, always reach v2; the weights split the rest."""
    routing = routing or CanaryRouting()
    return RouteSpec(
        name=APP,
        namespace=namespace,
        host=APP,
        subsets={version: {"version": version} for version in VERSIONS},
        share_to_second=canary_weight,
        port=PORT,
        hosts=["*"],
        gateways=[GATEWAY],
        overrides=[
            RequestMatch(kind=m.kind, name=m.name, match_type=m.match_type, value=m.value, subset=VERSIONS[1])
            for m in routing.match
        ],
        sticky_cookie=routing.sticky_cookie,
        mirror_percent=routing.mirror_percent,
    )


def shark_fault_filter(namespace: str, fault: FaultInjection) -> dict[str, Any]:
    """The EnvoyFilter that injects `fault` into the requests v2's pods receive, and only those.

    Not a VirtualService `fault`: that applies to a whole http rule, v1's share of the weighted rule as
    much as v2's (see apps/lib/meshroute.py, fault_filter_manifest). Pulumi writes it in both canary modes:
    the controller renders only the VirtualService, so the fault stays as Pulumi set it.
    """
    labels = {"app": APP, "version": VERSIONS[1]}
    return fault_filter_manifest(f"{APP}-{VERSIONS[1]}-fault", namespace, labels, PORT, fault)


def canary_settings(
    canary: Canary, workloads: Mapping[str, WorkloadSpec], namespace: str
) -> dict[str, pulumi.Input[Any]]:
    """The canary policy's settings in the route's intent (apps/controller/canary.py reads them)."""
    stable, candidate = (workloads[f"{APP}-{version}"] for version in VERSIONS)
    return {
        "revision": revision(candidate),
        "stableRevision": revision(stable),
        "canaryImage": candidate.image,
        "target": candidate.name,
        "steps": list(canary.steps),
        "intervalSeconds": canary.interval_s,
        "maxErrorPercent": canary.max_error_percent,
        "maxP99Ms": canary.max_p99_ms,
        "maxRegressionPercent": canary.max_regression_percent,
        "minRequests": canary.min_requests,
        "progressDeadlineSeconds": canary.progress_deadline_s,
        "onDeadline": canary.on_deadline,
        "failureLimit": canary.failure_limit,
        "metrics": {"namespace": namespace, "app": APP, "stableVersion": VERSIONS[0], "canaryVersion": VERSIONS[1]},
    }


class SharkCanaryArgs(TypedDict):
    namespace: str
    """Apps namespace (sidecar injection on)."""
    images: Mapping[str, pulumi.Input[str]]
    """Image references by name; uses shark-v1 and shark-v2."""
    canary_weight: int
    """Percent of traffic for v2 (progressive: only while no route is live yet)."""
    canary: Canary
    """manual or progressive, and how a progressive rollout steps and judges."""
    routing: CanaryRouting
    """What reaches v2 beyond its weight (matches, sticky cookie, mirror) and the fault injected into v2."""
    controller_image: pulumi.Input[str]
    """progressive: the controller image."""
    prometheus_url: str | None
    """progressive: the in-cluster Prometheus whose Istio metrics judge v2."""
    metrics_ready: Sequence[pulumi.Resource]
    """progressive: what must run before the controller can read metrics (the Prometheus release)."""


class SharkCanary(pulumi.ComponentResource):
    def __init__(self, name: str, args: SharkCanaryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:apps:SharkCanary", name, None, opts)
        namespace, canary = args["namespace"], args["canary"]
        progressive = canary.mode == "progressive"
        child = pulumi.ResourceOptions(parent=self)
        workloads = {spec.name: spec for spec in shark_workloads(args["images"])}
        route = WeightedRoute(
            f"{name}-route",
            {
                "spec": shark_route(namespace, args["canary_weight"], args["routing"]),
                "policy": "canary",
                "writer": "controller" if progressive else "pulumi",
                "settings": canary_settings(canary, workloads, namespace) if progressive else {},
            },
            child,
        )
        for spec in workloads.values():
            candidate = spec.labels["version"] == VERSIONS[1]
            if progressive and candidate:
                # The controller sees a new revision in the intent before the new pods exist: it moves v2's share
                # to 0 first, and starts the steps once this Deployment has rolled the revision out.
                spec = replace(spec, pod_annotations={**spec.pod_annotations, REVISION_ANNOTATION: revision(spec)})
                register_workload(
                    f"{name}-{spec.name}",
                    spec,
                    namespace,
                    pulumi.ResourceOptions(parent=self, depends_on=[route.intent]),
                )
            else:
                register_workload(f"{name}-{spec.name}", spec, namespace, child)
        service(f"{name}-service", service_manifest(APP, namespace, {"app": APP}, PORT, PORT), child)
        custom_resource(f"{name}-gateway", http_gateway(GATEWAY, namespace, SHARK_PORT), child)
        fault = args["routing"].fault
        if fault is not None:
            # Loud in every preview and up: v2 is being broken on purpose.
            pulumi.log.warn(f"{name}: FAULT INJECTION is ON for v2: {fault_summary(fault)}", resource=self)
            custom_resource(f"{name}-v2-fault", shark_fault_filter(namespace, fault), child)
        if progressive:
            prometheus_url = args["prometheus_url"]
            if prometheus_url is None:
                raise ValueError(f"SharkCanary {name}: progressive mode needs Prometheus (prometheus_url is None)")
            controller_args: RouteControllerArgs = {
                "namespace": namespace,
                "image": args["controller_image"],
                "policy": "canary",
                "route": route,
                "prometheus_url": prometheus_url,
                "target": f"{APP}-{VERSIONS[1]}",
                "webhook_url": pulumi.Output.secret(canary.webhook_url) if canary.webhook_url else None,
            }
            RouteController(
                CONTROLLER,
                controller_args,
                pulumi.ResourceOptions(parent=self, depends_on=[route, *args["metrics_ready"]]),
            )
        self.register_outputs({})
