"""burstwatch's Kubernetes client against the recording fake API: what every retry sends, and how faults are counted."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from apps.burstwatch.kube import ATTEMPTS, KubeClient, KubeError, read_split
from apps.worker.split import worker_route
from builders.routes import virtual_service_manifest
from tests.support.fake_mesh import FakeKubeApi

SUBSETS = ("primary", "burst")
T = TypeVar("T")


@pytest.fixture()
def kube():
    with FakeKubeApi(virtual_service_manifest(worker_route("meshburst", 0))) as api:
        yield api


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on a private loop: asyncio.run would unset the main thread's loop, which Pulumi's mocks use later."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


async def patch(api: FakeKubeApi, fail_with: list[int], retries: list[KubeError]) -> dict:
    """Read the split, then patch it while the API answers `fail_with` first."""
    client = KubeClient(api.url, None, verify=True, timeout=2.0)
    try:
        split = read_split(await client.get_virtual_service("meshburst", "worker-split"), SUBSETS)
        api.requests.clear()
        api.fail_next = list(fail_with)
        return await client.patch_weights("meshburst", "worker-split", split, SUBSETS, (0, 100), retries.append)
    finally:
        await client.aclose()


def test_every_patch_retry_keeps_its_json_patch_content_type(kube):
    retries: list[KubeError] = []
    run(patch(kube, [409, 503, 500], retries))
    patches = kube.patches()
    assert [p.content_type for p in patches] == ["application/json-patch+json"] * 4
    assert all(p.query == {"fieldManager": ["burstwatch"]} for p in patches)
    assert all(p.body == patches[0].body for p in patches)
    assert kube.weights() == (0, 100)
    assert [e.kind for e in retries] == ["kube_conflict", "kube_http_503", "kube_http_500"]


def test_a_call_that_fails_every_attempt_reports_each_failure_once(kube):
    retries: list[KubeError] = []
    with pytest.raises(KubeError) as raised:
        run(patch(kube, [503] * ATTEMPTS, retries))
    # ATTEMPTS failed requests: ATTEMPTS - 1 reported as retries, the last one raised to the caller.
    assert len(kube.patches()) == ATTEMPTS
    assert len(retries) + 1 == ATTEMPTS
    assert raised.value.kind == "kube_http_503"
    assert kube.weights() == (100, 0)


def test_a_refused_patch_is_raised_at_once_not_retried(kube):
    retries: list[KubeError] = []
    with pytest.raises(KubeError, match="HTTP 403"):
        run(patch(kube, [403], retries))
    assert len(kube.patches()) == 1 and retries == []
