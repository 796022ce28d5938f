"""Istio's request metrics for one app's versions, served on loopback for a real Prometheus to scrape.

What the sidecars of `<app>-<version>` Deployments report, with Istio's real metric and label names, driven by
the test: per version a request rate, a 5xx share and a latency distribution; the counters grow with (monotonic)
time between scrapes, as real ones do.

    from tests.support.istio_exporter import IstioExporter

    with IstioExporter(namespace="apps", app="shark", versions=("v1", "v2")) as exporter:
        exporter.set_traffic("v1", rps=40, latency_ms=20)
        exporter.set_traffic("v2", rps=20, error_share=0.05, latency_ms={20: 0.95, 900: 0.05})
        prometheus = PrometheusServer(tmp_path, [exporter.target], scrape_interval="1s")
        ...
        exporter.set_split(total_rps=50, share=lambda: kube.share())   # optional: rates follow the route
        exporter.totals("v2")        # Totals(requests=..., errors=..., latency_sum_ms=...) counted so far
        exporter.reset("v2")         # counters back to zero, as after the pods restart

Served series (GET /metrics, or any path), per version that has had traffic and per reporter:
- `istio_requests_total{reporter, source_workload, ..., destination_app=<app>, destination_version=<version>,
  destination_workload_namespace=<namespace>, destination_service=<app>.<namespace>.svc.cluster.local,
  response_code, request_protocol="http", ...}` (the full label set Istio's stats plugin writes);
- `istio_request_duration_milliseconds_bucket{same labels, le=...}` over Istio's default buckets (0.5 ms to 1 h),
  with `_sum` and `_count`.
Reporters: `destination` (the version's own sidecar) and `source` (the ingress gateway's, `source_workload=
istio-ingressgateway`), so each request is counted once per reporter, as in a mesh: a query that does not pick a
reporter counts it twice. As in Istio, a series appears with its first request: no 5xx series before the first
error, no series at all for a version before its first request. Counts are floats (smooth rates in short tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.loopback import LoopbackServer

ISTIO_BUCKETS_MS = (
    0.5,
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    300000,
    600000,
    1800000,
    3600000,
)
"""Istio's default buckets for istio_request_duration_milliseconds."""
REPORTERS = ("destination", "source")


@dataclass(frozen=True)
class Traffic:
    rps: float = 0.0
    """Requests per second reaching this version."""
    error_share: float = 0.0
    """Share (0..1) of them answered with `error_code`."""
    latency_ms: tuple[tuple[float, float], ...] = ((20.0, 1.0),)
    """(latency, share of requests) pairs; shares sum to 1."""
    error_code: str = "503"


@dataclass
class Totals:
    requests: float = 0.0
    errors: float = 0.0
    latency_sum_ms: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(ISTIO_BUCKETS_MS))
    """Requests at or under each bucket bound (cumulative, as Prometheus histograms are)."""


def _distribution(latency_ms: float | Mapping[float, float]) -> tuple[tuple[float, float], ...]:
    pairs = [(float(latency_ms), 1.0)] if isinstance(latency_ms, int | float) else list(latency_ms.items())
    total = sum(share for _, share in pairs)
    if not pairs or total <= 0 or any(share < 0 or latency < 0 for latency, share in pairs):
        raise ValueError(f"latency_ms: expected a latency or a {{latency: share}} mapping, got {latency_ms!r}")
    return tuple((float(latency), share / total) for latency, share in pairs)


class IstioExporter(LoopbackServer):
    """See the module docstring. Thread-safe: tests set traffic while Prometheus scrapes."""

    def __init__(
        self,
        namespace: str = "apps",
        app: str = "shark",
        versions: tuple[str, ...] = ("v1", "v2"),
        source_workload: str = "istio-ingressgateway",
        source_namespace: str = "istio-system",
    ) -> None:
        self.namespace, self.app, self.versions = namespace, app, versions
        self.source_workload, self.source_namespace = source_workload, source_namespace
        self.lock = threading.Lock()
        self.traffic: dict[str, Traffic] = {version: Traffic() for version in versions}
        self.totals_by_version: dict[str, dict[str, Totals]] = {version: {} for version in versions}
        self.split: tuple[float, Callable[[], int | None]] | None = None
        self.split_second = versions[-1]
        self.since = time.monotonic()
        self.changes: list[tuple[float, str, Traffic]] = []
        """(time.time() when set, version, traffic): when each setting took effect."""
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return

        self.serve(Handler)
        self.target = self.address
        self.url = f"http://{self.target}/metrics"

    # -- driving it -------------------------------------------------------------------------------------------

    def set_traffic(
        self,
        version: str,
        rps: float | None = None,
        error_share: float | None = None,
        latency_ms: float | Mapping[float, float] | None = None,
        error_code: str | None = None,
    ) -> float:
        """Change what `version` serves from now on (unset arguments keep their value); returns time.time()."""
        if version not in self.traffic:
            raise ValueError(f"version {version!r}: not one of {self.versions}")
        if error_share is not None and not 0 <= error_share <= 1:
            raise ValueError(f"error_share {error_share}: expected a share from 0 to 1")
        with self.lock:
            self._advance()
            old = self.traffic[version]
            new = Traffic(
                rps=old.rps if rps is None else float(rps),
                error_share=old.error_share if error_share is None else float(error_share),
                latency_ms=old.latency_ms if latency_ms is None else _distribution(latency_ms),
                error_code=old.error_code if error_code is None else error_code,
            )
            self.traffic[version] = new
            changed_at = time.time()
            self.changes.append((changed_at, version, new))
            return changed_at

    def set_split(self, total_rps: float, share: Callable[[], int | None], second: str | None = None) -> None:
        """From now on the rates follow a route: `second` (default: the last version) gets `share()` percent of
        `total_rps`, the first version the rest (None from `share`: keep the last rates). `set_traffic` rates of
        these versions are then ignored; their error shares and latencies still hold."""
        with self.lock:
            self._advance()
            self.split = (float(total_rps), share)
            self.split_second = second or self.versions[-1]

    def reset(self, version: str) -> None:
        """Counters of `version` back to zero, as when its pods restart (Prometheus's rate() handles the reset)."""
        with self.lock:
            self._advance()
            self.totals_by_version[version] = {}

    def totals(self, version: str) -> Totals:
        """What `version` has served so far (all response codes; one reporter's count)."""
        with self.lock:
            self._advance()
            result = Totals()
            for code, totals in self.totals_by_version[version].items():
                result.requests += totals.requests
                result.latency_sum_ms += totals.latency_sum_ms
                if code.startswith("5"):
                    result.errors += totals.requests
            return result

    # -- counting ---------------------------------------------------------------------------------------------

    def _rates(self) -> dict[str, float]:
        rates = {version: traffic.rps for version, traffic in self.traffic.items()}
        if self.split is not None:
            total, share_of = self.split
            share = share_of()
            if share is not None:
                first = self.versions[0]
                rates[self.split_second] = total * share / 100
                rates[first] = total - rates[self.split_second]
        return rates

    def _advance(self) -> None:
        now = time.monotonic()
        elapsed, self.since = now - self.since, now
        if elapsed <= 0:
            return
        rates = self._rates()
        for version, traffic in self.traffic.items():
            count = rates[version] * elapsed
            if count <= 0:
                continue
            for code, share in (("200", 1 - traffic.error_share), (traffic.error_code, traffic.error_share)):
                if share <= 0:
                    continue
                totals = self.totals_by_version[version].setdefault(code, Totals())
                served = count * share
                totals.requests += served
                for latency, part in traffic.latency_ms:
                    totals.latency_sum_ms += served * part * latency
                    for i, bound in enumerate(ISTIO_BUCKETS_MS):
                        if latency <= bound:
                            totals.buckets[i] += served * part

    def _labels(self, reporter: str, version: str, code: str) -> str:
        ns, app = self.namespace, self.app
        labels = {
            "reporter": reporter,
            "source_workload": self.source_workload,
            "source_workload_namespace": self.source_namespace,
            "source_principal": f"spiffe://cluster.local/ns/{self.source_namespace}/sa/{self.source_workload}",
            "source_app": self.source_workload,
            "source_version": "unknown",
            "source_canonical_service": self.source_workload,
            "source_canonical_revision": "latest",
            "source_cluster": "Kubernetes",
            "destination_workload": f"{app}-{version}",
            "destination_workload_namespace": ns,
            "destination_principal": f"spiffe://cluster.local/ns/{ns}/sa/default",
            "destination_app": app,
            "destination_version": version,
            "destination_service": f"{app}.{ns}.svc.cluster.local",
            "destination_service_name": app,
            "destination_service_namespace": ns,
            "destination_canonical_service": app,
            "destination_canonical_revision": version,
            "destination_cluster": "Kubernetes",
            "request_protocol": "http",
            "response_code": code,
            "grpc_response_status": "",
            "response_flags": "-",
            "connection_security_policy": "mutual_tls" if reporter == "destination" else "unknown",
        }
        return ",".join(f'{key}="{value}"' for key, value in labels.items())

    def render(self) -> str:
        """The exposition text a scrape gets now."""
        with self.lock:
            self._advance()
            self.scrapes += 1
            requests = ["# TYPE istio_requests_total counter"]
            histogram = ["# TYPE istio_request_duration_milliseconds histogram"]
            for reporter in REPORTERS:
                for version in self.versions:
                    for code, totals in sorted(self.totals_by_version[version].items()):
                        labels = self._labels(reporter, version, code)
                        requests.append(f"istio_requests_total{{{labels}}} {totals.requests!r}")
                        for bound, count in zip(ISTIO_BUCKETS_MS, totals.buckets, strict=True):
                            histogram.append(
                                f'istio_request_duration_milliseconds_bucket{{{labels},le="{bound:g}"}} {count!r}'
                            )
                        histogram.append(
                            f'istio_request_duration_milliseconds_bucket{{{labels},le="+Inf"}} {totals.requests!r}'
                        )
                        histogram.append(
                            f"istio_request_duration_milliseconds_sum{{{labels}}} {totals.latency_sum_ms!r}"
                        )
                        histogram.append(f"istio_request_duration_milliseconds_count{{{labels}}} {totals.requests!r}")
            return "\n".join([*requests, *histogram]) + "\n"
