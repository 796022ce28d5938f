"""Small shared helpers that turn plain object dicts (built by pure functions) into Pulumi resources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from builders.istio import ISTIO_CHART_REPO, ISTIO_NAMESPACE
from builders.kubeconfig import decode_token, token_kubeconfig
from builders.workloads import WorkloadSpec, deployment_manifest, network_policy_manifest, pdb_manifest


def custom_resource(
    name: str, obj: Mapping[str, Any], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """Register one Istio (or other CRD) object given as a full manifest dict."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=obj["apiVersion"],
        kind=obj["kind"],
        metadata=obj["metadata"],
        spec=obj["spec"],
        opts=opts,
    )


def namespace(
    name: str,
    namespace_name: str,
    opts: pulumi.ResourceOptions,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, pulumi.Input[str]] | None = None,
) -> k8s.core.v1.Namespace:
    """A namespace with a fixed name (not auto-named), so charts and apps can refer to it."""
    return k8s.core.v1.Namespace(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace_name, labels=labels, annotations=annotations),
        opts=opts,
    )


def istio_release(
    name: str,
    release_name: str,
    chart: str,
    version: pulumi.Input[str],
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """A Helm release of one of Istio's official charts at the pinned version, in istio-system."""
    return helm_release(name, release_name, ISTIO_CHART_REPO, chart, version, values, opts)


def helm_release(
    name: str,
    release_name: str,
    repo: str,
    chart: str,
    version: pulumi.Input[str],
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    namespace_name: str = ISTIO_NAMESPACE,
) -> k8s.helm.v3.Release:
    """A Helm release of a chart from a repository at a pinned version."""
    return k8s.helm.v3.Release(
        name,
        name=release_name,
        chart=chart,
        version=version,
        namespace=namespace_name,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo),
        values=dict(values),
        # Wait for every object to be ready: later releases and CRs rely on CRDs and webhooks being live.
        skip_await=False,
        timeout=900,
        opts=opts,
    )


def register_workload(name: str, spec: WorkloadSpec, namespace: str, opts: pulumi.ResourceOptions) -> None:
    """Registers a WorkloadSpec's Deployment, PodDisruptionBudget and NetworkPolicy (children of the caller)."""
    deployment = deployment_manifest(spec, namespace)
    k8s.apps.v1.Deployment(name, metadata=deployment["metadata"], spec=deployment["spec"], opts=opts)
    pdb = pdb_manifest(spec, namespace)
    k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=pdb["metadata"], spec=pdb["spec"], opts=opts)
    policy = network_policy_manifest(spec, namespace)
    k8s.networking.v1.NetworkPolicy(
        f"{name}-network-policy", metadata=policy["metadata"], spec=policy["spec"], opts=opts
    )


def service(name: str, manifest: Mapping[str, Any], opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(name, metadata=manifest["metadata"], spec=manifest["spec"], opts=opts)


def account_token_kubeconfig(
    name: str,
    account: str,
    cluster: str,
    endpoint: pulumi.Input[str],
    ca_certificate: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """A long-lived token of service account `account` (istio-system) minted by the cluster's token controller, as
    a kubeconfig for `endpoint`: secret end to end. Registers the token Secret `<account>-token` as `name`."""
    secret_name = f"{account}-token"
    token_secret = k8s.core.v1.Secret(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=secret_name,
            namespace=ISTIO_NAMESPACE,
            annotations={"kubernetes.io/service-account.name": account},
        ),
        type="kubernetes.io/service-account-token",
        opts=opts,
    )
    token: pulumi.Output[str] = pulumi.Output.secret(token_secret.data.apply(lambda d: decode_token(d, secret_name)))
    return pulumi.Output.secret(
        pulumi.Output.all(endpoint, ca_certificate, token).apply(lambda parts: token_kubeconfig(cluster, *parts))
    )
