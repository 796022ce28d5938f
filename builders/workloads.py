"""Hardened Deployments, PodDisruptionBudgets and Services for every app, from one set of pure functions.

Every workload gets the same standards: non-root, read-only root filesystem, all capabilities dropped,
no privilege escalation, seccomp RuntimeDefault, no service-account token unless it talks to the API,
requests and limits, readiness and liveness probes, and a PodDisruptionBudget.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from builders.istio import ISTIO_NAMESPACE
from policy.exceptions import checkov_skips

APP_USER_ID = 10001
# Prometheus (istio-system, no sidecar) scrapes each pod's sidecar: merged app metrics and Envoy's own.
SIDECAR_METRICS_PORTS = (15020, 15090)
FROM_ISTIO_SYSTEM: dict[str, Any] = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ISTIO_NAMESPACE}}
}


def from_pods(labels: Mapping[str, str]) -> dict[str, Any]:
    """A NetworkPolicy peer: pods of this namespace with these labels."""
    return {"podSelector": {"matchLabels": dict(labels)}}


def from_cidr(cidr: pulumi.Input[str]) -> dict[str, Any]:
    """A NetworkPolicy peer: an IP range, e.g. the other cluster's pods on the flat VPC."""
    return {"ipBlock": {"cidr": cidr}}


@dataclass(frozen=True)
class Resources:
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"

    def manifest(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    """Deployment name; also the container name."""
    labels: Mapping[str, str]
    """Pod labels, all of them used as the selector (app, version, cluster-type...)."""
    image: pulumi.Input[str]
    port: int
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    health_path: str | None = "/healthz"
    """HTTP path for liveness; None means a TCP check on the port."""
    ready_path: str | None = None
    """HTTP path for readiness when it differs from health_path (e.g. /readyz checks dependencies)."""
    replicas: int | None = 2
    """None leaves the count to a HorizontalPodAutoscaler."""
    resources: Resources = field(default_factory=Resources)
    args: Sequence[str] | None = None
    run_as_user: int = APP_USER_ID
    service_account: str | None = None
    """Only workloads that call the Kubernetes API get one, and then its token."""
    writable_paths: Sequence[str] = ("/tmp",)
    """Scratch directories (emptyDir) on an otherwise read-only root filesystem."""
    secret_mounts: Mapping[str, str] = field(default_factory=dict)
    """Directory -> Secret mounted there read-only (secrets as files, not environment variables)."""
    config_mounts: Mapping[str, str] = field(default_factory=dict)
    """Directory -> ConfigMap mounted there read-only; optional, so the pod starts before the ConfigMap exists
    (kubelet fills the files in when it appears, and follows its changes without a restart)."""
    pod_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    allow_from: Sequence[Mapping[str, Any]] = ()
    """NetworkPolicy peers allowed to reach `port`; nothing else may, but Prometheus's scrape of the sidecar."""
    one_at_a_time: bool = False
    """Never two pods at once, not even during a rollout (Recreate): for a controller that must be the one writer."""


def _probe(spec: WorkloadSpec, path: str | None, period: int) -> dict[str, Any]:
    check: dict[str, Any] = (
        {"httpGet": {"path": path, "port": spec.port}} if path else {"tcpSocket": {"port": spec.port}}
    )
    return {**check, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": 3}


def container_security_context(run_as_user: int) -> dict[str, Any]:
    """Set per container, not per pod: Istio's istio-init container must still run as root."""
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "runAsGroup": run_as_user,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _volume_name(path: str) -> str:
    return "scratch" + path.replace("/", "-")


def deployment_manifest(spec: WorkloadSpec, namespace: str) -> dict[str, Any]:
    """The Deployment for a workload (metadata and spec)."""
    container: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "ports": [{"name": "http" if spec.health_path else "tcp", "containerPort": spec.port}],
        "env": [{"name": key, "value": value} for key, value in sorted(spec.env.items())],
        "resources": spec.resources.manifest(),
        "imagePullPolicy": pull_policy(spec.image),
        "readinessProbe": _probe(spec, spec.ready_path or spec.health_path, period=5),
        "livenessProbe": _probe(spec, spec.health_path, period=10),
        "securityContext": container_security_context(spec.run_as_user),
        "volumeMounts": [{"name": _volume_name(p), "mountPath": p} for p in spec.writable_paths]
        + [
            {"name": f"secret-{secret}", "mountPath": path, "readOnly": True}
            for path, secret in sorted(spec.secret_mounts.items())
        ]
        + [
            {"name": f"config-{config}", "mountPath": path, "readOnly": True}
            for path, config in sorted(spec.config_mounts.items())
        ],
    }
    if spec.args is not None:
        container["args"] = list(spec.args)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": spec.service_account is not None,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "fsGroup": spec.run_as_user},
        "containers": [container],
        "volumes": [{"name": _volume_name(p), "emptyDir": {"sizeLimit": "64Mi"}} for p in spec.writable_paths]
        + [
            {"name": f"secret-{secret}", "secret": {"secretName": secret, "defaultMode": 0o440}}
            for _, secret in sorted(spec.secret_mounts.items())
        ]
        + [
            {"name": f"config-{config}", "configMap": {"name": config, "defaultMode": 0o444, "optional": True}}
            for _, config in sorted(spec.config_mounts.items())
        ],
        "terminationGracePeriodSeconds": 30,
    }
    if spec.service_account is not None:
        pod_spec["serviceAccountName"] = spec.service_account
    metadata: dict[str, Any] = {"name": spec.name, "namespace": namespace, "labels": dict(spec.labels)}
    # The workload's written exceptions (policy/exceptions.py), as the annotations checkov reads.
    skips = checkov_skips(namespace, spec.name)
    if skips:
        metadata["annotations"] = {
            f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(skips.items(), 1)
        }
    return {
        "metadata": metadata,
        "spec": {
            **({"replicas": spec.replicas} if spec.replicas is not None else {}),
            **({"strategy": {"type": "Recreate"}} if spec.one_at_a_time else {}),
            "selector": {"matchLabels": dict(spec.labels)},
            "template": {
                "metadata": {
                    "labels": dict(spec.labels),
                    **({"annotations": dict(spec.pod_annotations)} if spec.pod_annotations else {}),
                },
                "spec": pod_spec,
            },
        },
    }


def pull_policy_for(ref: str) -> str:
    """A tag can move; a digest cannot, so only a digest reference may be taken from the node's cache."""
    return "IfNotPresent" if "@sha256:" in ref else "Always"


def pull_policy(image: pulumi.Input[str]) -> pulumi.Input[str]:
    """The pull policy of a reference that may only be known later (a build's digest, the primary's output)."""
    if isinstance(image, str):
        return pull_policy_for(image)
    reference: pulumi.Output[str] = pulumi.Output.from_input(image)
    return reference.apply(pull_policy_for)


def network_policy_manifest(spec: WorkloadSpec, namespace: str) -> dict[str, Any]:
    """Ingress to the workload's port from `allow_from` only, plus Prometheus's scrape of the sidecar."""
    ingress: list[dict[str, Any]] = []
    if spec.allow_from:
        ingress.append(
            {"from": [dict(peer) for peer in spec.allow_from], "ports": [{"protocol": "TCP", "port": spec.port}]}
        )
    ingress.append(
        {"from": [FROM_ISTIO_SYSTEM], "ports": [{"protocol": "TCP", "port": p} for p in SIDECAR_METRICS_PORTS]}
    )
    return {
        "metadata": {"name": spec.name, "namespace": namespace, "labels": dict(spec.labels)},
        "spec": {"podSelector": {"matchLabels": dict(spec.labels)}, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def pdb_manifest(spec: WorkloadSpec, namespace: str) -> dict[str, Any]:
    """At most one pod of the workload down at a time during node drains and upgrades."""
    return {
        "metadata": {"name": spec.name, "namespace": namespace, "labels": dict(spec.labels)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(spec.labels)}},
    }


# pulumi-kubernetes waits until a Service with a selector has Endpoints in its own cluster; this annotation
# tells it not to, for a Service whose pods run in the other cluster (it exists so the name resolves).
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


def service_manifest(
    name: str,
    namespace: str,
    selector: Mapping[str, str],
    port: int,
    target_port: int,
    port_name: str = "http",
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ClusterIP Service; the port name tells Istio the protocol (http, tcp)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": selector.get("app", name)}}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "metadata": metadata,
        "spec": {
            "selector": dict(selector),
            "ports": [{"name": port_name, "port": port, "targetPort": target_port}],
        },
    }


def revision_document(spec: WorkloadSpec, image: str) -> str:
    """What makes two pods of a workload run the same thing: the image and how it is started, not names or labels."""
    return json.dumps(
        {
            "image": image,
            "env": {key: str(value) for key, value in sorted(spec.env.items())},
            "args": list(spec.args or []),
            "port": spec.port,
            "resources": spec.resources.manifest(),
        },
        sort_keys=True,
    )


def revision(spec: WorkloadSpec) -> pulumi.Output[str]:
    """A short hash of `revision_document`: equal for v1 and v2 exactly when they run the same thing."""
    image: pulumi.Output[str] = pulumi.Output.from_input(spec.image)
    return image.apply(lambda ref: hashlib.sha256(revision_document(spec, ref).encode()).hexdigest()[:16])
