"""Rules for Istio routing: every request goes somewhere that exists, in the proportions written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policy.rules import Props, Rule, StackResource, StackRule, get, identity, items, label, number, show

VIRTUAL_SERVICE_TYPES = (
    "kubernetes:networking.istio.io/v1:VirtualService",
    "kubernetes:networking.istio.io/v1beta1:VirtualService",
    "kubernetes:networking.istio.io/v1alpha3:VirtualService",
)
DESTINATION_RULE_TYPES = (
    "kubernetes:networking.istio.io/v1:DestinationRule",
    "kubernetes:networking.istio.io/v1beta1:DestinationRule",
    "kubernetes:networking.istio.io/v1alpha3:DestinationRule",
)
ROUTE_KINDS = ("http", "tcp", "tls")
CLUSTER_DOMAIN = "svc.cluster.local"


def routes(props: Props) -> list[tuple[str, Mapping[str, Any]]]:
    """(path, route) for each http, tcp and tls route of a VirtualService."""
    spec = props.get("spec")
    if not isinstance(spec, Mapping):
        return []
    return [
        (f"spec.{kind}[{i}]", route)
        for kind in ROUTE_KINDS
        for i, route in enumerate(items(spec.get(kind)))
        if isinstance(route, Mapping)
    ]


def _weights(resource_type: str, props: Props) -> list[str]:
    found = []
    for path, route in routes(props):
        destinations = [d for d in items(route.get("route")) if isinstance(d, Mapping)]
        weights = [d.get("weight") for d in destinations]
        if len(destinations) == 1:
            # Istio sends everything to a lone destination; a weight other than 100 says someone meant a split.
            if weights[0] is not None and number(weights[0]) != 100:
                found.append(
                    f"{label(resource_type, props)}: {path} has one destination with weight {show(weights[0])}: "
                    "a lone destination takes all traffic, write 100 or leave it out"
                )
            continue
        if len(destinations) < 2:
            continue
        total = sum(number(w) or 0.0 for w in weights)
        if total != 100:
            written = " + ".join("unset" if w is None else show(w) for w in weights)
            found.append(f"{label(resource_type, props)}: {path} weights sum to {show(total)} ({written}), not 100")
    return found


def fqdn(host: str, namespace: str) -> str:
    """A service host as Istio resolves it from an object in `namespace`: shark -> shark.meshburst.svc.cluster.local."""
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
    if len(parts) == 2:
        return f"{host}.{CLUSTER_DOMAIN}"
    return host


def _subsets(resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    defined: dict[str, set[str]] = {}
    for r in resources:
        if r.resource_type not in DESTINATION_RULE_TYPES:
            continue
        _, namespace, _ = identity(r.resource_type, r.props)
        host = get(r.props, "spec.host")
        if isinstance(host, str):
            names = {str(s.get("name")) for s in items(get(r.props, "spec.subsets")) if isinstance(s, Mapping)}
            defined.setdefault(fqdn(host, namespace), set()).update(names)
    found = []
    for r in resources:
        if r.resource_type not in VIRTUAL_SERVICE_TYPES:
            continue
        _, namespace, _ = identity(r.resource_type, r.props)
        for path, route in routes(r.props):
            for j, destination in enumerate(items(route.get("route"))):
                host, subset = get(destination, "destination.host"), get(destination, "destination.subset")
                if not isinstance(host, str) or subset in (None, ""):
                    continue
                full = fqdn(host, namespace)
                known = defined.get(full, set())
                if subset not in known:
                    have = f"it defines {sorted(known)}" if known else "there is none"
                    found.append(
                        (
                            r.urn,
                            f"{label(r.resource_type, r.props)}: {path}.route[{j}] sends to subset {subset!r} of "
                            f"{full}, which no DestinationRule for that host defines ({have})",
                        )
                    )
    return found


RULES: tuple[Rule, ...] = (
    Rule(
        "istio-route-weights",
        "Each VirtualService route's weights sum to 100: otherwise Istio rejects the route or splits traffic in "
        "proportions nobody wrote (a canary at 90/20 is not 20%).",
        VIRTUAL_SERVICE_TYPES,
        _weights,
    ),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "istio-route-subsets",
        "Every subset a VirtualService routes to is defined by a DestinationRule for the same host: a missing "
        "subset makes Envoy answer 503 for that share of requests.",
        _subsets,
    ),
)
