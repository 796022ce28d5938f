"""Container entry point: runs the service named by SERVICE (worker on 8081, frontend on 8080) under uvicorn."""

from __future__ import annotations

import os
import sys

import uvicorn

PORTS = {"worker": 8081, "frontend": 8080}

if __name__ == "__main__":
    service = os.environ.get("SERVICE", "worker")
    if service not in PORTS:
        sys.exit(f"SERVICE={service!r} is not one of {sorted(PORTS)}")
    uvicorn.run(
        f"{service}:app",
        host="0.0.0.0",
        port=int(os.environ.get("PORT", PORTS[service])),
        access_log=False,
        timeout_graceful_shutdown=5,
    )
