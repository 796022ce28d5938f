"""GkeCluster: one zonal, VPC-native GKE cluster with its own node pool, kubeconfig and provider."""

from __future__ import annotations

from typing import NotRequired, TypedDict

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components.kubeconfig import exec_plugin_kubeconfig

# What GKE nodes need and nothing more: write logs and metrics, read images from Artifact Registry.
NODE_ROLES = (
    "roles/container.defaultNodeServiceAccount",
    "roles/artifactregistry.reader",
)
# Legacy node scopes are a second gate; with a minimal service account, cloud-platform is what GKE advises.
NODE_OAUTH_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
RELEASE_CHANNEL = "REGULAR"
# The Kubernetes minor that channel runs (late 2026); rendered objects are validated against its schemas.
KUBERNETES_MINOR = "1.35"


def node_tag(cluster: str) -> str:
    """The network tag on every node of a cluster; the mesh firewall targets it."""
    return f"meshburst-{cluster}"


def gke_name(cluster: str) -> str:
    """The GKE cluster name for an Istio cluster name (primary -> meshburst-primary)."""
    return f"meshburst-{cluster}"


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


class GkeCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    """GKE's name of the cluster."""
    endpoint: pulumi.Output[str]
    """API server address (IP, no scheme)."""
    ca_certificate: pulumi.Output[str]
    """Base64 cluster CA certificate."""
    pod_cidr: pulumi.Output[str]
    """The pods' IP range (cluster_ipv4_cidr), used as a firewall source."""
    node_tag: str
    """Network tag carried by every node of this cluster."""
    kubeconfig: pulumi.Output[str]
    """Exec-plugin kubeconfig for this cluster (secret)."""
    provider: k8s.Provider
    """Kubernetes provider for resources in this cluster."""

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:gke:GkeCluster", name, None, opts)
        if ("node_count" in args) == ("autoscaling" in args):
            raise ValueError(f"GkeCluster {name}: give exactly one of node_count or autoscaling")
        child = pulumi.ResourceOptions(parent=self)

        # Nodes run as their own service account, not the project's default compute account (Editor).
        node_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=f"{gke_name(name)}-nodes",
            display_name=f"meshburst {name} GKE nodes",
            project=args["project"],
            opts=child,
        )
        role_grants = [
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[1].replace('.', '-').lower()}",
                project=args["project"],
                role=role,
                member=node_account.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=child,
            )
            for role in NODE_ROLES
        ]

        cluster = gcp.container.Cluster(
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
            opts=child,
        )

        node_count = args.get("node_count")
        autoscaling = args.get("autoscaling")
        pool = gcp.container.NodePool(
            f"{name}-pool",
            project=args["project"],
            location=args["zone"],
            cluster=cluster.name,
            node_count=node_count,
            initial_node_count=autoscaling[0] if autoscaling else None,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                min_node_count=autoscaling[0], max_node_count=autoscaling[1]
            )
            if autoscaling
            else None,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=args["machine_type"],
                disk_size_gb=args["disk_size_gb"],
                image_type="COS_CONTAINERD",
                service_account=node_account.email,
                oauth_scopes=NODE_OAUTH_SCOPES,
                tags=[node_tag(name)],
                metadata={"disable-legacy-endpoints": "true"},
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=role_grants),
        )

        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.ca_certificate = cluster.master_auth.cluster_ca_certificate
        self.pod_cidr = cluster.cluster_ipv4_cidr
        self.node_tag = node_tag(name)
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, self.ca_certificate).apply(
                lambda parts: exec_plugin_kubeconfig(*parts)
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Workloads need nodes: nothing is applied to the cluster before its pool exists.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pool]),
        )
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "endpoint": self.endpoint,
                "podCidr": self.pod_cidr,
                "nodeTag": self.node_tag,
                "kubeconfig": self.kubeconfig,
            }
        )
