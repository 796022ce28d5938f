"""Istio routes for the Pulumi program: the shared pure renderer (apps/lib/meshroute.py, also run by the
controller) and what only Pulumi needs on top of it."""

from __future__ import annotations

from apps.lib.meshroute import (
    WEIGHTED_RULE,
    HeaderOverride,
    RouteSpec,
    destination_rule_manifest,
    live_share,
    split_weights,
    virtual_service_manifest,
)

PATCH_FORCE = "pulumi.com/patchForce"

__all__ = [
    "PATCH_FORCE",
    "WEIGHTED_RULE",
    "HeaderOverride",
    "RouteSpec",
    "destination_rule_manifest",
    "live_share",
    "split_weights",
    "virtual_service_manifest",
]
