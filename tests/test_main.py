"""__main__.py: both stacks as a whole, their outputs and how their resources hang together."""

from __future__ import annotations

from tools.mockrun import (
    FAKE_ADDRESSES,
    FAKE_POD_CIDRS,
    Resource,
    Run,
)

PRIMARY_OUTPUTS = {
    "clusterName",
    "zone",
    "kubeconfig",
    "podCidr",
    "nodeTag",
    "network",
    "istiodAddress",
    "ingressIp",
    "istioVersion",
    "meshId",
    "meshNetwork",
    "workerImage",
    "sharkUrl",
    "canaryWeight",
    "canaryMode",
    "canaryFaultActive",
    "hashrUrl",
    "burstMode",
    "project",
    "hashrToken",
    "apiAccess",
    "kiali",
}


BURST_OUTPUTS = {"clusterName", "kubeconfig", "podCidr", "nodeTag", "apiAccess"}


def kubernetes_resources(run: Run) -> list[Resource]:
    """Everything a stack does through a Kubernetes provider: objects, Helm releases and reads."""
    return [r for r in run.resources if r.type.startswith("kubernetes:")]


def test_outputs_follow_the_contract(primary_run: Run, burst_run: Run):
    assert set(primary_run.outputs) == PRIMARY_OUTPUTS
    assert set(burst_run.outputs) == BURST_OUTPUTS
    assert primary_run.secret_outputs == {"kubeconfig", "hashrToken"}
    assert burst_run.secret_outputs == {"kubeconfig"}
    p = primary_run.outputs
    assert (p["clusterName"], p["zone"], p["podCidr"], p["nodeTag"], p["network"]) == (
        "meshburst-primary",
        "us-west1-a",
        FAKE_POD_CIDRS["meshburst-primary"],
        "meshburst-primary",
        "default",
    )
    assert (p["istiodAddress"], p["ingressIp"]) == (
        FAKE_ADDRESSES["meshburst-istiod"],
        FAKE_ADDRESSES["meshburst-ingress"],
    )
    assert (p["istioVersion"], p["meshId"], p["meshNetwork"]) == ("1.30.3", "mesh1", "network1")
    assert p["project"] == "meshburst-test-123"
    b = burst_run.outputs
    assert (b["clusterName"], b["podCidr"], b["nodeTag"]) == (
        "meshburst-burst",
        FAKE_POD_CIDRS["meshburst-burst"],
        "meshburst-burst",
    )


def test_every_kubernetes_object_of_a_stack_uses_its_own_cluster(primary_run: Run, burst_run: Run):
    for resource in kubernetes_resources(primary_run):
        assert primary_run.provider_name(resource) == "primary-k8s", resource.name
    # The burst stack writes exactly two objects into the primary: the remote secret and Redis's admission.
    into_primary = {"remote-secret-secret", "worker-redis-from-burst"}
    for resource in kubernetes_resources(burst_run):
        expected = "primary-access" if resource.name in into_primary else "burst-k8s"
        assert burst_run.provider_name(resource) == expected, resource.name


def test_every_component_child_is_parented_to_a_component(primary_run: Run, burst_run: Run):
    top_level = {"pulumi:pulumi:StackReference", "pulumi:providers:kubernetes::primary-access"}
    for run in (primary_run, burst_run):
        for resource in run.resources:
            if (
                resource.type.startswith("meshburst:")
                or resource.type in top_level
                or (f"{resource.type}::{resource.name}" in top_level)
            ):
                continue
            parent_type = resource.parent.split("::")[2].split("$")[-1]
            assert parent_type.startswith("meshburst:"), f"{resource.type} {resource.name} has parent {parent_type}"
