"""Stand-ins for what burstwatch talks to in a cluster, served on loopback and driven by the tests.

RateExporter serves `istio_requests_total` with Istio's real label names, growing at a rate the test
sets (as the frontend's sidecar would report). FakeKubeApi speaks the two Kubernetes API calls
burstwatch makes (GET and JSON-PATCH one VirtualService), records every request and can fail on cue.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ISTIO_LABELS = {
    "reporter": "source",
    "source_workload": "frontend",
    "source_workload_namespace": "meshburst",
    "destination_service": "worker-service.meshburst.svc.cluster.local",
    "destination_service_name": "worker-service",
    "destination_workload": "worker",
    "request_protocol": "http",
    "response_code": "200",
}


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


class LoopbackServer:
    """A test HTTP server on loopback; `stop()`, or leaving a `with` block, shuts it down."""

    server: ThreadingHTTPServer

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RateExporter(LoopbackServer):
    def __init__(self, rate: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.count = 0.0
        self.rate = rate
        self.since = time.monotonic()
        self.rate_changes: list[tuple[float, float]] = []  # (monotonic time, new rate)
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                labels = ",".join(f'{k}="{v}"' for k, v in ISTIO_LABELS.items())
                body = (
                    f"# TYPE istio_requests_total counter\nistio_requests_total{{{labels}}} {exporter.total():.3f}\n"
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                return

        self.server, self.target = _serve(Handler)

    def total(self) -> float:
        with self.lock:
            now = time.monotonic()
            self.count += self.rate * (now - self.since)
            self.since = now
            return self.count

    def set_rate(self, rate: float) -> float:
        self.total()
        with self.lock:
            self.rate = rate
            changed_at = time.monotonic()
            self.rate_changes.append((changed_at, rate))
            return changed_at


@dataclass
class Recorded:
    at: float
    method: str
    path: str
    query: dict
    content_type: str
    body: object


def apply_json_patch(document: dict, operations: list[dict]) -> dict:
    """The `test` and `replace` operations of RFC 6902 (what burstwatch sends)."""
    result = copy.deepcopy(document)
    for op in operations:
        *parents, last = [p for p in op["path"].split("/")[1:]]
        target = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key = int(last) if isinstance(target, list) else last
        if op["op"] == "test":
            if target[key] != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        elif op["op"] == "replace":
            target[key] = op["value"]
        else:
            raise ValueError(f"unsupported op {op['op']}")
    return result


@dataclass
class FakeKubeApi(LoopbackServer):
    virtual_service: dict
    requests: list[Recorded] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    """Statuses to answer the next requests with, instead of serving them."""

    def __post_init__(self) -> None:
        api = self
        self.lock = threading.Lock()
        name = self.virtual_service["metadata"]["name"]
        namespace = self.virtual_service["metadata"]["namespace"]
        self.path = f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/{name}"

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                with api.lock:
                    api.requests.append(
                        Recorded(
                            time.monotonic(),
                            self.command,
                            url.path,
                            parse_qs(url.query),
                            self.headers.get("content-type", ""),
                            json.loads(raw) if raw else None,
                        )
                    )
                    if api.fail_next:
                        status = api.fail_next.pop(0)
                        self._answer(status, {"kind": "Status", "code": status, "reason": "injected"})
                        return
                    if url.path != api.path:
                        self._answer(404, {"kind": "Status", "code": 404})
                        return
                    if self.command == "PATCH":
                        try:
                            api.virtual_service = apply_json_patch(api.virtual_service, json.loads(raw))
                        except (ValueError, KeyError, IndexError) as exc:
                            self._answer(422, {"kind": "Status", "code": 422, "message": str(exc)})
                            return
                    self._answer(200, api.virtual_service)

            do_GET = _handle
            do_PATCH = _handle

            def log_message(self, *_args) -> None:
                return

        self.server, address = _serve(Handler)
        self.url = f"http://{address}"

    def patches(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == "PATCH"]

    def weights(self) -> tuple[int, int]:
        with self.lock:
            route = self.virtual_service["spec"]["http"][0]["route"]
            return route[0]["weight"], route[1]["weight"]
