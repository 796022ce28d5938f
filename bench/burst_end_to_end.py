"""Cloud burst end to end: how long from a step in the offered load to the new split, with the shipped settings.

    .venv/bin/python bench/burst_end_to_end.py [--trials 5] [--seed 7]

Everything real but the clusters, on loopback: the String Hashr frontend (as its image runs it) sends the load
through a stand-in for its Envoy sidecar (tests/support/sidecar.py), which routes each request to the primary or
the burst worker by the live route's weight and counts what it sent as Istio's `istio_requests_total`
(reporter="source"); Prometheus scrapes it at the stack's interval (builders/observability.py); the controller
(apps/controller, POLICY=burst, its image's command and default poll) reads Prometheus with the intent the
Pulumi program writes (apps/worker/split.py burst_settings, the config defaults' thresholds) and applies the
route to a recording Kubernetes API stand-in (tests/support/fake_kube.py), which timestamps every apply.

Each trial: a steady load below burstLowRps (lowRps / 2) steps to 2 x burstHighRps after a random 0..1 scrape
interval (so steps fall at every phase of the scrapes); "to burst" is the step to the apply of the burst split.
The load stays up until the dwell has passed and the 30 s window holds only the peak, then steps back down;
"return" is that step to the apply of the natural split. The next trial waits out the dwell.
Beside the trials, for as long as they run, a second loop (its own frontend, sidecar stand-in, Prometheus and
controller, over the same workers) gets a seeded noisy load hovering between the thresholds: levels uniform in
low - gap/2 .. high + gap/2 (mean halfway), each held 1-3 s, so short stretches cross both thresholds. Its split
may go to burst once; any later switch is a flap.

Afterwards the same Prometheus data is replayed through the same policy code (apps/controller/burst.py) with
other settings, for comparison: the settings before this change (rate() over 30 s, dwell 30 s) and irate()
alone with no dwell. The replay ticks every poll interval at mid-phase; it is a replay, not a second run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.controller.burst import BURST, NATURAL, BurstPolicy, BurstSettings, parse_settings
from apps.controller.policy import Observation
from apps.worker.split import burst_settings, worker_route
from builders.observability import SCRAPE_INTERVAL
from config.settings import DEFAULTS
from tests.support.controller_harness import ControllerHarness
from tests.support.servers import PrometheusServer, RedisServer, hashr_app, wait_until
from tests.support.sidecar import SourceSidecar

HIGH = float(DEFAULTS["meshburst:burstHighRps"] or "nan")
LOW = float(DEFAULTS["meshburst:burstLowRps"] or "nan")
BASE, PEAK = LOW / 2, 2 * HIGH
ANCHORS = "Kubernetes HPA syncs every 15 s, KEDA polls every 30 s, Flagger analyses every 60 s"
TARGET_S = 10.0
POLICY = BurstPolicy()


def seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", duration).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


class Load:
    """The frontend's rate, set as a user does (POST /frequency with the control token)."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=5)

    def set(self, rps: float) -> float:
        """Set the rate; the monotonic time the frontend took it."""
        self.client.post("/frequency", json={"rps": round(rps, 2)}).raise_for_status()
        return time.monotonic()


@dataclass
class Trial:
    up_at: float
    burst_at: float
    down_at: float
    back_at: float

    @property
    def to_burst(self) -> float:
        return self.burst_at - self.up_at

    @property
    def back(self) -> float:
        return self.back_at - self.down_at


ASK = httpx.Client(timeout=5)
"""One keep-alive client for the replay's thousands of queries."""


def instant(prometheus: str, query: str, at: float) -> float | None:
    """Prometheus's answer to `query` as of wall-clock time `at` (what a controller asking then was told)."""
    body = ASK.get(f"{prometheus}/api/v1/query", params={"query": query, "time": f"{at:.3f}"}).json()
    result = body["data"]["result"]
    value = float(result[0]["value"][1]) if result else math.nan
    return value if math.isfinite(value) else None


def replay(
    prometheus: str,
    settings: BurstSettings,
    start: float,
    end: float,
    mode: str,
    poll: float,
    only: Sequence[str] | None = None,
    first: bool = False,
) -> list[float]:
    """Switch times (seconds after `start`) the policy decides on the stored data, ticking every `poll` from
    start + poll / 2, starting in `mode` with no dwell pending; `only`: the readings it is given; `first`: stop
    at the first switch."""
    queries = {name: q for name, q in POLICY.queries(settings).items() if only is None or name in only}
    state: dict = {"mode": mode, "changedAt": None}
    switches, live = [], settings.share(mode)
    now = start + poll / 2
    while now <= end:
        readings = {name: instant(prometheus, query, now) for name, query in queries.items()}
        decision = POLICY.decide(settings, state, Observation(now, live, readings))
        if decision.share != live:
            switches.append(now - start)
            live = decision.share
            if first:
                break
        state = dict(decision.state)
        now += poll
    return switches


def summary(values: Sequence[float]) -> str:
    return f"median {statistics.median(values):5.2f} s, worst {max(values):5.2f} s" if values else "none"


class Loop:
    """One control loop over the shared workers: a frontend, its sidecar stand-in, Prometheus, a controller."""

    def __init__(self, logs: Path, name: str, bus: str, workers: dict[str, str], intent: dict, token: str) -> None:
        own = logs / name
        own.mkdir()
        self.mesh: ControllerHarness | None = None
        self.running = contextlib.ExitStack()
        with self.running as on_failure:  # stops what started when a later part fails; kept on success
            self.sidecar = on_failure.enter_context(
                SourceSidecar(workers, share=lambda: self.mesh.share() if self.mesh else 0)
            )
            self.mesh = on_failure.enter_context(
                ControllerHarness(
                    own, [self.sidecar.target], "burst", worker_route("meshburst", 0), intent, live_share=0,
                    scrape_interval=SCRAPE_INTERVAL,
                )
            )  # fmt: skip
            self.frontend = on_failure.enter_context(
                hashr_app(
                    f"{name}-frontend",
                    "frontend",
                    own,
                    env={"REDIS_URL": bus, "PROCESSOR_URL": self.sidecar.url + "/", "HASHR_TOKEN": token},
                )
            )
            self.running = on_failure.pop_all()
        self.load = Load(self.frontend.url, token)
        self.kube = self.mesh.kube
        assert isinstance(self.mesh.prometheus, PrometheusServer)
        self.prometheus = self.mesh.prometheus.url

    def start(self, rate: float) -> float:
        """Start at `rate` and the controller as its image runs it; its poll interval, from its log."""
        assert self.mesh is not None
        self.load.set(rate)
        controller = self.mesh.start()
        return float(re.search(r"every ([0-9.]+)s", controller.log()).group(1))  # type: ignore[union-attr]

    def stop(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.load.set(0)
        self.running.close()


def noisy_load(loop: Loop, seed: int, stop: threading.Event, low: float, high: float) -> None:
    """Levels uniform in low..high, each held 1-3 s, until `stop`."""
    rng = random.Random(seed)
    started, second = time.monotonic(), 0
    while not stop.is_set():
        loop.load.set(rng.uniform(low, high))
        second += rng.randint(1, 3)
        stop.wait(max(0.0, started + second - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="burst/return cycles to time (1-10)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the noisy load and of the steps' phases")
    args = parser.parse_args()
    if not 1 <= args.trials <= 10:
        parser.error("--trials must be 1..10")

    intent = burst_settings("meshburst", HIGH, LOW)  # what the Pulumi program writes, config defaults
    shipped = parse_settings(intent)
    dwell, window, scrape = shipped.min_dwell_s, seconds(shipped.window), seconds(SCRAPE_INTERVAL)
    gap = HIGH - LOW
    noisy_low, noisy_high = LOW - gap / 2, HIGH + gap / 2
    token = secrets.token_urlsafe(24)
    trials: list[Trial] = []
    started = time.monotonic()
    wall = time.time() - time.monotonic()  # wall-clock = monotonic + wall, for asking Prometheus about the past
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as running:
        logs = Path(tmp)
        bus = running.enter_context(RedisServer(logs))
        workers = {
            "primary": running.enter_context(
                hashr_app("primary-worker", "worker", logs, env={"REDIS_URL": bus.url, "CLUSTER_NAME": "p"})
            ),
            "burst": running.enter_context(
                hashr_app(
                    "burst-worker", "worker", logs, env={"REDIS_URL": bus.url, "CLUSTER_NAME": "b", "PREFIX": "bursty-"}
                )
            ),
        }
        urls = {name: worker.url for name, worker in workers.items()}
        steps = Loop(logs, "steps", bus.url, urls, intent, token)
        running.callback(steps.stop)
        noisy = Loop(logs, "noisy", bus.url, urls, intent, token)
        running.callback(noisy.stop)
        running.callback(stop.set)  # whatever fails, the noise thread ends first (callbacks run last-in first-out)
        poll = steps.start(BASE)
        noisy.start((noisy_low + noisy_high) / 2)
        mesh = steps.mesh
        assert mesh is not None
        wait_until(lambda: abs((mesh.metric("meshburst_burst_rate_rps") or 0) - BASE) < 0.5, 90, "a steady rate")
        ready = time.monotonic()
        noise = threading.Thread(target=noisy_load, args=(noisy, args.seed, stop, noisy_low, noisy_high))
        noise.start()
        noisy_from = time.monotonic()
        kube = steps.kube

        def switched(count: int, share: int) -> float:
            wait_until(lambda: len(kube.applies()) >= count, 90, f"the split at {share} %")
            assert mesh.share() == share, f"expected {share} %, live {mesh.share()}"
            return kube.applies()[count - 1].at

        phases = random.Random(args.seed + 1)
        for number in range(args.trials):
            applies = len(kube.applies())
            time.sleep(phases.uniform(0, scrape))  # steps at every phase of the scrapes
            up_at = steps.load.set(PEAK)
            burst_at = switched(applies + 1, shipped.burst_share)
            # Down once the dwell is over and the window holds only the peak: a return after a long burst.
            time.sleep(max(0.0, max(burst_at + dwell, up_at + window) - time.monotonic()))
            down_at = steps.load.set(BASE)
            back_at = switched(applies + 2, 0)
            trial = Trial(up_at, burst_at, down_at, back_at)
            trials.append(trial)
            print(
                f"trial {number + 1}: {BASE:g} -> {PEAK:g} req/s, burst written after {trial.to_burst:5.2f} s; "
                f"{PEAK:g} -> {BASE:g} req/s, natural written after {trial.back:5.2f} s",
                flush=True,
            )
            if number + 1 < args.trials:
                time.sleep(max(0.0, back_at + dwell - time.monotonic()))
        stop.set()
        noise.join()
        noisy_to = time.monotonic()
        noisy_switches = len(noisy.kube.applies())
        time.sleep(1)
        served = {name: steps.sidecar.total(name) + noisy.sidecar.total(name) for name in workers}
        answered = sum(loop.sidecar.counts.get((name, "200"), 0) for loop in (steps, noisy) for name in workers)
        failed = sum(loop.sidecar.total() for loop in (steps, noisy)) - answered
        stats = [loop.load.client.get("/stats").json() for loop in (steps, noisy)]

        comparisons = {
            "shipped (as measured live above)": (shipped, None),
            "before: rate() over 30s, dwell 30 s": (
                replace(shipped, window="30s", fast_window=None, min_dwell_s=30),
                None,
            ),
            "irate() over 15s alone, no dwell": (replace(shipped, min_dwell_s=0), ["fastRate"]),
        }
        replayed = {}
        for label, (settings, only) in comparisons.items():
            ups, backs = [], []
            for trial in trials:
                step_up, step_down = trial.up_at + wall, trial.down_at + wall
                up = replay(steps.prometheus, settings, step_up, step_down, NATURAL, poll, only, first=True)
                ups.append(up[0] if up else math.inf)
                back = replay(steps.prometheus, settings, step_down, step_down + 60, BURST, poll, only, first=True)
                backs.append(back[0] if back else math.inf)
            flips = replay(noisy.prometheus, settings, noisy_from + wall, noisy_to + wall, NATURAL, poll, only)
            replayed[label] = (ups, backs, flips)

    flaps = max(0, noisy_switches - 1)
    ups, backs = [t.to_burst for t in trials], [t.back for t in trials]
    print(
        f"\nsettings: Prometheus scrape {SCRAPE_INTERVAL} (builders/observability.py), controller poll {poll:g} s "
        f"(the image's default); intent as Pulumi writes it: highRps {HIGH:g}, lowRps {LOW:g}, "
        f"{shipped.fast_window} irate() and {shipped.window} rate(), the higher of the two, "
        f"minDwellSeconds {dwell:g}"
    )
    print(f"load: {BASE:g} req/s steady, steps to {PEAK:g} req/s; {args.trials} trials")
    met = statistics.median(ups) <= TARGET_S
    print(f"to burst (step -> apply):  {summary(ups)}   target median <= {TARGET_S:g} s: {'met' if met else 'NOT met'}")
    print(f"return   (step -> apply):  {summary(backs)}")
    print(
        f"noisy load beside it, {noisy_low:g}..{noisy_high:g} req/s held 1-3 s (seed {args.seed}), "
        f"{noisy_to - noisy_from:.0f} s: {noisy_switches} switch(es), {flaps} flap(s); "
        f"target 0 flaps: {'met' if flaps == 0 else 'NOT met'}"
    )
    print(
        f"requests the sidecar stand-ins routed: primary {served['primary']}, burst {served['burst']}, "
        f"not 200: {failed}; frontends ok {sum(s['ok'] for s in stats)}, errors {sum(s['errors'] for s in stats)}, "
        f"timeouts {sum(s['timeouts'] for s in stats)}"
    )
    print(f"\nreplayed on this run's Prometheus data, ticks every {poll:g} s at mid-phase (not a second run):")
    for label, (up_s, back_s, flips) in replayed.items():
        finite = [v for v in up_s if math.isfinite(v)]
        missed = len(up_s) - len(finite)
        back_finite = [v for v in back_s if math.isfinite(v)]
        print(
            f"  {label:<38} to burst {summary(finite)}{f' ({missed} never)' if missed else ''}; "
            f"return {summary(back_finite)}; noisy: {len(flips)} switch(es), {max(0, len(flips) - 1)} flap(s)"
        )
    print(f"anchors: {ANCHORS}")
    print(f"bench ran {time.monotonic() - started:.0f} s ({ready - started:.0f} s to a steady reading)")


if __name__ == "__main__":
    main()
