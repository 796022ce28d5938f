"""The burst policy: move worker traffic to the burst cluster when the request rate is high, and back.

Two ways to split, chosen by the intent's `policy` setting:
- `switch` (the default): two modes, `natural` (all work in the primary) and `burst` (`burstShare` percent
  to the burst cluster). Hysteresis: to burst only above `highRps`, back only below `lowRps`; a rate in
  between keeps the mode. Dwell: after a switch, no other switch for `minDwellSeconds`.
- `overflow`: send the burst cluster only the share of the rate above what the primary can take
  (`capacityRps`, less `headroomPercent`), rounded up to `shareStep` percent. The share rises as soon as the
  rate needs it and comes down only once the rate is `hysteresisPercent` below what the share was set for;
  a move against the previous one waits `minDwellSeconds`, so a noisy rate cannot make it flip-flop. On a
  rising load the share is set for the rate a few seconds ahead: the fast rate plus `leadPercent` of its lead
  over the sustained one (on a steady ramp that lead is the rise over the ~12 s between the two readings' ages).

The rate: the sustained `rate()` over `window`, and with `fastWindow` also `irate()` over the last two
scrapes; the policy acts on the higher of the two, so load is seen rising within a scrape or two, and seen
falling only once the whole window says so. An unknown rate (Prometheus unreachable, NaN, no data) never
moves the split.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING or __package__:  # apps.controller.burst: the tests and the Pulumi program import the package
    from .policy import Decision, Event, Observation, known_settings
else:  # the image: the files side by side in /app (`policy` alone would be the policy pack here)
    from policy import Decision, Event, Observation, known_settings

NATURAL = "natural"
BURST = "burst"
MODES = (NATURAL, BURST)
SWITCH = "switch"
OVERFLOW = "overflow"
POLICIES = (SWITCH, OVERFLOW)
UP, DOWN = "up", "down"
WINDOW = re.compile(r"^[1-9][0-9]{0,4}(ms|s|m|h)$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,253}$")


@dataclass(frozen=True)
class BurstSettings:
    high_rps: float
    low_rps: float
    min_dwell_s: float = 30.0
    burst_share: int = 100
    """switch: percent of work sent to the burst cluster while bursting. overflow: the most it sends there."""
    window: str = "30s"
    """Window of the sustained rate (`rate()`)."""
    reporter: str = "source"
    destination_service: str = "worker-service.meshburst.svc.cluster.local"
    source_workload: str = "frontend"
    fast_window: str | None = None
    """Window of the fast rate (`irate()`: its last two samples); None reads the sustained rate only."""
    policy: str = SWITCH
    capacity_rps: float | None = None
    """overflow: requests per second the primary serves at most."""
    share_step: int = 5
    """overflow: the share moves in steps of this many percent."""
    headroom_percent: float = 10.0
    """overflow: the primary is given at most this much less than its capacity (room for the reading's lag)."""
    hysteresis_percent: float = 10.0
    """overflow: the share comes down only when the rate is this much below what the share was set for."""
    lead_percent: float = 0.0
    """overflow: percent of the fast rate's lead over the sustained rate added to it (0: no look-ahead)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low_rps) and math.isfinite(self.high_rps) and 0 < self.low_rps < self.high_rps):
            raise ValueError(
                f"settings lowRps={self.low_rps} highRps={self.high_rps}: thresholds must satisfy 0 < low < high"
            )
        if not (math.isfinite(self.min_dwell_s) and self.min_dwell_s >= 0):
            raise ValueError(f"settings minDwellSeconds={self.min_dwell_s}: must be a number of seconds >= 0")
        if not _whole(self.burst_share, 0, 100):
            raise ValueError(f"settings burstShare={self.burst_share!r}: must be a whole number from 0 to 100")
        for key, window in (("window", self.window), ("fastWindow", self.fast_window)):
            if window is not None and not WINDOW.match(window):
                raise ValueError(f"settings {key}={window!r}: must be a Prometheus duration such as 30s or 2m")
        for key, value in (
            ("reporter", self.reporter),
            ("destinationService", self.destination_service),
            ("sourceWorkload", self.source_workload),
        ):
            if not LABEL_VALUE.match(value):
                raise ValueError(f"settings {key}={value[:60]!r}: must be a label value of letters, digits, . _ -")
        if self.policy not in POLICIES:
            raise ValueError(f"settings policy={str(self.policy)[:40]!r}: must be one of {list(POLICIES)}")
        if self.capacity_rps is not None and not (math.isfinite(self.capacity_rps) and self.capacity_rps > 0):
            raise ValueError(f"settings capacityRps={self.capacity_rps}: must be a number of requests/s > 0")
        if not _whole(self.share_step, 1, 100):
            raise ValueError(f"settings shareStep={self.share_step!r}: must be a whole number from 1 to 100")
        if not (math.isfinite(self.headroom_percent) and 0 <= self.headroom_percent < 100):
            raise ValueError(f"settings headroomPercent={self.headroom_percent}: must be from 0 to below 100")
        if not (math.isfinite(self.hysteresis_percent) and 0 <= self.hysteresis_percent <= 100):
            raise ValueError(f"settings hysteresisPercent={self.hysteresis_percent}: must be from 0 to 100")
        if not (math.isfinite(self.lead_percent) and 0 <= self.lead_percent <= 200):
            raise ValueError(f"settings leadPercent={self.lead_percent}: must be from 0 to 200")
        if self.policy == OVERFLOW:
            if self.capacity_rps is None:
                raise ValueError("settings policy='overflow' needs capacityRps, the primary's capacity in requests/s")
            if self.burst_share == 0 or self.burst_share % self.share_step:
                raise ValueError(
                    f"settings burstShare={self.burst_share} shareStep={self.share_step}: with policy 'overflow' "
                    "the most sent to burst must be a positive multiple of the step"
                )

    def share(self, mode: str) -> int:
        """switch: share of the burst subset in a mode."""
        if mode == BURST:
            return self.burst_share
        if mode == NATURAL:
            return 0
        raise ValueError(f"unknown mode {mode!r}")

    def mode_of(self, share: int | None) -> str:
        """switch: the mode a live split is in: burst only when it is exactly the burst share, else natural.

        Read when nothing was persisted, so a new controller continues from what is live instead of flipping it.
        """
        return BURST if share == self.burst_share and self.burst_share > 0 else NATURAL

    @property
    def primary_target_rps(self) -> float:
        """overflow: the most the primary is given, capacity less headroom."""
        assert self.capacity_rps is not None
        return self.capacity_rps * (1 - self.headroom_percent / 100)


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def build_rate_query(
    reporter: str, destination_service: str, source_workload: str, window: str, function: str = "rate"
) -> str:
    """Requests per second from the source workload to the destination service, summed over pods.

    `function`: `rate` (the average over the window) or `irate` (from the window's last two samples).
    """
    labels = f'reporter="{reporter}",destination_service="{destination_service}",source_workload="{source_workload}"'
    return f"sum({function}(istio_requests_total{{{labels}}}[{window}]))"


SETTING_KEYS = {
    "highRps": "high_rps",
    "lowRps": "low_rps",
    "minDwellSeconds": "min_dwell_s",
    "burstShare": "burst_share",
    "window": "window",
    "fastWindow": "fast_window",
    "reporter": "reporter",
    "destinationService": "destination_service",
    "sourceWorkload": "source_workload",
    "policy": "policy",
    "capacityRps": "capacity_rps",
    "shareStep": "share_step",
    "headroomPercent": "headroom_percent",
    "hysteresisPercent": "hysteresis_percent",
    "leadPercent": "lead_percent",
}
NUMBER_KEYS = (
    "highRps",
    "lowRps",
    "minDwellSeconds",
    "capacityRps",
    "headroomPercent",
    "hysteresisPercent",
    "leadPercent",
)
STRING_KEYS = ("window", "reporter", "destinationService", "sourceWorkload", "policy")
NULLABLE_KEYS = ("fastWindow", "capacityRps")
"""null in the intent: off (fastWindow) or not given (capacityRps, needed by `overflow` only)."""


def parse_settings(settings: Mapping[str, Any]) -> BurstSettings:
    """The intent's burst settings; ValueError naming the key, the value and what is allowed."""
    settings = known_settings(settings, SETTING_KEYS)
    missing = [key for key in ("highRps", "lowRps", "destinationService", "sourceWorkload") if key not in settings]
    if missing:
        raise ValueError(f"settings is missing {missing}")
    given = {key: value for key, value in settings.items() if not (key in NULLABLE_KEYS and value is None)}
    for key in NUMBER_KEYS:
        value = given.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"settings {key}={str(value)[:40]!r}: must be a number")
    for key in (*STRING_KEYS, "fastWindow"):
        if key in given and not isinstance(given[key], str):
            raise ValueError(f"settings {key}={str(given[key])[:40]!r}: must be a string")
    return BurstSettings(**{SETTING_KEYS[key]: value for key, value in given.items()})


def _known(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def rate_of(readings: Mapping[str, float | None]) -> float | None:
    """The rate the policy acts on: the higher of the known readings; None when none is known."""
    known = [value for value in readings.values() if value is not None and _known(value)]
    return max(known) if known else None


def rate_ahead(settings: BurstSettings, fast: float | None, sustained: float | None) -> float | None:
    """overflow: the rate to set the share for. The higher reading, plus, while the fast one is above the
    sustained one (a rising load), `leadPercent` of the difference; None when neither is known."""
    rate = rate_of({"fastRate": fast, "rate": sustained})
    if rate is None or not (_known(fast) and _known(sustained)):
        return rate
    assert fast is not None and sustained is not None
    return rate + settings.lead_percent / 100 * max(0.0, fast - sustained)


@dataclass(frozen=True)
class Step:
    """One decision of the pure hysteresis rule."""

    mode: str
    changed_at: float
    switched: bool
    reason: str


def next_mode(settings: BurstSettings, mode: str, changed_at: float, rate: float | None, now: float) -> Step:
    """switch: next mode for a rate reading (None or NaN: unknown) at `now`; `changed_at`: the last switch."""
    if rate is None or not math.isfinite(rate):
        return Step(mode, changed_at, False, "rate unknown: keeping the current split")
    dwelling = now - changed_at < settings.min_dwell_s
    high, low = settings.high_rps, settings.low_rps
    if mode == NATURAL and rate > high:
        if dwelling:
            return Step(mode, changed_at, False, f"rate {rate:.2f} req/s > high {high:g} but dwelling after a switch")
        return Step(BURST, now, True, f"rate {rate:.2f} req/s > high {high:g}")
    if mode == BURST and rate < low:
        if dwelling:
            return Step(mode, changed_at, False, f"rate {rate:.2f} req/s < low {low:g} but dwelling after a switch")
        return Step(NATURAL, now, True, f"rate {rate:.2f} req/s < low {low:g}")
    return Step(mode, changed_at, False, f"rate {rate:.2f} req/s: staying {mode}")


def overflow_share(settings: BurstSettings, rate: float) -> int:
    """overflow: the share (percent) that leaves the primary at most its target at `rate`, rounded up to a step."""
    target = settings.primary_target_rps
    if rate <= target:
        return 0
    step = settings.share_step
    exact = 100 * (1 - target / rate)
    # Rounded up (a share too small overloads the primary); the epsilon keeps 25.000000001 at 25.
    return min(settings.burst_share, step * math.ceil(exact / step - 1e-9))


@dataclass(frozen=True)
class ShareStep:
    """One decision of the overflow rule."""

    share: int
    direction: str | None
    """Direction of the last move (up, down), None before the first."""
    changed_at: float
    moved: bool
    reason: str


def next_share(
    settings: BurstSettings, share: int, direction: str | None, changed_at: float, rate: float | None, now: float
) -> ShareStep:
    """overflow: the next share for a rate reading at `now`, from the share in force and the last move."""
    unchanged = ShareStep(share, direction, changed_at, False, "rate unknown: keeping the current split")
    if rate is None or not math.isfinite(rate):
        return unchanged
    dwelling = now - changed_at < settings.min_dwell_s
    target = settings.primary_target_rps
    up = overflow_share(settings, rate)
    # Coming down is judged at a rate `hysteresisPercent` higher: a rate back to where the share was set does
    # not lower it, so a rate hovering at a step's edge holds the share.
    down = overflow_share(settings, rate * (1 + settings.hysteresis_percent / 100))
    figures = f"rate {rate:.2f} req/s, primary up to {target:g}"
    if up > share:
        if direction == DOWN and dwelling:
            return replace(unchanged, reason=f"{figures}: needs {up} % but dwelling after a move")
        return ShareStep(up, UP, now, True, f"{figures}: {share} -> {up} % to burst")
    if down < share:
        if direction == UP and dwelling:
            return replace(unchanged, reason=f"{figures}: {down} % would do, but dwelling after a move")
        return ShareStep(down, DOWN, now, True, f"{figures}: {share} -> {down} % to burst")
    return replace(unchanged, reason=f"{figures}: staying at {share} %")


def read_state(state: Mapping[str, Any]) -> tuple[str, float]:
    """(mode, changedAt) of a persisted state; ValueError when it is not one this policy wrote."""
    mode, changed_at = state.get("mode"), state.get("changedAt")
    if mode not in MODES:
        raise ValueError(f"state mode={mode!r}: not one of {list(MODES)}")
    if changed_at is None:
        return mode, -math.inf
    if isinstance(changed_at, bool) or not isinstance(changed_at, int | float) or not math.isfinite(changed_at):
        raise ValueError(f"state changedAt={changed_at!r}: not a time")
    return mode, float(changed_at)


def read_overflow_state(
    settings: BurstSettings, state: Mapping[str, Any], live_share: int | None
) -> tuple[int, str | None, float]:
    """(share, direction, changedAt) of a persisted state. A state the switch policy wrote has no share: the
    live one continues (or the mode's), so changing the policy moves nothing by itself."""
    mode, changed_at = read_state(state)
    share, direction = state.get("share"), state.get("direction")
    if share is None:
        share = live_share if live_share is not None else settings.share(mode)
        direction = None
    if not _whole(share, 0, 100):
        raise ValueError(f"state share={share!r}: not a whole percentage")
    if direction not in (None, UP, DOWN):
        raise ValueError(f"state direction={direction!r}: not up, down or null")
    return share, direction, changed_at


def _state(mode: str, changed_at: float) -> dict[str, Any]:
    # JSON has no -inf: a mode taken over from the live route never switched, so it has no time.
    return {"mode": mode, "changedAt": changed_at if math.isfinite(changed_at) else None}


def _overflow_state(share: int, direction: str | None, changed_at: float) -> dict[str, Any]:
    return {**_state(NATURAL if share == 0 else BURST, changed_at), "share": share, "direction": direction}


class BurstPolicy:
    """The burst policy as the core's Policy: settings from the intent, state {mode, changedAt} (switch) or
    {mode, share, direction, changedAt} (overflow), times on the wall clock."""

    name = "burst"
    rate_query = "rate"
    fast_rate_query = "fastRate"

    def parse_settings(self, settings: Mapping[str, Any]) -> BurstSettings:
        return parse_settings(settings)

    def queries(self, settings: BurstSettings) -> Mapping[str, str]:
        # `source`: the frontend's sidecar reports every request, wherever it is served. Burst workers' own
        # (`destination`) reports live in the burst cluster, which this Prometheus does not scrape.
        labels = (settings.reporter, settings.destination_service, settings.source_workload)
        queries = {self.rate_query: build_rate_query(*labels, settings.window)}
        if settings.fast_window is not None:
            queries[self.fast_rate_query] = build_rate_query(*labels, settings.fast_window, "irate")
        return queries

    def target(self, settings: BurstSettings) -> str | None:
        return None

    def initial_state(
        self, settings: BurstSettings, live_share: int | None, initial_share: int, now: float
    ) -> Mapping[str, Any]:
        share = live_share if live_share is not None else initial_share
        if settings.policy == OVERFLOW:
            return _overflow_state(share, None, -math.inf)
        return _state(settings.mode_of(share), -math.inf)

    def decide(self, settings: BurstSettings, state: Mapping[str, Any], observation: Observation) -> Decision:
        if settings.policy == OVERFLOW:
            return self._decide_overflow(settings, state, observation)
        mode, changed_at = read_state(state)
        rate = rate_of(observation.readings)
        step = next_mode(settings, mode, changed_at, rate, observation.now)
        share = settings.share(step.mode)
        events = (Event(previous=mode, phase=step.mode, reason=step.reason),) if step.switched else ()
        verdict = step.reason if rate is not None else "rate unknown (Prometheus gave no reading)"
        return Decision(
            state=_state(step.mode, step.changed_at),
            share=share,
            status={
                "phase": step.mode,
                "mode": step.mode,
                "weight": str(share),
                "lastVerdict": verdict,
                "message": (
                    f"above {settings.high_rps:g} req/s the split goes to burst ({settings.burst_share} %), "
                    f"below {settings.low_rps:g} back to natural"
                ),
            },
            log=(f"switch to {step.mode}: " if step.switched else f"{step.mode}: ")
            + step.reason
            + _figures(observation),
            events=events,
        )

    def _decide_overflow(self, settings: BurstSettings, state: Mapping[str, Any], observation: Observation) -> Decision:
        share, direction, changed_at = read_overflow_state(settings, state, observation.live_share)
        readings = observation.readings
        rate = rate_ahead(settings, readings.get(self.fast_rate_query), readings.get(self.rate_query))
        step = next_share(settings, share, direction, changed_at, rate, observation.now)
        before, after = (NATURAL if share == 0 else BURST), (NATURAL if step.share == 0 else BURST)
        events = (Event(previous=before, phase=after, reason=step.reason),) if before != after else ()
        verdict = step.reason if rate is not None else "rate unknown (Prometheus gave no reading)"
        assert settings.capacity_rps is not None
        return Decision(
            state=_overflow_state(step.share, step.direction, step.changed_at),
            share=step.share,
            status={
                "phase": after,
                "mode": after,
                "weight": str(step.share),
                "lastVerdict": verdict,
                "message": (
                    f"overflow: the primary takes up to {settings.primary_target_rps:g} req/s "
                    f"({100 - settings.headroom_percent:g} % of its {settings.capacity_rps:g} req/s capacity); "
                    f"the rest goes to burst in steps of {settings.share_step} % (at most {settings.burst_share} %)"
                ),
            },
            log=("move: " if step.moved else f"{after}: ") + step.reason + _figures(observation),
            events=events,
        )

    def record(self, metrics: Any, route: str, decision: Decision, observation: Observation) -> None:
        rate = rate_of(observation.readings)
        metrics.burst_rate.labels(route=route).set(math.nan if rate is None else rate)
        mode = decision.state["mode"]
        for name in MODES:
            metrics.burst_mode.labels(route=route, mode=name).set(int(name == mode))
        for event in decision.events:
            metrics.burst_switches.labels(route=route, to=event.phase).inc()

    def record_settings(self, metrics: Any, route: str, settings: BurstSettings) -> None:
        """The bounds in force (the protocol's `record` sees no settings; the core calls this when present).

        overflow: `high` is the rate above which a share goes to burst (the primary's target), `low` the rate
        below which all of it is back (that target less the hysteresis).
        """
        if settings.policy == OVERFLOW:
            high = settings.primary_target_rps
            low = high / (1 + settings.hysteresis_percent / 100)
        else:
            high, low = settings.high_rps, settings.low_rps
        metrics.burst_threshold.labels(route=route, bound="high").set(high)
        metrics.burst_threshold.labels(route=route, bound="low").set(low)


def _figures(observation: Observation) -> str:
    """The readings behind a decision, for the log line: ` (rate 12.30, fastRate 15.10 req/s)`."""
    shown = [f"{name} {value:.2f}" for name, value in observation.readings.items() if value is not None]
    return f" ({', '.join(shown)} req/s)" if len(shown) > 1 else ""
