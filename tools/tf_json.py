"""Turn the GCP resources a run registers into Terraform JSON, the shape checkov's Terraform checks read.

pulumi-gcp bridges the Terraform google provider, so each resource's inputs are that provider's
arguments under Pulumi names: camelCase instead of snake_case, nested blocks as objects (one) or lists
(many) instead of Terraform's lists of blocks, and some list blocks pluralised (`allows` for `allow`).
This module undoes exactly that, and refuses a GCP type it has no Terraform name for, so the gate can
never pass by skipping a resource silently.

    resource:
      google_container_cluster:
        primary_primary_cluster: {name: ..., private_cluster_config: [{enable_private_nodes: true}], ...}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tools.mockrun import Run

# Pulumi type token -> Terraform resource type, for every GCP type meshburst registers.
TERRAFORM_TYPES: Mapping[str, str] = {
    "gcp:container/cluster:Cluster": "google_container_cluster",
    "gcp:container/nodePool:NodePool": "google_container_node_pool",
    "gcp:compute/firewall:Firewall": "google_compute_firewall",
    "gcp:compute/router:Router": "google_compute_router",
    "gcp:compute/routerNat:RouterNat": "google_compute_router_nat",
    "gcp:compute/address:Address": "google_compute_address",
    "gcp:artifactregistry/repository:Repository": "google_artifact_registry_repository",
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": "google_artifact_registry_repository_iam_member",
    "gcp:projects/iAMMember:IAMMember": "google_project_iam_member",
    "gcp:serviceaccount/account:Account": "google_service_account",
}

# Where the bridge renamed a Terraform list block to a plural (Pulumi name -> Terraform name). The names
# are per resource type, because the same Pulumi name can mean different things elsewhere.
PLURALS: Mapping[str, Mapping[str, str]] = {
    "google_compute_firewall": {"allows": "allow", "denies": "deny"},
    "google_compute_router_nat": {"subnetworks": "subnetwork", "sourceIpRangesToNats": "source_ip_ranges_to_nat"},
    "google_container_cluster": {"nodePools": "node_pool"},
    "google_container_node_pool": {"taints": "taint", "guestAccelerators": "guest_accelerator"},
}

# Map-typed arguments (string -> string): Terraform attributes, not blocks, so they stay objects.
MAP_ARGUMENTS = frozenset({"labels", "resourceLabels", "metadata", "userLabels", "annotations"})

_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


def snake(name: str) -> str:
    """masterIpv4CidrBlock -> master_ipv4_cidr_block."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def terraform_name(stack: str, name: str) -> str:
    """A Terraform resource name for a Pulumi resource: unique across both stacks, identifier-safe."""
    return _IDENTIFIER.sub("_", f"{stack}_{name}")


def _argument(tf_type: str, key: str) -> str:
    return PLURALS.get(tf_type, {}).get(key) or snake(key)


def _block(tf_type: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """One Terraform block from Pulumi props: snake_case names, nested blocks as lists of blocks."""
    block: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith("__") or value is None:
            continue
        name = _argument(tf_type, key)
        if isinstance(value, Mapping):
            block[name] = dict(value) if key in MAP_ARGUMENTS else [_block(tf_type, value)]
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            block[name] = [_block(tf_type, v) for v in value]
        else:
            block[name] = value
    return block


def resource_block(pulumi_type: str, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(Terraform type, its arguments) for one resource's Pulumi props."""
    if pulumi_type not in TERRAFORM_TYPES:
        raise KeyError(f"no Terraform type for {pulumi_type}: add it to TERRAFORM_TYPES in tools/tf_json.py")
    tf_type = TERRAFORM_TYPES[pulumi_type]
    return tf_type, _block(tf_type, props)


def terraform_json(runs: Iterable[Run]) -> dict[str, Any]:
    """Every GCP resource of the runs as one Terraform JSON document."""
    resources: dict[str, dict[str, Any]] = {}
    for run in runs:
        for resource in run.resources:
            if not resource.type.startswith("gcp:") or resource.read:
                continue
            tf_type, block = resource_block(resource.type, resource.inputs)
            resources.setdefault(tf_type, {})[terraform_name(run.stack, resource.name)] = block
    return {"resource": resources}
