"""Container entry point: runs the service named by SERVICE (worker on 8081, frontend on 8080) under uvicorn.

With the server-side bounds of httpguard.py (header, body and idle timeouts, a header size cap). The
tests start the apps through this file, so what they check is what the image runs.

Environment: SERVICE, HOST (0.0.0.0), PORT, HEADER_TIMEOUT_SECONDS (10), BODY_TIMEOUT_SECONDS (15),
IDLE_TIMEOUT_SECONDS (5, between requests on a kept-alive connection), MAX_HEADER_BYTES (16384).
"""

from __future__ import annotations

import os
import sys

import uvicorn
from contract import FRONTEND_PORT, WORKER_PORT
from envvars import env_int
from httpguard import GuardedHttpTools

PORTS = {"worker": WORKER_PORT, "frontend": FRONTEND_PORT}


def main() -> None:
    service = os.environ.get("SERVICE", "worker")
    if service not in PORTS:
        sys.exit(f"SERVICE={service!r} is not one of {sorted(PORTS)}")
    try:
        port = env_int("PORT", PORTS[service], 1, 65535)
    except ValueError as exc:
        sys.exit(str(exc))
    uvicorn.run(
        f"{service}:app",
        host=os.environ.get("HOST", "0.0.0.0"),
        port=port,
        access_log=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=GuardedHttpTools.limits.idle_timeout,  # type: ignore[arg-type]
        http=GuardedHttpTools,
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
