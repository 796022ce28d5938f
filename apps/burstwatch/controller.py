"""burstwatch: moves the worker split to the burst cluster when the request rate is high, and back.

Every INTERVAL_SECONDS it asks Prometheus for the frontend -> worker-service request rate, decides
(decide.py: hysteresis and a minimum dwell time) and, on a switch, patches only the two weights of one
VirtualService through the Kubernetes API as field manager `burstwatch`. It reads the live weights at
start, so a restart does not flip anything. Serves /metrics (Prometheus text) and /healthz on PORT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from decide import BURST, NATURAL, Policy, State, decide
from kube import KubeClient, KubeError, Split, read_split
from prom import PrometheusError, build_rate_query, query_scalar
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger("burstwatch")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default).strip()


def _required(name: str) -> str:
    """What the controller watches and writes is the app's to name: its component sets these, the image copies none."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ValueError(f"{name} is not set: the Burstwatch component (apps/burstwatch/component.py) sets it")
    return value


def _subsets() -> tuple[str, str]:
    names = tuple(part.strip() for part in _required("SUBSETS").split(","))
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise ValueError(f"SUBSETS={','.join(names)!r} must name two different subsets: normal,burst")
    return names[0], names[1]


def _number(name: str, default: str) -> float:
    raw = _env(name, default)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={raw!r} must be a number greater than 0")
    return value


@dataclass(frozen=True)
class Config:
    prometheus_url: str
    query: str
    interval_s: float
    prometheus_timeout_s: float
    namespace: str
    virtual_service: str
    subsets: tuple[str, str]
    """The route's subsets: where work normally runs, then the burst cluster."""
    policy: Policy

    @classmethod
    def from_env(cls) -> Config:
        window = _env("WINDOW", "30s")
        query = _env("QUERY", "") or build_rate_query(
            # `source`: the frontend's sidecar reports every request, wherever it is served. Burst workers'
            # own (`destination`) reports live in the burst cluster, which this Prometheus does not scrape.
            reporter=_env("REPORTER", "source"),
            destination_service=_required("DESTINATION_SERVICE"),
            source_workload=_required("SOURCE_WORKLOAD"),
            window=window,
        )
        share = _env("BURST_SHARE", "100")
        if not share.isdigit():
            raise ValueError(f"BURST_SHARE={share!r} must be a whole number from 0 to 100")
        return cls(
            prometheus_url=_required("PROMETHEUS_URL"),
            query=query,
            interval_s=_number("INTERVAL_SECONDS", "2"),
            prometheus_timeout_s=_number("PROMETHEUS_TIMEOUT_SECONDS", "1.5"),
            namespace=_required("NAMESPACE"),
            virtual_service=_required("VIRTUAL_SERVICE"),
            subsets=_subsets(),
            policy=Policy(
                high_rps=_number("HIGH_RPS", "15"),
                low_rps=_number("LOW_RPS", "10"),
                min_dwell_s=float(_env("MIN_DWELL_SECONDS", "30")),
                burst_share=int(share),
            ),
        )


class Metrics:
    def __init__(self, subsets: tuple[str, str]) -> None:
        self.subsets = subsets
        self.decisions: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.polls = 0
        self.last_rate = math.nan
        self.mode = NATURAL
        self.weights = (100, 0)

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def render(self) -> str:
        lines = [
            "# HELP burstwatch_mode 1 for the mode the worker split is in.",
            "# TYPE burstwatch_mode gauge",
            *(f'burstwatch_mode{{mode="{m}"}} {int(self.mode == m)}' for m in (NATURAL, BURST)),
            "# HELP burstwatch_weight Current weight per subset.",
            "# TYPE burstwatch_weight gauge",
            *(f'burstwatch_weight{{subset="{s}"}} {w}' for s, w in zip(self.subsets, self.weights, strict=True)),
            "# HELP burstwatch_decisions_total Switches written, by the mode switched to.",
            "# TYPE burstwatch_decisions_total counter",
            *(f'burstwatch_decisions_total{{to="{m}"}} {self.decisions[m]}' for m in (NATURAL, BURST)),
            "# HELP burstwatch_errors_total Faults seen, by kind; none of them changes the split.",
            "# TYPE burstwatch_errors_total counter",
            *(f'burstwatch_errors_total{{kind="{k}"}} {n}' for k, n in sorted(self.errors.items())),
            "# HELP burstwatch_last_rate_rps Last request rate read from Prometheus (NaN when unknown).",
            "# TYPE burstwatch_last_rate_rps gauge",
            f"burstwatch_last_rate_rps {'NaN' if math.isnan(self.last_rate) else repr(self.last_rate)}",
            "# HELP burstwatch_polls_total Prometheus readings attempted.",
            "# TYPE burstwatch_polls_total counter",
            f"burstwatch_polls_total {self.polls}",
        ]
        return "\n".join(lines) + "\n"


class Controller:
    def __init__(self, config: Config, kube: KubeClient) -> None:
        self.config = config
        self.kube = kube
        self.metrics = Metrics(config.subsets)
        self.state: State | None = None
        self.split: Split | None = None
        self.prom = httpx.AsyncClient(timeout=config.prometheus_timeout_s)

    def _kube_retry(self, error: KubeError) -> None:
        self.metrics.error(error.kind)
        log.warning("kubernetes: %s (retrying)", error)

    async def load(self) -> None:
        """Read the live split; the mode follows what is live, so a restart changes nothing."""
        cfg = self.config
        vs = await self.kube.get_virtual_service(cfg.namespace, cfg.virtual_service, self._kube_retry)
        self.split = read_split(vs, cfg.subsets)
        mode = cfg.policy.mode_of(self.split.weights)
        self.state = State(mode, -math.inf)
        self.metrics.mode, self.metrics.weights = mode, self.split.weights
        log.info("live split %s/%s = %s: mode %s", *cfg.subsets, self.split.weights, mode)

    async def read_rate(self) -> float | None:
        self.metrics.polls += 1
        try:
            rate = await query_scalar(self.prom, self.config.prometheus_url, self.config.query)
        except PrometheusError as error:
            self.metrics.error(error.kind)
            self.metrics.last_rate = math.nan
            log.warning("prometheus: %s; keeping the current split", error)
            return None
        self.metrics.last_rate = rate
        return rate

    async def step(self, now: float) -> None:
        if self.state is None or self.split is None:
            await self.load()
        assert self.state is not None and self.split is not None
        rate = await self.read_rate()
        decision = decide(self.config.policy, self.state, rate, now)
        if not decision.switched:
            return
        weights = self.config.policy.weights(decision.state.mode)
        cfg = self.config
        try:
            await self.kube.patch_weights(
                cfg.namespace, cfg.virtual_service, self.split, cfg.subsets, weights, self._kube_retry
            )
        except KubeError as error:
            self.metrics.error(error.kind)
            log.error("could not write %s = %s: %s; will re-read the VirtualService", cfg.subsets, weights, error)
            self.state = self.split = None  # re-read before the next decision: the object may have changed
            return
        self.state = decision.state
        self.split = Split(self.split.rule, self.split.routes, weights)
        self.metrics.decisions[decision.state.mode] += 1
        self.metrics.mode, self.metrics.weights = decision.state.mode, weights
        log.info("switch to %s: %s; wrote %s/%s = %s/%s", decision.state.mode, decision.reason, *cfg.subsets, *weights)

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.step(started)
            except KubeError as error:
                self.metrics.error(error.kind)
                log.error("kubernetes: %s", error)
                self.state = self.split = None
            await asyncio.sleep(max(0.0, self.config.interval_s - (time.monotonic() - started)))

    async def aclose(self) -> None:
        await self.prom.aclose()
        await self.kube.aclose()


def create_app() -> Starlette:
    config = Config.from_env()
    controller = Controller(config, KubeClient.from_env())
    task: asyncio.Task | None = None

    async def metrics(_: Request) -> Response:
        return PlainTextResponse(controller.metrics.render(), media_type="text/plain; version=0.0.4")

    async def healthz(_: Request) -> Response:
        if task is None or task.done():
            return PlainTextResponse("control loop not running", status_code=503)
        return PlainTextResponse("ok")

    @asynccontextmanager
    async def lifespan(_: Starlette):
        nonlocal task
        log.info(
            "burstwatch: every %gs, burst above %g req/s, back below %g, dwell %gs, query %s",
            config.interval_s,
            config.policy.high_rps,
            config.policy.low_rps,
            config.policy.min_dwell_s,
            config.query,
        )
        task = asyncio.create_task(controller.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await controller.aclose()

    app = Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)], lifespan=lifespan)
    app.state.controller = controller
    return app


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
app = create_app()
