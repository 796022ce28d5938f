"""components/gke_cluster.py: the clusters, their pools, kubeconfig and hardening, under mocks."""

from __future__ import annotations

import pytest
import yaml

from components.gke_cluster import api_access, resource_labels
from tests.support.gcp_gate import ALL_OPT_INS
from tools.mockrun import (
    FAKE_CA,
    FAKE_ENDPOINTS,
    FAKE_POD_CIDRS,
    PROJECT_ID,
    Resource,
    Run,
    run_both,
    run_stack,
)

REPOSITORY = f"projects/{PROJECT_ID}/locations/us-west1/repositories/meshburst"


KMS_KEY = ALL_OPT_INS["kmsKey"]


@pytest.fixture(scope="module")
def hardened() -> tuple[Run, Run]:
    return run_both(ALL_OPT_INS, ALL_OPT_INS)


def clusters(runs: tuple[Run, Run]) -> list[Resource]:
    return [r for run in runs for r in run.of_type("gcp:container/cluster:Cluster")]


def pools(runs: tuple[Run, Run]) -> list[Resource]:
    return [r for run in runs for r in run.of_type("gcp:container/nodePool:NodePool")]


PRIMARY_REF = "organization/meshburst/primary"


def test_primary_cluster_is_zonal_vpc_native_and_locked_down(primary_run: Run):
    cluster = primary_run.one("gcp:container/cluster:Cluster", "primary-cluster")
    assert cluster.get("name") == "meshburst-primary"
    assert cluster.get("location") == "us-west1-a"
    assert cluster.get("network") == "default"
    assert cluster.get("networkingMode") == "VPC_NATIVE"
    assert cluster.get("ipAllocationPolicy") == {}
    assert cluster.get("removeDefaultNodePool") is True
    assert cluster.get("enableLegacyAbac") is False
    assert cluster.get("masterAuth.clientCertificateConfig.issueClientCertificate") is False
    assert cluster.get("workloadIdentityConfig.workloadPool") == f"{PROJECT_ID}.svc.id.goog"
    assert cluster.get("enableShieldedNodes") is True
    assert cluster.get("releaseChannel.channel") == "REGULAR"
    assert cluster.get("loggingService") == "logging.googleapis.com/kubernetes"
    assert cluster.get("monitoringService") == "monitoring.googleapis.com/kubernetes"
    assert cluster.get("deletionProtection") is False


def test_primary_pool_has_four_fixed_nodes(primary_run: Run):
    pool = primary_run.one("gcp:container/nodePool:NodePool", "primary-pool")
    assert pool.get("nodeCount") == 4
    assert "autoscaling" not in pool.inputs
    assert pool.get("cluster") == "meshburst-primary"
    assert pool.get("management") == {"autoRepair": True, "autoUpgrade": True}
    config = pool.get("nodeConfig")
    assert config["machineType"] == "n1-standard-2"
    assert config["diskSizeGb"] == 100
    assert config["imageType"] == "COS_CONTAINERD"
    assert config["tags"] == ["meshburst-primary"]
    assert config["serviceAccount"] == f"meshburst-primary-nodes@{PROJECT_ID}.iam.gserviceaccount.com"
    assert config["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert config["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


def test_burst_pool_autoscales_from_min_to_max_starting_at_min(burst_run: Run):
    pool = burst_run.one("gcp:container/nodePool:NodePool", "burst-pool")
    assert pool.get("autoscaling") == {"minNodeCount": 1, "maxNodeCount": 5}
    assert pool.get("initialNodeCount") == 1
    assert "nodeCount" not in pool.inputs
    assert pool.get("nodeConfig.tags") == ["meshburst-burst"]


def test_pool_sizes_and_disk_follow_config():
    primary = run_stack("primary", {"nodeCount": "7", "diskSizeGb": "50", "machineType": "e2-standard-4"})
    pool = primary.one("gcp:container/nodePool:NodePool", "primary-pool")
    assert (pool.get("nodeCount"), pool.get("nodeConfig.diskSizeGb"), pool.get("nodeConfig.machineType")) == (
        7,
        50,
        "e2-standard-4",
    )
    cluster = run_stack("primary", {"deletionProtection": "true"}).one(
        "gcp:container/cluster:Cluster", "primary-cluster"
    )
    assert cluster.get("deletionProtection") is True


def test_nodes_run_as_their_own_account_with_only_node_roles(primary_run: Run):
    account = primary_run.one("gcp:serviceaccount/account:Account", "primary-nodes")
    assert account.get("accountId") == "meshburst-primary-nodes"
    # Image reads are granted on the one repository, not project-wide (tests/test_hardened_gke.py).
    grants = primary_run.of_type("gcp:projects/iAMMember:IAMMember")
    assert sorted(g.get("role") for g in grants) == ["roles/container.defaultNodeServiceAccount"]
    assert {g.get("member") for g in grants} == {
        f"serviceAccount:meshburst-primary-nodes@{PROJECT_ID}.iam.gserviceaccount.com"
    }
    pool = primary_run.one("gcp:container/nodePool:NodePool", "primary-pool")
    assert {g.urn for g in grants} <= set(pool.dependencies), "nodes must not start before their roles exist"


def test_kubeconfig_uses_the_exec_plugin_and_is_secret(primary_run: Run):
    assert "kubeconfig" in primary_run.secret_outputs
    config = yaml.safe_load(primary_run.outputs["kubeconfig"])
    assert config["clusters"][0]["cluster"] == {
        "server": f"https://{FAKE_ENDPOINTS['meshburst-primary']}",
        "certificate-authority-data": FAKE_CA,
    }
    assert config["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    provider = primary_run.one("pulumi:providers:kubernetes", "primary-k8s")
    assert provider.is_secret("kubeconfig")
    assert provider.get("kubeconfig") == primary_run.outputs["kubeconfig"]
    pool = primary_run.one("gcp:container/nodePool:NodePool", "primary-pool")
    assert pool.urn in provider.dependencies, "nothing is deployed before the node pool exists"


def test_both_clusters_have_private_nodes_and_keep_a_public_endpoint(default_runs: tuple[Run, Run]):
    for cluster in clusters(default_runs):
        assert cluster.get("privateClusterConfig") == {
            "enablePrivateNodes": True,
            "enablePrivateEndpoint": False,
            "masterGlobalAccessConfig": {"enabled": True},
        }
    for pool in pools(default_runs):
        assert pool.get("networkConfig") == {"enablePrivateNodes": True}
    assert len(clusters(default_runs)) == len(pools(default_runs)) == 2


def test_clusters_and_node_vms_carry_owner_stack_and_project_labels(default_runs: tuple[Run, Run]):
    for run in default_runs:
        expected = {"owner": "organization", "stack": run.stack, "project": "meshburst"}
        [cluster] = run.of_type("gcp:container/cluster:Cluster")
        [pool] = run.of_type("gcp:container/nodePool:NodePool")
        assert cluster.get("resourceLabels") == expected
        assert pool.get("nodeConfig.resourceLabels") == expected


def test_label_values_are_made_valid_gcp_labels():
    assert resource_labels("Acme Corp.", "Primary", "meshburst") == {
        "owner": "acme-corp-",
        "stack": "primary",
        "project": "meshburst",
    }
    assert len(resource_labels("x" * 80, "s", "p")["owner"]) == 63


def test_kubelet_read_only_port_is_off_on_every_pool(default_runs: tuple[Run, Run]):
    for pool in pools(default_runs):
        assert pool.get("nodeConfig.kubeletConfig") == {"insecureKubeletReadonlyPortEnabled": "FALSE"}


def test_nodes_read_images_from_the_one_repository_only(default_runs: tuple[Run, Run]):
    primary, _ = default_runs
    repository = primary.one("gcp:artifactregistry/repository:Repository", "images-repository")
    for run in default_runs:
        [grant] = run.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
        assert grant.inputs == {
            "repository": REPOSITORY,
            "role": "roles/artifactregistry.reader",
            "member": f"serviceAccount:meshburst-{run.stack}-nodes@{PROJECT_ID}.iam.gserviceaccount.com",
        }
        roles = [g.get("role") for g in run.of_type("gcp:projects/iAMMember:IAMMember")]
        assert "roles/artifactregistry.reader" not in roles
        [pool] = run.of_type("gcp:container/nodePool:NodePool")
        assert grant.urn in pool.dependencies, "nodes must not start before they may pull"
    [primary_grant] = primary.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert repository.urn in primary_grant.dependencies, "the grant waits for the repository"


def test_by_default_no_opt_in_is_rendered_and_the_open_endpoint_is_said(default_runs: tuple[Run, Run]):
    for cluster in clusters(default_runs):
        for key in (
            "masterAuthorizedNetworksConfig",
            "binaryAuthorization",
            "databaseEncryption",
            "enableIntranodeVisibility",
            "authenticatorGroupsConfig",
        ):
            assert key not in cluster.inputs, key
    assert (
        "kmsKeyName"
        not in default_runs[0].one("gcp:artifactregistry/repository:Repository", "images-repository").inputs
    )
    for run in default_runs:
        assert run.outputs["apiAccess"] == api_access(()) and run.outputs["apiAccess"].startswith("OPEN")


def test_authorized_networks_cover_both_api_servers_and_istiods_path(hardened: tuple[Run, Run]):
    primary, burst = hardened
    user = [
        {"cidrBlock": "203.0.113.0/24", "displayName": "user-0"},
        {"cidrBlock": "198.51.100.7/32", "displayName": "user-1"},
    ]
    [primary_cluster] = primary.of_type("gcp:container/cluster:Cluster")
    assert primary_cluster.get("masterAuthorizedNetworksConfig") == {
        "cidrBlocks": user,
        "privateEndpointEnforcementEnabled": True,
    }
    # istiod runs in the primary's pods and watches the burst API server at its private endpoint.
    [burst_cluster] = burst.of_type("gcp:container/cluster:Cluster")
    assert burst_cluster.get("masterAuthorizedNetworksConfig") == {
        "cidrBlocks": [*user, {"cidrBlock": FAKE_POD_CIDRS["meshburst-primary"], "displayName": "mesh-0"}],
        "privateEndpointEnforcementEnabled": True,
    }
    assert burst.outputs["apiAccess"] == api_access(("203.0.113.0/24", "198.51.100.7/32"))


def test_each_other_opt_in_renders_on_both_clusters(hardened: tuple[Run, Run]):
    for cluster in clusters(hardened):
        assert cluster.get("binaryAuthorization") == {"evaluationMode": "PROJECT_SINGLETON_POLICY_ENFORCE"}
        assert cluster.get("databaseEncryption") == {"state": "ENCRYPTED", "keyName": KMS_KEY}
        assert cluster.get("enableIntranodeVisibility") is True
        assert cluster.get("authenticatorGroupsConfig") == {"securityGroup": "gke-security-groups@example.com"}
    repository = hardened[0].one("gcp:artifactregistry/repository:Repository", "images-repository")
    assert repository.get("kmsKeyName") == KMS_KEY


def test_min_nodes_change_updates_the_pool_in_place(primary_run: Run, burst_run: Run):
    raised = run_stack(
        "burst",
        {"minNodes": "2"},
        stack_references={PRIMARY_REF: primary_run.outputs},
        secret_outputs={PRIMARY_REF: primary_run.secret_outputs},
    )
    before = burst_run.one("gcp:container/nodePool:NodePool", "burst-pool")
    after = raised.one("gcp:container/nodePool:NodePool", "burst-pool")
    # initialNodeCount forces a new pool; it is ignored after creation, so only the autoscaler bounds move.
    assert after.ignore_changes == ["initialNodeCount"]
    changed = {k for k in before.inputs.keys() | after.inputs.keys() if before.inputs.get(k) != after.inputs.get(k)}
    assert changed == {"autoscaling", "initialNodeCount"}
    assert after.get("autoscaling") == {"minNodeCount": 2, "maxNodeCount": 5}


def test_min_nodes_zero_still_starts_with_one_node(primary_run: Run):
    run = run_stack("burst", {"minNodes": "0"}, stack_references={PRIMARY_REF: primary_run.outputs})
    pool = run.one("gcp:container/nodePool:NodePool", "burst-pool")
    assert (pool.get("initialNodeCount"), pool.get("autoscaling.minNodeCount")) == (1, 0)
