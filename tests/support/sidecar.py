"""A stand-in for the String Hashr frontend's Envoy sidecar, on loopback: routes and counts what it really sends.

    sidecar = SourceSidecar({"primary": primary.url, "burst": burst.url}, share=mesh.share)
    frontend = hashr_app(..., env={"PROCESSOR_URL": sidecar.url + "/"})
    PrometheusServer(logs, [sidecar.target], "5s")

Each POST goes to the burst worker with probability share()/100 (the live VirtualService's weight, read per
request as Envoy applies the route istiod pushed), else to the primary worker, and is counted when its answer
is back, as `istio_requests_total` with the labels a source-reporting sidecar gives it (reporter="source",
source_workload, destination_service, destination_cluster, response_code ...). GET on any path serves the
counters in Prometheus's text format, for Prometheus to scrape. The counts are of requests the frontend sent,
not of a rate anyone set: what the controller reads is what happened.
"""

from __future__ import annotations

import http.client
import random
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.support.loopback import LoopbackServer

SOURCE_LABELS = {
    "reporter": "source",
    "source_workload": "frontend",
    "source_workload_namespace": "meshburst",
    "source_app": "frontend",
    "destination_service": "worker-service.meshburst.svc.cluster.local",
    "destination_service_name": "worker-service",
    "destination_service_namespace": "meshburst",
    "destination_workload": "worker",
    "request_protocol": "http",
}


class SourceSidecar(LoopbackServer):
    def __init__(
        self, upstreams: Mapping[str, str], share: Callable[[], int | None], seed: int = 7, timeout: float = 5.0
    ) -> None:
        """`upstreams`: cluster name -> worker URL, primary first; `share`: percent for the second (None: 0)."""
        if len(upstreams) != 2:
            raise ValueError(f"two upstreams (primary, burst) expected, got {list(upstreams)}")
        self.clusters = list(upstreams)
        self.upstreams = {name: urlsplit(url) for name, url in upstreams.items()}
        self.share = share
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}
        """(destination_cluster, response_code) -> requests answered."""
        sidecar = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep the frontend's pooled connections, as Envoy does

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                cluster = sidecar.pick()
                target = sidecar.upstreams[cluster]
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
                try:
                    connection.request(
                        "POST", "/", body, {"content-type": self.headers.get("content-type", "text/plain")}
                    )
                    response = connection.getresponse()
                    status, data = response.status, response.read()
                except OSError:
                    status, data = 503, b"upstream connect error or disconnect/reset before headers"
                finally:
                    connection.close()
                sidecar.count(cluster, status)
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                data = sidecar.exposition().encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                return

        self.serve(Handler)
        self.target = self.address
        self.url = f"http://{self.target}"

    def pick(self) -> str:
        share = self.share() or 0
        with self.lock:
            return self.clusters[1] if self.random.random() * 100 < share else self.clusters[0]

    def count(self, cluster: str, status: int) -> None:
        with self.lock:
            key = (cluster, str(status))
            self.counts[key] = self.counts.get(key, 0) + 1

    def total(self, cluster: str | None = None) -> int:
        with self.lock:
            return sum(n for (name, _), n in self.counts.items() if cluster in (None, name))

    def exposition(self) -> str:
        with self.lock:
            counts = dict(self.counts)
        lines = ["# TYPE istio_requests_total counter"]
        for (cluster, code), value in sorted(counts.items()):
            labels = {**SOURCE_LABELS, "destination_cluster": cluster, "response_code": code}
            text = ",".join(f'{key}="{label}"' for key, label in labels.items())
            lines.append(f"istio_requests_total{{{text}}} {value}")
        return "\n".join(lines) + "\n"
