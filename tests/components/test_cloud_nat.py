"""components/cloud_nat.py: one Cloud NAT for the region, owned by the primary."""

from __future__ import annotations

import pytest

from components.cloud_nat import region_problems
from config.settings import ConfigError
from tools.mockrun import (
    PROJECT_ID,
    Run,
    RunFailed,
    run_stack,
)

PRIMARY_REF = "organization/meshburst/primary"


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
