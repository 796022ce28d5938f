"""The cloud-burst app's contract: the names and ports its services, routes, apps and controller agree on.

One place for each: the Pulumi components build Services, routes and environment from these, and the apps
(which ship this file in their image) read their defaults from it. The controller image stays standalone:
its component hands it what it needs from here as environment variables.
"""

from __future__ import annotations

from types import MappingProxyType

WORKER_PORT = 8081
FRONTEND_PORT = 8080
REDIS_PORT = 6379
SERVICE_PORT = 80
"""The port the worker and frontend Services answer on (the mesh routes to it)."""

WORKER_SERVICE = "worker-service"
FRONTEND_SERVICE = "frontend-service"
REDIS_SERVICE = "redis-cache-service"
REDIS_ADDRESS = f"{REDIS_SERVICE}:{REDIS_PORT}"
WORKER_URL = f"http://{WORKER_SERVICE}"

FRONTEND_APP = "frontend"
"""The frontend's `app` label, also its workload name in Istio's metrics (the source of worker traffic)."""
BURST_PREFIX = "bursty-"
"""Results computed in the burst cluster start with this."""
STREAM = "calculation"
"""The Redis Stream results travel on, from every worker (both clusters) to the frontend."""
STREAM_FIELD = "m"
STREAM_MAXLEN = 20_000
"""About this many results are kept (XADD MAXLEN ~): 20 s at the frontend's top rate, a few MB of Redis memory,
far more than a reader misses while it reconnects."""

CLUSTER_TYPE_LABEL = "cluster-type"
CLUSTER_TYPES = MappingProxyType({"primary": "primary-cluster", "burst": "burst-cluster"})
"""Istio cluster name -> the worker pods' `cluster-type` label; the worker split's subsets, in route order."""
WORKER_ROUTE = "worker-split"
"""The VirtualService and DestinationRule that split worker traffic between the clusters."""
RATE_WINDOW = "30s"
"""The window the burst controller reads the offered rate over (rate() over six 5 s scrapes; README "Cloud burst,
automatic" says why), and the dashboard draws it with."""
SPLIT_CONTROLLER = "burstwatch"
"""The controller that writes WORKER_ROUTE in auto mode (its Deployment, Service and account)."""
