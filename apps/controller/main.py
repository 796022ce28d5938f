"""The route controller's process: `uvicorn main:app` (the image's CMD), serving /metrics, /healthz, /status.

Environment (the RouteController component sets every name; the image sets none):
  POLICY                      canary | burst
  NAMESPACE, ROUTE            the VirtualService it owns
  INTENT, STATUS              the intent ConfigMap it reads, the status ConfigMap whose data it writes
  PROMETHEUS_URL              the Prometheus it reads
  POLL_SECONDS                seconds between ticks (default 2 for burst, 5 for canary)
  PROMETHEUS_TIMEOUT_SECONDS  bound on each query (default 1.5)
  KUBE_TIMEOUT_SECONDS        bound on each Kubernetes API call (default 5)
  WEBHOOK_URL_FILE            optional: a file holding the webhook URL (mounted from a Secret)
Kubernetes: the pod's service account, else the kubeconfig KUBECONFIG names. A bad value stops the process
with the variable's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

if TYPE_CHECKING or __package__:
    from apps.lib.envvars import clip, env_seconds
    from apps.lib.meshroute import ROUTE_POLICIES

    from .core import Controller, CoreConfig
    from .kube import ConfigError, Kube
    from .metrics import CONTENT_TYPE, Metrics
    from .notify import Notifier, host_of, read_webhook_url
    from .policy import DEFAULT_POLL_SECONDS, Policy
else:
    from core import Controller, CoreConfig
    from envvars import clip, env_seconds
    from kube import ConfigError, Kube
    from meshroute import ROUTE_POLICIES
    from metrics import CONTENT_TYPE, Metrics
    from notify import Notifier, host_of, read_webhook_url

    from policy import DEFAULT_POLL_SECONDS, Policy

log = logging.getLogger("controller")

POLICIES = ROUTE_POLICIES
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
"""A Kubernetes object name (DNS subdomain)."""


def _required_name(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ValueError(f"{name} is not set: the RouteController component (apps/controller/component.py) sets it")
    if not NAME.match(value):
        raise ValueError(f"{name}={clip(value)!r} is not a Kubernetes object name (lowercase letters, digits, - .)")
    return value


def make_policy(name: str) -> Policy:
    """The policy POLICY names (only the one in use is imported)."""
    if name == "burst":
        if TYPE_CHECKING or __package__:
            from .burst import BurstPolicy
        else:
            from burst import BurstPolicy
        return BurstPolicy()
    if TYPE_CHECKING or __package__:
        from .canary import CanaryPolicy
    else:
        from canary import CanaryPolicy
    return CanaryPolicy()


@dataclass(frozen=True)
class Settings:
    policy: str
    core: CoreConfig
    prometheus_timeout_s: float
    kube_timeout_s: float
    webhook_url: str | None

    @classmethod
    def from_env(cls) -> Settings:
        policy = os.environ.get("POLICY", "")
        if policy not in POLICIES:
            allowed = " or ".join(POLICIES)
            raise ValueError(f"POLICY={clip(policy)!r} is not a policy (allowed: {allowed})")
        prometheus_url = os.environ.get("PROMETHEUS_URL", "")
        if not re.match(r"^https?://[^/\s]+", prometheus_url):
            raise ValueError(f"PROMETHEUS_URL={clip(prometheus_url)!r} is not an http(s) URL")
        webhook_file = os.environ.get("WEBHOOK_URL_FILE")
        return cls(
            policy=policy,
            core=CoreConfig(
                namespace=_required_name("NAMESPACE"),
                route=_required_name("ROUTE"),
                intent=_required_name("INTENT"),
                status=_required_name("STATUS"),
                prometheus_url=prometheus_url,
                poll_s=env_seconds("POLL_SECONDS", DEFAULT_POLL_SECONDS[policy], 0.1, 3600),
            ),
            prometheus_timeout_s=env_seconds("PROMETHEUS_TIMEOUT_SECONDS", 1.5, 0.05, 60),
            kube_timeout_s=env_seconds("KUBE_TIMEOUT_SECONDS", 5.0, 0.1, 60),
            webhook_url=read_webhook_url(webhook_file) if webhook_file else None,
        )


def create_app() -> Starlette:
    try:
        settings = Settings.from_env()
        policy = make_policy(settings.policy)
        kube = Kube.from_env(settings.core.namespace, settings.kube_timeout_s)
    except ConfigError as exc:
        raise SystemExit(f"controller: no Kubernetes configuration (no service account, KUBECONFIG): {exc}") from None
    except ValueError as exc:
        raise SystemExit(f"controller: {exc}") from None
    metrics = Metrics()
    state: dict[str, Any] = {"task": None, "controller": None}

    async def metrics_page(_: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def healthz(_: Request) -> Response:
        task = state["task"]
        if task is None or task.done():
            return PlainTextResponse("control loop not running", status_code=503)
        return PlainTextResponse("ok")

    async def status(_: Request) -> Response:
        controller = state["controller"]
        if controller is None:
            return JSONResponse({"policy": policy.name, "writer": False})
        return JSONResponse(controller.status_view())

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        core = settings.core
        notifier = Notifier(settings.webhook_url, lambda: metrics.fault(core.route, "webhook"))
        prometheus = httpx.AsyncClient(timeout=settings.prometheus_timeout_s)
        controller = Controller(core, policy, kube, prometheus, metrics, notifier)
        state["controller"] = controller
        log.info(
            "controller: policy %s for %s/%s (intent %s, status %s), every %gs, Prometheus %s, webhook %s",
            policy.name,
            core.namespace,
            core.route,
            core.intent,
            core.status,
            core.poll_s,
            core.prometheus_url,
            host_of(settings.webhook_url) if settings.webhook_url else "none",
        )
        notifier.start()
        task = asyncio.create_task(controller.run())
        state["task"] = task
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await notifier.aclose()
        await prometheus.aclose()
        await kube.aclose()

    return Starlette(
        routes=[
            Route("/metrics", metrics_page),
            Route("/healthz", healthz),
            Route("/status", status),
        ],
        lifespan=lifespan,
    )


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
for chatty in ("httpx", "httpx2", "httpcore", "httpcore2"):  # a line per request would bury the decisions
    logging.getLogger(chatty).setLevel(logging.WARNING)
app = create_app()
