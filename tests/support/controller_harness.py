"""The route controller running for real: Prometheus scraping exporters, the fake Kubernetes API, the image's command.

    with ControllerHarness(tmp_path, [exporter.target], "burst", route, settings) as mesh:
        controller = mesh.start(POLL_SECONDS="0.5")      # apps/controller's Dockerfile CMD, KUBECONFIG -> fake
        wait_until(lambda: mesh.share() == 100, 20, "the switch")
        mesh.metric("meshburst_burst_mode", mode="burst")  # 1.0
        mesh.status()                                     # the status ConfigMap's data
        mesh.set_intent(writer="pulumi")                  # as Pulumi would write it (builders.routes)

The fake API holds the route's VirtualService (unless `live_share=None`), the intent written by the Pulumi
program's own `intent_document`, and an empty status ConfigMap (metadata only, as Pulumi creates it). Objects
the policy needs besides (a target Deployment) go in with `mesh.kube.set_object(...)`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from builders.routes import RouteSpec, intent_document, intent_name, status_name, virtual_service_manifest
from tests.support.fake_kube import FakeKube, write_kubeconfig
from tests.support.loopback import LoopbackServer
from tests.support.servers import DockerfileApp, PrometheusServer

APP_DIR = "apps/controller"


def config_map(name: str, namespace: str, data: Mapping[str, str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}
    if data is not None:
        obj["data"] = dict(data)
    return obj


def intent_config_map(route: RouteSpec, policy: str, settings: Mapping[str, Any], writer: str = "controller") -> dict:
    """The intent ConfigMap exactly as the Pulumi program words it."""
    document = intent_document(route, writer, policy, settings)
    return config_map(intent_name(route.name), route.namespace, {"intent.json": document})


def metrics_of(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample a /metrics page serves: (name, labels) -> value."""
    text = httpx.get(url + "/metrics", timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric_value(url: str, name: str, **labels: str) -> float | None:
    """One sample of a /metrics page; None when it is not there."""
    return metrics_of(url).get((name, frozenset(labels.items())))


class ControllerHarness:
    def __init__(
        self,
        log_dir: Path,
        targets: Sequence[str],
        policy: str,
        route: RouteSpec,
        settings: Mapping[str, Any],
        writer: str = "controller",
        live_share: int | None = None,
        scrape_interval: str = "1s",
        prometheus: bool = True,
    ) -> None:
        """`live_share`: the VirtualService Pulumi left live (None: no VirtualService at all)."""
        self.log_dir = log_dir
        self.policy = policy
        self.route = route
        self.settings = dict(settings)
        self.kube = FakeKube(token="controller-token")
        self.kubeconfig = write_kubeconfig(log_dir / "kubeconfig", self.kube, route.namespace)
        self.prometheus = PrometheusServer(log_dir, list(targets), scrape_interval) if prometheus else None
        self.controllers: list[DockerfileApp] = []
        if live_share is not None:
            self.kube.set_object(virtual_service_manifest(route.with_share(live_share)))
        self.kube.set_object(intent_config_map(route, policy, self.settings, writer))
        self.kube.set_object(config_map(status_name(route.name), route.namespace))

    def __enter__(self) -> ControllerHarness:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def prometheus_url(self) -> str:
        return self.prometheus.url if self.prometheus is not None else "http://127.0.0.1:9"

    def env(self, **extra: str) -> dict[str, str]:
        """What the RouteController component sets, plus KUBECONFIG pointing at the fake API."""
        return {
            "POLICY": self.policy,
            "NAMESPACE": self.route.namespace,
            "ROUTE": self.route.name,
            "INTENT": intent_name(self.route.name),
            "STATUS": status_name(self.route.name),
            "PROMETHEUS_URL": self.prometheus_url,
            "KUBECONFIG": str(self.kubeconfig),
            **extra,
        }

    def start(self, name: str = "controller", wait: bool = True, **env: str) -> DockerfileApp:
        """The controller as its image runs it (the Dockerfile's CMD, from apps/controller)."""
        controller = DockerfileApp(
            f"{name}-{len(self.controllers)}", APP_DIR, self.log_dir, env=self.env(**env), wait=wait
        )
        self.controllers.append(controller)
        return controller

    def set_intent(
        self, writer: str = "controller", settings: Mapping[str, Any] | None = None, route: RouteSpec | None = None
    ) -> None:
        """Pulumi rewriting the intent (a mode switch, new settings)."""
        if settings is not None:
            self.settings = dict(settings)
        if route is not None:
            self.route = route
        self.kube.set_object(intent_config_map(self.route, self.policy, self.settings, writer))

    def virtual_service(self) -> dict[str, Any] | None:
        return self.kube.get("VirtualService", self.route.namespace, self.route.name)

    def share(self) -> int | None:
        """Share of the second subset in the live VirtualService."""
        live = self.virtual_service()
        if live is None:
            return None
        weighted = next(rule for rule in live["spec"]["http"] if rule.get("name") == "weighted")
        return int(weighted["route"][1]["weight"])

    def status(self) -> dict[str, str]:
        obj = self.kube.get("ConfigMap", self.route.namespace, status_name(self.route.name)) or {}
        return dict(obj.get("data") or {})

    def state(self) -> dict[str, Any]:
        """The policy state the controller persisted."""
        return json.loads(self.status().get("state") or "{}")

    def metric(self, name: str, controller: DockerfileApp | None = None, **labels: str) -> float | None:
        """A sample of the (latest) controller's /metrics; `route` defaults to this route."""
        app = controller or self.controllers[-1]
        return metric_value(app.url, name, **{"route": self.route.name, **labels})

    def count(self, name: str, controller: DockerfileApp | None = None, **labels: str) -> float:
        """A counter's value, 0 when the series does not exist yet."""
        value = self.metric(name, controller, **labels)
        return 0.0 if value is None or math.isnan(value) else value

    def stop(self) -> None:
        for controller in self.controllers:
            controller.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        self.kube.stop()


class StubPrometheus(LoopbackServer):
    """Prometheus's query API answering fixed values by query, or one status/body, or slowly (for fault tests).

    `values[query] = 12.5` answers that query with 12.5; an unknown query gets an empty vector.
    """

    def __init__(self, delay: float = 0.0, status: int = 200, body: bytes | None = None) -> None:
        self.values: dict[str, float] = {}
        self.queries: list[str] = []
        self.delay, self.status, self.body = delay, status, body
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query).get("query", [""])[0]
                stub.queries.append(query)
                time.sleep(stub.delay)
                body = stub.body
                if body is None:
                    value = stub.values.get(query)
                    result = [] if value is None else [{"metric": {}, "value": [time.time(), repr(value)]}]
                    body = json.dumps(
                        {"status": "success", "data": {"resultType": "vector", "result": result}}
                    ).encode()
                try:
                    self.send_response(stub.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *_args: object) -> None:
                return

        self.serve(Handler)
        self.url = f"http://{self.address}"


class WebhookReceiver(LoopbackServer):
    """A webhook receiver on loopback answering `statuses` in turn (then 200); `messages` holds what it accepted
    (parsed JSON), `times` when each POST arrived (time.monotonic())."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.messages: list[dict] = []
        self.times: list[float] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.times.append(time.monotonic())
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.messages.append(json.loads(body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self.serve(Handler)
        self.url = f"http://{self.address}/hooks/T0KEN-in-the-path"

    def phases(self) -> list[tuple[str, str]]:
        """(previous, phase) of each message accepted, in order."""
        return [(m["previous"], m["phase"]) for m in self.messages]


def rolled_out_deployment(name: str, namespace: str, labels: dict[str, str], revision: str, image: str) -> dict:
    """A Deployment fully rolled out at `revision` (REVISION_ANNOTATION on its pod template), as the Deployment
    controller reports it: what the canary policy's target check reads."""
    from apps.controller.policy import REVISION_ANNOTATION

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {REVISION_ANNOTATION: revision}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
    }
