"""Hardened GKE by default (issue 16): private nodes with Cloud NAT, a private path for istiod, and the opt-ins."""

from __future__ import annotations

import pytest
import yaml

from components.cloud_nat import region_problems
from components.gke_cluster import api_access, resource_labels
from components.settings import ConfigError, parse_settings
from tests.gcp_gate import ALL_OPT_INS
from tests.harness import FAKE_POD_CIDRS, PROJECT_ID, Resource, Run, RunFailed, run_both, run_stack
from tools.mockrun import FAKE_PRIVATE_ENDPOINTS

PRIMARY_REF = "organization/meshburst/primary"
REPOSITORY = f"projects/{PROJECT_ID}/locations/us-west1/repositories/meshburst"
KMS_KEY = ALL_OPT_INS["kmsKey"]


@pytest.fixture(scope="module")
def hardened() -> tuple[Run, Run]:
    return run_both(ALL_OPT_INS, ALL_OPT_INS)


def clusters(runs: tuple[Run, Run]) -> list[Resource]:
    return [r for run in runs for r in run.of_type("gcp:container/cluster:Cluster")]


def pools(runs: tuple[Run, Run]) -> list[Resource]:
    return [r for run in runs for r in run.of_type("gcp:container/nodePool:NodePool")]


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


def test_the_primary_owns_one_nat_for_the_region_and_the_burst_none(default_runs: tuple[Run, Run]):
    primary, burst = default_runs
    router = primary.one("gcp:compute/router:Router", "nat-router")
    assert (router.get("name"), router.get("region"), router.get("network")) == (
        "meshburst-us-west1",
        "us-west1",
        "default",
    )
    nat = primary.one("gcp:compute/routerNat:RouterNat", "nat-nat")
    assert nat.get("region") == "us-west1" and nat.get("router") == "meshburst-us-west1"
    assert nat.get("sourceSubnetworkIpRangesToNat") == "LIST_OF_SUBNETWORKS"
    assert nat.get("subnetworks") == [
        {
            "name": f"projects/{PROJECT_ID}/regions/us-west1/subnetworks/default",
            "sourceIpRangesToNats": ["ALL_IP_RANGES"],
        }
    ]
    assert nat.get("natIpAllocateOption") == "AUTO_ONLY"
    assert nat.get("logConfig") == {"enable": True, "filter": "ERRORS_ONLY"}
    # Nothing is applied to the primary cluster before its nodes can pull images.
    provider = primary.one("pulumi:providers:kubernetes", "primary-k8s")
    assert {router.urn, nat.urn} <= set(provider.dependencies)
    # Destroying the burst stack cannot take the primary's egress with it.
    assert burst.of_type("gcp:compute/router:Router") == burst.of_type("gcp:compute/routerNat:RouterNat") == []


def test_a_burst_stack_in_another_region_registers_nothing_but_the_stack_reference(primary_run: Run):
    with pytest.raises(RunFailed) as caught:
        run_stack(
            "burst",
            {"gcp:zone": "europe-west1-b"},
            stack_references={PRIMARY_REF: primary_run.outputs},
            secret_outputs={PRIMARY_REF: primary_run.secret_outputs},
        )
    assert isinstance(caught.value.error, ConfigError)
    assert caught.value.error.problems == region_problems("burst", "europe-west1-b", "us-west1-a")
    assert "set `pulumi config set gcp:zone us-west1-<zone letter> -s burst`" in caught.value.error.problems[0]
    assert [r.type for r in caught.value.resources] == ["pulumi:pulumi:StackReference"]


def test_another_zone_of_the_same_region_shares_the_nat():
    assert region_problems("burst", "us-west1-b", "us-west1-a") == []


def test_istiod_reaches_the_burst_api_server_at_its_private_endpoint(burst_run: Run):
    secret = burst_run.one("kubernetes:core/v1:Secret", "remote-secret-secret")
    assert secret.is_secret("stringData")
    kubeconfig = yaml.safe_load(secret.get("stringData.burst"))
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{FAKE_PRIVATE_ENDPOINTS['meshburst-burst']}"
    # Pulumi itself still talks to the public endpoint (from a laptop).
    assert "kubeconfig" in burst_run.secret_outputs


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


def test_the_mesh_firewall_rule_logs(burst_run: Run):
    rule = burst_run.one("gcp:compute/firewall:Firewall", "mesh-pods")
    assert rule.get("logConfig") == {"metadata": "INCLUDE_ALL_METADATA"}


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


BASE = {"gcp:project": PROJECT_ID, "gcp:zone": "us-west1-a"}


@pytest.mark.parametrize(
    ("key", "bad", "allowed"),
    [
        ("apiAuthorizedNetworks", '["10.0.0.300/8"]', "IPv4 CIDRs"),
        ("apiAuthorizedNetworks", '["10.0.0.1/8"]', "IPv4 CIDRs"),
        ("apiAuthorizedNetworks", '["0.0.0.0/0"]', "none of them 0.0.0.0/0"),
        ("apiAuthorizedNetworks", '"203.0.113.0/24"', "a JSON list"),
        ("apiAuthorizedNetworks", '["2001:db8::/32"]', "IPv4 CIDRs"),
        ("binaryAuthorization", "yes", "true or false"),
        ("kmsKey", "my-key", "a Cloud KMS key id projects/PROJECT/locations/REGION/keyRings/RING/cryptoKeys/KEY"),
        ("kmsKey", "projects/p/locations/us-west1/keyRings/r", "a Cloud KMS key id"),
        ("intranodeVisibility", "on", "true or false"),
        ("rbacSecurityGroup", "admins", "gke-security-groups@<your domain>"),
        ("rbacSecurityGroup", "admins@example.com", "gke-security-groups@<your domain>"),
    ],
)
def test_a_bad_security_value_is_refused_naming_key_value_and_what_is_allowed(key: str, bad: str, allowed: str):
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, f"meshburst:{key}": bad}, "primary")
    [message] = caught.value.problems
    assert message.startswith(f"meshburst:{key} = ")
    assert repr(bad) in message or repr(bad.strip('[]"')) in message
    assert allowed in message


def test_more_authorized_networks_than_gke_allows_are_refused():
    cidrs = [f"203.0.{i}.0/24" for i in range(50)]
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, "meshburst:apiAuthorizedNetworks": str(cidrs).replace("'", '"')}, "primary")
    assert "at most 49" in caught.value.problems[0]


def test_a_kms_key_outside_the_stacks_region_is_refused():
    key = "projects/meshburst-test-123/locations/europe-west1/keyRings/r/cryptoKeys/k"
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, "meshburst:kmsKey": key}, "primary")
    assert caught.value.problems == [
        f"meshburst:kmsKey = {key!r} is in europe-west1, but this stack's clusters and registry are in us-west1: "
        "expected a key under projects/PROJECT/locations/us-west1/..."
    ]


def test_good_security_values_parse_to_what_the_components_take():
    security = parse_settings(
        {
            **BASE,
            "meshburst:apiAuthorizedNetworks": '[" 203.0.113.0/24 ", "203.0.113.0/24", "10.0.0.0/8"]',
            "meshburst:binaryAuthorization": "TRUE",
            "meshburst:rbacSecurityGroup": "gke-security-groups@corp.example.co.uk",
        },
        "primary",
    ).security
    assert security.api_authorized_networks == ("203.0.113.0/24", "10.0.0.0/8")
    assert security.binary_authorization is True and security.rbac_security_group.endswith("example.co.uk")
    assert security.enabled == {"apiAuthorizedNetworks", "binaryAuthorization", "rbacSecurityGroup"}
