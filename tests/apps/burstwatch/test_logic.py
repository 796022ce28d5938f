"""burstwatch's pure pieces: decisions (property tests), queries, Prometheus answers, the weight patch."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.burstwatch.decide import BURST, NATURAL, Policy, State, decide, split_for_share
from apps.burstwatch.kube import KubeError, Split, read_split, weight_patch
from apps.burstwatch.prom import PrometheusError, build_rate_query, parse_scalar
from apps.worker.split import worker_route
from builders.routes import split_weights, virtual_service_manifest

POLICY = Policy(high_rps=15, low_rps=10, min_dwell_s=30)
START = State(NATURAL, -math.inf)


def run_series(policy: Policy, rates: list[float | None], step_s: float = 2.0, start: State = START):
    state, switches = start, []
    for i, rate in enumerate(rates):
        decision = decide(policy, state, rate, i * step_s)
        if decision.switched:
            switches.append((i * step_s, decision.state.mode))
        state = decision.state
    return state, switches


def test_goes_to_burst_above_high_and_back_below_low():
    state, switches = run_series(Policy(15, 10, min_dwell_s=0), [5, 12, 16, 14, 11, 9, 12])
    assert switches == [(4.0, BURST), (10.0, NATURAL)]
    assert state.mode == NATURAL


def test_exactly_at_a_threshold_does_not_switch():
    assert run_series(POLICY, [15.0])[1] == []
    assert run_series(POLICY, [10.0], start=State(BURST, -math.inf))[1] == []


@given(
    st.lists(st.floats(min_value=10, max_value=15, allow_nan=False), max_size=200), st.sampled_from([NATURAL, BURST])
)
def test_no_flapping_for_any_rate_series_between_the_thresholds(rates, mode):
    _, switches = run_series(Policy(15, 10, min_dwell_s=0), rates, start=State(mode, -math.inf))
    assert switches == []


@given(
    st.lists(st.one_of(st.none(), st.just(math.nan), st.floats(min_value=0, max_value=100)), max_size=300),
    st.floats(min_value=0, max_value=60),
    st.floats(min_value=0.5, max_value=5),
)
@settings(max_examples=200)
def test_dwell_time_is_respected_between_any_two_switches(rates, dwell, step):
    _, switches = run_series(Policy(15, 10, min_dwell_s=dwell), rates, step_s=step)
    times = [t for t, _ in switches]
    assert all(b - a >= dwell for a, b in itertools.pairwise(times))
    assert all(a != b for (_, a), (_, b) in itertools.pairwise(switches)), "switches alternate"


@given(st.integers(min_value=0, max_value=100), st.sampled_from([NATURAL, BURST]))
def test_weights_always_sum_to_100(share, mode):
    weights = Policy(15, 10, burst_share=share).weights(mode)
    assert sum(weights) == 100 and min(weights) >= 0


@pytest.mark.parametrize("rate", [None, math.nan, math.inf])
def test_an_unknown_rate_never_switches(rate):
    decision = decide(POLICY, START, rate, 100.0)
    assert (decision.switched, decision.state, decision.reason) == (
        False,
        START,
        "rate unknown: keeping the current split",
    )


def test_mode_of_the_live_split_is_read_not_assumed():
    assert POLICY.mode_of((0, 100)) == BURST
    assert POLICY.mode_of((100, 0)) == NATURAL
    assert POLICY.mode_of((70, 30)) == NATURAL
    assert Policy(15, 10, burst_share=50).mode_of((50, 50)) == BURST


@pytest.mark.parametrize(("low", "high"), [(10, 10), (20, 10), (0, 5), (-1, 5), (math.nan, 5)])
def test_policy_refuses_bad_thresholds(low, high):
    with pytest.raises(ValueError, match="0 < low < high"):
        Policy(high, low)


@pytest.mark.parametrize("share", [-1, 101, 50.5, True])
def test_bad_burst_share_is_refused(share):
    with pytest.raises(ValueError, match="burst share must be a whole number from 0 to 100"):
        split_for_share(share)


def test_the_controller_splits_exactly_as_pulumi_does():
    # The controller image carries its own copy (it cannot import components/); the two must agree.
    assert [split_for_share(share) for share in range(101)] == [split_weights(share) for share in range(101)]


def test_query_uses_istio_label_names():
    assert build_rate_query("source", "worker-service.meshburst.svc.cluster.local", "frontend", "30s") == (
        'sum(rate(istio_requests_total{reporter="source",'
        'destination_service="worker-service.meshburst.svc.cluster.local",source_workload="frontend"}[30s]))'
    )


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, "empty"),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}},
            "nan",
        ),
        ({"status": "error", "error": "parse error"}, "bad_response"),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "bad_response"),
        ("not json object", "bad_response"),
    ],
)
def test_prometheus_answers_that_are_not_a_rate(body, kind):
    with pytest.raises(PrometheusError) as caught:
        parse_scalar(body)
    assert caught.value.kind == kind


def test_prometheus_scalar():
    body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "17.25"]}]}}
    assert parse_scalar(body) == 17.25


def deployed_worker_route(burst_weight: int = 0) -> dict:
    """The worker VirtualService exactly as the Pulumi program renders it."""
    return virtual_service_manifest(worker_route("meshburst", burst_weight))


def test_split_is_found_in_the_deployed_virtual_service():
    assert read_split(deployed_worker_route(30), ("primary", "burst")) == Split(0, (0, 1), (70, 30))


def test_split_missing_is_a_clear_error():
    vs = deployed_worker_route()
    vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = "other"
    with pytest.raises(KubeError, match=r"no HTTP rule routing to subsets \['primary', 'burst'\]"):
        read_split(vs, ("primary", "burst"))


def test_patch_writes_only_the_two_weights_and_guards_the_routes():
    assert weight_patch(Split(0, (0, 1), (100, 0)), ("primary", "burst"), (0, 100)) == [
        {"op": "test", "path": "/spec/http/0/route/0/destination/subset", "value": "primary"},
        {"op": "test", "path": "/spec/http/0/route/1/destination/subset", "value": "burst"},
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0},
        {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 100},
    ]


@pytest.mark.parametrize("weights", [(50, 60), (-10, 110), (0, 0)])
def test_patch_never_writes_weights_that_do_not_sum_to_100(weights):
    with pytest.raises(ValueError, match="must be non-negative and sum to 100"):
        weight_patch(Split(0, (0, 1), (100, 0)), ("primary", "burst"), weights)
