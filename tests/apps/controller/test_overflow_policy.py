"""The burst policy's `overflow` split, as pure functions (property tests): the share above the primary's
capacity, in steps, rising at once, coming down with hysteresis, never flip-flopping within the dwell."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.controller.burst import (
    BURST,
    DOWN,
    NATURAL,
    UP,
    BurstPolicy,
    BurstSettings,
    next_share,
    overflow_share,
    parse_settings,
    rate_ahead,
    read_overflow_state,
)
from apps.controller.metrics import Metrics
from apps.controller.policy import Observation
from apps.worker.split import burst_settings
from builders.routes import split_weights

POLICY = BurstPolicy()
OVERFLOW = BurstSettings(15, 10, min_dwell_s=15, policy="overflow", capacity_rps=40)
"""Capacity 40 req/s less 10 % headroom: the primary is given up to 36 req/s."""
NOW = 1.8e9

rates = st.floats(min_value=0, max_value=2_000, allow_nan=False)
overflow_settings = st.builds(
    lambda capacity, step, top, headroom, hysteresis, dwell: BurstSettings(
        15,
        10,
        min_dwell_s=dwell,
        policy="overflow",
        capacity_rps=capacity,
        share_step=step,
        burst_share=step * max(1, int(top / step)),
        headroom_percent=headroom,
        hysteresis_percent=hysteresis,
    ),
    st.floats(min_value=5, max_value=200),
    st.sampled_from([1, 2, 4, 5, 10, 20, 25]),
    st.sampled_from([100, 100, 100, 60, 30]),
    st.floats(min_value=0, max_value=50),
    st.floats(min_value=0, max_value=50),
    st.floats(min_value=0, max_value=60),
)


def run_series(
    policy_settings: BurstSettings, series: list[float | None], step_s: float = 2.0, share: int = 0
) -> list[tuple[float, int, str]]:
    """Moves (time, new share, direction) of the pure rule over a series of readings, one every step_s."""
    direction: str | None = None
    changed_at, moves = -math.inf, []
    for i, rate in enumerate(series):
        step = next_share(policy_settings, share, direction, changed_at, rate, i * step_s)
        if step.moved:
            moves.append((i * step_s, step.share, step.direction))
        share, direction, changed_at = step.share, step.direction, step.changed_at
    return moves


def run_policy(
    policy_settings: BurstSettings, series: list[float | None], step_s: float = 2.0
) -> list[tuple[float, int]]:
    """Through the Policy interface, the state round-tripping through JSON as the status object stores it."""
    state = POLICY.initial_state(policy_settings, 0, 0, NOW)
    writes, live = [], 0
    for i, rate in enumerate(series):
        now = NOW + i * step_s
        decision = POLICY.decide(policy_settings, state, Observation(now, live, {"rate": rate}))
        if decision.share != live:
            writes.append((now - NOW, decision.share))
            live = decision.share
        state = json.loads(json.dumps(decision.state))
    return writes


@pytest.mark.parametrize(
    ("rate", "share"),
    [(0, 0), (36, 0), (36.1, 5), (45, 20), (50, 30), (60, 40), (72, 50), (120, 70), (360, 90), (1e6, 100)],
)
def test_the_share_is_what_the_primary_cannot_take_rounded_up_to_a_step(rate: float, share: int):
    assert overflow_share(OVERFLOW, rate) == share


@given(overflow_settings, rates)
@settings(max_examples=300)
def test_the_share_is_a_step_multiple_enough_for_the_primary_and_no_more(policy_settings, rate):
    share = overflow_share(policy_settings, rate)
    step, target = policy_settings.share_step, policy_settings.primary_target_rps
    assert 0 <= share <= policy_settings.burst_share and share % step == 0
    assert sum(split_weights(share)) == 100
    if share < policy_settings.burst_share:
        assert rate * (1 - share / 100) <= target * (1 + 1e-9), "the primary is given at most its target"
    if share > 0:
        assert rate * (1 - (share - step) / 100) > target * (1 - 1e-9), "one step less would overload it"


@given(overflow_settings, rates, rates)
def test_the_share_is_monotone_in_the_rate(policy_settings, a, b):
    low, high = sorted((a, b))
    assert overflow_share(policy_settings, low) <= overflow_share(policy_settings, high)


@given(
    overflow_settings,
    st.integers(min_value=0, max_value=20),
    st.sampled_from([None, UP, DOWN]),
    st.floats(min_value=0, max_value=100),
    rates,
    rates,
)
def test_the_next_share_is_monotone_in_the_rate_from_any_state(policy_settings, steps, direction, since, a, b):
    share = min(policy_settings.burst_share, steps * policy_settings.share_step)
    low, high = sorted((a, b))
    at_low = next_share(policy_settings, share, direction, 0.0, low, since)
    at_high = next_share(policy_settings, share, direction, 0.0, high, since)
    assert at_low.share <= at_high.share


@pytest.mark.parametrize("rate", [None, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("direction", [None, UP, DOWN])
def test_an_unknown_rate_never_moves_the_share(rate, direction):
    step = next_share(OVERFLOW, 40, direction, 5.0, rate, 1000.0)
    assert (step.share, step.direction, step.changed_at, step.moved) == (40, direction, 5.0, False)
    assert step.reason == "rate unknown: keeping the current split"


@given(
    overflow_settings,
    st.lists(st.one_of(st.none(), st.just(math.nan), rates), max_size=200),
    st.floats(min_value=0.5, max_value=5),
)
@settings(max_examples=200)
def test_no_flip_flop_within_the_dwell(policy_settings, series, step_s):
    moves = run_series(policy_settings, series, step_s)
    for (t1, _, d1), (t2, _, d2) in itertools.pairwise(moves):
        if d1 != d2:
            assert t2 - t1 >= policy_settings.min_dwell_s, (moves, policy_settings.min_dwell_s)
    for (_, s1, _), (_, s2, _) in itertools.pairwise([(0.0, 0, None), *moves]):
        assert s2 != s1
    assert all((d == UP) == (s2 > s1) for (_, s1, _), (_, s2, d) in itertools.pairwise([(0.0, 0, None), *moves]))


@given(overflow_settings, st.floats(min_value=1, max_value=5), st.lists(st.floats(0, 1), max_size=100))
def test_a_rate_falling_less_than_the_hysteresis_never_lowers_the_share(policy_settings, times, fractions):
    peak = policy_settings.primary_target_rps * times
    share = overflow_share(policy_settings, peak)
    band = 1 / (1 + policy_settings.hysteresis_percent / 100)
    # After the share was set for `peak`, any rate from peak / (1 + hysteresis) up to peak keeps it.
    series = [peak, *(peak * (band + (1 - band) * f) for f in fractions)]
    moves = run_series(policy_settings, series)
    assert [s for _, s, _ in moves] == ([share] if share else [])


@given(overflow_settings, st.floats(min_value=1.2, max_value=5), st.floats(min_value=0, max_value=0.99))
def test_once_the_dwell_is_over_a_rate_below_the_band_lowers_the_share_to_what_it_needs(policy_settings, times, f):
    peak = policy_settings.primary_target_rps * times
    lower = peak * f / (1 + policy_settings.hysteresis_percent / 100)
    moves = run_series(policy_settings, [peak, lower], step_s=policy_settings.min_dwell_s)
    needed = overflow_share(policy_settings, lower * (1 + policy_settings.hysteresis_percent / 100))
    assert moves[-1][1] == needed
    assert [d for _, _, d in moves] == ([UP, DOWN] if needed < moves[0][1] else [UP])


def test_a_ramp_up_and_down_follows_the_load_in_steps_and_ends_at_zero():
    ramp = [float(r) for r in range(0, 121, 4)] + [float(r) for r in range(120, -1, -4)]
    moves = run_series(OVERFLOW, ramp)
    shares = [s for _, s, _ in moves]
    peak = shares.index(max(shares))
    assert max(shares) == overflow_share(OVERFLOW, 120) == 70
    assert shares[:peak] == sorted(set(shares[:peak])), "up in steps, never down on the way up"
    assert shares[peak:] == sorted(set(shares[peak:]), reverse=True), "down in steps on the way down"
    assert shares[-1] == 0
    assert all(s % 5 == 0 for s in shares)
    # Coming down lags by the hysteresis: 30 % stays until the rate is below 50 / 1.1 = 45.5 req/s.
    [(when_down_to_20, _, _)] = [m for m in moves if m[1] == 20 and m[2] == DOWN]
    assert ramp[int(when_down_to_20 / 2)] < 50 / 1.1


def test_a_move_against_the_last_one_waits_the_dwell_and_one_along_it_does_not():
    # 60 req/s: 40 %. A fall to 40 req/s: 20 % (at 44 req/s, the hysteresis) once the rise is 15 s old; back to
    # 60 req/s at once: held until that fall is 15 s old; then 100 req/s: 65 % at once, a rise after a rise.
    series = [60.0] * 8 + [40.0] + [60.0] * 8 + [100.0]
    moves = run_series(OVERFLOW, series)
    assert moves == [(0.0, 40, UP), (16.0, 20, DOWN), (32.0, 40, UP), (34.0, 65, UP)]
    assert [(s, d) for _, s, d in run_series(replace(OVERFLOW, min_dwell_s=0), [60.0, 40.0, 60.0])] == [
        (40, UP),
        (20, DOWN),
        (40, UP),
    ], "without a dwell the same series flip-flops at every reading"
    assert run_series(OVERFLOW, [60.0, 40.0, 60.0]) == [(0.0, 40, UP)], "within the dwell it holds"


@given(overflow_settings, st.lists(st.one_of(st.none(), rates), max_size=120))
@settings(max_examples=100)
def test_the_policy_interface_with_a_persisted_state_writes_valid_splits(policy_settings, series):
    writes = run_policy(policy_settings, series)
    assert all(0 <= share <= policy_settings.burst_share for _, share in writes)
    assert all(share % policy_settings.share_step == 0 for _, share in writes)
    directions = [b[1] > a[1] for a, b in itertools.pairwise([(0.0, 0), *writes])]
    times = [t for t, _ in writes]
    for (t1, up1), (t2, up2) in itertools.pairwise(zip(times, directions, strict=True)):
        if up1 != up2:
            assert t2 - t1 >= policy_settings.min_dwell_s


LEADING = replace(OVERFLOW, lead_percent=50)
readings = st.one_of(st.none(), st.just(math.nan), rates)


@pytest.mark.parametrize(
    ("fast", "sustained", "ahead", "without_lead"),
    [
        (60.0, 50.0, 65.0, 60.0),  # rising: half the fast reading's lead over the sustained one is added
        (50.0, 60.0, 60.0, 60.0),  # falling: the higher reading, no lead
        (60.0, 60.0, 60.0, 60.0),
        (60.0, None, 60.0, 60.0),  # one reading alone: no lead can be told
        (None, 50.0, 50.0, 50.0),
        (math.nan, 50.0, 50.0, 50.0),
        (None, None, None, None),
    ],
)
def test_the_rate_ahead_adds_half_the_fast_reading_s_lead_while_the_load_rises(fast, sustained, ahead, without_lead):
    assert rate_ahead(LEADING, fast, sustained) == ahead
    assert rate_ahead(OVERFLOW, fast, sustained) == without_lead


@given(st.floats(min_value=0, max_value=200), readings, rates, rates)
def test_the_rate_ahead_is_monotone_in_the_fast_reading_and_never_below_the_readings(lead, sustained, a, b):
    leading = replace(OVERFLOW, lead_percent=lead)
    low, high = sorted((a, b))
    at_low, at_high = rate_ahead(leading, low, sustained), rate_ahead(leading, high, sustained)
    assert at_low is not None and at_high is not None
    assert at_low <= at_high
    assert at_high >= high and (sustained is None or math.isnan(sustained) or at_high >= sustained)


def test_on_a_rising_load_the_share_is_set_ahead_and_without_a_lead_behind():
    # fast 48 and sustained 40 req/s: ahead, 48 + 4 = 52 req/s needs 1 - 36/52 = 31 %, so 35 %; without, 25 %.
    observation = Observation(NOW, 0, {"rate": 40.0, "fastRate": 48.0})
    state = POLICY.initial_state(OVERFLOW, 0, 0, NOW)
    assert POLICY.decide(LEADING, state, observation).share == 35
    assert POLICY.decide(OVERFLOW, state, observation).share == 25
    falling = Observation(NOW, 0, {"rate": 48.0, "fastRate": 40.0})
    assert POLICY.decide(LEADING, state, falling).share == POLICY.decide(OVERFLOW, state, falling).share == 25


def test_leaving_and_reaching_zero_are_phase_changes_and_moves_within_burst_are_not():
    state = POLICY.initial_state(OVERFLOW, 0, 0, NOW)
    assert state == {"mode": NATURAL, "changedAt": None, "share": 0, "direction": None}
    first = POLICY.decide(OVERFLOW, state, Observation(NOW, 0, {"rate": 50.0, "fastRate": 60.0}))
    assert (first.share, first.state) == (40, {"mode": BURST, "changedAt": NOW, "share": 40, "direction": UP})
    [event] = first.events
    assert (event.previous, event.phase) == (NATURAL, BURST)
    assert event.reason == "rate 60.00 req/s, primary up to 36: 0 -> 40 % to burst"
    assert first.status == {
        "phase": BURST,
        "mode": BURST,
        "weight": "40",
        "lastVerdict": "rate 60.00 req/s, primary up to 36: 0 -> 40 % to burst",
        "message": (
            "overflow: the primary takes up to 36 req/s (90 % of its 40 req/s capacity); "
            "the rest goes to burst in steps of 5 % (at most 100 %)"
        ),
    }
    assert (
        first.log == "move: rate 60.00 req/s, primary up to 36: 0 -> 40 % to burst (rate 50.00, fastRate 60.00 req/s)"
    )

    more = POLICY.decide(OVERFLOW, first.state, Observation(NOW + 2, 40, {"rate": 90.0}))
    assert (more.share, more.events) == (60, ())
    held = POLICY.decide(OVERFLOW, more.state, Observation(NOW + 4, 60, {"rate": 1.0}))
    assert (held.share, held.state, held.events) == (60, more.state, ())
    assert held.status["lastVerdict"] == "rate 1.00 req/s, primary up to 36: 0 % would do, but dwelling after a move"
    back = POLICY.decide(OVERFLOW, more.state, Observation(NOW + 17, 60, {"rate": 1.0}))
    assert (back.share, back.state["mode"]) == (0, NATURAL)
    [event] = back.events
    assert (event.previous, event.phase) == (BURST, NATURAL)


def test_an_unknown_rate_through_the_policy_keeps_the_share_and_says_so():
    state = {"mode": BURST, "changedAt": None, "share": 35, "direction": UP}
    decision = POLICY.decide(OVERFLOW, state, Observation(NOW, 35, {"rate": None, "fastRate": None}))
    assert (decision.share, decision.state, decision.events) == (35, state, ())
    assert decision.status["lastVerdict"] == "rate unknown (Prometheus gave no reading)"


def test_the_first_state_continues_from_what_is_live():
    assert POLICY.initial_state(OVERFLOW, 35, 0, 5.0) == {
        "mode": BURST,
        "changedAt": None,
        "share": 35,
        "direction": None,
    }
    assert POLICY.initial_state(OVERFLOW, None, 20, 5.0)["share"] == 20, "nothing live: the intent's share"
    assert POLICY.initial_state(OVERFLOW, 0, 100, 5.0)["mode"] == NATURAL


def test_a_state_the_switch_policy_wrote_continues_from_the_live_share():
    """Changing the policy (Pulumi rewrites the intent) moves nothing by itself."""
    switch_state = {"mode": BURST, "changedAt": NOW - 100}
    assert read_overflow_state(OVERFLOW, switch_state, 100) == (100, None, NOW - 100)
    assert read_overflow_state(OVERFLOW, switch_state, None) == (100, None, NOW - 100)
    assert read_overflow_state(OVERFLOW, {"mode": NATURAL, "changedAt": None}, None) == (0, None, -math.inf)
    decision = POLICY.decide(OVERFLOW, switch_state, Observation(NOW, 100, {"rate": 400.0}))
    assert decision.share == 95, "at 400 req/s the primary takes 36 of them: 91 % rounded up"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"mode": BURST, "share": 150, "direction": UP}, "state share=150: not a whole percentage"),
        ({"mode": BURST, "share": 30, "direction": "sideways"}, "state direction='sideways'"),
        ({"mode": "chaos", "share": 30}, "state mode='chaos'"),
    ],
)
def test_a_state_this_policy_did_not_write_is_refused(state, message):
    with pytest.raises(ValueError, match=message):
        read_overflow_state(OVERFLOW, state, 0)


def test_the_bounds_in_force_are_where_overflow_starts_and_ends():
    metrics = Metrics()
    POLICY.record_settings(metrics, "worker-split", OVERFLOW)

    def bound(name: str) -> float | None:
        labels = {"route": "worker-split", "bound": name}
        return metrics.registry.get_sample_value("meshburst_burst_threshold_rps", labels)

    assert bound("high") == pytest.approx(36.0)
    assert bound("low") == pytest.approx(36.0 / 1.1)


def test_the_settings_pulumi_writes_for_overflow_parse():
    parsed = parse_settings(burst_settings("meshburst", 15, 10, "overflow", 40.0))
    assert (parsed.policy, parsed.capacity_rps, parsed.share_step, parsed.burst_share) == ("overflow", 40.0, 5, 100)
    assert (parsed.headroom_percent, parsed.hysteresis_percent, parsed.fast_window) == (10, 10, "15s")
    assert parsed.lead_percent == 50
    assert parse_settings(burst_settings("meshburst", 15, 10)).policy == "switch"


OVERFLOW_INTENT = burst_settings("meshburst", 15, 10, "overflow", 40.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policy": "spill"}, r"settings policy='spill': must be one of \['switch', 'overflow'\]"),
        ({"policy": 1}, r"settings policy='1': must be a string"),
        ({"capacityRps": None}, r"policy='overflow' needs capacityRps"),
        ({"capacityRps": 0}, r"capacityRps=0: must be a number of requests/s > 0"),
        ({"capacityRps": -5}, r"capacityRps=-5: must be a number of requests/s > 0"),
        ({"capacityRps": "40"}, r"settings capacityRps='40': must be a number"),
        ({"shareStep": 0}, r"shareStep=0: must be a whole number from 1 to 100"),
        ({"shareStep": 2.5}, r"shareStep=2.5: must be a whole number from 1 to 100"),
        ({"shareStep": 7}, r"burstShare=100 shareStep=7: .* a positive multiple of the step"),
        ({"burstShare": 0}, r"burstShare=0 shareStep=5: .* a positive multiple of the step"),
        ({"headroomPercent": 100}, r"headroomPercent=100: must be from 0 to below 100"),
        ({"hysteresisPercent": -1}, r"hysteresisPercent=-1: must be from 0 to 100"),
        ({"leadPercent": 250}, r"leadPercent=250: must be from 0 to 200"),
        ({"leadPercent": None}, r"settings leadPercent='None': must be a number"),
        ({"fastWindow": "15"}, r"fastWindow='15': must be a Prometheus duration"),
        ({"fastWindow": 15}, r"settings fastWindow='15': must be a string"),
    ],
)
def test_bad_overflow_settings_are_refused_naming_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        parse_settings({**OVERFLOW_INTENT, **change})


def test_switch_settings_need_no_capacity_but_a_given_one_is_still_checked():
    switch = burst_settings("meshburst", 15, 10)
    assert parse_settings(switch).capacity_rps is None
    with pytest.raises(ValueError, match=r"capacityRps=0: must be a number of requests/s > 0"):
        parse_settings({**switch, "capacityRps": 0})
