"""MeshFirewall: lets the pods of both clusters reach each other's nodes, and nothing wider."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import pulumi
import pulumi_gcp as gcp

# Istio's multi-cluster guide opens every protocol pods may speak between the clusters.
MESH_PROTOCOLS = ("tcp", "udp", "icmp", "esp", "ah", "sctp")
MESH_PRIORITY = 900
# Without the metadata (VPC, instance names) the log lines only show IPs; it costs no more per line.
LOG_METADATA = "INCLUDE_ALL_METADATA"


class MeshFirewallArgs(TypedDict):
    project: pulumi.Input[str]
    """GCP project of the VPC."""
    network: pulumi.Input[str]
    """The VPC both clusters share."""
    pod_cidrs: Sequence[pulumi.Input[str]]
    """Pod IP ranges of the clusters: the only sources allowed."""
    node_tags: Sequence[pulumi.Input[str]]
    """Node network tags of the clusters: the only targets."""


class MeshFirewall(pulumi.ComponentResource):
    firewall_name: pulumi.Output[str]
    """GCP name of the rule."""

    def __init__(self, name: str, args: MeshFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:network:MeshFirewall", name, None, opts)
        if not args["pod_cidrs"] or not args["node_tags"]:
            raise ValueError(f"MeshFirewall {name}: pod_cidrs and node_tags must not be empty")
        rule = gcp.compute.Firewall(
            f"{name}-pods",
            project=args["project"],
            network=args["network"],
            description="meshburst: pod-to-pod traffic between the primary and burst clusters",
            direction="INGRESS",
            priority=MESH_PRIORITY,
            allows=[gcp.compute.FirewallAllowArgs(protocol=p) for p in MESH_PROTOCOLS],
            source_ranges=list(args["pod_cidrs"]),
            target_tags=list(args["node_tags"]),
            # Every connection the rule admits between the clusters is logged (Cloud Logging, for audit).
            log_config=gcp.compute.FirewallLogConfigArgs(metadata=LOG_METADATA),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.firewall_name = rule.name
        self.register_outputs({"firewallName": self.firewall_name})
