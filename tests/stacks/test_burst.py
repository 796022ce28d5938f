"""stacks/burst.py: what a live `pulumi up -s burst` waits for, and refusals that change nothing."""

from __future__ import annotations

import pytest

from config.settings import ConfigError
from stacks.burst import disagreements
from tools.mockrun import (
    Resource,
    Run,
    RunFailed,
    run_stack,
)

PRIMARY_REF = "organization/meshburst/primary"


def names_created_before(run: Run, resource: Resource) -> set[str]:
    return {run.by_urn(urn).name for urn in run.created_before(resource)}


MISMATCHES = [
    ("gcp:project", "other-project-1", "meshburst-test-123", "gcp:project"),
    ("meshId", "mesh2", "mesh1", "meshburst:meshId"),
    ("meshNetwork", "network2", "network1", "meshburst:meshNetwork"),
    ("istioVersion", "1.29.0", "1.30.3", "meshburst:istioVersion"),
    ("network", "other-vpc", "default", "meshburst:network"),
]


def test_primary_access_in_burst_stack_is_secret(burst_run: Run):
    provider = burst_run.one("pulumi:providers:kubernetes", "primary-access")
    assert provider.is_secret("kubeconfig")
    assert "meshburst-primary" in provider.get("kubeconfig")


def test_burst_reads_the_primary_named_by_primary_stack(primary_run: Run):
    ref = "acme/meshburst/prod-primary"
    burst = run_stack(
        "burst",
        {"primaryStack": ref},
        stack_references={ref: primary_run.outputs},
        secret_outputs={ref: primary_run.secret_outputs},
    )
    [reference] = burst.of_type("pulumi:pulumi:StackReference")
    assert reference.name == ref


def test_burst_worker_waits_for_firewall_remote_secret_and_remote_istiod(burst_run: Run):
    worker = burst_run.one("kubernetes:apps/v1:Deployment", "worker-worker")
    before = names_created_before(burst_run, worker)
    # The injection webhook fails closed until istiod (primary) can read this cluster: remote istiod's
    # RBAC and the remote secret. Readiness needs Redis in the primary, through the firewall.
    assert {"mesh-pods", "istio-istiod", "remote-secret-secret", "istio-apps-namespace"} <= before
    assert {"burst-pool", "burst-k8s"} <= before


def test_every_burst_resource_waits_for_the_agreement_with_the_primary(burst_run: Run):
    [reference] = burst_run.of_type("pulumi:pulumi:StackReference")
    for resource in burst_run.resources:
        if resource is reference:
            continue
        assert reference.urn in burst_run.created_before(resource), f"{resource.type} {resource.name}"


def test_disagreements_name_key_both_values_and_the_fix():
    mine = {"gcp:project": "proj-b", "meshburst:meshId": "mesh1"}
    assert disagreements("burst", mine, {"gcp:project": "proj-a", "meshburst:meshId": "mesh1"}) == [
        "gcp:project = 'proj-b' on the burst stack, but the primary stack runs 'proj-a': "
        "set `pulumi config set gcp:project proj-a -s burst`"
    ]


@pytest.mark.parametrize(("key", "burst_value", "primary_value", "full_key"), MISMATCHES)
def test_a_mismatched_burst_stack_registers_nothing_but_the_stack_reference(
    primary_run: Run, key: str, burst_value: str, primary_value: str, full_key: str
):
    with pytest.raises(RunFailed) as caught:
        run_stack(
            "burst",
            {key: burst_value},
            stack_references={PRIMARY_REF: primary_run.outputs},
            secret_outputs={PRIMARY_REF: primary_run.secret_outputs},
        )
    assert isinstance(caught.value.error, ConfigError)
    short = key.removeprefix("meshburst:")
    assert caught.value.error.problems == [
        f"{full_key} = {burst_value!r} on the burst stack, but the primary stack runs {primary_value!r}: "
        f"set `pulumi config set {short} {primary_value} -s burst`"
    ]
    assert [r.type for r in caught.value.resources] == ["pulumi:pulumi:StackReference"]


def test_every_mismatch_is_reported_at_once(primary_run: Run):
    with pytest.raises(RunFailed) as caught:
        run_stack(
            "burst", {"meshId": "mesh2", "istioVersion": "1.29.0"}, stack_references={PRIMARY_REF: primary_run.outputs}
        )
    assert [p.split(" ")[0] for p in caught.value.error.problems] == ["meshburst:istioVersion", "meshburst:meshId"]


def test_kiali_must_agree_and_the_fix_sets_it_by_path(primary_run: Run):
    with pytest.raises(RunFailed) as caught:
        run_stack(
            "burst",
            {"addons": {"kiali": True}},
            stack_references={PRIMARY_REF: primary_run.outputs},
            secret_outputs={PRIMARY_REF: primary_run.secret_outputs},
        )
    assert caught.value.error.problems == [
        "meshburst:addons.kiali = 'true' on the burst stack, but the primary stack runs 'false': "
        "set `pulumi config set --path addons.kiali false -s burst`"
    ]
    assert [r.type for r in caught.value.resources] == ["pulumi:pulumi:StackReference"]


def test_without_kiali_the_burst_cluster_grants_no_kiali_reader(burst_run: Run):
    assert burst_run.of_type("meshburst:observability:KialiRemoteAccess") == []
    assert burst_run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole") == [] or all(
        "kiali" not in r.name for r in burst_run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    )
