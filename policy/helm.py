"""Rules for Helm releases and load balancers: charts pinned, and the mesh's control plane kept off the internet."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policy.rules import Props, Rule, get, items, label, number

RELEASE = "kubernetes:helm.sh/v3:Release"
CHART_V4 = "kubernetes:helm.sh/v4:Chart"
SERVICE = "kubernetes:core/v1:Service"
# Semantic version, exact: 1.30.3, 27.46.0, v2.5.0. Not 1.30, ~1.30.0, ^27, >=1 or a range.
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
# istiod's xDS/CA port and its injection and validation webhook port, as the east-west gateway exposes them.
CONTROL_PORTS = frozenset({15012, 15017})
# What the istio gateway chart's service exposes when it is a network gateway (its networkGatewayPorts defaults).
NETWORK_GATEWAY_PORTS = {"status-port": 15021, "tls": 15443, "tls-istiod": 15012, "tls-webhook": 15017}
INTERNAL_ANNOTATIONS = ("networking.gke.io/load-balancer-type", "cloud.google.com/load-balancer-type")


def _pinned(resource_type: str, props: Props) -> list[str]:
    chart, version = props.get("chart"), props.get("version")
    name = props.get("name") or chart
    if version in (None, ""):
        return [f"Helm release {name!r} (chart {chart!r}) has no version: Helm would install whatever is newest"]
    if not isinstance(version, str) or not EXACT_VERSION.match(version):
        return [
            f"Helm release {name!r} (chart {chart!r}) has version {version!r}: pin an exact version (e.g. 1.30.3), "
            "so a chart release cannot change the cluster without a reviewed change"
        ]
    return []


def _internal(annotations: Any) -> bool:
    if not isinstance(annotations, Mapping):
        return False
    return any(str(annotations.get(key, "")).lower() == "internal" for key in INTERNAL_ANNOTATIONS)


def _port_numbers(ports: Any) -> set[int]:
    found = set()
    for port in items(ports):
        if isinstance(port, Mapping):
            for key in ("port", "targetPort"):
                n = number(port.get(key))
                if n is not None:
                    found.add(int(n))
    return found


def _gateway_release(props: Props) -> list[str]:
    values = props.get("values")
    if props.get("chart") != "gateway" or not isinstance(values, Mapping):
        return []
    service_type = get(values, "service.type") or "LoadBalancer"  # the chart's default
    if service_type != "LoadBalancer":
        return []
    if values.get("networkGateway"):
        configured = values.get("networkGatewayPorts")
        overrides = configured if isinstance(configured, Mapping) else {}
        exposed = {
            int(number(get(overrides, f"{name}.targetPort")) or default)
            for name, default in NETWORK_GATEWAY_PORTS.items()
        }
    else:
        exposed = _port_numbers(get(values, "service.ports"))
    control = sorted(exposed & CONTROL_PORTS)
    annotations = {**(values.get("annotations") or {}), **(get(values, "service.annotations") or {})}
    if control and not _internal(annotations):
        return [
            f"Helm release {props.get('name')!r} (chart gateway) exposes istiod's ports {control} on a public load "
            "balancer: annotate service networking.gke.io/load-balancer-type: Internal"
        ]
    return []


def _service(resource_type: str, props: Props) -> list[str]:
    if get(props, "spec.type") != "LoadBalancer":
        return []
    control = sorted(_port_numbers(get(props, "spec.ports")) & CONTROL_PORTS)
    if control and not _internal(get(props, "metadata.annotations")):
        return [
            f"{label(resource_type, props)} exposes istiod's ports {control} on a public load balancer: annotate "
            "it networking.gke.io/load-balancer-type: Internal"
        ]
    return []


def _control_internal(resource_type: str, props: Props) -> list[str]:
    return _service(resource_type, props) if resource_type == SERVICE else _gateway_release(props)


RULES: tuple[Rule, ...] = (
    Rule(
        "helm-chart-pinned",
        "Helm releases name an exact chart version: a new chart release (new defaults, new images) reaches the "
        "cluster only through a reviewed change, and previews show what will really be installed.",
        (RELEASE, CHART_V4),
        _pinned,
    ),
    Rule(
        "mesh-control-internal",
        "istiod's control ports (15012 xDS and certificates, 15017 webhooks) are reachable only inside the VPC, "
        "through an internal load balancer: on a public one, anyone could ask the mesh for its configuration.",
        (RELEASE, SERVICE),
        _control_internal,
    ),
)
