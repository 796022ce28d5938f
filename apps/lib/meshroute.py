"""Istio routes that split one host between two named subsets, as pure functions over plain data.

One renderer for both writers of a route: the Pulumi program (manual modes) and the controller
(progressive canary, auto burst), which reads the same RouteSpec back from the intent object Pulumi
writes. So `RouteSpec` round-trips through JSON (`to_json` / `from_json`) and this module imports
nothing outside the standard library (it is copied into the controller image from the `lib` context).

Besides the weighted split, a route may carry what a canary needs (all of it in the RouteSpec, so a
controller that renders the route keeps it as Pulumi set it):
- `overrides`: request matches (a header or a cookie: exact, prefix or an RE2 regex) that always reach
  a subset, tried before the weights (A/B targeting);
- `sticky_cookie`: the second subset's weighted responses set this cookie, and a request carrying it
  goes to the second subset before the weights are consulted (a client stays on the canary);
- `mirror_percent`: that share of the weighted rule's requests is also sent to the second subset,
  whose responses Envoy drops (shadow traffic).
Fault injection is rendered here too but is not part of the route: see `fault_filter_manifest`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

ISTIO_API = "networking.istio.io/v1"

# The intent: a ConfigMap Pulumi writes and the controller reads (builders/routes.py, apps/controller/core.py).
INTENT_KEY = "intent.json"
INTENT_VERSION = 1
WRITERS = ("pulumi", "controller")
"""Who writes a route's VirtualService: Pulumi (manual modes) or its controller."""
ROUTE_POLICIES = ("canary", "burst")
"""The controller policies a route can answer to (one image, apps/controller/main.py picks by POLICY)."""
ENVOY_FILTER_API = "networking.istio.io/v1alpha3"
WEIGHTED_RULE = "weighted"
STICKY_RULE = "sticky"
MATCH_KINDS = ("header", "cookie")
MATCH_TYPES = ("exact", "prefix", "regex")
# RFC 7230 token: what a header name, and (RFC 6265) a cookie name, may be made of.
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# What RE2 gives a meaning to outside a character class; escaped with a backslash, each is itself.
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def split_weights(share_to_second: int) -> tuple[int, int]:
    """Weights of (first, second) subset when `share_to_second` percent goes to the second.

    Non-negative integers that always sum to 100: Istio rejects a route whose weights do not.
    """
    if isinstance(share_to_second, bool) or not isinstance(share_to_second, int):
        raise TypeError(f"share must be a whole number, got {share_to_second!r}")
    if not 0 <= share_to_second <= 100:
        raise ValueError(f"share must be from 0 to 100, got {share_to_second}")
    return 100 - share_to_second, share_to_second


def re2_escape(text: str) -> str:
    """`text` as an RE2 pattern that matches exactly `text`."""
    return "".join(f"\\{char}" if char in _RE2_SPECIAL else char for char in text)


def cookie_regex(name: str, match_type: str, value: str) -> str:
    """An RE2 regex for a whole `cookie` header (`a=1; b=2`) that carries cookie `name` with a matching value.

    Istio has no cookie match: it is a header match on `cookie`, and Envoy matches a regex against the
    header's whole value. `regex` values are matched against the cookie's whole value.
    """
    if match_type == "exact":
        body = re2_escape(value)
    elif match_type == "prefix":
        body = f"{re2_escape(value)}[^;]*"
    elif match_type == "regex":
        body = f"(?:{value})"
    else:
        raise ValueError(f"cookie match type must be one of {list(MATCH_TYPES)}, got {match_type!r}")
    return f"^(?:.*;\\s*)?{re2_escape(name)}={body}(?:;.*)?$"


@dataclass(frozen=True)
class RequestMatch:
    """Requests whose header (or cookie) `name` matches `value` always go to `subset`."""

    kind: str
    """`header` or `cookie`."""
    name: str
    """Header name (lowercase, as Istio wants it) or cookie name."""
    match_type: str
    """`exact`, `prefix` or `regex` (RE2 syntax, matched against the whole value)."""
    value: str
    subset: str

    def istio_match(self) -> dict[str, Any]:
        """This match as one Istio HTTPMatchRequest."""
        if self.kind == "header":
            return {"headers": {self.name: {self.match_type: self.value}}}
        return {"headers": {"cookie": {"regex": cookie_regex(self.name, self.match_type, self.value)}}}


def header_override(name: str, value: str, subset: str) -> RequestMatch:
    """Requests carrying header `name` exactly equal to `value` always go to `subset`."""
    return RequestMatch(kind="header", name=name, match_type="exact", value=value, subset=subset)


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
    overrides: Sequence[RequestMatch] = ()
    """Requests these match go to their subset whatever the weights; tried in order, before the weights."""
    load_balancer: str | None = None
    """simple load balancer of the DestinationRule, e.g. RANDOM."""
    labels: Mapping[str, str] = field(default_factory=dict)
    sticky_cookie: str | None = None
    """Cookie that keeps a client the weights sent to the second subset there; None: no stickiness."""
    mirror_percent: int = 0
    """Percent of the weighted rule's requests also sent to the second subset (responses dropped)."""

    def __post_init__(self) -> None:
        # Tuples, whatever the caller gave: a spec read back from JSON compares equal to the one written.
        for name in ("hosts", "gateways", "overrides"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def with_share(self, share_to_second: int) -> RouteSpec:
        split_weights(share_to_second)
        return RouteSpec(**{**_fields(self), "share_to_second": share_to_second})

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data; `from_json` gives back an equal RouteSpec."""
        data = asdict(self)
        data["subsets"] = [{"name": name, "labels": dict(labels)} for name, labels in self.subsets.items()]
        data["hosts"], data["gateways"], data["labels"] = list(self.hosts), list(self.gateways), dict(self.labels)
        data["overrides"] = [asdict(override) for override in self.overrides]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteSpec:
        """The RouteSpec `to_json` wrote; KeyError/TypeError/ValueError on anything else.

        An intent written before `overrides` existed carries one `header_override`: it is read as the
        first override, so a controller reads an older intent the same way Pulumi meant it.
        """
        values = dict(data)
        subsets = values.pop("subsets")
        values["subsets"] = {entry["name"]: dict(entry["labels"]) for entry in subsets}
        overrides = [RequestMatch(**entry) for entry in values.pop("overrides", ())]
        legacy = values.pop("header_override", None)
        if legacy is not None:
            overrides.insert(0, header_override(**legacy))
        values["overrides"] = tuple(overrides)
        values["hosts"] = tuple(values.get("hosts", ()))
        values["gateways"] = tuple(values.get("gateways", ()))
        return cls(**values)


def _fields(spec: RouteSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def _check_extras(spec: RouteSpec) -> None:
    """What the renderer itself must refuse: it would render a route Istio rejects or that does not do what it says."""
    for override in spec.overrides:
        where = f"WeightedRoute {spec.name}: override {override.kind} {override.name!r}"
        if override.subset not in spec.subsets:
            raise ValueError(f"{where}: subset {override.subset!r} is not a subset")
        if override.kind not in MATCH_KINDS:
            raise ValueError(f"{where}: kind must be one of {list(MATCH_KINDS)}")
        if override.match_type not in MATCH_TYPES:
            raise ValueError(f"{where}: match type {override.match_type!r} is not one of {list(MATCH_TYPES)}")
        if not TOKEN.match(override.name) or (override.kind == "header" and override.name != override.name.lower()):
            raise ValueError(f"{where}: not a valid {override.kind} name")
    if spec.sticky_cookie is not None and not TOKEN.match(spec.sticky_cookie):
        raise ValueError(f"WeightedRoute {spec.name}: sticky cookie {spec.sticky_cookie!r} is not a valid cookie name")
    mirror = spec.mirror_percent
    if isinstance(mirror, bool) or not isinstance(mirror, int) or not 0 <= mirror <= 100:
        raise ValueError(f"WeightedRoute {spec.name}: mirror percent must be a whole number 0-100, got {mirror!r}")


def _rule_names(overrides: Sequence[RequestMatch]) -> list[str]:
    """`<name>-<kind>` per override (`canary-header`), numbered from the second use of a name on."""
    names: list[str] = []
    for override in overrides:
        base = f"{override.name.lower()}-{override.kind}"
        name, n = base, 1
        while name in names or name in (WEIGHTED_RULE, STICKY_RULE):
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def sticky_cookie_header(spec: RouteSpec) -> str | None:
    """The Set-Cookie value the second subset's weighted responses carry, or None when not sticky."""
    if spec.sticky_cookie is None:
        return None
    second = list(spec.subsets)[1]
    # A session cookie for the whole site, not readable by scripts; Lax: sent on top-level navigation too.
    return f"{spec.sticky_cookie}={second}; Path=/; HttpOnly; SameSite=Lax"


def virtual_service_manifest(spec: RouteSpec) -> dict[str, Any]:
    """The VirtualService: override rules in order, then the sticky rule, then the weighted rule.

    Istio tries http rules in order and the first whose match fits wins, so a targeted or sticky request
    never reaches the weights. The sticky rule exists only while the second subset has a weight: at 0 (a
    rollback) clients holding the cookie go back to the weights, which send them to the first subset. The
    mirror copies the weighted rule's requests while the first subset still gets some of them (at 100 every
    request already reaches the second subset).
    """
    if len(spec.subsets) != 2:
        raise ValueError(f"WeightedRoute {spec.name}: needs exactly two subsets, got {list(spec.subsets)}")
    _check_extras(spec)
    first, second = spec.subsets
    weights = split_weights(spec.share_to_second)

    def destination(subset: str) -> dict[str, Any]:
        return {"host": spec.host, "subset": subset, "port": {"number": spec.port}}

    http: list[dict[str, Any]] = [
        {
            "name": rule_name,
            "match": [override.istio_match()],
            "route": [{"destination": destination(override.subset), "weight": 100}],
        }
        for rule_name, override in zip(_rule_names(spec.overrides), spec.overrides, strict=True)
    ]
    set_cookie = sticky_cookie_header(spec) if weights[1] > 0 else None
    if set_cookie is not None:
        assert spec.sticky_cookie is not None
        http.append(
            {
                "name": STICKY_RULE,
                "match": [{"headers": {"cookie": {"regex": cookie_regex(spec.sticky_cookie, "exact", second)}}}],
                "route": [{"destination": destination(second), "weight": 100}],
            }
        )
    to_second: dict[str, Any] = {"destination": destination(second), "weight": weights[1]}
    if set_cookie is not None:
        # On this destination only: the cookie is set on responses from the second subset, not the first.
        to_second["headers"] = {"response": {"add": {"set-cookie": set_cookie}}}
    weighted: dict[str, Any] = {
        "name": WEIGHTED_RULE,
        "route": [{"destination": destination(first), "weight": weights[0]}, to_second],
    }
    if spec.mirror_percent > 0 and weights[0] > 0:
        weighted["mirrors"] = [{"destination": destination(second), "percentage": {"value": spec.mirror_percent}}]
    http.append(weighted)
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


@dataclass(frozen=True)
class Delay:
    fixed_ms: int
    """How long each delayed request waits, in milliseconds."""
    percent: int
    """Percent of the requests that wait."""


@dataclass(frozen=True)
class Abort:
    status: int
    """HTTP status the aborted requests get (200-599)."""
    percent: int
    """Percent of the requests aborted."""


@dataclass(frozen=True)
class FaultInjection:
    """Faults one workload's own sidecar injects into the requests it receives."""

    delay: Delay | None = None
    abort: Abort | None = None


def _fraction(percent: int) -> dict[str, Any]:
    return {"numerator": percent, "denominator": "HUNDRED"}


def _duration(milliseconds: int) -> str:
    """Protobuf JSON duration (what an EnvoyFilter's Struct turns into): seconds with an `s`."""
    seconds, millis = divmod(milliseconds, 1000)
    return f"{seconds}s" if millis == 0 else f"{seconds}.{millis:03d}s"


def http_fault_config(fault: FaultInjection) -> dict[str, Any]:
    """Envoy's HTTPFault filter config (envoy.extensions.filters.http.fault.v3)."""
    config: dict[str, Any] = {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}
    if fault.delay is not None:
        config["delay"] = {"fixed_delay": _duration(fault.delay.fixed_ms), "percentage": _fraction(fault.delay.percent)}
    if fault.abort is not None:
        config["abort"] = {"http_status": fault.abort.status, "percentage": _fraction(fault.abort.percent)}
    return config


def fault_filter_manifest(
    name: str, namespace: str, workload_labels: Mapping[str, str], port: int, fault: FaultInjection
) -> dict[str, Any]:
    """An EnvoyFilter adding Envoy's fault filter to the inbound HTTP chain of the pods `workload_labels` select.

    Why not the VirtualService's `fault`: it belongs to a whole http rule, and the weights choose a subset
    only after the rule (and its fault) has matched, so a fault on the weighted rule would hit v1's
    requests as much as v2's. The selected pods' own sidecar, on the way in, sees only requests already
    routed to them: weighted, targeted, sticky or mirrored, from the gateway or from any other caller.
    Inserted just before the router, so Istio's stats filter (earlier in the chain) still reports every
    injected delay and abort as the workload's own request: a progressive canary judges v2 on them.
    The kubelet's probes are not affected: Istio sends them through its agent, not the inbound listener.
    """
    if fault.delay is None and fault.abort is None:
        raise ValueError(f"EnvoyFilter {name}: a fault needs a delay, an abort or both")
    if not workload_labels:
        raise ValueError(f"EnvoyFilter {name}: without workload labels it would apply to every pod in {namespace}")
    return {
        "apiVersion": ENVOY_FILTER_API,
        "kind": "EnvoyFilter",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "workloadSelector": {"labels": dict(workload_labels)},
            "configPatches": [
                {
                    "applyTo": "HTTP_FILTER",
                    "match": {
                        "context": "SIDECAR_INBOUND",
                        "listener": {
                            "portNumber": port,
                            "filterChain": {
                                "filter": {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "subFilter": {"name": "envoy.filters.http.router"},
                                }
                            },
                        },
                    },
                    "patch": {
                        "operation": "INSERT_BEFORE",
                        "value": {"name": "envoy.filters.http.fault", "typed_config": http_fault_config(fault)},
                    },
                }
            ],
        },
    }
