"""The route controller's burst policy: reaction time and flapping, against a real Prometheus on loopback.

    .venv/bin/python bench/burstwatch_reaction.py [--trials 3] [--noisy-seconds 40]

A test exporter serves `istio_requests_total` (Istio's label names) growing at a rate this script sets;
Prometheus scrapes it every --scrape seconds; the controller (apps/controller, POLICY=burst, run with its
image's command) polls every --interval seconds and applies the route to a recording Kubernetes API stand-in
(tests/support/fake_kube.py, through its kubeconfig). For each trial the rate jumps from 5 to 40 req/s (high 15):
  crossing visible = first moment Prometheus's own answer to the controller's query exceeds 15
  reaction         = the controller's apply (a PATCH) minus that moment (target: <= scrape + 2 x interval)
Then a noisy rate around the high threshold (uniform 11..19 req/s, never under low 10) runs for
--noisy-seconds: the split may go to burst once and must never come back (flaps = switches - 1).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.controller.burst import build_rate_query
from apps.worker.split import burst_settings, worker_route
from tests.support.controller_harness import ControllerHarness
from tests.support.fake_mesh import RateExporter
from tests.support.servers import PrometheusServer, wait_until

HIGH, LOW = 15.0, 10.0


def prom_rate(prometheus: PrometheusServer, query: str) -> float:
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=2).json()
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3, help="burst/return cycles to time (1-10)")
    parser.add_argument("--noisy-seconds", type=float, default=40, help="length of the noisy series (5-300)")
    parser.add_argument("--scrape", type=float, default=1.0, help="Prometheus scrape interval, seconds")
    parser.add_argument("--interval", type=float, default=1.0, help="controller poll interval, seconds")
    parser.add_argument("--window", default="5s", help="rate() window of the controller's query")
    args = parser.parse_args()
    if not 1 <= args.trials <= 10 or not 5 <= args.noisy_seconds <= 300:
        parser.error("--trials must be 1..10 and --noisy-seconds 5..300")

    query = build_rate_query("source", "worker-service.meshburst.svc.cluster.local", "frontend", args.window)
    # The settings the Pulumi program writes into the route's intent, with this run's window and a short dwell.
    # fastWindow off: "crossing visible" below is the moment this one query crosses (bench/burst_end_to_end.py
    # measures the shipped settings, fast reading included, end to end).
    settings = {
        **burst_settings("meshburst", HIGH, LOW),
        "window": args.window,
        "fastWindow": None,
        "minDwellSeconds": 5,
    }
    with tempfile.TemporaryDirectory() as logs:
        exporter = RateExporter(rate=5.0)
        mesh = ControllerHarness(
            Path(logs),
            [exporter.target],
            "burst",
            worker_route("meshburst", 0),
            settings,
            live_share=0,
            scrape_interval=f"{args.scrape:g}s",
        )
        prometheus = mesh.prometheus
        assert isinstance(prometheus, PrometheusServer)
        kube = mesh.kube
        mesh.start(POLL_SECONDS=str(args.interval))  # as the image runs it
        reactions, totals = [], []
        try:
            time.sleep(6)
            for trial in range(args.trials):
                patches_before = len(kube.applies())
                changed_at = exporter.set_rate(40)
                visible_at = wait_until(
                    lambda: prom_rate(prometheus, query) > HIGH and time.monotonic(),
                    30,
                    "crossing visible in Prometheus",
                    interval=0.05,
                )
                wait_until(lambda before=patches_before: len(kube.applies()) > before, 30, "the switch")
                patched_at = kube.applies()[-1].at
                reactions.append(patched_at - visible_at)
                totals.append(patched_at - changed_at)
                print(
                    f"trial {trial + 1}: rate change -> visible {visible_at - changed_at:.2f} s, "
                    f"visible -> PATCH {patched_at - visible_at:.2f} s"
                )
                exporter.set_rate(2)
                wait_until(lambda: mesh.share() == 0, 60, "the return")
                time.sleep(6)  # let the window forget the burst

            switches_before = len(kube.applies())
            rng = random.Random(42)
            deadline = time.monotonic() + args.noisy_seconds
            while time.monotonic() < deadline:
                exporter.set_rate(rng.uniform(11, 19))
                time.sleep(0.5)
            switches = len(kube.applies()) - switches_before
        finally:
            mesh.stop()
            exporter.stop()

    bound = args.scrape + 2 * args.interval
    print(
        f"\nPrometheus scrape interval {args.scrape:g} s, controller interval {args.interval:g} s, window {args.window}"
    )
    print(
        f"reaction (crossing visible -> PATCH): median {statistics.median(reactions):.2f} s, "
        f"max {max(reactions):.2f} s; target <= {bound:.2f} s: {'met' if max(reactions) <= bound else 'NOT met'}"
    )
    print(f"end to end (rate change -> PATCH): median {statistics.median(totals):.2f} s, max {max(totals):.2f} s")
    print(
        f"noisy series 11..19 req/s for {args.noisy_seconds:g} s: {switches} switch(es), "
        f"{max(0, switches - 1)} flap(s); target 0 flaps: {'met' if switches <= 1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
