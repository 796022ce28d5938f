"""Stand-ins for what the burst controller reads in a cluster, served on loopback and driven by the tests.

RateExporter serves `istio_requests_total` with Istio's real label names, growing at a rate the test
sets (as the frontend's sidecar would report). The Kubernetes API stand-in is tests/support/fake_kube.py.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler

from tests.support.loopback import LoopbackServer

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

        self.serve(Handler)
        self.target = self.address

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
