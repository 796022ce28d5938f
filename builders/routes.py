"""Istio routes that split one host between named subsets: the weights and the VirtualService and
DestinationRule manifests, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from builders.istio import ISTIO_API

PATCH_FORCE = "pulumi.com/patchForce"


def split_weights(share_to_second: int) -> tuple[int, int]:
    """Weights of (first, second) subset when `share_to_second` percent goes to the second.

    Non-negative integers that always sum to 100: Istio rejects a route whose weights do not.
    """
    if isinstance(share_to_second, bool) or not isinstance(share_to_second, int):
        raise TypeError(f"share must be a whole number, got {share_to_second!r}")
    if not 0 <= share_to_second <= 100:
        raise ValueError(f"share must be from 0 to 100, got {share_to_second}")
    return 100 - share_to_second, share_to_second


@dataclass(frozen=True)
class HeaderOverride:
    """Requests carrying header `name` exactly equal to `value` always go to `subset`."""

    name: str
    value: str
    subset: str


@dataclass(frozen=True)
class RouteSpec:
    name: str
    """Name of the VirtualService and DestinationRule."""
    namespace: str
    host: str
    """Service the subsets belong to (short name, in the namespace)."""
    subsets: Mapping[str, Mapping[str, str]]
    """Subset name -> pod labels that select it, in route order."""
    share_to_second: int
    """Percent of traffic for the second subset; the first gets the rest."""
    port: int
    hosts: Sequence[str] = ()
    """Hosts the VirtualService answers; default: the service host."""
    gateways: Sequence[str] = ()
    """Gateways to bind to; default: the mesh (sidecars) only."""
    header_override: HeaderOverride | None = None
    load_balancer: str | None = None
    """simple load balancer of the DestinationRule, e.g. RANDOM."""
    labels: Mapping[str, str] = field(default_factory=dict)


def virtual_service_manifest(spec: RouteSpec) -> dict[str, Any]:
    if len(spec.subsets) != 2:
        raise ValueError(f"WeightedRoute {spec.name}: needs exactly two subsets, got {list(spec.subsets)}")
    first, second = spec.subsets
    weights = split_weights(spec.share_to_second)

    def destination(subset: str) -> dict[str, Any]:
        return {"host": spec.host, "subset": subset, "port": {"number": spec.port}}

    http: list[dict[str, Any]] = []
    if spec.header_override is not None:
        override = spec.header_override
        if override.subset not in spec.subsets:
            raise ValueError(f"WeightedRoute {spec.name}: header override subset {override.subset!r} is not a subset")
        http.append(
            {
                "name": f"{override.name}-header",
                "match": [{"headers": {override.name: {"exact": override.value}}}],
                "route": [{"destination": destination(override.subset), "weight": 100}],
            }
        )
    http.append(
        {
            "name": "weighted",
            "route": [
                {"destination": destination(first), "weight": weights[0]},
                {"destination": destination(second), "weight": weights[1]},
            ],
        }
    )
    spec_body: dict[str, Any] = {"hosts": list(spec.hosts or [spec.host]), "http": http}
    if spec.gateways:
        spec_body["gateways"] = list(spec.gateways)
    return {
        "apiVersion": ISTIO_API,
        "kind": "VirtualService",
        "metadata": _metadata(spec),
        "spec": spec_body,
    }


def _metadata(spec: RouteSpec) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": spec.name, "namespace": spec.namespace}
    if spec.labels:
        metadata["labels"] = dict(spec.labels)
    return metadata


def destination_rule_manifest(spec: RouteSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "host": spec.host,
        "subsets": [{"name": name, "labels": dict(labels)} for name, labels in spec.subsets.items()],
    }
    if spec.load_balancer:
        body["trafficPolicy"] = {"loadBalancer": {"simple": spec.load_balancer}}
    return {
        "apiVersion": ISTIO_API,
        "kind": "DestinationRule",
        "metadata": _metadata(spec),
        "spec": body,
    }


def weighted_route_path(manifest: Mapping[str, Any]) -> str:
    """Index of the weighted rule inside spec.http (after an optional header rule)."""
    return str(next(i for i, rule in enumerate(manifest["spec"]["http"]) if rule["name"] == "weighted"))
