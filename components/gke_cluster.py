"""GkeCluster: one zonal, VPC-native GKE cluster with its own node pool, kubeconfig and provider."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from builders.kubeconfig import exec_plugin_kubeconfig
from config.settings import Security

# What GKE nodes need project-wide and nothing more: write logs and metrics. Image reads are granted on the
# one Artifact Registry repository (see `image_repository`), not on every repository of the project.
NODE_ROLES = ("roles/container.defaultNodeServiceAccount",)
REGISTRY_READER = "roles/artifactregistry.reader"
BINARY_AUTHORIZATION_ENFORCE = "PROJECT_SINGLETON_POLICY_ENFORCE"
# Legacy node scopes are a second gate; with a minimal service account, cloud-platform is what GKE advises.
NODE_OAUTH_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
RELEASE_CHANNEL = "REGULAR"
# The Kubernetes minor that channel runs (late 2026); rendered objects are validated against its schemas.
KUBERNETES_MINOR = "1.35"


def gke_name(cluster: str) -> str:
    """The GKE cluster name for an Istio cluster name (primary -> meshburst-primary); also the network tag of its
    nodes, which the mesh firewall targets."""
    return f"meshburst-{cluster}"


def _label_value(text: str) -> str:
    """GCP label values: at most 63 lowercase letters, digits, `-` and `_`."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63] or "unknown"


def resource_labels(owner: str, stack: str, project: str) -> dict[str, str]:
    """Labels on every cluster and node VM, so billing and audits can tell whose and which they are."""
    return {"owner": _label_value(owner), "stack": _label_value(stack), "project": _label_value(project)}


def api_access(user_cidrs: Sequence[str]) -> str:
    """Who may reach the API server's public endpoint, in words for the plan and the stack outputs."""
    if not user_cidrs:
        return "OPEN: any address on the internet (set apiAuthorizedNetworks to restrict it)"
    return f"authorized networks only: {', '.join(user_cidrs)} (and the mesh's own pods and nodes)"


def authorized_networks(
    user_cidrs: Sequence[str], in_vpc: Sequence[pulumi.Input[str]]
) -> gcp.container.ClusterMasterAuthorizedNetworksConfigArgs | None:
    """Master authorized networks: the user's CIDRs plus the in-VPC sources the mesh needs; none: open endpoint.

    With private_endpoint_enforcement_enabled the list also guards the internal endpoint, so the primary's
    pods (istiod) must be on it to reach the burst API server over the VPC. GKE always admits the cluster's
    own nodes and pods. https://cloud.google.com/kubernetes-engine/docs/how-to/authorized-networks
    """
    if not user_cidrs:
        return None
    blocks = [
        gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(cidr_block=cidr, display_name=f"user-{i}")
        for i, cidr in enumerate(user_cidrs)
    ] + [
        gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(cidr_block=cidr, display_name=f"mesh-{i}")
        for i, cidr in enumerate(in_vpc)
    ]
    return gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
        cidr_blocks=blocks, private_endpoint_enforcement_enabled=True
    )


async def _resolved(value: Any) -> Any:
    return value


def _private_endpoint(
    config: gcp.container.outputs.ClusterPrivateClusterConfig | None, cluster: str
) -> pulumi.Input[str]:
    endpoint = config.private_endpoint if config is not None else None
    if endpoint:
        return endpoint
    if pulumi.runtime.is_dry_run():
        # Previewing a new cluster: GKE assigns the address when it creates it.
        return pulumi.Output(set(), _resolved(None), _resolved(False))
    raise ValueError(f"GKE reported no private endpoint for {cluster}, which has private nodes")


class GkeClusterArgs(TypedDict):
    project: pulumi.Input[str]
    """GCP project that owns the cluster."""
    zone: pulumi.Input[str]
    """Zone of the zonal cluster, e.g. us-west1-a."""
    network: pulumi.Input[str]
    """VPC network shared by both clusters."""
    machine_type: pulumi.Input[str]
    """Node machine type, e.g. n1-standard-2."""
    disk_size_gb: pulumi.Input[int]
    """Node boot disk size."""
    deletion_protection: pulumi.Input[bool]
    """GKE deletion protection; off lets `pulumi destroy` remove the cluster."""
    node_count: NotRequired[int]
    """Fixed pool size; leave out when autoscaling is set."""
    autoscaling: NotRequired[tuple[int, int]]
    """(min, max) nodes; the pool starts at min."""
    image_repository: pulumi.Input[str]
    """Artifact Registry repository (projects/P/locations/L/repositories/R) the nodes may read images from."""
    security: NotRequired[Security]
    """Opt-in hardening (authorized networks, Binary Authorization, KMS, intranode visibility, groups)."""
    api_sources_in_vpc: NotRequired[Sequence[pulumi.Input[str]]]
    """In-VPC ranges that must reach this API server when authorized networks are on (the primary's pods)."""
    egress: NotRequired[Sequence[pulumi.Resource]]
    """What gives the private nodes internet egress (Cloud NAT); nothing is applied to the cluster before it."""


class GkeCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    """GKE's name of the cluster."""
    endpoint: pulumi.Output[str]
    """API server address (IP, no scheme)."""
    private_endpoint: pulumi.Output[str]
    """The API server's internal address in the VPC (IP, no scheme): what istiod in the primary uses."""
    ca_certificate: pulumi.Output[str]
    """Base64 cluster CA certificate."""
    subnetwork: pulumi.Output[str]
    """The subnetwork GKE placed the nodes in (the network's own in an auto-mode VPC)."""
    pod_cidr: pulumi.Output[str]
    """The pods' IP range (cluster_ipv4_cidr), used as a firewall source."""
    node_tag: str
    """Network tag carried by every node of this cluster."""
    api_access: str
    """Who may reach the public API endpoint, in words (see `api_access`)."""
    kubeconfig: pulumi.Output[str]
    """Exec-plugin kubeconfig for this cluster (secret)."""
    provider: k8s.Provider
    """Kubernetes provider for resources in this cluster."""

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:gke:GkeCluster", name, None, opts)
        if ("node_count" in args) == ("autoscaling" in args):
            raise ValueError(f"GkeCluster {name}: give exactly one of node_count or autoscaling")
        security = args.get("security") or Security()
        labels = resource_labels(pulumi.get_organization() or "organization", pulumi.get_stack(), pulumi.get_project())

        node_account, role_grants = self._node_account(name, args)
        cluster = self._cluster(name, args, security, labels)
        pool = self._pool(name, args, cluster, node_account, role_grants, labels)

        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.private_endpoint = cluster.private_cluster_config.apply(
            lambda config: _private_endpoint(config, gke_name(name))
        )
        self.ca_certificate = cluster.master_auth.cluster_ca_certificate
        self.subnetwork = cluster.subnetwork
        self.pod_cidr = cluster.cluster_ipv4_cidr
        self.node_tag = gke_name(name)
        self.api_access = api_access(security.api_authorized_networks)
        if not security.api_authorized_networks:
            # Loud in every preview and up: the open endpoint is a choice the user should see each time.
            pulumi.log.warn(f"{gke_name(name)}: the API server's public endpoint is {self.api_access}", resource=self)
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, self.ca_certificate).apply(
                lambda parts: exec_plugin_kubeconfig(*parts)
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Workloads need nodes, and private nodes need NAT to pull images: nothing is applied before both.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pool, *args.get("egress", [])]),
        )
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "endpoint": self.endpoint,
                "privateEndpoint": self.private_endpoint,
                "podCidr": self.pod_cidr,
                "nodeTag": self.node_tag,
                "apiAccess": self.api_access,
                "kubeconfig": self.kubeconfig,
            }
        )

    def _node_account(
        self, name: str, args: GkeClusterArgs
    ) -> tuple[gcp.serviceaccount.Account, list[pulumi.Resource]]:
        """The nodes' own service account and its grants: node duties, and reading images from the one repository."""
        child = pulumi.ResourceOptions(parent=self)
        # Nodes run as their own service account, not the project's default compute account (Editor).
        node_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=f"{gke_name(name)}-nodes",
            display_name=f"meshburst {name} GKE nodes",
            project=args["project"],
            opts=child,
        )
        role_grants: list[pulumi.Resource] = [
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[1].replace('.', '-').lower()}",
                project=args["project"],
                role=role,
                member=node_account.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=child,
            )
            for role in NODE_ROLES
        ]
        role_grants.append(
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-nodes-registry-reader",
                repository=args["image_repository"],
                role=REGISTRY_READER,
                member=node_account.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=child,
            )
        )
        return node_account, role_grants

    def _cluster(
        self, name: str, args: GkeClusterArgs, security: Security, labels: dict[str, str]
    ) -> gcp.container.Cluster:
        """The cluster: VPC-native, private nodes, workload identity, shielded nodes, and the opt-ins asked for."""
        child = pulumi.ResourceOptions(parent=self)
        return gcp.container.Cluster(
            f"{name}-cluster",
            name=gke_name(name),
            project=args["project"],
            location=args["zone"],
            network=args["network"],
            networking_mode="VPC_NATIVE",
            # An empty policy lets GKE pick the secondary ranges; the pod range is read back below.
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(),
            # GKE requires a pool at creation; it is removed at once in favour of the managed pool below.
            remove_default_node_pool=True,
            initial_node_count=1,
            enable_legacy_abac=False,
            master_auth=gcp.container.ClusterMasterAuthArgs(
                client_certificate_config=gcp.container.ClusterMasterAuthClientCertificateConfigArgs(
                    issue_client_certificate=False
                )
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=pulumi.Output.from_input(args["project"]).apply(lambda p: f"{p}.svc.id.goog")
            ),
            enable_shielded_nodes=True,
            # GKE Dataplane V2 enforces the apps' NetworkPolicies (without it they would be ignored).
            datapath_provider="ADVANCED_DATAPATH",
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=RELEASE_CHANNEL),
            logging_service="logging.googleapis.com/kubernetes",
            monitoring_service="monitoring.googleapis.com/kubernetes",
            deletion_protection=args["deletion_protection"],
            resource_labels=labels,
            # Private nodes: no public IPs (Cloud NAT gives egress). No master_ipv4_cidr_block: GKE then gives the
            # control plane a Private Service Connect endpoint in the nodes' subnet, with no /28 to choose and no
            # peering; the public endpoint stays, so `pulumi up` works from a laptop.
            # https://cloud.google.com/kubernetes-engine/docs/concepts/network-isolation
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=False,
                # istiod in the primary reaches this internal endpoint from its pods, wherever its region is.
                master_global_access_config=gcp.container.ClusterPrivateClusterConfigMasterGlobalAccessConfigArgs(
                    enabled=True
                ),
            ),
            master_authorized_networks_config=authorized_networks(
                security.api_authorized_networks, args.get("api_sources_in_vpc", [])
            ),
            binary_authorization=gcp.container.ClusterBinaryAuthorizationArgs(
                evaluation_mode=BINARY_AUTHORIZATION_ENFORCE
            )
            if security.binary_authorization
            else None,
            database_encryption=gcp.container.ClusterDatabaseEncryptionArgs(
                state="ENCRYPTED", key_name=security.kms_key
            )
            if security.kms_key
            else None,
            enable_intranode_visibility=True if security.intranode_visibility else None,
            authenticator_groups_config=gcp.container.ClusterAuthenticatorGroupsConfigArgs(
                security_group=security.rbac_security_group
            )
            if security.rbac_security_group
            else None,
            opts=child,
        )

    def _pool(
        self,
        name: str,
        args: GkeClusterArgs,
        cluster: gcp.container.Cluster,
        node_account: gcp.serviceaccount.Account,
        role_grants: list[pulumi.Resource],
        labels: dict[str, str],
    ) -> gcp.container.NodePool:
        """The managed node pool: a fixed size, or autoscaling between bounds."""
        node_count = args.get("node_count")
        autoscaling = args.get("autoscaling")
        return gcp.container.NodePool(
            f"{name}-pool",
            project=args["project"],
            location=args["zone"],
            cluster=cluster.name,
            node_count=node_count,
            # Only the first size: at least one node, so Istio and the workers have somewhere to run even with
            # minNodes 0. It forces a new pool when it changes, so it is ignored after creation (below) and the
            # autoscaler's bounds alone move the size, in place.
            initial_node_count=max(autoscaling[0], 1) if autoscaling else None,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                min_node_count=autoscaling[0], max_node_count=autoscaling[1]
            )
            if autoscaling
            else None,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            # Said on the pool as well as the cluster, so this pool can never come up with public IPs.
            network_config=gcp.container.NodePoolNetworkConfigArgs(enable_private_nodes=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=args["machine_type"],
                disk_size_gb=args["disk_size_gb"],
                image_type="COS_CONTAINERD",
                resource_labels=labels,
                # The kubelet's unauthenticated read-only port (10255) would show every pod's spec to anything
                # on the node network.
                kubelet_config=gcp.container.NodePoolNodeConfigKubeletConfigArgs(
                    insecure_kubelet_readonly_port_enabled="FALSE"
                ),
                service_account=node_account.email,
                oauth_scopes=NODE_OAUTH_SCOPES,
                tags=[gke_name(name)],
                metadata={"disable-legacy-endpoints": "true"},
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=role_grants, ignore_changes=["initialNodeCount"] if autoscaling else None
            ),
        )
