"""The String Hashr frontend's achieved send rate on one core, against a real worker and Redis on loopback.

    .venv/bin/python bench/frontend_rate.py [--rates 100 500 1000] [--seconds 10]

The frontend and the worker run as the image runs them (`python serve.py`); the frontend is pinned to
one core, the worker and Redis to the other. For each rate it sets the rate with the control token,
waits a second to settle, then counts for --seconds how many requests the frontend sent and how many
came back ok, and the frontend's CPU use (from /proc). Loopback only, bounded by --seconds per rate.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.servers import RedisServer, hashr_app

TARGET = 0.95


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 500, 1000], help="requested rates (req/s)")
    parser.add_argument("--seconds", type=float, default=10, help="measured time per rate")
    args = parser.parse_args()
    if not all(1 <= r <= 1000 for r in args.rates) or not 1 <= args.seconds <= 60:
        parser.error("--rates must be 1..1000 and --seconds 1..60")

    cores = sorted(os.sched_getaffinity(0))
    frontend_core, other_core = cores[0], cores[-1]
    token = secrets.token_urlsafe(24)
    auth = {"authorization": f"Bearer {token}"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        bus = RedisServer(logs)
        worker = hashr_app("bench-worker", "worker", logs, env={"REDIS_URL": bus.url})
        frontend = hashr_app(
            "bench-frontend",
            "frontend",
            logs,
            env={"REDIS_URL": bus.url, "PROCESSOR_URL": worker.url + "/", "HASHR_TOKEN": token},
        )
        try:
            os.sched_setaffinity(frontend.proc.pid, {frontend_core})
            for pid in (worker.proc.pid, bus.proc.pid, os.getpid()):
                os.sched_setaffinity(pid, {other_core})
            with httpx.Client(base_url=frontend.url, timeout=5) as client:
                for rate in args.rates:
                    client.post("/frequency", json={"rps": rate}, headers=auth).raise_for_status()
                    time.sleep(1.0)
                    before, cpu_before, started = (
                        client.get("/stats").json(),
                        cpu_seconds(frontend.proc.pid),
                        time.monotonic(),
                    )
                    time.sleep(args.seconds)
                    after, cpu_after = client.get("/stats").json(), cpu_seconds(frontend.proc.pid)
                    elapsed = time.monotonic() - started
                    client.post("/frequency", json={"rps": 0}, headers=auth).raise_for_status()
                    time.sleep(1.0)
                    delta = {k: after[k] - before[k] for k in ("sent", "ok", "errors", "timeouts", "dropped")}
                    rows.append(
                        (
                            rate,
                            delta["sent"] / elapsed,
                            delta["ok"] / elapsed,
                            delta,
                            (cpu_after - cpu_before) / elapsed,
                        )
                    )
            final = httpx.get(frontend.url + "/stats").json()
        finally:
            frontend.stop()
            worker.stop()
            bus.stop()
    print(f"frontend rate: frontend pinned to core {frontend_core}; worker, Redis and this script on core {other_core}")
    print(f"  {'asked':>6} {'sent/s':>8} {'ok/s':>8} {'achieved':>9} {'frontend CPU':>13}  errors timeouts dropped")
    for rate, sent, ok, delta, cpu in rows:
        print(
            f"  {rate:>6} {sent:>8.1f} {ok:>8.1f} {ok / rate:>8.1%} {cpu:>12.0%}   "
            f"{delta['errors']:>6} {delta['timeouts']:>8} {delta['dropped']:>7}"
        )
    print(f"  results lost: {final['lost']}, late: {final['late']}, awaiting: {final['awaiting']}")
    if final["last_error"]:
        print(f"  last error: {final['last_error']} at {final['last_error_at']}")
    rate, _sent, ok, _delta, cpu = rows[-1]
    if ok > 0 and cpu > 0:
        per_request = cpu / ok
        print(
            f"  frontend CPU per request at {rate} req/s: {per_request * 1000:.2f} ms "
            f"(one core would sustain about {1 / per_request:,.0f} req/s)"
        )
    top = rows[-1]
    met = top[2] / top[0] >= TARGET
    print(f"  target (>= {TARGET:.0%} of {top[0]} req/s delivered ok): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
