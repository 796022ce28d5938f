"""Rules for Istio routing: every request goes somewhere that exists, in the proportions written."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apps.lib.meshroute import RouteSpec, virtual_service_manifest
from builders.routes import INTENT_KEY
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
CONFIG_MAP_TYPES = ("kubernetes:core/v1:ConfigMap",)
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


@dataclass
class RenderedRoute:
    """A VirtualService a controller would write: Pulumi never registers it, the same rules judge it."""

    resource_type: str
    props: Props
    urn: str


def intent_routes(resource_type: str, props: Props, urn: str = "") -> list[RenderedRoute]:
    """The routes a controller renders from an intent ConfigMap (writer=controller) at every share it can set:
    the starting one, 0, 100 and each canary step. ValueError when the intent is not what the controller reads."""
    if resource_type not in CONFIG_MAP_TYPES:
        return []
    text = (props.get("data") or {}).get(INTENT_KEY) if isinstance(props.get("data"), Mapping) else None
    if not isinstance(text, str):
        return []
    try:
        document = json.loads(text)
        if document.get("writer") != "controller":
            return []
        spec = RouteSpec.from_json(document["route"])
        shares = {spec.share_to_second, 0, 100, *document["settings"].get("steps", [])}
        manifests = [virtual_service_manifest(spec.with_share(share)) for share in sorted(shares)]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{INTENT_KEY} is not the intent the controller reads ({type(error).__name__}: {error})"
        ) from None
    return [RenderedRoute(VIRTUAL_SERVICE_TYPES[0], manifest, urn) for manifest in manifests]


def _intent(resource_type: str, props: Props) -> list[str]:
    try:
        rendered = intent_routes(resource_type, props)
    except ValueError as error:
        return [f"{label(resource_type, props)}: {error}"]
    return [
        f"{label(resource_type, props)} renders, at {share}%: {message}"
        for route in rendered
        for share in [route.props["spec"]["http"][-1]["route"][1]["weight"]]
        for message in _weights(route.resource_type, route.props)
    ]


def fqdn(host: str, namespace: str) -> str:
    """A service host as Istio resolves it from an object in `namespace`: shark -> shark.meshburst.svc.cluster.local."""
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
    if len(parts) == 2:
        return f"{host}.{CLUSTER_DOMAIN}"
    return host


def _with_intent_routes(resources: Sequence[StackResource]) -> list[StackResource]:
    found: list[StackResource] = list(resources)
    for r in resources:
        try:
            found += intent_routes(r.resource_type, r.props, r.urn)
        except ValueError:
            continue  # istio-route-intent reports it
    return found


def _subsets(resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    resources = _with_intent_routes(resources)
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
            # Mirrors too: a copy sent to a missing subset fails just as silently.
            targets = [(f"route[{j}]", d) for j, d in enumerate(items(route.get("route")))]
            targets += [(f"mirrors[{j}]", d) for j, d in enumerate(items(route.get("mirrors")))]
            for where, destination in targets:
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
                            f"{label(r.resource_type, r.props)}: {path}.{where} sends to subset {subset!r} of "
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
    Rule(
        "istio-route-intent",
        "The route a controller renders from an intent (progressive canary, auto burst) passes the same checks as "
        "one Pulumi writes, at every share the controller can set: Pulumi never sees that VirtualService itself.",
        CONFIG_MAP_TYPES,
        _intent,
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
