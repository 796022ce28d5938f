"""What every cluster of the mesh installs in the same order, control plane or remote."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from builders.istio import ISTIO_NAMESPACE, apps_namespace_labels
from resources.kubernetes import istio_release, namespace


def child_waiting_for(parent: pulumi.Resource, *deps: pulumi.Resource) -> pulumi.ResourceOptions:
    """Options for a child of `parent` that is created only after `deps`."""
    return pulumi.ResourceOptions(parent=parent, depends_on=list(deps))


@dataclass(frozen=True)
class IstioCore:
    system_namespace: k8s.core.v1.Namespace
    """istio-system: what else installed there (the observability add-ons) waits for."""
    base: k8s.helm.v3.Release
    """The CRDs and cluster roles (the reader service account among them)."""
    istiod: k8s.helm.v3.Release
    apps_namespace: k8s.core.v1.Namespace


def install_istio_core(
    parent: pulumi.Resource,
    name: str,
    version: pulumi.Input[str],
    network: str,
    base_values: Mapping[str, Any],
    istiod_values: Mapping[str, Any],
    apps_namespace: str,
    system_annotations: Mapping[str, str] | None = None,
) -> IstioCore:
    """istio-system, then `base` (CRDs), then `istiod`, then the apps namespace with injection on.

    Each waits for the one before: custom resources never precede their CRDs, and the apps namespace
    only exists once the injection webhook does, so no pod starts without its sidecar.
    """
    system_ns = namespace(
        f"{name}-istio-system",
        ISTIO_NAMESPACE,
        child_waiting_for(parent),
        labels={"topology.istio.io/network": network},
        annotations=system_annotations,
    )
    base = istio_release(
        f"{name}-base", "istio-base", "base", version, base_values, child_waiting_for(parent, system_ns)
    )
    istiod = istio_release(
        f"{name}-istiod", "istiod", "istiod", version, istiod_values, child_waiting_for(parent, base)
    )
    apps_ns = namespace(
        f"{name}-apps-namespace",
        apps_namespace,
        child_waiting_for(parent, istiod),
        labels=apps_namespace_labels(),
    )
    return IstioCore(system_namespace=system_ns, base=base, istiod=istiod, apps_namespace=apps_ns)
