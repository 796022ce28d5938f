"""Burst policies compared on one load ramp: `switch` (all work to burst) against `overflow` (the share above
the primary's capacity), scored by what the primary got beyond its capacity and what went to burst needlessly.

    .venv/bin/python bench/burst_overflow.py [--ramp-seconds 60] [--noise 0.1] [--seed 7]

One run, real Prometheus, then a replay: a test exporter serves `istio_requests_total` (Istio's label names)
growing at a rate this script sets every second: 0, a ramp to 3 x primaryCapacityRps over --ramp-seconds and
back over as long, then 0, each second's rate times (1 + uniform(-noise, noise)), seeded. Prometheus scrapes it
at the stack's interval (builders/observability.py). Afterwards every policy is replayed through the same
policy code (apps/controller/burst.py) on what Prometheus answers for each tick's time, ticking every 2 s (the
controller's default poll); a decided split takes effect 1 s later (istiod's push). The replay is a
simulation of the controllers, not a run of them; the readings are real Prometheus answers to the
controller's own queries. Scored against the rate actually offered, integrated per 0.1 s:
  beyond capacity   requests the primary was sent above primaryCapacityRps
  burst with room   requests sent to burst while the primary had room for them
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.controller.burst import BurstPolicy, BurstSettings, parse_settings
from apps.controller.policy import Observation
from apps.worker.split import burst_settings
from builders.observability import SCRAPE_INTERVAL
from config.settings import DEFAULTS
from tests.support.fake_mesh import RateExporter
from tests.support.servers import PrometheusServer, wait_until

CAPACITY = float(DEFAULTS["meshburst:primaryCapacityRps"] or "nan")
HIGH = float(DEFAULTS["meshburst:burstHighRps"] or "nan")
LOW = float(DEFAULTS["meshburst:burstLowRps"] or "nan")
POLL_S, PUSH_S, STEP_S = 2.0, 1.0, 0.1
LEAD_IN_S, TAIL_S = 20, 40
POLICY = BurstPolicy()


def offered(ramp_s: int, noise: float, seed: int) -> list[float]:
    """Requests per second, one value a second: 0, up to 3 x capacity, back down, 0; seeded noise."""
    rng = random.Random(seed)
    peak = 3 * CAPACITY
    shape = [0.0] * LEAD_IN_S
    shape += [peak * i / ramp_s for i in range(ramp_s)] + [peak * (1 - i / ramp_s) for i in range(ramp_s)]
    shape += [0.0] * TAIL_S
    return [max(0.0, rate * (1 + rng.uniform(-noise, noise))) for rate in shape]


def instant(prometheus: str, query: str, at: float) -> float | None:
    """Prometheus's answer to `query` as of wall-clock time `at` (what a controller asking then was told)."""
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": query, "time": f"{at:.3f}"}, timeout=5).json()
    result = body["data"]["result"]
    value = float(result[0]["value"][1]) if result else math.nan
    return value if math.isfinite(value) else None


@dataclass
class Score:
    beyond: float = 0.0
    idle_burst: float = 0.0
    to_burst: float = 0.0
    writes: int = 0
    top_share: int = 0


def replay(readings: list[tuple[float, dict[str, float | None]]], settings: BurstSettings) -> list[tuple[float, int]]:
    """(time the split takes effect, share) for every split the policy writes, over the readings in order."""
    state = json.loads(json.dumps(POLICY.initial_state(settings, 0, 0, readings[0][0])))
    live, writes = 0, []
    for at, values in readings:
        decision = POLICY.decide(settings, state, Observation(at, live, values))
        if decision.share != live:
            writes.append((at + PUSH_S, decision.share))
            live = decision.share
        state = json.loads(json.dumps(decision.state))  # as the status object stores it
    return writes


def score(rates: list[float], started: float, writes: list[tuple[float, int]]) -> Score:
    result = Score(writes=len(writes), top_share=max((share for _, share in writes), default=0))
    share, index = 0, 0
    for tick in range(int(len(rates) / STEP_S)):
        at = started + tick * STEP_S
        while index < len(writes) and writes[index][0] <= at:
            share, index = writes[index][1], index + 1
        rate = rates[int(tick * STEP_S)]
        primary, burst = rate * (1 - share / 100), rate * share / 100
        result.beyond += max(0.0, primary - CAPACITY) * STEP_S
        result.idle_burst += min(burst, max(0.0, CAPACITY - primary)) * STEP_S
        result.to_burst += burst * STEP_S
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ramp-seconds", type=int, default=60, help="seconds from 0 to the peak, and back (20-300)")
    parser.add_argument("--noise", type=float, default=0.1, help="relative noise on each second's rate (0-0.5)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the noise")
    args = parser.parse_args()
    if not 20 <= args.ramp_seconds <= 300 or not 0 <= args.noise <= 0.5:
        parser.error("--ramp-seconds must be 20..300 and --noise 0..0.5")

    overflow = parse_settings(burst_settings("meshburst", HIGH, LOW, "overflow", CAPACITY))
    # The switch a user would set for a primary that takes CAPACITY: burst when it is full, back at the
    # defaults' ratio of low to high (10:15).
    switch = parse_settings(burst_settings("meshburst", CAPACITY, CAPACITY * LOW / HIGH))
    policies = {
        f"switch, high {CAPACITY:g} low {CAPACITY * LOW / HIGH:.3g}": switch,
        f"overflow, capacity {CAPACITY:g} (shipped)": overflow,
        f"switch, config defaults high {HIGH:g} low {LOW:g}": parse_settings(burst_settings("meshburst", HIGH, LOW)),
        "overflow, no lead": replace(overflow, lead_percent=0.0),
        "overflow, no lead, no headroom": replace(overflow, lead_percent=0.0, headroom_percent=0.0),
    }
    queries = POLICY.queries(overflow)  # every policy here reads the same two queries
    assert all(POLICY.queries(settings) == queries for settings in policies.values())
    rates = offered(args.ramp_seconds, args.noise, args.seed)
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, RateExporter(rate=0.0) as exporter:
        prometheus = PrometheusServer(Path(tmp), [exporter.target], SCRAPE_INTERVAL)
        try:
            wait_until(lambda: instant(prometheus.url, "up", time.time()) == 1.0, 30, "a first scrape")
            started = time.time()
            for second, rate in enumerate(rates):
                exporter.set_rate(rate)
                time.sleep(max(0.0, started + second + 1 - time.time()))
            time.sleep(1.0)
            ticks = [started + POLL_S / 2 + i * POLL_S for i in range(int(len(rates) / POLL_S))]
            readings = [(at, {name: instant(prometheus.url, q, at) for name, q in queries.items()}) for at in ticks]
        finally:
            prometheus.stop()

    scores = {label: score(rates, started, replay(readings, settings)) for label, settings in policies.items()}
    print(
        f"load: 0 -> {3 * CAPACITY:g} -> 0 req/s over {2 * args.ramp_seconds} s (+{LEAD_IN_S} s before, "
        f"{TAIL_S} s after at 0), noise +/-{args.noise:.0%} a second (seed {args.seed}); "
        f"{sum(rates):,.0f} requests offered"
    )
    print(
        f"readings: real Prometheus, scrape {SCRAPE_INTERVAL}; replayed every {POLL_S:g} s, a split takes effect "
        f"{PUSH_S:g} s after it is decided; queries {overflow.fast_window} irate() and {overflow.window} rate()"
    )
    print(
        f"overflow settings (the intent Pulumi writes): primaryCapacityRps {CAPACITY:g}, headroom "
        f"{overflow.headroom_percent:g} %, step {overflow.share_step} %, hysteresis {overflow.hysteresis_percent:g} %, "
        f"lead {overflow.lead_percent:g} %, minDwellSeconds {overflow.min_dwell_s:g}"
    )
    print(
        f"\n  {'policy':<42} {'beyond capacity':>15} {'burst with room':>15} {'to burst':>9} {'writes':>6} {'top':>5}"
    )
    for label, s in scores.items():
        print(
            f"  {label:<42} {s.beyond:>15,.0f} {s.idle_burst:>15,.0f} {s.to_burst:>9,.0f} {s.writes:>6} "
            f"{s.top_share:>4} %"
        )
    base, ours = list(scores.values())[:2]
    cut = [("beyond capacity", base.beyond, ours.beyond), ("burst with room", base.idle_burst, ours.idle_burst)]
    met = all(b <= a / 2 for _, a, b in cut)
    shown = ", ".join(f"{label} {b:,.0f} vs {a:,.0f}" for label, a, b in cut)
    print(f"\ntarget (overflow at most half of switch at capacity on both): {shown}: {'met' if met else 'NOT met'}")
    print(f"bench ran {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
