"""The controller core: one tick of the one-writer loop, for any policy (policy.py says what a policy is).

Per tick, in this order: (1) GET the VirtualService (2) GET the intent (3) when the intent's writer is not
the controller, write nothing (4) read Prometheus, and the target Deployment when the policy names one
(5) policy.decide (6) apply the VirtualService when the rendered spec differs from the live one (7) merge-patch
the status data when it changed (8) queue a webhook message per phase change. Reading the VirtualService before
the intent is what makes a manual <- controller switch safe: Pulumi writes the intent first, then the route.

A fault (Prometheus, Kubernetes, a bad intent) is counted by kind and logged; it never writes and never steps.
The policy's new state is committed only once the route is written as it says, so a failed write is decided
again on the next tick from what is live then.

Imports: the image runs these files side by side in /app (`import policy`); the tests and the Pulumi program
import the package (`apps.controller.core`). `policy` alone would be the repository's policy pack there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING or __package__:
    from apps.lib.meshroute import INTENT_KEY, INTENT_VERSION, WRITERS, RouteSpec, live_share, virtual_service_manifest

    from .kube import Kube, KubeError
    from .metrics import Metrics
    from .notify import Notifier
    from .policy import REVISION_ANNOTATION, Decision, Observation, Policy
    from .prom import read_queries
else:
    from kube import Kube, KubeError
    from meshroute import INTENT_KEY, INTENT_VERSION, WRITERS, RouteSpec, live_share, virtual_service_manifest
    from metrics import Metrics
    from notify import Notifier
    from prom import read_queries

    from policy import REVISION_ANNOTATION, Decision, Observation, Policy

log = logging.getLogger("controller")


class IntentError(ValueError):
    """The intent object cannot be acted on; the message says why, naming the field."""


@dataclass(frozen=True)
class Intent:
    writer: str
    route: RouteSpec | None
    """What to render; None while Pulumi writes the route (the intent then says only that)."""
    settings: Any = None
    """The policy's parsed settings (None while Pulumi writes the route)."""
    raw_settings: Mapping[str, Any] = field(default_factory=dict)


def parse_intent(config_map: Mapping[str, Any] | None, policy: Policy, route: str, namespace: str) -> Intent:
    """The intent ConfigMap checked against this controller (its policy, route and namespace); IntentError."""
    if config_map is None:
        raise IntentError("the intent ConfigMap does not exist")
    text = (config_map.get("data") or {}).get(INTENT_KEY)
    if text is None:
        raise IntentError(f"the intent ConfigMap has no data key {INTENT_KEY!r}")
    try:
        intent = json.loads(text)
    except ValueError as exc:
        raise IntentError(f"{INTENT_KEY} is not JSON: {exc}") from None
    if not isinstance(intent, dict):
        raise IntentError(f"{INTENT_KEY} must be a JSON object, got {type(intent).__name__}")
    if intent.get("version") != INTENT_VERSION:
        version = str(intent.get("version"))[:20]
        raise IntentError(f"version={version!r}: this controller reads version {INTENT_VERSION}")
    writer = intent.get("writer")
    if writer not in WRITERS:
        raise IntentError(f"writer={str(writer)[:40]!r}: must be one of {list(WRITERS)}")
    if intent.get("policy") != policy.name:
        raise IntentError(f"policy={str(intent.get('policy'))[:40]!r}: this controller runs policy {policy.name!r}")
    if writer != "controller":
        return Intent(writer=writer, route=None)  # Pulumi's turn: nothing else is needed, or read
    try:
        spec = RouteSpec.from_json(intent["route"])
        virtual_service_manifest(spec)  # the route must render: two subsets, a share from 0 to 100
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IntentError(f"route is not a RouteSpec: {type(exc).__name__}: {str(exc)[:200]}") from None
    if (spec.name, spec.namespace) != (route, namespace):
        raise IntentError(f"route is {spec.namespace}/{spec.name}, but this controller owns {namespace}/{route}")
    raw = intent.get("settings")
    if not isinstance(raw, dict):
        raise IntentError("settings must be a JSON object")
    try:
        settings = policy.parse_settings(raw)
    except (ValueError, TypeError) as exc:
        raise IntentError(f"bad settings: {str(exc)[:300]}") from None
    return Intent(writer=writer, route=spec, settings=settings, raw_settings=raw)


def target_ready(deployment: Mapping[str, Any] | None, revision: object) -> bool:
    """The Deployment runs `revision` (its pod template's annotation) and its rollout is complete."""
    if deployment is None or not isinstance(revision, str) or not revision:
        return False
    metadata = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    annotations = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
    if annotations.get(REVISION_ANNOTATION) != revision:
        return False
    generation, observed = metadata.get("generation"), status.get("observedGeneration")
    if not isinstance(generation, int) or not isinstance(observed, int) or observed < generation:
        return False
    desired = spec.get("replicas", 1)
    # Kubernetes leaves out zero counts; all three at the desired count: no old pod left, every new one available.
    counts = (status.get("replicas", 0), status.get("updatedReplicas", 0), status.get("availableReplicas", 0))
    return all(count == desired for count in counts)


def route_differs(live: Mapping[str, Any] | None, rendered: Mapping[str, Any]) -> bool:
    """True when applying `rendered` would change the live object (its spec, or a label it sets)."""
    if live is None:
        return True
    if live.get("spec") != rendered["spec"]:
        return True
    labels = (live.get("metadata") or {}).get("labels") or {}
    return any(labels.get(key) != value for key, value in (rendered["metadata"].get("labels") or {}).items())


def rfc3339(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CoreConfig:
    namespace: str
    route: str
    """Name of the VirtualService (the metrics' `route` label)."""
    intent: str
    status: str
    prometheus_url: str
    poll_s: float


class Controller:
    def __init__(
        self,
        config: CoreConfig,
        policy: Policy,
        kube: Kube,
        prometheus: httpx.AsyncClient,
        metrics: Metrics,
        notifier: Notifier,
    ) -> None:
        self.config = config
        self.policy = policy
        self.kube = kube
        self.prometheus = prometheus
        self.metrics = metrics
        self.notifier = notifier
        self.state: Mapping[str, Any] | None = None
        """The committed policy state; None until loaded (first tick as writer) or after a handover."""
        self.resume_from_status = True
        """Load the persisted state at the next load; False after Pulumi was the writer (it is stale then)."""
        self.status: dict[str, str] = {}
        """The status data as last written (or read at start)."""
        self.writer = False
        self.last_intent_problem: str | None = None
        metrics.start(config.route)

    def fault(self, kind: str, message: str, *args: object) -> None:
        self.metrics.fault(self.config.route, kind)
        log.warning(message, *args)

    def status_view(self) -> dict[str, Any]:
        """What /status serves: the status fields, the policy and whether this controller is the writer."""
        return {**self.status, "policy": self.policy.name, "writer": self.writer}

    def _set_weights(self, spec: RouteSpec, share: int | None) -> None:
        if share is None:
            return
        first, second = list(spec.subsets)
        self.metrics.weight.labels(route=self.config.route, subset=first).set(100 - share)
        self.metrics.weight.labels(route=self.config.route, subset=second).set(share)

    async def tick(self, now: float) -> None:
        cfg, route = self.config, self.config.route
        self.metrics.polls.labels(route=route).inc()
        # (1) the live route first, then (2) the intent: see the module docstring.
        try:
            live = await self.kube.get_virtual_service(route)
            intent_object = await self.kube.get_config_map(cfg.intent)
        except KubeError as error:
            self.fault(error.kind, "kubernetes: %s; nothing written", error)
            return
        try:
            intent = parse_intent(intent_object, self.policy, route, cfg.namespace)
        except IntentError as error:
            self.metrics.fault(route, "intent")
            if str(error) != self.last_intent_problem:
                log.warning("intent %s/%s: %s; nothing written", cfg.namespace, cfg.intent, error)
            self.last_intent_problem = str(error)
            return
        if self.last_intent_problem is not None:
            log.info("intent %s/%s is readable again", cfg.namespace, cfg.intent)
            self.last_intent_problem = None
        # (3) one writer: Pulumi's turn means hands off, whatever the policy would do.
        is_writer = intent.writer == "controller"
        self.metrics.is_writer.labels(route=route).set(int(is_writer))
        if is_writer != self.writer:
            log.info("writer is now %s: %s", intent.writer, "taking over the route" if is_writer else "writing nothing")
            self.writer = is_writer
        if intent.route is None:
            self.state, self.resume_from_status = None, False
            return
        share_live = live_share(live, intent.route) if live is not None else None
        self._set_weights(intent.route, share_live)
        resource_version = (live or {}).get("metadata", {}).get("resourceVersion")
        record_settings = getattr(self.policy, "record_settings", None)
        if record_settings is not None:
            record_settings(self.metrics, route, intent.settings)

        if self.state is None and not await self._load_state(intent, share_live, now):
            return
        assert self.state is not None

        # (4) what the policy needs to know
        observation = await self._observe(intent, share_live, now)

        # (5) the decision (pure)
        decision = self._decide(intent, share_live, observation)
        if decision is None:
            return

        # (6) the route, when it must change, onto the version read in (1)
        rendered = virtual_service_manifest(intent.route.with_share(decision.share))
        if route_differs(live, rendered):
            try:
                await self.kube.apply_virtual_service(rendered, resource_version)
            except KubeError as error:
                self.fault(
                    error.kind,
                    "kubernetes: could not write %s with share %d: %s; re-reading next tick",
                    route,
                    decision.share,
                    error,
                )
                return
            self.metrics.writes.labels(route=route).inc()
        self._set_weights(intent.route, decision.share)
        self.state = decision.state
        self.policy.record(self.metrics, route, decision, observation)
        log.info("%s: %s", route, decision.log)

        # (7) the status, when a field changed
        data = {**{k: str(v) for k, v in decision.status.items()}, "state": json.dumps(decision.state, sort_keys=True)}
        if any(self.status.get(key) != value for key, value in data.items()):
            data["updated"] = rfc3339(now)
            try:
                await self.kube.patch_config_map_data(cfg.status, data)
            except KubeError as error:
                self.fault(
                    error.kind, "kubernetes: could not write status %s: %s; retrying next tick", cfg.status, error
                )
            else:
                self.status = {**self.status, **data}

        # (8) one message per phase change, delivered in the background
        for event in decision.events:
            log.info("%s: phase %s -> %s: %s", route, event.previous, event.phase, event.reason)
            self.notifier.send(
                {
                    "route": route,
                    "policy": self.policy.name,
                    "previous": event.previous,
                    "phase": event.phase,
                    "reason": event.reason,
                    "status": {k: v for k, v in data.items() if k != "state"},
                    "at": rfc3339(now),
                }
            )

    async def _load_state(self, intent: Intent, share_live: int | None, now: float) -> bool:
        """The state to continue from: the persisted one on a (re)start, else one that keeps what is live."""
        try:
            status_object = await self.kube.get_config_map(self.config.status)
        except KubeError as error:
            self.fault(error.kind, "kubernetes: cannot read status %s: %s; nothing written", self.config.status, error)
            return False
        data = dict((status_object or {}).get("data") or {})
        self.status = {k: v for k, v in data.items() if isinstance(v, str)}
        if self.resume_from_status and data.get("state"):
            try:
                state = json.loads(data["state"])
            except ValueError:
                state = None
            if isinstance(state, dict):
                self.state = state
                log.info("resuming from the persisted state %s", data["state"][:300])
                return True
            log.warning("status %s: state is not a JSON object; starting from what is live", self.config.status)
        assert intent.route is not None
        self.state = self.policy.initial_state(intent.settings, share_live, intent.route.share_to_second, now)
        self.resume_from_status = False
        log.info("starting from what is live (share %s): state %s", share_live, json.dumps(self.state)[:300])
        return True

    async def _observe(self, intent: Intent, share_live: int | None, now: float) -> Observation:
        target = self.policy.target(intent.settings)

        async def rollout() -> bool | None:
            if target is None:
                return None
            try:
                deployment = await self.kube.get_deployment(target)
            except KubeError as error:
                self.fault(error.kind, "kubernetes: cannot read Deployment %s: %s", target, error)
                return None
            return target_ready(deployment, intent.raw_settings.get("revision"))

        (readings, errors), ready = await asyncio.gather(
            read_queries(self.prometheus, self.config.prometheus_url, self.policy.queries(intent.settings)),
            rollout(),
        )
        for name, error in errors.items():
            self.fault(error.kind, "prometheus: %s: %s; no step on this reading", name, error)
        return Observation(now=now, live_share=share_live, readings=readings, target_ready=ready)

    def _decide(self, intent: Intent, share_live: int | None, observation: Observation) -> Decision | None:
        assert self.state is not None
        try:
            return self.policy.decide(intent.settings, self.state, observation)
        except (KeyError, TypeError, ValueError) as error:
            # A persisted state this policy cannot read (another version wrote it): continue from what is live.
            self.fault("state", "state %s is not readable (%s); starting from what is live", self.state, error)
            assert intent.route is not None
            self.state = self.policy.initial_state(
                intent.settings, share_live, intent.route.share_to_second, observation.now
            )
            try:
                return self.policy.decide(intent.settings, self.state, observation)
            except (KeyError, TypeError, ValueError) as again:
                self.fault("policy", "policy %s failed on its own state: %s", self.policy.name, again)
                return None

    async def run(self) -> None:
        """Tick every poll interval, forever; nothing a tick raises stops the loop."""
        while True:
            started = time.monotonic()
            try:
                await self.tick(time.time())
            except Exception:
                self.metrics.fault(self.config.route, "internal")
                log.exception("tick failed")
            await asyncio.sleep(max(0.0, self.config.poll_s - (time.monotonic() - started)))
