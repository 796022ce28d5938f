"""The route controller's canary policy: how fast a failing v2 loses its traffic, and how long a healthy rollout takes.

    .venv/bin/python bench/canary_rollout.py [--trials 3] [--interval 3] [--poll 1] [--scrape 1] [--failure-limit 2]

Everything on loopback: the Istio exporter (tests/support/istio_exporter.py) serves the v1/v2 sidecars' metrics,
1000 req/s split by the live route (v2 gets its share, as through the gateway); Prometheus scrapes it every
--scrape seconds; the controller (apps/controller, POLICY=canary, its image's command) polls every --poll seconds
and applies the route to the recording Kubernetes API stand-in (tests/support/fake_kube.py).
  (a) detection: a rollout starts (new v2 revision, rolled out); --onset seconds after step 1 (5 %) is written,
      v2 starts answering 5 % of its requests with 503 (limit 1 %). Measured: that moment -> the write of weight 0.
      Target: failureLimit x interval + one scrape. The onset moves through the step (trial i of n at i/n of an
      interval by default), since where in a window the failure starts decides how soon a window shows it.
  (b) promotion: a healthy v2, from the new revision in the intent to phase Promoted (and to the 100 % write).
      The floor is len(steps) x interval: every step is held a whole interval once its weight is live.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.shark.component import shark_route
from tests.support.controller_harness import ControllerHarness, rolled_out_deployment
from tests.support.istio_exporter import IstioExporter
from tests.support.servers import wait_until

STEPS = [5, 10, 25, 50, 100]
NAMESPACE = "apps"
IMAGE = "ghcr.io/acme/shark-v2:bench"


def deployment(revision: str) -> dict:
    """shark-v2 fully rolled out at `revision`."""
    return rolled_out_deployment("shark-v2", NAMESPACE, {"app": "shark", "version": "v2"}, revision, IMAGE)


TOTAL_RPS = 1000.0
ERROR_SHARE = 0.05


def weights_written(mesh: ControllerHarness) -> list[tuple[float, int]]:
    found = []
    for request in mesh.kube.applies():
        weighted = next(rule for rule in request.body["spec"]["http"] if rule.get("name") == "weighted")
        found.append((request.at, int(weighted["route"][1]["weight"])))
    return found


def new_revision(mesh: ControllerHarness, revision: str) -> float:
    """What `pulumi up` with a new v2 image does here: the intent first, then the Deployment, rolled out."""
    at = time.monotonic()
    mesh.set_intent(settings={**mesh.settings, "revision": revision})
    mesh.kube.set_object(deployment(revision))
    return at


def written_after(mesh: ControllerHarness, count: int, share: int, timeout: float) -> float:
    """When weight `share` was written, among the writes after the first `count`."""

    def find() -> float | None:
        return next((at for at, written in weights_written(mesh)[count:] if written == share), None)

    return wait_until(find, timeout, f"weight {share} written", 0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4, help="failing rollouts to time (1-10)")
    parser.add_argument("--interval", type=float, default=3.0, help="intervalSeconds: step hold and window (2-60)")
    parser.add_argument("--poll", type=float, default=1.0, help="controller POLL_SECONDS (0.2-10)")
    parser.add_argument("--scrape", type=float, default=1.0, help="Prometheus scrape interval, seconds (0.5-10)")
    parser.add_argument("--failure-limit", type=int, default=2, help="failureLimit (1-5)")
    parser.add_argument("--onset", type=float, nargs="*", help="seconds after step 1 when v2 starts failing")
    args = parser.parse_args()
    ok = (
        1 <= args.trials <= 10
        and 2 <= args.interval <= 60
        and 0.2 <= args.poll <= 10
        and 0.5 <= args.scrape <= 10
        and 1 <= args.failure_limit <= 5
    )
    if not ok:
        parser.error(
            "out of range: --trials 1-10, --interval 2-60, --poll 0.2-10, --scrape 0.5-10, --failure-limit 1-5"
        )
    onsets = args.onset or [args.interval * i / args.trials for i in range(args.trials)]
    if len(onsets) != args.trials or not all(0 <= onset <= 2 * args.interval for onset in onsets):
        parser.error("--onset: one value per trial, each from 0 to 2 x interval")
    settings = {
        "revision": "rev-0",
        "stableRevision": "rev-stable",
        "canaryImage": "registry.example/shark:bench",
        "target": "shark-v2",
        "steps": STEPS,
        "intervalSeconds": args.interval,
        "maxErrorPercent": 1.0,
        "maxP99Ms": 500.0,
        "maxRegressionPercent": None,
        "minRequests": 20,
        "progressDeadlineSeconds": 10 * args.interval,
        "onDeadline": "hold",
        "failureLimit": args.failure_limit,
        "metrics": {"namespace": "apps", "app": "shark", "stableVersion": "v1", "canaryVersion": "v2"},
    }
    limit_s = 60 + 4 * len(STEPS) * (args.interval + args.poll)  # bounds every wait below

    detections: list[float] = []
    with tempfile.TemporaryDirectory() as logs, IstioExporter(namespace="apps", app="shark") as exporter:
        exporter.set_traffic("v1", latency_ms=20)
        exporter.set_traffic("v2", latency_ms=20)
        mesh = ControllerHarness(
            Path(logs),
            [exporter.target],
            "canary",
            shark_route(NAMESPACE, 0),
            settings,
            live_share=0,
            scrape_interval=f"{args.scrape:g}s",
        )
        exporter.set_split(TOTAL_RPS, mesh.share)
        try:
            mesh.kube.set_object(deployment("rev-0"))
            mesh.start(POLL_SECONDS=f"{args.poll:g}")
            wait_until(lambda: mesh.status().get("phase") == "Idle", 20, "the first decision")

            # (b) a healthy promotion
            count = len(weights_written(mesh))
            started = new_revision(mesh, "rev-healthy")
            full_at = written_after(mesh, count, 100, limit_s)
            wait_until(lambda: mesh.status().get("phase") == "Promoted", limit_s, "Promoted", 0.02)
            promoted_at = time.monotonic()
            written = [at for at, share in weights_written(mesh)[count:] if share > 0]  # the steps' writes
            holds = [b - a for a, b in itertools.pairwise(written)]
            print(
                f"healthy promotion: revision -> 100 % written {full_at - started:.2f} s, -> Promoted "
                f"{promoted_at - started:.2f} s (floor {len(STEPS) * args.interval:g} s); "
                f"step holds {', '.join(f'{h:.2f}' for h in holds)} s"
            )

            # (a) failing rollouts
            for trial, onset in enumerate(onsets):
                exporter.set_traffic("v2", error_share=0.0)
                time.sleep(args.interval + args.scrape)  # the last trial's errors leave the window
                count = len(weights_written(mesh))
                new_revision(mesh, f"rev-failing-{trial}")
                step_at = written_after(mesh, count, STEPS[0], limit_s)
                time.sleep(max(0.0, step_at + onset - time.monotonic()))
                failing_at = time.monotonic()
                exporter.set_traffic("v2", error_share=ERROR_SHARE)
                zero_at = written_after(mesh, count + 1, 0, limit_s)
                detections.append(zero_at - failing_at)
                wait_until(lambda: mesh.status().get("phase") == "RolledBack", 10, "the status")  # just after
                shares = [share for _, share in weights_written(mesh)[count:]]
                print(
                    f"trial {trial + 1}: v2 fails {onset:.2f} s into step 1 -> weight 0 after "
                    f"{zero_at - failing_at:.2f} s (weights written {shares}; {mesh.status().get('lastVerdict')})"
                )
        finally:
            mesh.stop()

    target = args.failure_limit * args.interval + args.scrape
    print(
        f"\nsettings: steps {STEPS}, intervalSeconds {args.interval:g}, failureLimit {args.failure_limit}, "
        f"maxErrorPercent 1, minRequests 20; POLL_SECONDS {args.poll:g}, scrape {args.scrape:g} s; "
        f"{TOTAL_RPS:g} req/s split by the route, failing v2 answers {ERROR_SHARE:.0%} 503"
    )
    median, worst, met = statistics.median(detections), max(detections), sum(d <= target for d in detections)
    print(
        f"detection (v2 failing -> weight 0): median {median:.2f} s, max {worst:.2f} s; target <= failureLimit x "
        f"interval + scrape = {target:g} s: {'met' if worst <= target else 'NOT met'} ({met}/{len(detections)})"
    )


if __name__ == "__main__":
    main()
