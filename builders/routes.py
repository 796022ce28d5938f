"""Istio routes for the Pulumi program: the shared pure renderer (apps/lib/meshroute.py, also run by the
controller) and what only Pulumi needs on top of it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from apps.lib.meshroute import (
    INTENT_KEY,
    INTENT_VERSION,
    ROUTE_POLICIES,
    WEIGHTED_RULE,
    WRITERS,
    Abort,
    Delay,
    FaultInjection,
    RequestMatch,
    RouteSpec,
    destination_rule_manifest,
    fault_filter_manifest,
    header_override,
    live_share,
    split_weights,
    virtual_service_manifest,
)

PATCH_FORCE = "pulumi.com/patchForce"

__all__ = [
    "INTENT_KEY",
    "MANAGED_BY",
    "PATCH_FORCE",
    "POLICIES",
    "WEIGHTED_RULE",
    "WRITERS",
    "Abort",
    "Delay",
    "FaultInjection",
    "RequestMatch",
    "RouteSpec",
    "destination_rule_manifest",
    "fault_filter_manifest",
    "header_override",
    "intent_document",
    "intent_name",
    "live_share",
    "route_object_metadata",
    "split_weights",
    "status_name",
    "virtual_service_manifest",
]

POLICIES = ROUTE_POLICIES
MANAGED_BY = "meshburst.dev/route-writer"
"""Label on a route's intent and status objects naming who writes the VirtualService now."""


def intent_name(route: str) -> str:
    """The ConfigMap where Pulumi states what a route should be; the controller only reads it."""
    return f"{route}-intent"


def status_name(route: str) -> str:
    """The ConfigMap whose `data` the controller writes: phase, weight, last verdict."""
    return f"{route}-status"


def intent_document(spec: RouteSpec, writer: str, policy: str, settings: Mapping[str, Any]) -> str:
    """The intent as the controller reads it (apps/controller/core.py): stable JSON, so an unchanged
    intent is no diff in `pulumi preview`."""
    if writer not in WRITERS:
        raise ValueError(f"route {spec.name}: writer must be one of {list(WRITERS)}, got {writer!r}")
    if policy not in POLICIES:
        raise ValueError(f"route {spec.name}: policy must be one of {list(POLICIES)}, got {policy!r}")
    document: dict[str, Any] = {"version": INTENT_VERSION, "writer": writer, "policy": policy}
    if writer == "controller":
        document |= {"route": spec.to_json(), "settings": dict(settings)}
    else:
        # While Pulumi writes the route, the intent says so and which share it wrote (the Hashr page reads it from
        # the mounted ConfigMap): a manual change moves the VirtualService and this ConfigMap, and restarts nothing.
        document["share"] = spec.share_to_second
    return json.dumps(document, indent=2, sort_keys=True)


def route_object_metadata(spec: RouteSpec, name: str, writer: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": {**spec.labels, "app.kubernetes.io/part-of": "meshburst", MANAGED_BY: writer},
    }
