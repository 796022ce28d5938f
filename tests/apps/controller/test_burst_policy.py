"""The burst policy's decisions, as pure functions (property tests): hysteresis, dwell, unknown rates, settings."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.controller.burst import (
    BURST,
    NATURAL,
    BurstPolicy,
    BurstSettings,
    build_rate_query,
    next_mode,
    parse_settings,
    read_state,
)
from apps.controller.policy import Observation
from builders.routes import split_weights

SETTINGS = BurstSettings(high_rps=15, low_rps=10, min_dwell_s=30)
POLICY = BurstPolicy()
INTENT_SETTINGS = {
    "highRps": 15,
    "lowRps": 10,
    "minDwellSeconds": 30,
    "burstShare": 100,
    "window": "30s",
    "reporter": "source",
    "destinationService": "worker-service.meshburst.svc.cluster.local",
    "sourceWorkload": "frontend",
}


def run_series(
    policy_settings: BurstSettings, rates: list[float | None], step_s: float = 2.0, mode: str = NATURAL
) -> tuple[str, list[tuple[float, str]]]:
    changed_at, switches = -math.inf, []
    for i, rate in enumerate(rates):
        step = next_mode(policy_settings, mode, changed_at, rate, i * step_s)
        if step.switched:
            switches.append((i * step_s, step.mode))
        mode, changed_at = step.mode, step.changed_at
    return mode, switches


def run_policy(
    policy_settings: BurstSettings, rates: list[float | None], step_s: float = 2.0, start: float = 1.8e9
) -> list[tuple[float, int]]:
    """Through the Policy interface, the state round-tripping through JSON as the status object stores it."""
    state = POLICY.initial_state(policy_settings, 0, 0, start)
    writes, live = [], 0
    for i, rate in enumerate(rates):
        now = start + i * step_s
        decision = POLICY.decide(policy_settings, state, Observation(now, live, {"rate": rate}))
        if decision.share != live:
            writes.append((now - start, decision.share))
            live = decision.share
        state = json.loads(json.dumps(decision.state))
    return writes


def test_goes_to_burst_above_high_and_back_below_low():
    mode, switches = run_series(BurstSettings(15, 10, min_dwell_s=0), [5, 12, 16, 14, 11, 9, 12])
    assert switches == [(4.0, BURST), (10.0, NATURAL)]
    assert mode == NATURAL


def test_exactly_at_a_threshold_does_not_switch():
    assert run_series(SETTINGS, [15.0])[1] == []
    assert run_series(SETTINGS, [10.0], mode=BURST)[1] == []


@given(
    st.lists(st.floats(min_value=10, max_value=15, allow_nan=False), max_size=200), st.sampled_from([NATURAL, BURST])
)
def test_no_flapping_for_any_rate_series_between_the_thresholds(rates, mode):
    _, switches = run_series(BurstSettings(15, 10, min_dwell_s=0), rates, mode=mode)
    assert switches == []


@given(
    st.lists(st.one_of(st.none(), st.just(math.nan), st.floats(min_value=0, max_value=100)), max_size=300),
    st.floats(min_value=0, max_value=60),
    st.floats(min_value=0.5, max_value=5),
)
@settings(max_examples=200)
def test_dwell_time_is_respected_between_any_two_switches(rates, dwell, step):
    _, switches = run_series(BurstSettings(15, 10, min_dwell_s=dwell), rates, step_s=step)
    times = [t for t, _ in switches]
    assert all(b - a >= dwell for a, b in itertools.pairwise(times))
    assert all(a != b for (_, a), (_, b) in itertools.pairwise(switches)), "switches alternate"


@given(
    st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=100)), max_size=150),
    st.floats(min_value=0, max_value=20),
)
@settings(max_examples=100)
def test_the_policy_interface_with_a_persisted_state_respects_dwell_and_hysteresis(rates, dwell):
    writes = run_policy(BurstSettings(15, 10, min_dwell_s=dwell), rates)
    assert all(b[0] - a[0] >= dwell for a, b in itertools.pairwise(writes))
    assert [share for _, share in writes] == [100, 0] * (len(writes) // 2) + [100] * (len(writes) % 2)


@given(st.integers(min_value=0, max_value=100), st.sampled_from([NATURAL, BURST]))
def test_shares_are_always_a_valid_split(share, mode):
    value = BurstSettings(15, 10, burst_share=share).share(mode)
    assert value == (share if mode == BURST else 0)
    assert sum(split_weights(value)) == 100


@pytest.mark.parametrize("rate", [None, math.nan, math.inf])
def test_an_unknown_rate_never_switches(rate):
    step = next_mode(SETTINGS, NATURAL, -math.inf, rate, 100.0)
    assert (step.mode, step.changed_at, step.switched, step.reason) == (
        NATURAL,
        -math.inf,
        False,
        "rate unknown: keeping the current split",
    )


def test_an_unknown_rate_through_the_policy_keeps_the_share_and_says_so():
    state = {"mode": BURST, "changedAt": None}
    decision = POLICY.decide(SETTINGS, state, Observation(1.8e9, 100, {"rate": None}))
    assert (decision.share, decision.state, decision.events) == (100, state, ())
    assert decision.status["lastVerdict"] == "rate unknown (Prometheus gave no reading)"
    assert decision.log == "burst: rate unknown: keeping the current split"


def test_a_switch_is_one_event_with_the_figures():
    decision = POLICY.decide(SETTINGS, {"mode": NATURAL, "changedAt": None}, Observation(1.8e9, 0, {"rate": 40.25}))
    assert decision.share == 100
    assert decision.state == {"mode": BURST, "changedAt": 1.8e9}
    [event] = decision.events
    assert (event.previous, event.phase, event.reason) == (NATURAL, BURST, "rate 40.25 req/s > high 15")
    assert decision.status == {
        "phase": BURST,
        "mode": BURST,
        "weight": "100",
        "lastVerdict": "rate 40.25 req/s > high 15",
        "message": "above 15 req/s the split goes to burst (100 %), below 10 back to natural",
    }
    assert decision.log == "switch to burst: rate 40.25 req/s > high 15"


def test_dwell_is_counted_from_the_persisted_wall_clock_time():
    state = {"mode": BURST, "changedAt": 1000.0}
    held = POLICY.decide(SETTINGS, state, Observation(1029.0, 100, {"rate": 1.0}))
    assert (held.share, held.state, held.events) == (100, state, ())
    assert held.status["lastVerdict"] == "rate 1.00 req/s < low 10 but dwelling after a switch"
    back = POLICY.decide(SETTINGS, state, Observation(1030.0, 100, {"rate": 1.0}))
    assert (back.share, back.state) == (0, {"mode": NATURAL, "changedAt": 1030.0})


def test_the_first_state_continues_from_what_is_live():
    assert POLICY.initial_state(SETTINGS, 100, 0, 5.0) == {"mode": BURST, "changedAt": None}
    assert POLICY.initial_state(SETTINGS, 0, 100, 5.0) == {"mode": NATURAL, "changedAt": None}
    assert POLICY.initial_state(SETTINGS, 30, 0, 5.0) == {"mode": NATURAL, "changedAt": None}
    assert POLICY.initial_state(SETTINGS, None, 100, 5.0) == {"mode": BURST, "changedAt": None}, "nothing live"
    half = BurstSettings(15, 10, burst_share=50)
    assert POLICY.initial_state(half, 50, 0, 5.0) == {"mode": BURST, "changedAt": None}


@pytest.mark.parametrize(
    ("state", "message"),
    [({"mode": "chaos"}, "state mode='chaos'"), ({"mode": BURST, "changedAt": "noon"}, "state changedAt='noon'")],
)
def test_a_state_this_policy_did_not_write_is_refused(state, message):
    with pytest.raises(ValueError, match=message):
        read_state(state)


def test_the_settings_pulumi_writes_are_the_ones_it_reads():
    assert parse_settings(INTENT_SETTINGS) == BurstSettings(high_rps=15, low_rps=10, min_dwell_s=30)


def test_the_settings_the_worker_split_component_writes_parse():
    from apps.worker.split import burst_settings

    parsed = parse_settings(burst_settings("meshburst", 25, 12.5))
    assert (parsed.high_rps, parsed.low_rps, parsed.destination_service) == (
        25,
        12.5,
        "worker-service.meshburst.svc.cluster.local",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lowRps": 15}, r"lowRps=15 highRps=15: thresholds must satisfy 0 < low < high"),
        ({"lowRps": 0}, r"0 < low < high"),
        ({"highRps": "fast"}, r"settings highRps='fast': must be a number"),
        ({"highRps": True}, r"settings highRps='True': must be a number"),
        ({"minDwellSeconds": -1}, r"minDwellSeconds=-1: must be a number of seconds >= 0"),
        ({"burstShare": 101}, r"burstShare=101: must be a whole number from 0 to 100"),
        ({"burstShare": 50.5}, r"burstShare=50.5: must be a whole number from 0 to 100"),
        ({"window": "30"}, r"window='30': must be a Prometheus duration"),
        ({"sourceWorkload": 'x"}) or vector(1e9'}, r"sourceWorkload=.*must be a label value"),
        ({"typo": 1}, r"unknown keys \['typo'\]"),
        ({"window": 30}, r"settings window='30': must be a string"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        parse_settings({**INTENT_SETTINGS, **change})


def test_missing_settings_are_named():
    with pytest.raises(ValueError, match=r"settings is missing \['highRps', 'destinationService'\]"):
        parse_settings({k: v for k, v in INTENT_SETTINGS.items() if k not in ("highRps", "destinationService")})


def test_query_uses_istio_label_names():
    assert build_rate_query("source", "worker-service.meshburst.svc.cluster.local", "frontend", "30s") == (
        'sum(rate(istio_requests_total{reporter="source",'
        'destination_service="worker-service.meshburst.svc.cluster.local",source_workload="frontend"}[30s]))'
    )
    assert POLICY.queries(parse_settings(INTENT_SETTINGS)) == {
        "rate": build_rate_query("source", "worker-service.meshburst.svc.cluster.local", "frontend", "30s")
    }
    assert POLICY.target(SETTINGS) is None


SHIPPED = parse_settings({**INTENT_SETTINGS, "fastWindow": "15s", "minDwellSeconds": 15})


def test_with_a_fast_window_the_policy_reads_irate_too_and_acts_on_the_higher_reading():
    labels = ("source", "worker-service.meshburst.svc.cluster.local", "frontend")
    assert POLICY.queries(SHIPPED) == {
        "rate": build_rate_query(*labels, "30s"),
        "fastRate": build_rate_query(*labels, "15s", "irate"),
    }
    assert POLICY.queries(SHIPPED)["fastRate"].startswith("sum(irate(istio_requests_total{")
    natural = {"mode": NATURAL, "changedAt": None}
    rising = POLICY.decide(SHIPPED, natural, Observation(1.8e9, 0, {"rate": 8.0, "fastRate": 30.0}))
    assert (rising.share, rising.status["lastVerdict"]) == (100, "rate 30.00 req/s > high 15")
    assert rising.log == "switch to burst: rate 30.00 req/s > high 15 (rate 8.00, fastRate 30.00 req/s)"
    burst = {"mode": BURST, "changedAt": None}
    falling = POLICY.decide(SHIPPED, burst, Observation(1.8e9, 100, {"rate": 20.0, "fastRate": 5.0}))
    assert falling.share == 100, "back only once the sustained rate is below low too"
    fallen = POLICY.decide(SHIPPED, burst, Observation(1.8e9, 100, {"rate": 9.0, "fastRate": 5.0}))
    assert fallen.share == 0


@pytest.mark.parametrize(
    ("readings", "share"),
    [
        ({"rate": None, "fastRate": 30.0}, 100),  # one reading known: it decides
        ({"rate": 30.0, "fastRate": None}, 100),
        ({"rate": math.nan, "fastRate": math.nan}, 0),  # none: no switch
        ({"rate": None, "fastRate": None}, 0),
    ],
)
def test_a_missing_reading_leaves_the_decision_to_the_other(readings, share):
    assert POLICY.decide(SHIPPED, {"mode": NATURAL, "changedAt": None}, Observation(1.8e9, 0, readings)).share == share


def test_a_null_fast_window_reads_the_sustained_rate_only():
    settings = parse_settings({**INTENT_SETTINGS, "fastWindow": None})
    assert settings.fast_window is None
    assert list(POLICY.queries(settings)) == ["rate"]


def test_the_shipped_windows_are_the_ones_the_benchmark_measured():
    """README "Cloud burst, automatic" and bench/burst_end_to_end.py: irate over 15 s, rate over 30 s, 15 s dwell."""
    from apps.worker.split import burst_settings

    shipped = parse_settings(burst_settings("meshburst", 15, 10))
    assert (shipped.fast_window, shipped.window, shipped.min_dwell_s) == ("15s", "30s", 15)
