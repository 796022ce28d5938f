"""CloudNat: internet egress for private GKE nodes (image pulls, Google APIs), one router and NAT per region.

Ownership: the primary stack owns the NAT of its region, and the burst cluster (in the same region and
subnetwork) uses it. GCP lets only one NAT gateway serve a subnetwork's IP ranges, so a second NAT from the
burst stack on the same subnet would be refused; and owning nothing shared means `pulumi destroy -s burst`
cannot take the primary's egress with it. `same_region_gate` makes the burst stack stop, before any
resource, when it is placed in another region, where it would have no NAT.
https://cloud.google.com/nat/docs/overview#specs-rtr-nat
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import pulumi
import pulumi_gcp as gcp

from config.settings import ConfigError

# Errors only: enough to see egress dropped for want of NAT ports, without logging every connection.
LOG_FILTER = "ERRORS_ONLY"


def region_of(zone: str) -> str:
    """us-west1-a -> us-west1."""
    return zone.rsplit("-", 1)[0]


def subnetwork_link(project: str, region: str, subnetwork: str) -> str:
    """The subnetwork's self link path, as Cloud NAT names the subnetworks it serves."""
    if subnetwork.startswith("projects/") or subnetwork.startswith("https://"):
        return subnetwork
    return f"projects/{project}/regions/{region}/subnetworks/{subnetwork}"


def region_problems(stack: str, zone: str, primary_zone: str) -> list[str]:
    """The burst cluster's private nodes get egress from the primary's NAT, which serves one region."""
    if region_of(zone) == region_of(primary_zone):
        return []
    return [
        f"gcp:zone = {zone!r} on the {stack} stack is in {region_of(zone)}, but the primary runs in "
        f"{primary_zone!r} ({region_of(primary_zone)}), whose Cloud NAT is the only egress for the private "
        f"nodes: set `pulumi config set gcp:zone {region_of(primary_zone)}-<zone letter> -s {stack}`"
    ]


def same_region_gate(
    zone: str, primary_zone: pulumi.Input[str], primary: pulumi.Resource
) -> pulumi.Output[pulumi.Resource]:
    """`primary` once the burst zone is in the primary's region (for `depends_on`); otherwise a ConfigError."""
    stack = pulumi.get_stack()

    def check(theirs: str) -> pulumi.Resource:
        problems = region_problems(stack, zone, theirs)
        if problems:
            raise ConfigError(problems)
        return primary

    return pulumi.Output.from_input(primary_zone).apply(check)


class CloudNatArgs(TypedDict):
    project: pulumi.Input[str]
    """GCP project of the VPC."""
    region: str
    """Region of the router and NAT (the clusters' region)."""
    network: pulumi.Input[str]
    """The VPC the clusters share."""
    subnetworks: Sequence[pulumi.Input[str]]
    """Subnetworks whose every range (nodes and pods) gets egress: the clusters' own."""


class CloudNat(pulumi.ComponentResource):
    router_name: pulumi.Output[str]
    """GCP name of the Cloud Router."""
    nat_name: pulumi.Output[str]
    """GCP name of the NAT gateway."""

    def __init__(self, name: str, args: CloudNatArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:network:CloudNat", name, None, opts)
        if not args["subnetworks"]:
            raise ValueError(f"CloudNat {name}: subnetworks must not be empty")
        child = pulumi.ResourceOptions(parent=self)
        region = args["region"]
        router = gcp.compute.Router(
            f"{name}-router",
            name=f"meshburst-{region}",
            project=args["project"],
            region=region,
            network=args["network"],
            description="meshburst: Cloud NAT for the private GKE nodes",
            opts=child,
        )
        links = [
            pulumi.Output.all(args["project"], subnet).apply(lambda parts: subnetwork_link(parts[0], region, parts[1]))
            for subnet in args["subnetworks"]
        ]
        nat = gcp.compute.RouterNat(
            f"{name}-nat",
            name=f"meshburst-{region}",
            project=args["project"],
            region=region,
            router=router.name,
            # Only the clusters' subnetworks: other subnets of the VPC keep whatever NAT their owners gave them.
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[
                gcp.compute.RouterNatSubnetworkArgs(name=link, source_ip_ranges_to_nats=["ALL_IP_RANGES"])
                for link in links
            ],
            nat_ip_allocate_option="AUTO_ONLY",
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter=LOG_FILTER),
            opts=child,
        )
        self.router_name = router.name
        self.nat_name = nat.name
        self.register_outputs({"routerName": self.router_name, "natName": self.nat_name})
