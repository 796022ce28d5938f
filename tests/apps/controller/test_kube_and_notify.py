"""The controller's Kubernetes calls (lightkube against the fake API), Prometheus answers and the webhook notifier."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from apps.controller.kube import Kube, KubeError, fault_kind
from apps.controller.notify import QUEUE_SIZE, Notifier, host_of, read_webhook_url
from apps.controller.prom import PrometheusError, parse_scalar, read_queries
from apps.worker.split import worker_route
from builders.routes import virtual_service_manifest
from tests.support.controller_harness import StubPrometheus, WebhookReceiver, config_map
from tests.support.fake_kube import MERGE, FakeKube, write_kubeconfig

T = TypeVar("T")
NS = "meshburst"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


@pytest.fixture()
def kube(tmp_path, monkeypatch):
    with FakeKube(token="s3cret") as api:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", api, NS)))
        yield api


async def call(method: str, *args: Any) -> Any:
    client = Kube.from_env(NS, 1.0)
    try:
        return await getattr(client, method)(*args)
    finally:
        await client.aclose()


def test_get_is_none_for_an_absent_object_and_plain_data_otherwise(kube):
    assert run(call("get_virtual_service", "worker-split")) is None
    kube.set_object(virtual_service_manifest(worker_route(NS, 30)))
    live = run(call("get_virtual_service", "worker-split"))
    assert live["spec"] == virtual_service_manifest(worker_route(NS, 30))["spec"]
    assert live["metadata"]["resourceVersion"] == "101"
    assert [r.token for r in kube.requests] == ["s3cret", "s3cret"], "the kubeconfig's token, every call"


def test_a_conflicting_apply_is_a_conflict_and_changes_nothing(kube):
    kube.set_object(virtual_service_manifest(worker_route(NS, 0)))
    kube.set_object(virtual_service_manifest(worker_route(NS, 10)))  # version 102 now
    with pytest.raises(KubeError) as raised:
        run(call("apply_virtual_service", virtual_service_manifest(worker_route(NS, 100)), "101"))
    assert raised.value.kind == "conflict"
    assert "the object has been modified" in str(raised.value)
    assert kube.get("VirtualService", NS, "worker-split")["spec"]["http"][-1]["route"][1]["weight"] == 10


def test_apply_keeps_fields_it_does_not_set_and_bumps_the_version(kube):
    pulumis = virtual_service_manifest(worker_route(NS, 0))
    pulumis["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "pulumi"}
    kube.set_object(pulumis)
    written = run(call("apply_virtual_service", virtual_service_manifest(worker_route(NS, 100)), "101"))
    assert written["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "pulumi"}
    assert written["metadata"]["resourceVersion"] == "102"
    assert written["spec"]["http"][-1]["route"][1]["weight"] == 100


def test_status_is_merge_patched_data_only(kube):
    kube.set_object(config_map("worker-split-status", NS, {"phase": "Idle", "keep": "me"}))
    run(call("patch_config_map_data", "worker-split-status", {"phase": "Waiting"}))
    [patch] = kube.writes()
    assert (patch.content_type, patch.body) == (MERGE, {"data": {"phase": "Waiting"}})
    assert kube.get("ConfigMap", NS, "worker-split-status")["data"] == {"phase": "Waiting", "keep": "me"}


def test_a_wrong_token_is_unauthorized(kube):
    kube.token = "rotated"
    with pytest.raises(KubeError) as raised:
        run(call("get_config_map", "x"))
    assert raised.value.kind == "unauthorized"


def test_an_answer_that_is_not_the_object_is_a_bad_response(kube):
    kube.set_object(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": NS}, "spec": {}}
    )
    with pytest.raises(KubeError) as raised:
        run(call("get_deployment", "d"))
    assert raised.value.kind == "bad_response"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "not_found"),
        (409, "conflict"),
        (422, "invalid"),
        (429, "throttled"),
        (400, "rejected"),
        (500, "server_error"),
        (503, "server_error"),
    ],
)
def test_fault_kinds_by_status(status, kind):
    assert fault_kind(status) == kind


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, "empty"),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}},
            "nan",
        ),
        ({"status": "error", "error": "parse error"}, "bad_response"),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "bad_response"),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"value": [1, "1"]}, {"value": [1, "2"]}]},
            },
            "bad_response",
        ),
        ("not json object", "bad_response"),
    ],
)
def test_prometheus_answers_that_are_not_one_number(body, kind):
    with pytest.raises(PrometheusError) as caught:
        parse_scalar(body)
    assert caught.value.kind == kind


def test_prometheus_scalar():
    body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "17.25"]}]}}
    assert parse_scalar(body) == 17.25


def test_named_queries_are_read_together_each_failure_named():
    async def read(url: str) -> Any:
        async with httpx.AsyncClient(timeout=1) as client:
            return await read_queries(client, url, {"a": "q_a", "b": "q_b"})

    with StubPrometheus() as prometheus:
        prometheus.values["q_a"] = 2.5
        values, errors = run(read(prometheus.url))
    assert values == {"a": 2.5, "b": None}
    assert {name: error.kind for name, error in errors.items()} == {"b": "empty"}
    values, errors = run(read("http://127.0.0.1:9"))
    assert values == {"a": None, "b": None}
    assert {error.kind for error in errors.values()} == {"unreachable"}


async def deliver(url: str | None, messages: list[dict], settle: float, **kwargs: Any) -> tuple[Notifier, int, float]:
    faults = []
    notifier = Notifier(url, lambda: faults.append(1), **kwargs)
    notifier.start()
    started = time.monotonic()
    for message in messages:
        notifier.send(message)
    queued_in = time.monotonic() - started
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and notifier.delivered + notifier.dropped < len(messages):
        await asyncio.sleep(0.02)
    await notifier.aclose()
    return notifier, len(faults), queued_in


def test_each_message_is_delivered_once_after_retries_with_growing_gaps():
    receiver = WebhookReceiver([500, 503])
    try:
        notifier, faults, _ = run(deliver(receiver.url, [{"phase": "burst"}], 5, first_delay_s=0.1))
    finally:
        receiver.stop()
    assert receiver.messages == [{"phase": "burst"}]
    assert (notifier.delivered, faults) == (1, 0)
    gaps = [b - a for a, b in zip(receiver.times, receiver.times[1:], strict=False)]
    assert 0.08 <= gaps[0] < 0.5 and gaps[1] >= 0.18, gaps


def test_an_undeliverable_message_is_dropped_after_the_tries_and_counted(caplog):
    receiver = WebhookReceiver([500] * 10)
    try:
        with caplog.at_level(logging.WARNING, logger="controller.notify"):
            notifier, faults, _ = run(deliver(receiver.url, [{"phase": "burst"}], 5, tries=3, first_delay_s=0.05))
    finally:
        receiver.stop()
    assert len(receiver.times) == 3
    assert (notifier.delivered, notifier.dropped, faults) == (0, 1, 1)
    assert "webhook to 127.0.0.1: HTTP 500 after 3 tries" in caplog.text
    assert "T0KEN" not in caplog.text, "the URL's secret part is never logged"


def test_sending_never_waits_even_for_a_dead_receiver_and_a_full_queue():
    messages = [{"phase": str(i)} for i in range(QUEUE_SIZE + 5)]
    notifier, faults, queued_in = run(deliver("http://127.0.0.1:9/x", messages, 0.2, tries=2, first_delay_s=5))
    assert queued_in < 0.05
    assert notifier.dropped >= 4 and faults == notifier.dropped


def test_webhook_url_file(tmp_path):
    good = tmp_path / "url"
    good.write_text("https://hooks.example.com/services/T0KEN\n")
    assert read_webhook_url(str(good)) == "https://hooks.example.com/services/T0KEN"
    assert host_of("https://hooks.example.com/services/T0KEN") == "hooks.example.com"
    bad = tmp_path / "bad"
    bad.write_text("ftp://T0KEN@example.com")
    with pytest.raises(ValueError, match="does not hold an http") as raised:
        read_webhook_url(str(bad))
    assert "T0KEN" not in str(raised.value)
    with pytest.raises(ValueError, match="cannot be read"):
        read_webhook_url(str(tmp_path / "absent"))
