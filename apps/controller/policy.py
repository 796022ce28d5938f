"""What a policy is to the controller core: pure decisions over plain data.

The core (core.py) does all the I/O: it reads the live VirtualService, the intent, Prometheus and (when a
policy names one) a Deployment's rollout, calls `decide`, and writes what the decision says. A policy never
does I/O and never reads a clock: `now` comes in the Observation, so every decision is a testable function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_POLL_SECONDS = {"canary": 5.0, "burst": 2.0}
"""Seconds between ticks unless POLL_SECONDS says otherwise: a canary step lasts minutes, a burst should react fast."""
REVISION_ANNOTATION = "meshburst.dev/revision"
"""Pod-template annotation carrying the revision Pulumi computed; compared with the intent's revision."""


@dataclass(frozen=True)
class Observation:
    now: float
    """Wall-clock seconds since the epoch (persisted state must survive a restart, so not monotonic)."""
    live_share: int | None
    """Share of the second subset in the live VirtualService; None when absent or unreadable."""
    readings: Mapping[str, float | None]
    """Query name (from `queries`) -> value; None when Prometheus failed or had no data (a fault the core counts)."""
    target_ready: bool | None = None
    """The policy's target Deployment runs the intent's revision, fully rolled out; None when not asked or unknown."""


@dataclass(frozen=True)
class Event:
    """A phase change, sent to the webhook and logged."""

    previous: str
    phase: str
    reason: str


@dataclass(frozen=True)
class Decision:
    state: Mapping[str, Any]
    """The policy's whole state as JSON data: persisted in the status object, read back after a restart."""
    share: int
    """Share (percent) of the second subset to render into the route."""
    status: Mapping[str, str]
    """Human-readable status fields (phase, step or mode, weight, lastVerdict, message) for the status object."""
    log: str
    """One line saying what was decided and why, with the figures."""
    events: Sequence[Event] = field(default_factory=tuple)


class Policy(Protocol):
    name: str
    """`canary` or `burst`: the intent's `policy` must say the same."""

    def parse_settings(self, settings: Mapping[str, Any]) -> Any:
        """The intent's `settings`, checked; ValueError naming the key, the value and what is allowed."""
        ...

    def queries(self, settings: Any) -> Mapping[str, str]:
        """PromQL the core evaluates each tick, by name."""
        ...

    def target(self, settings: Any) -> str | None:
        """Deployment whose rollout of the intent's revision the core checks (Observation.target_ready)."""
        ...

    def initial_state(self, settings: Any, live_share: int | None, initial_share: int, now: float) -> Mapping[str, Any]:
        """State when nothing was persisted: continue from what is live, so a first start moves nothing."""
        ...

    def decide(self, settings: Any, state: Mapping[str, Any], observation: Observation) -> Decision: ...

    def record(self, metrics: Any, route: str, decision: Decision, observation: Observation) -> None:
        """Set the policy's own gauges and counters (metrics.py) after a decision."""
        ...


def known_settings(settings: object, allowed: Sequence[str]) -> Mapping[str, Any]:
    """The intent's settings as a mapping with only `allowed` keys; ValueError saying what is wrong otherwise."""
    if not isinstance(settings, Mapping):
        raise ValueError(f"settings must be a JSON object, got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"settings has unknown keys {unknown} (allowed: {sorted(allowed)})")
    return settings
