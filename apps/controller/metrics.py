"""The controller's metrics, by the names of the contract, in a registry of its own (served on /metrics).

Label `route` is the VirtualService's name. The core sets the common ones; a policy's `record` sets its own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BURST_MODES = ("natural", "burst")
CANARY_PHASES = ("Idle", "Waiting", "Progressing", "Promoted", "RolledBack", "Halted")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # common
        self.weight = Gauge(
            "meshburst_controller_weight",
            "Live route weight per subset, as last read or written.",
            ["route", "subset"],
            registry=r,
        )
        self.writes = Counter(
            "meshburst_controller_writes", "VirtualService applies that succeeded.", ["route"], registry=r
        )
        self.faults = Counter(
            "meshburst_controller_faults",
            "Faults by kind (Prometheus, Kubernetes, intent, webhook); none of them moves traffic.",
            ["route", "kind"],
            registry=r,
        )
        self.polls = Counter("meshburst_controller_polls", "Control-loop ticks run.", ["route"], registry=r)
        self.is_writer = Gauge(
            "meshburst_controller_is_writer",
            "1 when the intent makes this controller the route's writer.",
            ["route"],
            registry=r,
        )
        # burst
        self.burst_rate = Gauge(
            "meshburst_burst_rate_rps", "Request rate last read (NaN when unknown).", ["route"], registry=r
        )
        self.burst_mode = Gauge(
            "meshburst_burst_mode", "1 for the mode the split is in.", ["route", "mode"], registry=r
        )
        self.burst_switches = Counter(
            "meshburst_burst_switches",
            "Mode switches decided and written, by the mode switched to.",
            ["route", "to"],
            registry=r,
        )
        self.burst_threshold = Gauge(
            "meshburst_burst_threshold_rps",
            "Rate thresholds in force (bound high|low).",
            ["route", "bound"],
            registry=r,
        )
        # canary
        self.canary_phase = Gauge(
            "meshburst_canary_phase", "1 for the rollout's phase.", ["route", "phase"], registry=r
        )
        self.canary_step = Gauge("meshburst_canary_step", "Current step, 1-based; 0 when none.", ["route"], registry=r)
        self.canary_verdicts = Counter(
            "meshburst_canary_verdicts",
            "Analysis verdicts by result (pass|fail|wait).",
            ["route", "result"],
            registry=r,
        )
        self.canary_last_error_percent = Gauge(
            "meshburst_canary_last_error_percent",
            "Canary 5xx share over the last window (NaN unknown).",
            ["route"],
            registry=r,
        )
        self.canary_last_p99_ms = Gauge(
            "meshburst_canary_last_p99_ms",
            "Canary p99 latency over the last window (NaN unknown).",
            ["route"],
            registry=r,
        )
        self.canary_last_requests = Gauge(
            "meshburst_canary_last_requests", "Canary requests in the last window (NaN unknown).", ["route"], registry=r
        )

    def start(self, route: str, subsets: tuple[str, ...] = ()) -> None:
        """Series that exist from the start (at zero), so a dashboard shows 0 rather than no data."""
        self.writes.labels(route=route)
        self.polls.labels(route=route)
        self.is_writer.labels(route=route).set(0)

    def fault(self, route: str, kind: str) -> None:
        self.faults.labels(route=route, kind=kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
