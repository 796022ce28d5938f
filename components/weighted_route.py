"""WeightedRoute: an Istio route splitting one host between two subsets, with exactly one writer of its weights.

Pulumi always owns the DestinationRule and the route's *intent* (a ConfigMap: the RouteSpec, who writes the
VirtualService, the controller policy's settings). The VirtualService has one writer, chosen by `writer`:

- `pulumi`: Pulumi registers the VirtualService. The intent says so, and a controller still running during a
  switch back to manual writes nothing more (it reads the VirtualService, then the intent, and applies with the
  version it read: Pulumi's write, which waits for the intent, makes its apply fail).
- `controller`: the VirtualService is not a Pulumi resource at all; the controller renders it from the intent with
  the same renderer (apps/lib/meshroute.py). Pulumi creates the status ConfigMap, whose `data` only the
  controller writes (ignore_changes keeps Pulumi off it).

No field of any object has two writers, so a switch either way is one `pulumi up` with no conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from builders.routes import (
    INTENT_KEY,
    PATCH_FORCE,
    RouteSpec,
    destination_rule_manifest,
    intent_document,
    intent_name,
    route_object_metadata,
    status_name,
    virtual_service_manifest,
)
from resources.kubernetes import custom_resource


class WeightedRouteArgs(TypedDict):
    spec: RouteSpec
    """What to route and how to split it (in `controller` mode the split only applies while nothing is live)."""
    policy: str
    """The controller policy this route answers to: `canary` or `burst`."""
    writer: NotRequired[str]
    """Who writes the VirtualService: `pulumi` (default) or `controller`."""
    settings: NotRequired[pulumi.Input[Mapping[str, Any]]]
    """The policy's settings, written into the intent (see apps/controller/{canary,burst}.py)."""


class WeightedRoute(pulumi.ComponentResource):
    virtual_service_name: str
    """Name of the VirtualService."""
    intent_name: str
    """Name of the intent ConfigMap (the controller reads it)."""
    status_name: str
    """Name of the status ConfigMap (the controller writes its data)."""
    intent: k8s.core.v1.ConfigMap
    """The intent: a controller for this route starts after it."""

    def __init__(self, name: str, args: WeightedRouteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:istio:WeightedRoute", name, None, opts)
        spec, writer, policy = args["spec"], args.get("writer", "pulumi"), args["policy"]
        child = pulumi.ResourceOptions(parent=self)
        # The rule first: a route to a subset that does not exist yet would 503 for a moment.
        destination_rule = custom_resource(f"{name}-destination-rule", destination_rule_manifest(spec), child)
        settings: pulumi.Output[Any] = pulumi.Output.from_input(args.get("settings", {}))
        intent_document(spec, writer, policy, {})  # refuse a bad writer or policy now, not inside an apply
        self.intent = k8s.core.v1.ConfigMap(
            f"{name}-intent",
            metadata=k8s.meta.v1.ObjectMetaArgs(**route_object_metadata(spec, intent_name(spec.name), writer)),
            data={INTENT_KEY: settings.apply(lambda values: intent_document(spec, writer, policy, values))},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[destination_rule]),
        )
        if writer == "pulumi":
            virtual_service = virtual_service_manifest(spec)
            # If the controller wrote the route last (a switch back to manual), server-side apply takes the
            # fields over instead of failing on a field-manager conflict.
            virtual_service["metadata"]["annotations"] = {PATCH_FORCE: "true"}
            custom_resource(
                f"{name}-virtual-service",
                virtual_service,
                pulumi.ResourceOptions(
                    parent=self,
                    # After the intent: a controller still running reads writer=pulumi before this write lands.
                    depends_on=[destination_rule, self.intent],
                    # A switch to the controller drops this resource from the program; the live route must stay
                    # (the controller takes it over) instead of vanishing until the controller writes it again.
                    # On `pulumi destroy` the apps namespace, and the cluster, take it with them.
                    retain_on_delete=True,
                ),
            )
        else:
            k8s.core.v1.ConfigMap(
                f"{name}-status",
                metadata=k8s.meta.v1.ObjectMetaArgs(**route_object_metadata(spec, status_name(spec.name), writer)),
                # Only the controller writes the data (its phase, weight, verdicts); Pulumi owns the metadata.
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["data"]),
            )
        self.virtual_service_name = spec.name
        self.intent_name = intent_name(spec.name)
        self.status_name = status_name(spec.name)
        self.register_outputs({"virtualServiceName": self.virtual_service_name})
