"""tools/mockrun.py: the program under mocks runs the same whatever ran before it in the test process."""

from __future__ import annotations

import asyncio

from tools.mockrun import engine_urn, run_stack


def test_a_run_after_asyncio_run_still_works():
    # asyncio.run() leaves the thread without an event loop; Pulumi's runtime asks for one.
    asyncio.run(asyncio.sleep(0))
    assert run_stack("primary").one("gcp:container/cluster:Cluster", "primary-cluster")


def test_urns_are_the_engines_with_the_whole_parent_chain_and_no_stack():
    run = run_stack("primary")
    vs = run.one("kubernetes:networking.istio.io/v1:VirtualService", "worker-split-virtual-service")
    assert vs.urn == (
        "urn:pulumi:primary::meshburst::meshburst:apps:WorkerSplit$meshburst:istio:WeightedRoute"
        "$kubernetes:networking.istio.io/v1:VirtualService::worker-split-virtual-service"
    )
    assert engine_urn("urn:pulumi:primary::meshburst::pulumi:pulumi:Stack::meshburst-primary", "a:b:C", "x") == (
        "urn:pulumi:primary::meshburst::a:b:C::x"
    )


def test_aliases_resolve_as_the_engine_does_inherited_ones_included():
    run = run_stack("primary", {"burstMode": "auto"})
    controller = run.one("kubernetes:apps/v1:Deployment", "burstwatch-controller")
    # Burstwatch was top-level before WorkerSplit owned it; its children inherit that alias.
    assert (
        "urn:pulumi:primary::meshburst::meshburst:apps:Burstwatch$kubernetes:apps/v1:Deployment::burstwatch-controller"
        in controller.aliases
    )
