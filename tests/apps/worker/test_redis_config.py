"""The Redis the primary deploys (apps/worker/component.py: redis_spec), run by the real redis-server with the
container's own arguments: the results stream survives a crash and its files stay inside the pod's scratch volume."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from apps.worker.component import redis_spec
from apps.worker.contract import STREAM, STREAM_FIELD, STREAM_MAXLEN
from tests.support.servers import RedisServer

# The emptyDir under /data is limited to 64 MiB; the kubelet evicts a pod that writes more.
SCRATCH_LIMIT = 64 * 1024 * 1024
MESSAGE = '{"hash":"bursty-' + "0" * 64 + '","cluster":"burst","at":"2026-11-23T03:00:00.000000+00:00"}'


def files_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_the_stream_survives_a_crash_and_the_append_only_file_stays_small(tmp_path: Path):
    args = list(redis_spec().args or [])
    data = tmp_path / "data"
    data.mkdir()
    server = RedisServer(tmp_path, args=args, data_dir=data)
    client = redis.Redis.from_url(server.url)
    largest = 0
    try:
        # Five times what the stream keeps: trims, rewrites of the file and all.
        for _ in range(50):
            pipe = client.pipeline(transaction=False)
            for _ in range(2_000):
                pipe.xadd(STREAM, {STREAM_FIELD: MESSAGE}, maxlen=STREAM_MAXLEN, approximate=True)
            pipe.execute()
            largest = max(largest, files_size(data))
        last_id = client.xrevrange(STREAM, count=1)[0][0]
        time.sleep(1.5)  # appendfsync everysec: what was written a second ago is on disk
    finally:
        client.close()
        server.kill()
    # Rewrites start at 8 MiB (--auto-aof-rewrite-min-size); with Redis's default (64 MiB, the whole volume) this
    # load alone leaves 23 MiB, and hours of it reach the limit.
    assert largest < SCRATCH_LIMIT / 4, f"append-only files reached {largest / 2**20:.1f} MiB"

    restarted = RedisServer(tmp_path, port=server.port, args=args, data_dir=data)
    client = redis.Redis.from_url(restarted.url)
    try:
        assert client.xrevrange(STREAM, count=1)[0][0] == last_id
        assert STREAM_MAXLEN <= client.xlen(STREAM) < STREAM_MAXLEN * 1.2
    finally:
        client.close()
        restarted.stop()


def test_without_its_append_only_file_a_crash_loses_the_stream(tmp_path: Path):
    # What the test above guards against: the same crash with persistence off.
    server = RedisServer(tmp_path)
    client = redis.Redis.from_url(server.url)
    client.xadd(STREAM, {STREAM_FIELD: MESSAGE})
    client.close()
    server.kill()
    restarted = RedisServer(tmp_path, port=server.port)
    client = redis.Redis.from_url(restarted.url)
    try:
        assert client.xlen(STREAM) == 0
    finally:
        client.close()
        restarted.stop()
