"""The GCP and GKE controls meshburst holds itself to: the one definition both gates read.

Each `Control` checks one resource's Pulumi properties (camelCase, as a policy pack and tools/mockrun.py
see them) and names the checkov checks it corresponds to. The Pulumi policy pack (policy/) enforces the
controls; tests/gcp_gate.py converts the same resources to Terraform JSON and runs checkov's GCP checks,
skipping only what `SKIPS` lists (and, in a run without them, the opt-ins in `OPT_IN_SKIPS`).

This module imports nothing from the program, so the policy pack can load it on its own.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
FIREWALL = "gcp:compute/firewall:Firewall"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
REPOSITORY_IAM_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
PROJECT_IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
ROUTER_NAT = "gcp:compute/routerNat:RouterNat"

# The labels every cluster and node pool carries (see components/gke_cluster.py resource_labels).
REQUIRED_LABELS = ("owner", "stack", "project")
# Project-level roles that grant far more than a workload needs; roles/artifactregistry.reader belongs on
# the one repository, not the whole project.
BROAD_PROJECT_ROLES = frozenset(
    {
        "roles/owner",
        "roles/editor",
        "roles/viewer",
        "roles/iam.serviceAccountUser",
        "roles/iam.serviceAccountTokenCreator",
        "roles/iam.serviceAccountAdmin",
        "roles/iam.serviceAccountKeyAdmin",
        "roles/iam.workloadIdentityUser",
        "roles/iam.securityAdmin",
        "roles/artifactregistry.reader",
    }
)
# Admin, editor and owner roles of any service, and the roles meant for Google's own service agents.
BROAD_ROLE_PATTERN = re.compile(r"admin|Admin|editor|owner|\.serviceAgent$")
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
OPEN_RANGES = frozenset({"0.0.0.0/0", "::/0", "0.0.0.0", "::0"})
BINARY_AUTHORIZATION_ENFORCE = "PROJECT_SINGLETON_POLICY_ENFORCE"

Props = Mapping[str, Any]


@dataclass(frozen=True)
class Control:
    id: str
    """Short kebab-case name, e.g. cluster-private-nodes."""
    resource_type: str
    """Pulumi type token of the resource it checks."""
    description: str
    """What it protects, and why."""
    opt_in: str | None
    """The meshburst config key that turns it on; None: always on."""
    checkov_ids: tuple[str, ...]
    """checkov checks that test the same property on the Terraform form of the resource."""
    check: Callable[[Props], str | None]
    """The violation message for a resource's props, or None when it complies."""


@dataclass(frozen=True)
class Skip:
    checkov_id: str
    """The checkov check not run."""
    resource_type: str
    """Pulumi type token of the resources it is skipped on."""
    reason: str
    """Why it does not apply."""


def _get(props: Props, path: str) -> Any:
    """The value at a dotted camelCase path, or None when any part is missing."""
    value: Any = props
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _requires(path: str, expected: Any, why: str) -> Callable[[Props], str | None]:
    def check(props: Props) -> str | None:
        found = _get(props, path)
        return None if found == expected else f"{path} is {found!r}, expected {expected!r}: {why}"

    return check


def _forbids(path: str, forbidden: Any, why: str) -> Callable[[Props], str | None]:
    def check(props: Props) -> str | None:
        found = _get(props, path)
        return f"{path} is {found!r}: {why}" if found == forbidden else None

    return check


def _present(path: str, why: str) -> Callable[[Props], str | None]:
    def check(props: Props) -> str | None:
        found = _get(props, path)
        return None if found not in (None, "", [], {}) else f"{path} is not set: {why}"

    return check


def _labels(path: str) -> Callable[[Props], str | None]:
    def check(props: Props) -> str | None:
        labels = _get(props, path) or {}
        missing = [key for key in REQUIRED_LABELS if not labels.get(key)]
        if missing:
            return f"{path} lacks {missing}: every cluster and node pool is labelled {list(REQUIRED_LABELS)}"
        return None

    return check


def _authorized_networks(props: Props) -> str | None:
    config = _get(props, "masterAuthorizedNetworksConfig")
    if not isinstance(config, Mapping):
        return "masterAuthorizedNetworksConfig is not set: the API server accepts connections from any address"
    blocks = config.get("cidrBlocks") or []
    if not blocks:
        return "masterAuthorizedNetworksConfig.cidrBlocks is empty: set the networks allowed to reach the API server"
    for block in blocks:
        cidr = str(block.get("cidrBlock", ""))
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return f"masterAuthorizedNetworksConfig has {cidr!r}, which is not a CIDR"
        if network.prefixlen == 0:
            return f"masterAuthorizedNetworksConfig allows {cidr}: that is the whole internet"
    return None


def _vpc_native(props: Props) -> str | None:
    # An empty policy ({}) is VPC-native with ranges GKE picks; only a missing one means routes-based.
    if isinstance(props.get("ipAllocationPolicy"), Mapping):
        return None
    return "ipAllocationPolicy is not set: the cluster would use routes-based networking"


def _no_inline_pools(props: Props) -> str | None:
    if props.get("removeDefaultNodePool") is True and not props.get("nodePools"):
        return None
    return "the cluster keeps its default pool or declares pools inline: use a separate NodePool"


def _secrets_encryption(props: Props) -> str | None:
    state, key = _get(props, "databaseEncryption.state"), _get(props, "databaseEncryption.keyName")
    if state != "ENCRYPTED" or not key:
        return (
            f"databaseEncryption is state={state!r} keyName={key!r}: Secrets in etcd must be encrypted "
            "with the Cloud KMS key set in kmsKey"
        )
    return None


def _pool_private_nodes(props: Props) -> str | None:
    # A pool inherits the cluster's private nodes unless it says otherwise; meshburst says so explicitly.
    found = _get(props, "networkConfig.enablePrivateNodes")
    return None if found is True else f"networkConfig.enablePrivateNodes is {found!r}: nodes would get public IPs"


def _cos_image(props: Props) -> str | None:
    image = str(_get(props, "nodeConfig.imageType") or "")
    return None if image.upper().startswith("COS") else f"nodeConfig.imageType is {image!r}: use COS_CONTAINERD"


def _open_ingress(props: Props) -> str | None:
    if str(props.get("direction", "INGRESS")).upper() != "INGRESS" or props.get("disabled") is True:
        return None
    open_ranges = sorted(set(props.get("sourceRanges") or []) & OPEN_RANGES)
    if open_ranges:
        return f"sourceRanges has {open_ranges}: ingress open to the internet"
    if not props.get("sourceRanges") and not props.get("sourceTags") and not props.get("sourceServiceAccounts"):
        return "no sourceRanges, sourceTags or sourceServiceAccounts: GCP then admits ingress from anywhere"
    return None


def _firewall_logging(props: Props) -> str | None:
    metadata = _get(props, "logConfig.metadata")
    return None if metadata else "logConfig is not set: connections through the rule would leave no trace"


def _project_role(props: Props) -> str | None:
    role = str(props.get("role", ""))
    if role in BROAD_PROJECT_ROLES or BROAD_ROLE_PATTERN.search(role):
        return f"role {role!r} granted project-wide: grant a narrower role, or this one on the single resource"
    member = str(props.get("member", ""))
    if member.endswith("-compute@developer.gserviceaccount.com") or member.endswith("@appspot.gserviceaccount.com"):
        return f"member {member!r} is a default service account, which carries Editor"
    return None


def _not_public(props: Props) -> str | None:
    member = props.get("member")
    return f"member {member!r} makes the repository public" if member in PUBLIC_MEMBERS else None


def _registry_cmek(props: Props) -> str | None:
    return None if props.get("kmsKeyName") else "kmsKeyName is not set: images are encrypted with a Google-owned key"


def _nat_logging(props: Props) -> str | None:
    enabled, scope = _get(props, "logConfig.enable"), _get(props, "logConfig.filter")
    return None if enabled is True and scope else "logConfig is not enabled: NAT errors (dropped egress) are not logged"


CONTROLS: tuple[Control, ...] = (
    # --- clusters ----------------------------------------------------------------------------------------
    Control(
        "cluster-private-nodes",
        CLUSTER,
        "Nodes have internal IPs only, so nothing on the internet can reach them directly (the `default` network's "
        "stock rules admit SSH from anywhere); they reach the internet through Cloud NAT.",
        None,
        ("CKV_GCP_25", "CKV_GCP_64"),
        _requires("privateClusterConfig.enablePrivateNodes", True, "nodes would get public IPs"),
    ),
    Control(
        "cluster-labels",
        CLUSTER,
        "Clusters carry owner, stack and project labels so billing and audits can attribute them.",
        None,
        ("CKV_GCP_21",),
        _labels("resourceLabels"),
    ),
    Control(
        "cluster-legacy-abac-off",
        CLUSTER,
        "Legacy ABAC grants broad static permissions outside RBAC; it stays off.",
        None,
        ("CKV_GCP_7",),
        _forbids("enableLegacyAbac", True, "legacy ABAC bypasses RBAC"),
    ),
    Control(
        "cluster-client-certificate-off",
        CLUSTER,
        "No long-lived client certificate is issued; access goes through IAM (gke-gcloud-auth-plugin).",
        None,
        ("CKV_GCP_13",),
        _requires(
            "masterAuth.clientCertificateConfig.issueClientCertificate",
            False,
            "a client certificate is a credential that cannot be revoked",
        ),
    ),
    Control(
        "cluster-logging",
        CLUSTER,
        "Cluster logs go to Cloud Logging, for audit and incident response.",
        None,
        ("CKV_GCP_1",),
        _forbids("loggingService", "none", "cluster logging is off"),
    ),
    Control(
        "cluster-monitoring",
        CLUSTER,
        "Cluster metrics go to Cloud Monitoring.",
        None,
        ("CKV_GCP_8",),
        _forbids("monitoringService", "none", "cluster monitoring is off"),
    ),
    Control(
        "cluster-vpc-native",
        CLUSTER,
        "VPC-native (alias IP) networking: pod IPs are VPC addresses that firewall rules and the mesh can name.",
        None,
        ("CKV_GCP_23",),
        _vpc_native,
    ),
    Control(
        "cluster-shielded-nodes",
        CLUSTER,
        "Shielded GKE nodes: verifiable node identity, so a rogue VM cannot join the cluster.",
        None,
        ("CKV_GCP_71",),
        _requires("enableShieldedNodes", True, "nodes would not be shielded"),
    ),
    Control(
        "cluster-release-channel",
        CLUSTER,
        "A release channel keeps the control plane and nodes on supported, patched versions.",
        None,
        ("CKV_GCP_70",),
        _present("releaseChannel.channel", "the cluster would not follow a release channel"),
    ),
    Control(
        "cluster-alpha-off",
        CLUSTER,
        "Alpha clusters are unsupported and expire; production clusters never enable them.",
        None,
        ("CKV2_GCP_19",),
        _forbids("enableKubernetesAlpha", True, "alpha clusters are unsupported"),
    ),
    Control(
        "cluster-dataplane-v2",
        CLUSTER,
        "GKE Dataplane V2 enforces the apps' NetworkPolicies (without it they would be ignored).",
        None,
        (),
        _requires("datapathProvider", "ADVANCED_DATAPATH", "NetworkPolicies would not be enforced"),
    ),
    Control(
        "cluster-workload-identity",
        CLUSTER,
        "Workload Identity: pods get their own Google identity instead of the node's service account.",
        None,
        (),
        _present("workloadIdentityConfig.workloadPool", "pods would act as the node's service account"),
    ),
    Control(
        "cluster-no-inline-node-pools",
        CLUSTER,
        "The default pool is removed and pools are separate resources, so a pool change never replaces the cluster.",
        None,
        ("CKV_GCP_123",),
        _no_inline_pools,
    ),
    Control(
        "cluster-authorized-networks",
        CLUSTER,
        "Master authorized networks: only the listed CIDRs (and the primary's pods, for istiod) reach the API servers.",
        "apiAuthorizedNetworks",
        ("CKV_GCP_18", "CKV_GCP_20"),
        _authorized_networks,
    ),
    Control(
        "cluster-binary-authorization",
        CLUSTER,
        "Binary Authorization: pods only start from images the project's policy admits.",
        "binaryAuthorization",
        ("CKV_GCP_66",),
        _requires("binaryAuthorization.evaluationMode", BINARY_AUTHORIZATION_ENFORCE, "images are not checked"),
    ),
    Control(
        "cluster-secrets-encryption",
        CLUSTER,
        "Application-layer Secrets encryption with the team's Cloud KMS key (the istiod remote secret is a token).",
        "kmsKey",
        (),
        _secrets_encryption,
    ),
    Control(
        "cluster-intranode-visibility",
        CLUSTER,
        "Intranode visibility: pod-to-pod traffic on one node goes through the VPC, so flow logs and firewall see it.",
        "intranodeVisibility",
        ("CKV_GCP_61",),
        _requires("enableIntranodeVisibility", True, "same-node pod traffic bypasses VPC flow logs"),
    ),
    Control(
        "cluster-google-groups-rbac",
        CLUSTER,
        "Google Groups for RBAC: access is granted to groups the organisation manages, not to single accounts.",
        "rbacSecurityGroup",
        ("CKV_GCP_65",),
        _present("authenticatorGroupsConfig.securityGroup", "RBAC cannot name Google Groups"),
    ),
    # --- node pools --------------------------------------------------------------------------------------
    Control(
        "pool-private-nodes",
        NODE_POOL,
        "The pool's nodes have internal IPs only (said on the pool too, so a pool never opts out).",
        None,
        (),
        _pool_private_nodes,
    ),
    Control(
        "pool-labels",
        NODE_POOL,
        "Node VMs carry owner, stack and project labels, like their cluster.",
        None,
        (),
        _labels("nodeConfig.resourceLabels"),
    ),
    Control(
        "pool-kubelet-read-only-port-off",
        NODE_POOL,
        "The kubelet's unauthenticated read-only port (10255) is closed: it leaks pod specs to anything on the node.",
        None,
        (),
        _requires("nodeConfig.kubeletConfig.insecureKubeletReadonlyPortEnabled", "FALSE", "port 10255 is open"),
    ),
    Control(
        "pool-auto-repair",
        NODE_POOL,
        "Unhealthy nodes are repaired automatically.",
        None,
        ("CKV_GCP_9",),
        _requires("management.autoRepair", True, "broken nodes stay broken"),
    ),
    Control(
        "pool-auto-upgrade",
        NODE_POOL,
        "Nodes follow the control plane's patched versions.",
        None,
        ("CKV_GCP_10",),
        _requires("management.autoUpgrade", True, "nodes would miss security patches"),
    ),
    Control(
        "pool-metadata-server",
        NODE_POOL,
        "The GKE metadata server hides the node's credentials and metadata from pods (needed by Workload Identity).",
        None,
        ("CKV_GCP_69",),
        _requires("nodeConfig.workloadMetadataConfig.mode", "GKE_METADATA", "pods could read node credentials"),
    ),
    Control(
        "pool-secure-boot",
        NODE_POOL,
        "Secure Boot: nodes only boot signed kernels and modules.",
        None,
        ("CKV_GCP_68",),
        _requires("nodeConfig.shieldedInstanceConfig.enableSecureBoot", True, "unsigned boot components could run"),
    ),
    Control(
        "pool-integrity-monitoring",
        NODE_POOL,
        "Integrity monitoring: a node whose boot measurements change is reported.",
        None,
        ("CKV_GCP_72",),
        _requires("nodeConfig.shieldedInstanceConfig.enableIntegrityMonitoring", True, "boot tampering goes unnoticed"),
    ),
    Control(
        "pool-cos-image",
        NODE_POOL,
        "Container-Optimized OS: a minimal, read-only, auto-patched node image.",
        None,
        (),
        _cos_image,
    ),
    Control(
        "pool-legacy-metadata-off",
        NODE_POOL,
        "The legacy metadata endpoints (v0.1, v1beta1) stay off: they do not require the Metadata-Flavor header.",
        None,
        (),
        _requires("nodeConfig.metadata.disable-legacy-endpoints", "true", "legacy metadata endpoints are open"),
    ),
    Control(
        "pool-own-service-account",
        NODE_POOL,
        "Nodes run as their own minimal service account, not the Compute Engine default account (Editor).",
        None,
        (),
        _present("nodeConfig.serviceAccount", "nodes would run as the default compute service account"),
    ),
    # --- network -----------------------------------------------------------------------------------------
    Control(
        "firewall-not-open",
        FIREWALL,
        "Ingress rules name their sources; none admits the whole internet.",
        None,
        ("CKV_GCP_2", "CKV_GCP_3", "CKV_GCP_75", "CKV_GCP_77", "CKV_GCP_88", "CKV_GCP_106", "CKV2_GCP_12"),
        _open_ingress,
    ),
    Control(
        "firewall-logging",
        FIREWALL,
        "Firewall rule logging, so allowed connections between the clusters can be audited.",
        None,
        (),
        _firewall_logging,
    ),
    Control(
        "nat-error-logging",
        ROUTER_NAT,
        "Cloud NAT logs its errors, so egress dropped for want of ports is visible.",
        None,
        (),
        _nat_logging,
    ),
    # --- identity and images -----------------------------------------------------------------------------
    Control(
        "project-iam-narrow",
        PROJECT_IAM_MEMBER,
        "Project-wide grants are narrow: no basic, admin or impersonation roles, no default service accounts, and "
        "registry read only on the one repository.",
        None,
        ("CKV_GCP_41", "CKV_GCP_42", "CKV_GCP_46", "CKV_GCP_49", "CKV_GCP_117"),
        _project_role,
    ),
    Control(
        "registry-not-public",
        REPOSITORY_IAM_MEMBER,
        "The image repository is never readable by allUsers or allAuthenticatedUsers.",
        None,
        ("CKV_GCP_101",),
        _not_public,
    ),
    Control(
        "registry-cmek",
        REPOSITORY,
        "The image repository is encrypted with the team's Cloud KMS key.",
        "kmsKey",
        ("CKV_GCP_84",),
        _registry_cmek,
    ),
)

# checkov checks that do not apply to meshburst, each with why. They are skipped in every run.
SKIPS: tuple[Skip, ...] = (
    Skip(
        "CKV_GCP_12",
        CLUSTER,
        "network policy is enforced by GKE Dataplane V2 (datapathProvider ADVANCED_DATAPATH, control "
        "cluster-dataplane-v2); the check reads the legacy Calico networkPolicy block, which Dataplane V2 clusters "
        "do not set",
    ),
    Skip(
        "CKV_GCP_69",
        CLUSTER,
        "the check reads the cluster's default-pool nodeConfig; meshburst removes the default pool "
        "(removeDefaultNodePool) and its own pool sets the GKE metadata server (control pool-metadata-server, "
        "CKV_GCP_69 on the NodePool passes)",
    ),
)


def controls_for(resource_type: str) -> tuple[Control, ...]:
    return tuple(c for c in CONTROLS if c.resource_type == resource_type)


def opt_in_skips(enabled: frozenset[str] | set[str]) -> tuple[Skip, ...]:
    """The checkov checks of opt-in controls a run has not turned on: skipped in that run, and only then."""
    return tuple(
        Skip(checkov_id, c.resource_type, f"opt-in: set {c.opt_in} to turn on control {c.id}")
        for c in CONTROLS
        if c.opt_in is not None and c.opt_in not in enabled
        for checkov_id in c.checkov_ids
    )


OPT_IN_KEYS: tuple[str, ...] = tuple(dict.fromkeys(c.opt_in for c in CONTROLS if c.opt_in is not None))


def violations(resource_type: str, props: Props, enabled: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Every violated control for one resource: the always-on ones, and the opt-ins in `enabled`."""
    found = []
    for control in controls_for(resource_type):
        if control.opt_in is not None and control.opt_in not in enabled:
            continue
        message = control.check(props)
        if message is not None:
            found.append(f"{control.id}: {message}")
    return found
