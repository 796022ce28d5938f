"""Load one worker process (pinned to one core) with a real Redis, over loopback, and print rps and latency.

    .venv/bin/python bench/worker_load.py [--requests 5000] [--connections 16] [--body-bytes 64]

The worker runs exactly as in its image (`python serve.py`: uvicorn, uvloop, httptools); the load generator is a small
keep-alive HTTP/1.1 client on another core. Bounded by --requests and --max-seconds; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.servers import RedisServer, hashr_app


async def client(port: int, body: bytes, count: int, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST / HTTP/1.1\r\nHost: worker\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n")[0].decode())
    finally:
        writer.close()


async def load(
    port: int, requests: int, connections: int, body: bytes, max_seconds: float
) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    per_client = [requests // connections + (1 if i < requests % connections else 0) for i in range(connections)]
    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(client(port, body, n, latencies, errors) for n in per_client)), timeout=max_seconds
    )
    return time.perf_counter() - started, latencies, errors


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="total requests (bounded load)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--body-bytes", type=int, default=64, help="size of each request body")
    parser.add_argument("--warmup", type=int, default=500, help="requests sent first and not measured")
    parser.add_argument("--max-seconds", type=float, default=60, help="give up after this long")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.connections <= 256:
        parser.error("--requests must be 1..100000 and --connections 1..256")

    cores = sorted(os.sched_getaffinity(0))
    worker_core, client_core = cores[0], cores[-1]
    with tempfile.TemporaryDirectory() as logs:
        bus = RedisServer(Path(logs))
        worker = hashr_app("bench-worker", "worker", Path(logs), env={"REDIS_URL": bus.url})
        try:
            os.sched_setaffinity(worker.proc.pid, {worker_core})
            os.sched_setaffinity(0, {client_core})
            body = b"x" * args.body_bytes
            asyncio.run(load(worker.port, args.warmup, args.connections, body, args.max_seconds))
            elapsed, latencies, errors = asyncio.run(
                load(worker.port, args.requests, args.connections, body, args.max_seconds)
            )
        finally:
            worker.stop()
            bus.stop()
    ms = [x * 1000 for x in latencies]
    print(f"worker load: {len(latencies)} requests, {args.connections} connections, {args.body_bytes}-byte bodies")
    print(f"  worker pinned to core {worker_core}, load generator on core {client_core}, real Redis XADD per request")
    print(f"  throughput: {len(latencies) / elapsed:,.0f} requests/s over {elapsed:.2f} s")
    print(
        f"  latency ms: p50 {percentile(ms, 50):.2f}  p90 {percentile(ms, 90):.2f}  p99 {percentile(ms, 99):.2f}  "
        f"max {max(ms):.2f}  mean {statistics.mean(ms):.2f}"
    )
    print(f"  non-200 responses: {len(errors)}")
    target_met = len(latencies) / elapsed >= 1000 and percentile(ms, 99) < 20 and not errors
    print(f"  target (>= 1000 rps, p99 < 20 ms, no errors): {'met' if target_met else 'NOT met'}")


if __name__ == "__main__":
    main()
