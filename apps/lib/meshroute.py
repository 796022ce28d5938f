"""Istio routes that split one host between two named subsets, as pure functions over plain data.

One renderer for both writers of a route: the Pulumi program (manual modes) and the controller
(progressive canary, auto burst), which reads the same RouteSpec back from the intent object Pulumi
writes. So `RouteSpec` round-trips through JSON (`to_json` / `from_json`) and this module imports
nothing outside the standard library (it is copied into the controller image from the `lib` context).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

ISTIO_API = "networking.istio.io/v1"
WEIGHTED_RULE = "weighted"


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

    def with_share(self, share_to_second: int) -> RouteSpec:
        split_weights(share_to_second)
        return RouteSpec(**{**_fields(self), "share_to_second": share_to_second})

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data; `from_json` gives back an equal RouteSpec."""
        data = asdict(self)
        data["subsets"] = [{"name": name, "labels": dict(labels)} for name, labels in self.subsets.items()]
        data["hosts"], data["gateways"], data["labels"] = list(self.hosts), list(self.gateways), dict(self.labels)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteSpec:
        """The RouteSpec `to_json` wrote; KeyError/TypeError/ValueError on anything else."""
        values = dict(data)
        subsets = values.pop("subsets")
        values["subsets"] = {entry["name"]: dict(entry["labels"]) for entry in subsets}
        override = values.pop("header_override", None)
        values["header_override"] = HeaderOverride(**override) if override is not None else None
        values["hosts"] = tuple(values.get("hosts", ()))
        values["gateways"] = tuple(values.get("gateways", ()))
        return cls(**values)


def _fields(spec: RouteSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


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
            "name": WEIGHTED_RULE,
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


def live_share(manifest: Mapping[str, Any], spec: RouteSpec) -> int | None:
    """Share of the second subset in a live VirtualService's weighted rule, or None when it has none we read."""
    second = list(spec.subsets)[1]
    for rule in (manifest.get("spec") or {}).get("http") or []:
        if rule.get("name") != WEIGHTED_RULE:
            continue
        for route in rule.get("route") or []:
            if (route.get("destination") or {}).get("subset") == second:
                weight = route.get("weight", 0)
                return weight if isinstance(weight, int) and 0 <= weight <= 100 else None
        return 0
    return None


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
