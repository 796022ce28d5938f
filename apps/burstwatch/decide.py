"""burstwatch's decisions, as pure functions: what split to run given the rate Prometheus reports.

Two modes: `natural` (all work in the primary, by default 100/0) and `burst` (by default 0/100).
Hysteresis: switch to burst only above `high_rps`, back only below `low_rps`; a rate in between keeps
the current mode. Dwell: after a switch, no other switch for `min_dwell_s`, so a noisy rate cannot flap.
An unknown rate (Prometheus unreachable, NaN, no data) never causes a switch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NATURAL = "natural"
BURST = "burst"


def split_for_share(burst_share: int) -> tuple[int, int]:
    """(primary, burst) weights for a burst share in percent; always non-negative and summing to 100."""
    if isinstance(burst_share, bool) or not isinstance(burst_share, int) or not 0 <= burst_share <= 100:
        raise ValueError(f"burst share must be a whole number from 0 to 100, got {burst_share!r}")
    return 100 - burst_share, burst_share


@dataclass(frozen=True)
class Policy:
    high_rps: float
    low_rps: float
    min_dwell_s: float = 30.0
    burst_share: int = 100
    """Percent of work sent to the burst cluster while bursting."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low_rps) and math.isfinite(self.high_rps) and 0 < self.low_rps < self.high_rps):
            raise ValueError(f"thresholds must satisfy 0 < low < high, got low={self.low_rps} high={self.high_rps}")
        if not (math.isfinite(self.min_dwell_s) and self.min_dwell_s >= 0):
            raise ValueError(f"min dwell must be a non-negative number of seconds, got {self.min_dwell_s}")
        split_for_share(self.burst_share)

    def weights(self, mode: str) -> tuple[int, int]:
        """(primary, burst) weights of a mode."""
        if mode == BURST:
            return split_for_share(self.burst_share)
        if mode == NATURAL:
            return split_for_share(0)
        raise ValueError(f"unknown mode {mode!r}")

    def mode_of(self, weights: tuple[int, int]) -> str:
        """The mode a live split is in: burst only when it is exactly the burst split, else natural.

        Read at start-up, so a restarted controller continues from what is live instead of flipping it.
        """
        return BURST if tuple(weights) == self.weights(BURST) and self.burst_share > 0 else NATURAL


@dataclass(frozen=True)
class State:
    mode: str
    changed_at: float
    """Monotonic time of the last switch (minus infinity when none happened)."""


@dataclass(frozen=True)
class Decision:
    state: State
    switched: bool
    reason: str


def decide(policy: Policy, state: State, rate: float | None, now: float) -> Decision:
    """Next state for a rate reading (None or NaN: unknown) at time `now`."""
    if rate is None or not math.isfinite(rate):
        return Decision(state, False, "rate unknown: keeping the current split")
    dwelling = now - state.changed_at < policy.min_dwell_s
    if state.mode == NATURAL and rate > policy.high_rps:
        if dwelling:
            return Decision(state, False, f"rate {rate:.2f} > {policy.high_rps:g} but dwelling after the last switch")
        return Decision(State(BURST, now), True, f"rate {rate:.2f} req/s > high {policy.high_rps:g}")
    if state.mode == BURST and rate < policy.low_rps:
        if dwelling:
            return Decision(state, False, f"rate {rate:.2f} < {policy.low_rps:g} but dwelling after the last switch")
        return Decision(State(NATURAL, now), True, f"rate {rate:.2f} req/s < low {policy.low_rps:g}")
    return Decision(state, False, f"rate {rate:.2f} req/s: staying {state.mode}")
