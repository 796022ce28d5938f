"""RouteController: one Deployment of the controller image (apps/controller) owning one route's VirtualService.

The same image runs both policies: `canary` (the shark's progressive canary) and `burst` (the worker split in
auto mode). Each instance gets its own ServiceAccount and a Role that reaches only the named objects of its
route: the VirtualService it writes, the intent it reads, the status it writes and (canary) the Deployment whose
rollout it waits for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from apps.controller.policy import DEFAULT_POLL_SECONDS
from builders.workloads import Resources, WorkloadSpec, service_manifest
from components.weighted_route import WeightedRoute
from resources.kubernetes import register_workload, service

PORT = 8080


def status_url(name: str, namespace: str) -> str:
    """Where a controller's /status answers inside the cluster (its Service, when it has readers)."""
    return f"http://{name}.{namespace}.svc.cluster.local:{PORT}/status"


WEBHOOK_DIR = "/etc/meshburst/webhook"
WEBHOOK_KEY = "url"


def role_rules(route: WeightedRoute, target: str | None) -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """Rights on the route's named objects only.

    `create` is the one exception: Kubernetes cannot scope creation to a name (the object does not exist yet),
    and the controller creates the VirtualService when it takes over a route that has none (a stack started in
    progressive or auto mode). The Role is namespaced, so it reaches VirtualServices of the apps namespace only.
    """
    rules = [
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=["networking.istio.io"],
            resources=["virtualservices"],
            resource_names=[route.virtual_service_name],
            verbs=["get", "patch"],
        ),
        k8s.rbac.v1.PolicyRuleArgs(api_groups=["networking.istio.io"], resources=["virtualservices"], verbs=["create"]),
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=[""], resources=["configmaps"], resource_names=[route.intent_name], verbs=["get"]
        ),
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=[""], resources=["configmaps"], resource_names=[route.status_name], verbs=["get", "patch"]
        ),
    ]
    if target is not None:
        rules.append(
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=["apps"], resources=["deployments"], resource_names=[target], verbs=["get"]
            )
        )
    return rules


def controller_env(args: RouteControllerArgs, route: WeightedRoute) -> dict[str, str]:
    """What the controller watches and writes (apps/controller/main.py reads these; the image sets none)."""
    env = {
        "POLICY": args["policy"],
        "NAMESPACE": args["namespace"],
        "ROUTE": route.virtual_service_name,
        "INTENT": route.intent_name,
        "STATUS": route.status_name,
        "PROMETHEUS_URL": args["prometheus_url"],
        "POLL_SECONDS": f"{DEFAULT_POLL_SECONDS[args['policy']]:g}",
    }
    if args.get("webhook_url") is not None:
        env["WEBHOOK_URL_FILE"] = f"{WEBHOOK_DIR}/{WEBHOOK_KEY}"
    return env


def controller_spec(
    name: str, image: pulumi.Input[str], env: Mapping[str, str], secrets: Mapping[str, str], allow_from: Sequence[Any]
) -> WorkloadSpec:
    return WorkloadSpec(
        name=name,
        labels={"app": name},
        image=image,
        port=PORT,
        env=env,
        # Ready once the loop runs; the route it owns is then written within one poll.
        health_path="/healthz",
        replicas=1,
        # One writer: two controllers of one route would race each other, even for the seconds of a rollout.
        one_at_a_time=True,
        service_account=name,
        secret_mounts=secrets,
        resources=Resources(cpu_request="20m", memory_request="64Mi", cpu_limit="200m", memory_limit="128Mi"),
        # Istio merges these app metrics into what the sidecar exposes to Prometheus.
        pod_annotations={
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PORT),
            "prometheus.io/path": "/metrics",
        },
        allow_from=list(allow_from),
    )


class RouteControllerArgs(TypedDict):
    namespace: str
    """Namespace of the route and of the controller."""
    image: pulumi.Input[str]
    """The controller image."""
    policy: str
    """`canary` or `burst`."""
    route: WeightedRoute
    """The route it owns (written with writer=controller)."""
    prometheus_url: str
    """In-cluster Prometheus the controller reads."""
    target: NotRequired[str]
    """canary: the Deployment whose rollout of a new revision the controller waits for."""
    webhook_url: NotRequired[pulumi.Output[str] | None]
    """canary: where phase changes are posted (a secret)."""
    readers: NotRequired[Sequence[Mapping[str, Any]]]
    """NetworkPolicy peers that may read its /status (the Hashr frontend) through a Service; nobody else calls it."""


class RouteController(pulumi.ComponentResource):
    def __init__(self, name: str, args: RouteControllerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:apps:RouteController", name, None, opts)
        namespace, route, target = args["namespace"], args["route"], args.get("target")
        child = pulumi.ResourceOptions(parent=self)
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {"name": name, "namespace": namespace, "labels": {"app": name}}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account", metadata=metadata, automount_service_account_token=False, opts=child
        )
        role = k8s.rbac.v1.Role(f"{name}-role", metadata=metadata, rules=role_rules(route, target), opts=child)
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-binding",
            metadata=metadata,
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=name, namespace=namespace)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, role]),
        )
        waits: list[pulumi.Resource] = [binding]
        secrets: dict[str, str] = {}
        webhook_url = args.get("webhook_url")
        if webhook_url is not None:
            webhook = k8s.core.v1.Secret(
                f"{name}-webhook",
                metadata={"name": f"{name}-webhook", "namespace": namespace, "labels": {"app": name}},
                string_data={WEBHOOK_KEY: webhook_url},
                opts=child,
            )
            waits.append(webhook)
            secrets[WEBHOOK_DIR] = f"{name}-webhook"
        register_workload(
            f"{name}-controller",
            controller_spec(name, args["image"], controller_env(args, route), secrets, args.get("readers", [])),
            namespace,
            pulumi.ResourceOptions(parent=self, depends_on=waits),
        )
        if args.get("readers"):
            service(f"{name}-service", service_manifest(name, namespace, {"app": name}, PORT, PORT), child)
        self.register_outputs({})
