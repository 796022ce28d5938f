"""WeightedRoute: an Istio VirtualService + DestinationRule splitting one host between named subsets."""

from __future__ import annotations

from typing import NotRequired, TypedDict

import pulumi

from builders.routes import (
    PATCH_FORCE,
    WEIGHTED_RULE,
    RouteSpec,
    destination_rule_manifest,
    virtual_service_manifest,
)
from resources.kubernetes import custom_resource


class WeightedRouteArgs(TypedDict):
    spec: RouteSpec
    """What to route and how to split it."""
    weights_owned_elsewhere: NotRequired[bool]
    """True when a controller (burstwatch) owns the weights: Pulumi then ignores changes to them."""


class WeightedRoute(pulumi.ComponentResource):
    virtual_service_name: str
    """Name of the VirtualService (what a controller patches)."""

    def __init__(self, name: str, args: WeightedRouteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:istio:WeightedRoute", name, None, opts)
        spec = args["spec"]
        virtual_service = virtual_service_manifest(spec)
        rule = destination_rule_manifest(spec)
        child = pulumi.ResourceOptions(parent=self)
        # The rule first: a route to a subset that does not exist yet would 503 for a moment.
        destination_rule = custom_resource(f"{name}-destination-rule", rule, child)
        ignore: list[str] = []
        if args.get("weights_owned_elsewhere"):
            index = next(i for i, rule in enumerate(virtual_service["spec"]["http"]) if rule["name"] == WEIGHTED_RULE)
            ignore = [f"spec.http[{index}].route[{i}].weight" for i in range(len(spec.subsets))]
        else:
            # Pulumi is the one writer of these weights. If something else wrote them (burstwatch before
            # a switch back to manual, a kubectl edit), server-side apply takes them back instead of
            # failing on a field-manager conflict; adding this annotation is itself the change that
            # makes an auto -> manual switch re-apply the weights.
            virtual_service["metadata"]["annotations"] = {PATCH_FORCE: "true"}
        custom_resource(
            f"{name}-virtual-service",
            virtual_service,
            pulumi.ResourceOptions(parent=self, depends_on=[destination_rule], ignore_changes=ignore),
        )
        self.virtual_service_name = spec.name
        self.register_outputs({"virtualServiceName": self.virtual_service_name})
