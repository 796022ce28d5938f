"""The GCP gate: both configurations pass checkov with only the written skips, and the conversion is faithful.

Faithful means: for every checkov check a control names, changing one Pulumi input of a compliant
resource flips that check's verdict in checkov, and the control (the policy pack's rule) agrees.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from config.settings import parse_settings
from policy.gcp_controls import CONTROLS, OPT_IN_KEYS, SKIPS, opt_in_skips, violations
from tests.support.gcp_gate import ALL_OPT_INS, apply_skips, checkov_verdicts, gcp_gate
from tools.mockrun import PROJECT_ID, Run, run_both
from tools.tf_json import TERRAFORM_TYPES, resource_block, terraform_json

DELETE = object()
CLUSTER = ("gcp:container/cluster:Cluster", "primary-cluster")
POOL = ("gcp:container/nodePool:NodePool", "primary-pool")
FIREWALL = ("gcp:compute/firewall:Firewall", "mesh-pods")
PROJECT_GRANT = ("gcp:projects/iAMMember:IAMMember", "primary-nodes-container-defaultnodeserviceaccount")
REPOSITORY_GRANT = ("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember", "primary-nodes-registry-reader")
REPOSITORY = ("gcp:artifactregistry/repository:Repository", "images-repository")

# checkov check -> (resource of the all-opt-ins run, {Pulumi input path: new value}): one input each, except
# where checkov itself reads two (said on the line).
MUTATIONS: Mapping[str, tuple[tuple[str, str], dict[str, Any]]] = {
    "CKV_GCP_25": (CLUSTER, {"privateClusterConfig": DELETE}),
    "CKV_GCP_64": (CLUSTER, {"privateClusterConfig": DELETE}),
    "CKV_GCP_21": (CLUSTER, {"resourceLabels": DELETE}),
    "CKV_GCP_7": (CLUSTER, {"enableLegacyAbac": True}),
    "CKV_GCP_13": (CLUSTER, {"masterAuth.clientCertificateConfig.issueClientCertificate": True}),
    "CKV_GCP_1": (CLUSTER, {"loggingService": "none"}),
    "CKV_GCP_8": (CLUSTER, {"monitoringService": "none"}),
    "CKV_GCP_23": (CLUSTER, {"ipAllocationPolicy": DELETE}),
    "CKV_GCP_71": (CLUSTER, {"enableShieldedNodes": False}),
    "CKV_GCP_70": (CLUSTER, {"releaseChannel": DELETE}),
    "CKV2_GCP_19": (CLUSTER, {"enableKubernetesAlpha": True}),
    # checkov excuses inline pools while removeDefaultNodePool is true, so both must change.
    "CKV_GCP_123": (CLUSTER, {"removeDefaultNodePool": False, "nodePools": [{"name": "inline", "nodeCount": 1}]}),
    "CKV_GCP_20": (CLUSTER, {"masterAuthorizedNetworksConfig": DELETE}),
    "CKV_GCP_18": (CLUSTER, {"masterAuthorizedNetworksConfig.cidrBlocks": [{"cidrBlock": "0.0.0.0/0"}]}),
    "CKV_GCP_66": (CLUSTER, {"binaryAuthorization.evaluationMode": "DISABLED"}),
    "CKV_GCP_61": (CLUSTER, {"enableIntranodeVisibility": False}),
    "CKV_GCP_65": (CLUSTER, {"authenticatorGroupsConfig": DELETE}),
    "CKV_GCP_9": (POOL, {"management.autoRepair": False}),
    "CKV_GCP_10": (POOL, {"management.autoUpgrade": False}),
    "CKV_GCP_69": (POOL, {"nodeConfig.workloadMetadataConfig.mode": "GCE_METADATA"}),
    "CKV_GCP_68": (POOL, {"nodeConfig.shieldedInstanceConfig.enableSecureBoot": False}),
    "CKV_GCP_72": (POOL, {"nodeConfig.shieldedInstanceConfig.enableIntegrityMonitoring": False}),
    # checkov's port checks only look at ports a rule lists (the mesh rule lists none: every port), so each
    # flip opens the internet and names the port.
    **{
        check_id: (FIREWALL, {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": [port]}]})
        for check_id, port in (
            ("CKV_GCP_2", "22"),
            ("CKV_GCP_3", "3389"),
            ("CKV_GCP_75", "21"),
            ("CKV_GCP_77", "20"),
            ("CKV_GCP_88", "3306"),
            ("CKV_GCP_106", "80"),
        )
    },
    # checkov only counts a rule open to everything when it also allows protocol "all".
    "CKV2_GCP_12": (FIREWALL, {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "all"}]}),
    "CKV_GCP_117": (PROJECT_GRANT, {"role": "roles/viewer"}),
    "CKV_GCP_41": (PROJECT_GRANT, {"role": "roles/iam.serviceAccountUser"}),
    "CKV_GCP_42": (PROJECT_GRANT, {"role": "roles/compute.networkAdmin"}),
    "CKV_GCP_49": (PROJECT_GRANT, {"role": "roles/iam.workloadIdentityUser"}),
    "CKV_GCP_46": (PROJECT_GRANT, {"member": "serviceAccount:123456789-compute@developer.gserviceaccount.com"}),
    "CKV_GCP_101": (REPOSITORY_GRANT, {"member": "allUsers"}),
    "CKV_GCP_84": (REPOSITORY, {"kmsKeyName": DELETE}),
}


def mutated(props: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(props))
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = result
        for part in parents:
            target = target[part]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return result


@pytest.fixture(scope="module")
def hardened_runs() -> tuple[Run, Run]:
    return run_both(ALL_OPT_INS, ALL_OPT_INS)


def _props(runs: tuple[Run, Run], resource: tuple[str, str]) -> dict[str, Any]:
    type_, name = resource
    return next(r for run in runs for r in run.resources if r.type == type_ and r.name == name).inputs


def test_all_opt_ins_turns_on_every_opt_in_the_controls_know():
    raw = {"gcp:project": PROJECT_ID, "gcp:zone": "us-west1-a"}
    raw |= {f"meshburst:{k}": v if isinstance(v, str) else str(v).replace("'", '"') for k, v in ALL_OPT_INS.items()}
    assert parse_settings(raw, "primary").security.enabled == set(OPT_IN_KEYS) == set(ALL_OPT_INS)


def test_default_config_passes_the_gate_with_only_the_written_skips(default_runs: tuple[Run, Run], tmp_path: Path):
    result = gcp_gate(default_runs, frozenset(), tmp_path)
    assert result.findings == []
    skipped = {(v.check_id, v.tf_type) for v, _ in result.skipped}
    assert skipped == {
        ("CKV_GCP_12", "google_container_cluster"),
        ("CKV_GCP_69", "google_container_cluster"),
        # The opt-ins this run leaves off:
        ("CKV_GCP_20", "google_container_cluster"),
        ("CKV_GCP_66", "google_container_cluster"),
        ("CKV_GCP_61", "google_container_cluster"),
        ("CKV_GCP_65", "google_container_cluster"),
        ("CKV_GCP_84", "google_artifact_registry_repository"),
    }
    assert all(reason for _, reason in result.skipped)


def test_every_opt_in_on_passes_the_gate_with_only_the_not_applicable_skips(
    hardened_runs: tuple[Run, Run], tmp_path: Path
):
    result = gcp_gate(hardened_runs, frozenset(OPT_IN_KEYS), tmp_path)
    assert result.findings == []
    assert {(v.check_id, v.tf_type) for v, _ in result.skipped} == {
        (s.checkov_id, TERRAFORM_TYPES[s.resource_type]) for s in SKIPS
    }


def test_every_gcp_resource_of_both_configs_meets_every_control(
    default_runs: tuple[Run, Run], hardened_runs: tuple[Run, Run]
):
    for runs, enabled in ((default_runs, frozenset()), (hardened_runs, frozenset(OPT_IN_KEYS))):
        found = [
            f"{run.stack}/{r.name}: {v}"
            for run in runs
            for r in run.resources
            if r.type.startswith("gcp:")
            for v in violations(r.type, r.inputs, enabled)
        ]
        assert found == []


def test_every_skip_says_why_and_opt_in_skips_name_their_key():
    assert all(len(s.reason) > 40 for s in SKIPS)
    reasons = {s.checkov_id: s.reason for s in opt_in_skips(frozenset())}
    assert "set apiAuthorizedNetworks" in reasons["CKV_GCP_20"]
    assert "set kmsKey" in reasons["CKV_GCP_84"]
    assert opt_in_skips(frozenset(OPT_IN_KEYS)) == ()


def test_every_checkov_check_a_control_names_has_a_mutation():
    named = {checkov_id for control in CONTROLS for checkov_id in control.checkov_ids}
    assert named == set(MUTATIONS)


def test_one_input_flips_each_check_in_checkov_and_in_the_control(hardened_runs: tuple[Run, Run], tmp_path: Path):
    document = terraform_json(hardened_runs)
    flips: dict[str, str] = {}
    for check_id, (resource, changes) in MUTATIONS.items():
        tf_type, block = resource_block(resource[0], mutated(_props(hardened_runs, resource), changes))
        name = f"flip_{check_id}"
        document["resource"][tf_type][name] = block
        flips[check_id] = name
    verdicts = {(v.check_id, v.resource): v.passed for v in checkov_verdicts(document, tmp_path)}

    for check_id, (resource, changes) in MUTATIONS.items():
        original = f"{hardened_runs[0].stack}_{resource[1]}".replace("-", "_")
        if resource == FIREWALL:
            original = f"{hardened_runs[1].stack}_{resource[1]}".replace("-", "_")
        assert verdicts[(check_id, original)] is True, f"{check_id} should pass on the program's {resource[1]}"
        assert verdicts[(check_id, flips[check_id])] is False, f"{check_id} did not flip when {changes} changed"

        [control] = [c for c in CONTROLS if check_id in c.checkov_ids]
        before, after = _props(hardened_runs, resource), mutated(_props(hardened_runs, resource), changes)
        assert control.check(before) is None
        assert control.check(after) is not None, f"control {control.id} missed what {check_id} caught"


def test_an_unused_not_applicable_skip_is_a_finding():
    result = apply_skips([], SKIPS)
    assert len(result.findings) == len(SKIPS)
    assert "CKV_GCP_12" in result.findings[0] and "matched no failed check" in result.findings[0]


def test_the_conversion_undoes_pulumis_names_and_shapes():
    tf_type, block = resource_block(
        "gcp:compute/firewall:Firewall",
        {
            "allows": [{"protocol": "tcp", "ports": ["443"]}],
            "sourceRanges": ["10.4.0.0/14"],
            "logConfig": {"metadata": "INCLUDE_ALL_METADATA"},
        },
    )
    assert tf_type == "google_compute_firewall"
    assert block == {
        "allow": [{"protocol": "tcp", "ports": ["443"]}],
        "source_ranges": ["10.4.0.0/14"],
        "log_config": [{"metadata": "INCLUDE_ALL_METADATA"}],
    }
    _, cluster = resource_block(
        "gcp:container/cluster:Cluster",
        {"resourceLabels": {"stack": "primary"}, "privateClusterConfig": {"masterIpv4CidrBlock": "172.16.0.0/28"}},
    )
    assert cluster == {
        "resource_labels": {"stack": "primary"},
        "private_cluster_config": [{"master_ipv4_cidr_block": "172.16.0.0/28"}],
    }


def test_a_gcp_type_without_a_terraform_name_stops_the_conversion():
    with pytest.raises(KeyError, match="no Terraform type for gcp:compute/instance:Instance"):
        resource_block("gcp:compute/instance:Instance", {})
