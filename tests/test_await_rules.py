"""Every await rule a live `pulumi up` meets can be satisfied, and no preview depends on what a run left behind."""

from __future__ import annotations

import pytest

from tools.mockrun import Run

SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SKIP_AWAIT = "pulumi.com/skipAwait"


def effective_provider(run: Run, resource) -> str:
    """The provider a resource uses: its own, or the one its component hands down."""
    while not resource.provider and resource.parent:
        resource = run.parent_of(resource)
    return run.provider_name(resource)


@pytest.mark.parametrize("stack", ["primary", "burst"])
def test_every_service_selects_pods_in_its_own_cluster_or_is_not_awaited(stack: str, primary_run: Run, burst_run: Run):
    run = {"primary": primary_run, "burst": burst_run}[stack]
    pods: dict[str, list[dict[str, str]]] = {}
    for deployment in run.of_type(DEPLOYMENT):
        pods.setdefault(effective_provider(run, deployment), []).append(deployment.get("spec.template.metadata.labels"))
    services = run.of_type(SERVICE)
    assert services, "each stack has Services"
    for svc in services:
        selector = svc.get("spec.selector")
        in_cluster = pods.get(effective_provider(run, svc), [])
        served = any(selector.items() <= labels.items() for labels in in_cluster)
        skipped = (svc.inputs["metadata"].get("annotations") or {}).get(SKIP_AWAIT) == "true"
        assert served != skipped, f"{stack} Service {svc.get('metadata.name')}: " + (
            "selects pods here, so it must be awaited" if served else "no pod here carries its labels; skip await"
        )


def test_only_the_burst_redis_name_is_not_awaited(burst_run: Run, primary_run: Run):
    skipped = [
        (run.stack, s.get("metadata.name"))
        for run in (primary_run, burst_run)
        for s in run.of_type(SERVICE)
        if (s.inputs["metadata"].get("annotations") or {}).get(SKIP_AWAIT)
    ]
    assert skipped == [("burst", "redis-cache-service")]


def test_no_stack_reads_objects_it_creates(primary_run: Run, burst_run: Run):
    # A read of an object that does not exist fails every later preview once a first run stopped early.
    # The one read is the burst stack's StackReference: the other stack's outputs, by design.
    reads = [(run.stack, r.type) for run in (primary_run, burst_run) for r in run.resources if r.read]
    assert reads == [("burst", "pulumi:pulumi:StackReference")]
