"""WorkerApp: the cloud-burst app. Primary: Redis, frontend, workers and the split; burst: more workers."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from apps.worker.common import BURST_PREFIX
from components.istio_values import HASHR_PORT, ISTIO_API, http_gateway
from components.k8s_objects import custom_resource
from components.weighted_route import RouteSpec, WeightedRoute
from components.workload import (
    FROM_ISTIO_SYSTEM,
    Resources,
    Workload,
    WorkloadSpec,
    from_cidr,
    from_pods,
    service,
    service_manifest,
)

WORKER_PORT = 8081
FRONTEND_PORT = 8080
REDIS_PORT = 6379
WORKER_SERVICE = "worker-service"
FRONTEND_SERVICE = "frontend-service"
REDIS_SERVICE = "redis-cache-service"
REDIS_URL = f"{REDIS_SERVICE}:{REDIS_PORT}"
# The official image. It runs as any uid: started as non-root, its entrypoint skips the switch to `redis`.
REDIS_IMAGE = "redis:7.4.2-alpine"
HASHR_GATEWAY = "hashr-gateway"
CLUSTER_TYPES = {"primary": "primary-cluster", "burst": "burst-cluster"}
# Routing to the workers: subset name -> the label that tells the clusters' workers apart.
WORKER_SUBSETS = {cluster: {"cluster-type": label} for cluster, label in CLUSTER_TYPES.items()}
WORKER_ROUTE = "worker-split"
WORKER_RESOURCES = Resources(cpu_request="200m", memory_request="96Mi", cpu_limit="1", memory_limit="256Mi")


def worker_spec(
    cluster: str, image: pulumi.Input[str], primary_pod_cidr: pulumi.Input[str] | None = None
) -> WorkloadSpec:
    """A worker Deployment; burst workers prefix their results so users can see where work ran.

    Only the frontend sends work: in the primary it is a neighbour pod; in burst it arrives from the
    primary's pod range over the flat VPC.
    """
    env: dict[str, pulumi.Input[str]] = {"REDIS_URL": REDIS_URL, "CLUSTER_NAME": cluster}
    if cluster == "burst":
        env["PREFIX"] = BURST_PREFIX
        if primary_pod_cidr is None:
            raise ValueError("burst workers need the primary's pod CIDR to admit the frontend's requests")
    clients = [from_cidr(primary_pod_cidr)] if cluster == "burst" else [from_pods({"app": "frontend"})]
    return WorkloadSpec(
        name="worker",
        labels={"app": "worker", "cluster-type": CLUSTER_TYPES[cluster]},
        image=image,
        port=WORKER_PORT,
        env=env,
        ready_path="/readyz",
        resources=WORKER_RESOURCES,
        # In burst the autoscaler owns the replica count; a fixed one would fight it on every `pulumi up`.
        replicas=None if cluster == "burst" else 2,
        allow_from=clients,
    )


def frontend_spec(image: pulumi.Input[str]) -> WorkloadSpec:
    return WorkloadSpec(
        name="frontend",
        labels={"app": "frontend"},
        image=image,
        port=FRONTEND_PORT,
        env={"REDIS_URL": REDIS_URL, "PROCESSOR_URL": f"http://{WORKER_SERVICE}"},
        # One sender: two replicas would each send at the chosen rate.
        replicas=1,
        resources=Resources(cpu_request="100m", memory_request="96Mi", cpu_limit="1", memory_limit="256Mi"),
        allow_from=[FROM_ISTIO_SYSTEM],  # the ingress gateway
    )


def redis_spec() -> WorkloadSpec:
    """Redis as a message bus only: no persistence, one replica (pub/sub does not span replicas)."""
    return WorkloadSpec(
        name="redis",
        labels={"app": "redis"},
        image=REDIS_IMAGE,
        port=REDIS_PORT,
        health_path=None,
        replicas=1,
        args=["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
        writable_paths=("/data", "/tmp"),
        resources=Resources(cpu_request="50m", memory_request="64Mi", cpu_limit="500m", memory_limit="128Mi"),
        # Burst workers are admitted by a policy the burst stack adds (redis_from_burst_policy).
        allow_from=[from_pods({"app": "worker"}), from_pods({"app": "frontend"})],
        checkov_skips={
            "CKV_K8S_43": "the official Redis image, by exact release tag and pulled Always; not built here to pin",
        },
    )


def redis_from_burst_policy(namespace: str, burst_pod_cidr: pulumi.Input[str]) -> dict[str, Any]:
    """Lets burst workers publish results to the primary's Redis. Added by the burst stack, which knows its range."""
    return {
        "metadata": {"name": "redis-from-burst", "namespace": namespace, "labels": {"app": "redis"}},
        "spec": {
            "podSelector": {"matchLabels": {"app": "redis"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [from_cidr(burst_pod_cidr)], "ports": [{"protocol": "TCP", "port": REDIS_PORT}]}],
        },
    }


def worker_route(namespace: str, burst_weight: int) -> RouteSpec:
    return RouteSpec(
        name=WORKER_ROUTE,
        namespace=namespace,
        host=WORKER_SERVICE,
        subsets=WORKER_SUBSETS,
        share_to_second=burst_weight,
        port=80,
        gateways=["mesh"],
        load_balancer="RANDOM",
    )


def redis_tcp_route(namespace: str) -> dict[str, Any]:
    """Redis speaks TCP: route it as TCP so the mesh carries it to the primary's Redis from either cluster."""
    return {
        "apiVersion": ISTIO_API,
        "kind": "VirtualService",
        "metadata": {"name": "redis", "namespace": namespace},
        "spec": {
            "hosts": [REDIS_SERVICE],
            "tcp": [
                {
                    "match": [{"port": REDIS_PORT}],
                    "route": [{"destination": {"host": REDIS_SERVICE, "port": {"number": REDIS_PORT}}}],
                }
            ],
        },
    }


def frontend_route(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": ISTIO_API,
        "kind": "VirtualService",
        "metadata": {"name": "frontend", "namespace": namespace},
        "spec": {
            "hosts": ["*"],
            "gateways": [HASHR_GATEWAY],
            "http": [{"route": [{"destination": {"host": FRONTEND_SERVICE, "port": {"number": 80}}}]}],
        },
    }


def worker_autoscaler(namespace: str, min_replicas: int = 1, max_replicas: int = 10) -> dict[str, Any]:
    """Scale burst workers on CPU, so a burst of work grows pods and the pods grow the node pool."""
    return {
        "metadata": {"name": "worker", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


class WorkerAppArgs(TypedDict):
    cluster: str
    """`primary` (everything) or `burst` (workers only)."""
    namespace: str
    """Apps namespace (sidecar injection on)."""
    images: dict[str, pulumi.Input[str]]
    """Image references by name; burst uses only `worker`."""
    burst_weight: int
    """Percent of worker traffic for the burst cluster (primary only)."""
    weights_owned_by_controller: bool
    """burstwatch owns the split: Pulumi ignores changes to the route weights."""
    primary_pod_cidr: NotRequired[pulumi.Input[str]]
    """burst only: the primary's pod range, where the frontend's requests come from."""
    burst_pod_cidr: NotRequired[pulumi.Input[str]]
    """burst only: this cluster's pod range, admitted to the primary's Redis."""
    primary_provider: NotRequired[k8s.Provider]
    """burst only: access to the primary, to admit burst workers to its Redis."""


class WorkerApp(pulumi.ComponentResource):
    route_name: str | None
    """Name of the worker VirtualService (primary only)."""

    def __init__(self, name: str, args: WorkerAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:apps:WorkerApp", name, None, opts)
        cluster = args["cluster"]
        if cluster not in CLUSTER_TYPES:
            raise ValueError(f"WorkerApp {name}: cluster must be one of {list(CLUSTER_TYPES)}, got {cluster!r}")
        namespace = args["namespace"]
        child = pulumi.ResourceOptions(parent=self)
        images = args["images"]

        Workload(
            f"{name}-worker", worker_spec(cluster, images["worker"], args.get("primary_pod_cidr")), namespace, child
        )
        service(
            f"{name}-worker-service",
            service_manifest(WORKER_SERVICE, namespace, {"app": "worker"}, 80, WORKER_PORT),
            child,
        )
        # In burst the name must resolve too; the mesh sends the traffic to the primary's Redis.
        service(
            f"{name}-redis-service",
            service_manifest(REDIS_SERVICE, namespace, {"app": "redis"}, REDIS_PORT, REDIS_PORT, port_name="tcp-redis"),
            child,
        )
        self.route_name = None
        if cluster == "burst":
            hpa = worker_autoscaler(namespace)
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-worker-hpa", metadata=hpa["metadata"], spec=hpa["spec"], opts=child
            )
            admit = redis_from_burst_policy(namespace, args["burst_pod_cidr"])
            k8s.networking.v1.NetworkPolicy(
                f"{name}-redis-from-burst",
                metadata=admit["metadata"],
                spec=admit["spec"],
                opts=pulumi.ResourceOptions(parent=self, provider=args["primary_provider"]),
            )
        else:
            Workload(f"{name}-redis", redis_spec(), namespace, child)
            Workload(f"{name}-frontend", frontend_spec(images["frontend"]), namespace, child)
            service(
                f"{name}-frontend-service",
                service_manifest(FRONTEND_SERVICE, namespace, {"app": "frontend"}, 80, FRONTEND_PORT),
                child,
            )
            custom_resource(f"{name}-gateway", http_gateway(HASHR_GATEWAY, namespace, HASHR_PORT), child)
            custom_resource(f"{name}-frontend-route", frontend_route(namespace), child)
            custom_resource(f"{name}-redis-route", redis_tcp_route(namespace), child)
            WeightedRoute(
                f"{name}-split",
                {
                    "spec": worker_route(namespace, args["burst_weight"]),
                    "weights_owned_elsewhere": args["weights_owned_by_controller"],
                },
                child,
            )
            self.route_name = WORKER_ROUTE
        self.register_outputs({"routeName": self.route_name})
