"""Burstwatch: the controller that owns the worker split in `auto` mode, with the least RBAC it needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s

from builders.workloads import Resources, WorkloadSpec
from resources.kubernetes import register_workload

NAME = "burstwatch"
PORT = 8080


def controller_env(args: BurstwatchArgs) -> dict[str, str]:
    """The controller's settings (see apps/burstwatch/controller.py for every variable and its default).

    The names of what it watches and writes come from the app that owns them: the image copies none.
    """
    return {
        "PROMETHEUS_URL": args["prometheus_url"],
        "NAMESPACE": args["namespace"],
        "VIRTUAL_SERVICE": args["route_name"],
        "SUBSETS": ",".join(args["subsets"]),
        "DESTINATION_SERVICE": args["destination_service"],
        "SOURCE_WORKLOAD": args["source_workload"],
        "HIGH_RPS": f"{args['high_rps']:g}",
        "LOW_RPS": f"{args['low_rps']:g}",
        "INTERVAL_SECONDS": "2",
        "WINDOW": "30s",
        "MIN_DWELL_SECONDS": "30",
        "BURST_SHARE": "100",
    }


def role_rules(route_name: str) -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """Read and patch one VirtualService, by name: nothing else in the cluster."""
    return [
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=["networking.istio.io"],
            resources=["virtualservices"],
            resource_names=[route_name],
            verbs=["get", "patch"],
        )
    ]


def burstwatch_spec(image: pulumi.Input[str], env: dict[str, str]) -> WorkloadSpec:
    return WorkloadSpec(
        name=NAME,
        labels={"app": NAME},
        image=image,
        port=PORT,
        env=env,
        # One writer: two controllers would race each other on the same weights.
        replicas=1,
        service_account=NAME,
        resources=Resources(cpu_request="20m", memory_request="48Mi", cpu_limit="200m", memory_limit="128Mi"),
        # Istio merges these app metrics into what the sidecar exposes to Prometheus.
        pod_annotations={
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PORT),
            "prometheus.io/path": "/metrics",
        },
        # Nothing calls the controller; only Prometheus scrapes it through the sidecar.
        allow_from=[],
    )


class BurstwatchArgs(TypedDict):
    namespace: str
    """Namespace of the worker route and of the controller."""
    image: pulumi.Input[str]
    """The burstwatch image."""
    route_name: str
    """Name of the worker VirtualService the controller owns the weights of."""
    subsets: Sequence[str]
    """The route's two subsets, in route order: where work normally runs, then the burst cluster."""
    destination_service: str
    """Fully qualified host whose request rate the controller watches."""
    source_workload: str
    """The workload that sends those requests (its sidecar reports them)."""
    prometheus_url: str
    """In-cluster Prometheus the controller asks for the request rate."""
    high_rps: float
    """Above this request rate, work goes to the burst cluster."""
    low_rps: float
    """Below this request rate, work comes back."""


class Burstwatch(pulumi.ComponentResource):
    def __init__(self, name: str, args: BurstwatchArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:apps:Burstwatch", name, None, opts)
        namespace = args["namespace"]
        child = pulumi.ResourceOptions(parent=self)
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {"name": NAME, "namespace": namespace, "labels": {"app": NAME}}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account", metadata=metadata, automount_service_account_token=False, opts=child
        )
        role = k8s.rbac.v1.Role(f"{name}-role", metadata=metadata, rules=role_rules(args["route_name"]), opts=child)
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-binding",
            metadata=metadata,
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=NAME),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=NAME, namespace=namespace)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, role]),
        )
        env = controller_env(args)
        register_workload(
            f"{name}-controller",
            burstwatch_spec(args["image"], env),
            namespace,
            pulumi.ResourceOptions(parent=self, depends_on=[binding]),
        )
        self.register_outputs({})
