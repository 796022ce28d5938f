"""The cloud-burst app: HashrApp in the primary (Redis, the String Hashr frontend, workers) and BurstWorkers
in the burst cluster (workers that prefix their results). How work is split between them is WorkerSplit's.
"""

from __future__ import annotations

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from apps.contract import HASHR_PORT
from apps.controller.component import status_url
from apps.lib.meshroute import ISTIO_API
from apps.worker.contract import (
    BURST_PREFIX,
    CLUSTER_TYPE_LABEL,
    CLUSTER_TYPES,
    FRONTEND_APP,
    FRONTEND_PORT,
    FRONTEND_SERVICE,
    REDIS_ADDRESS,
    REDIS_PORT,
    REDIS_SERVICE,
    SERVICE_PORT,
    SPLIT_CONTROLLER,
    WORKER_PORT,
    WORKER_ROUTE,
    WORKER_SERVICE,
    WORKER_URL,
)
from builders.istio import http_gateway
from builders.routes import INTENT_KEY, intent_name
from builders.workloads import (
    FROM_ISTIO_SYSTEM,
    SKIP_AWAIT,
    Resources,
    WorkloadSpec,
    from_cidr,
    from_pods,
    service_manifest,
)
from resources.kubernetes import custom_resource, register_workload, service

# The official image. It runs as any uid: started as non-root, its entrypoint skips the switch to `redis`.
REDIS_IMAGE = "redis:7.4.2-alpine"
HASHR_GATEWAY = "hashr-gateway"
HASHR_TOKEN_SECRET = "hashr-token"
HASHR_TOKEN_KEY = "token"
HASHR_TOKEN_DIR = "/var/run/secrets/hashr"
WORKER_RESOURCES = Resources(cpu_request="200m", memory_request="96Mi", cpu_limit="1", memory_limit="256Mi")
# Components were one `WorkerApp` before; the alias keeps every child's URN, so nothing is replaced.
WORKER_APP_TYPE = "meshburst:apps:WorkerApp"


def _worker_spec(
    cluster: str, image: pulumi.Input[str], env: dict[str, pulumi.Input[str]], **extra: Any
) -> WorkloadSpec:
    return WorkloadSpec(
        name="worker",
        labels={"app": "worker", CLUSTER_TYPE_LABEL: CLUSTER_TYPES[cluster]},
        image=image,
        port=WORKER_PORT,
        env={"REDIS_URL": REDIS_ADDRESS, "CLUSTER_NAME": cluster, **env},
        ready_path="/readyz",
        resources=WORKER_RESOURCES,
        **extra,
    )


def primary_worker_spec(image: pulumi.Input[str]) -> WorkloadSpec:
    """The primary's workers: only the frontend, a neighbour pod, sends them work."""
    return _worker_spec("primary", image, {}, replicas=2, allow_from=[from_pods({"app": FRONTEND_APP})])


def burst_worker_spec(image: pulumi.Input[str], primary_pod_cidr: pulumi.Input[str]) -> WorkloadSpec:
    """Burst workers prefix their results, so users see where work ran; work arrives from the primary's pods."""
    return _worker_spec(
        "burst",
        image,
        {"PREFIX": BURST_PREFIX},
        # The autoscaler owns the replica count; a fixed one would fight it on every `pulumi up`.
        replicas=None,
        allow_from=[from_cidr(primary_pod_cidr)],
    )


SPLIT_DIR = "/etc/meshburst/split"


def split_env(split_mode: str, namespace: str) -> tuple[dict[str, str], dict[str, str]]:
    """(env, ConfigMap mounts) telling the page where the worker split comes from: in manual mode the route's intent,
    mounted (its `share` follows burstWeight without a restart), in auto mode the burst controller's /status."""
    if split_mode == "auto":
        return {"SPLIT_MODE": "auto", "SPLIT_STATUS_URL": status_url(SPLIT_CONTROLLER, namespace)}, {}
    share_file = f"{SPLIT_DIR}/{INTENT_KEY}"
    return {"SPLIT_MODE": "manual", "SPLIT_SHARE_FILE": share_file}, {SPLIT_DIR: intent_name(WORKER_ROUTE)}


def frontend_spec(image: pulumi.Input[str], max_rps: int, split_mode: str, namespace: str) -> WorkloadSpec:
    """The String Hashr page and load generator; changing its rate takes the token mounted from a Secret."""
    env, config_mounts = split_env(split_mode, namespace)
    return WorkloadSpec(
        name="frontend",
        labels={"app": FRONTEND_APP},
        image=image,
        port=FRONTEND_PORT,
        env={
            "REDIS_URL": REDIS_ADDRESS,
            "PROCESSOR_URL": WORKER_URL,
            "HASHR_TOKEN_FILE": f"{HASHR_TOKEN_DIR}/{HASHR_TOKEN_KEY}",
            "MAX_RPS": str(max_rps),
            **env,
        },
        secret_mounts={HASHR_TOKEN_DIR: HASHR_TOKEN_SECRET},
        config_mounts=config_mounts,
        # Ready only while Redis answers and the results reader is connected.
        ready_path="/readyz",
        # One sender: two replicas would each send at the chosen rate.
        replicas=1,
        resources=Resources(cpu_request="100m", memory_request="96Mi", cpu_limit="1", memory_limit="256Mi"),
        allow_from=[FROM_ISTIO_SYSTEM],  # the ingress gateway
    )


def redis_spec() -> WorkloadSpec:
    """Redis as the results bus: one replica, the stream kept in an append-only file on the pod's scratch volume,
    so a Redis container that restarts (a crash, an OOM kill) still has what the frontend has not read yet."""
    return WorkloadSpec(
        name="redis",
        labels={"app": "redis"},
        image=REDIS_IMAGE,
        port=REDIS_PORT,
        health_path=None,
        replicas=1,
        # The append-only file is rewritten from 8 MiB on: Redis's default, 64 MiB, is the whole scratch volume.
        args=[
            "redis-server",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--auto-aof-rewrite-min-size",
            "8mb",
            "--protected-mode",
            "no",
        ],
        writable_paths=("/data", "/tmp"),
        resources=Resources(cpu_request="50m", memory_request="64Mi", cpu_limit="500m", memory_limit="128Mi"),
        # Burst workers are admitted by a policy the burst stack adds (redis_from_burst_policy).
        allow_from=[from_pods({"app": "worker"}), from_pods({"app": FRONTEND_APP})],
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
            "http": [{"route": [{"destination": {"host": FRONTEND_SERVICE, "port": {"number": SERVICE_PORT}}}]}],
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


def worker_service(name: str, namespace: str, opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
    """worker-service: in each cluster, the name the split routes to, over that cluster's workers."""
    return service(
        name, service_manifest(WORKER_SERVICE, namespace, {"app": "worker"}, SERVICE_PORT, WORKER_PORT), opts
    )


def redis_service(name: str, namespace: str, opts: pulumi.ResourceOptions, dns_only: bool) -> k8s.core.v1.Service:
    """redis-cache-service. In burst it exists so the name resolves (the mesh carries the traffic to the primary's
    Redis); no Redis pod ever runs there, so Pulumi must not wait for its Endpoints (it would fail after 10 min)."""
    manifest = service_manifest(
        REDIS_SERVICE,
        namespace,
        {"app": "redis"},
        REDIS_PORT,
        REDIS_PORT,
        port_name="tcp-redis",
        annotations=SKIP_AWAIT if dns_only else None,
    )
    return service(name, manifest, opts)


class HashrAppArgs(TypedDict):
    namespace: str
    """Apps namespace (sidecar injection on)."""
    worker_image: pulumi.Input[str]
    """The worker image."""
    frontend_image: pulumi.Input[str]
    """The frontend image (the same code as the worker, started as the frontend)."""
    max_rps: int
    """The highest rate the String Hashr page may set."""
    split_mode: str
    """burstMode: where the page reads the worker split (the intent in manual mode, the controller in auto)."""


class HashrApp(pulumi.ComponentResource):
    hashr_token: pulumi.Output[str]
    """The token that changing the Hashr rate takes (secret)."""

    def __init__(self, name: str, args: HashrAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "meshburst:apps:HashrApp",
            name,
            None,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=WORKER_APP_TYPE)])),
        )
        namespace = args["namespace"]
        child = pulumi.ResourceOptions(parent=self)
        register_workload(f"{name}-worker", primary_worker_spec(args["worker_image"]), namespace, child)
        worker_service(f"{name}-worker-service", namespace, child)
        redis_service(f"{name}-redis-service", namespace, child, dns_only=False)
        register_workload(f"{name}-redis", redis_spec(), namespace, child)
        # Anyone who finds the ingress IP may watch, but only the token's holder may drive load (and cost).
        token = random.RandomPassword(f"{name}-hashr-token", length=32, special=False, opts=child)
        token_secret = k8s.core.v1.Secret(
            f"{name}-hashr-token-secret",
            metadata={"name": HASHR_TOKEN_SECRET, "namespace": namespace, "labels": {"app": FRONTEND_APP}},
            string_data={HASHR_TOKEN_KEY: token.result},
            opts=child,
        )
        self.hashr_token = pulumi.Output.secret(token.result)
        register_workload(
            f"{name}-frontend",
            frontend_spec(args["frontend_image"], args["max_rps"], args["split_mode"], namespace),
            namespace,
            pulumi.ResourceOptions(parent=self, depends_on=[token_secret]),
        )
        service(
            f"{name}-frontend-service",
            service_manifest(FRONTEND_SERVICE, namespace, {"app": FRONTEND_APP}, SERVICE_PORT, FRONTEND_PORT),
            child,
        )
        custom_resource(f"{name}-gateway", http_gateway(HASHR_GATEWAY, namespace, HASHR_PORT), child)
        custom_resource(f"{name}-frontend-route", frontend_route(namespace), child)
        custom_resource(f"{name}-redis-route", redis_tcp_route(namespace), child)
        self.register_outputs({"hashrToken": self.hashr_token})


class BurstWorkersArgs(TypedDict):
    namespace: str
    """Apps namespace of the burst cluster (sidecar injection on)."""
    worker_image: pulumi.Input[str]
    """The worker image the primary built or was given."""
    primary_pod_cidr: pulumi.Input[str]
    """The primary's pod range, where the frontend's requests come from."""
    burst_pod_cidr: pulumi.Input[str]
    """This cluster's pod range, admitted to the primary's Redis."""
    primary_provider: k8s.Provider
    """Access to the primary, to admit burst workers to its Redis."""


class BurstWorkers(pulumi.ComponentResource):
    def __init__(self, name: str, args: BurstWorkersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "meshburst:apps:BurstWorkers",
            name,
            None,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=WORKER_APP_TYPE)])),
        )
        namespace = args["namespace"]
        child = pulumi.ResourceOptions(parent=self)
        register_workload(
            f"{name}-worker", burst_worker_spec(args["worker_image"], args["primary_pod_cidr"]), namespace, child
        )
        worker_service(f"{name}-worker-service", namespace, child)
        redis_service(f"{name}-redis-service", namespace, child, dns_only=True)
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
        self.register_outputs({})
