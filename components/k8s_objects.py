"""Small shared helpers that turn plain object dicts (built by pure functions) into Pulumi resources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.istio_values import ISTIO_CHART_REPO, ISTIO_NAMESPACE


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
