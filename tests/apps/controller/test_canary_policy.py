"""The canary policy's pure pieces: settings, queries, every phase, and properties over random rollouts."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.controller.canary import (
    PHASES,
    CanaryDecision,
    CanaryPolicy,
    CanarySettings,
    analyse,
    parse_settings,
    read_state,
)
from apps.controller.metrics import Metrics
from apps.controller.policy import Decision, Observation

POLICY = CanaryPolicy()
INTENT: dict[str, Any] = {
    "revision": "rev-b",
    "stableRevision": "rev-a",
    "canaryImage": "registry.example/shark:v2.1",
    "target": "shark-v2",
    "steps": [5, 10, 25, 50, 100],
    "intervalSeconds": 60,
    "maxErrorPercent": 1.0,
    "maxP99Ms": 500.0,
    "maxRegressionPercent": None,
    "minRequests": 20,
    "progressDeadlineSeconds": 600,
    "onDeadline": "hold",
    "failureLimit": 2,
    "metrics": {"namespace": "apps", "app": "shark", "stableVersion": "v1", "canaryVersion": "v2"},
}
SETTINGS = parse_settings(INTENT)
HEALTHY = {"requests": 300.0, "errorPercent": 0.2, "p99Ms": 40.0}
MISSING = {"requests": None, "errorPercent": None, "p99Ms": None}


def with_settings(**changes: Any) -> CanarySettings:
    return parse_settings({**INTENT, **changes})


def readings(**changes: float | None) -> dict[str, float | None]:
    return {**HEALTHY, **changes}


@dataclass
class Rollout:
    """The core's loop around the policy, by hand: state through JSON (as persisted), the share applied after
    each decision (unless told not to), and the time each share was first seen live."""

    config: CanarySettings = SETTINGS
    live: int | None = 0
    now: float = 1_000_000.0
    state: dict[str, Any] = field(default_factory=dict)
    decisions: list[CanaryDecision] = field(default_factory=list)

    def __post_init__(self) -> None:
        start = replace(self.config, revision="rev-a")  # what ran before: rev-b is new
        self.state = json.loads(json.dumps(POLICY.initial_state(start, self.live, 20, self.now)))

    def tick(
        self, values: dict[str, float | None] | None = None, dt: float = 5.0, ready: bool | None = True, apply=True
    ) -> CanaryDecision:
        self.now += dt
        observation = Observation(self.now, self.live, values if values is not None else HEALTHY, ready)
        decision = POLICY.decide(self.config, json.loads(json.dumps(self.state)), observation)
        self.state = json.loads(json.dumps(decision.state))
        if apply:
            self.live = decision.share
        self.decisions.append(decision)
        return decision

    def until(self, phase: str, values: dict[str, float | None] | None = None, dt: float = 5.0, limit: int = 500):
        for _ in range(limit):
            decision = self.tick(values, dt)
            if decision.state["phase"] == phase:
                return decision
        raise AssertionError(f"no {phase} after {limit} ticks: {self.state}")

    @property
    def phase(self) -> str:
        return self.state["phase"]


def progressing(config: CanarySettings = SETTINGS) -> Rollout:
    """A rollout of rev-b that has just started step 1 (5 %)."""
    rollout = Rollout(config)
    assert rollout.tick().state["phase"] == "Waiting"
    assert rollout.tick().state["phase"] == "Progressing"
    return rollout


# -- settings ---------------------------------------------------------------------------------------------------


def test_settings_of_the_contract_parse_to_their_values():
    expected = CanarySettings(
        revision="rev-b", stable_revision="rev-a", canary_image="registry.example/shark:v2.1", target="shark-v2"
    )
    assert parse_settings(INTENT) == expected
    assert SETTINGS.window == "60s"
    assert with_settings(intervalSeconds=2.5).window == "2500ms"


def test_settings_left_out_take_the_documented_defaults():
    minimal = parse_settings({"revision": "r2", "stableRevision": "r1", "canaryImage": "img"})
    assert (minimal.steps, minimal.interval_s, minimal.max_error_percent, minimal.max_p99_ms) == (
        (5, 10, 25, 50, 100),
        60,
        1.0,
        500.0,
    )
    assert (minimal.min_requests, minimal.progress_deadline_s, minimal.on_deadline, minimal.failure_limit) == (
        20,
        600,
        "hold",
        2,
    )
    assert minimal.target == "shark-v2" and minimal.max_regression_percent is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("steps", [5, 10, 50], "settings steps=[5, 10, 50]: expected a list of whole percentages from 1 to 100"),
        ("steps", [10, 5, 100], "strictly ascending, ending at 100"),
        ("steps", [0, 50, 100], "settings steps=[0, 50, 100]"),
        ("steps", [50, 50, 100], "strictly ascending"),
        ("steps", [True, 100], "settings steps=[True, 100]"),
        ("steps", [], "settings steps=[]"),
        ("intervalSeconds", 0, "settings intervalSeconds=0: expected a number greater than 0"),
        ("intervalSeconds", "60", "settings intervalSeconds='60': expected a number"),
        ("maxErrorPercent", 101, "settings maxErrorPercent=101: expected a number at least 0 and at most 100"),
        ("maxP99Ms", -1, "settings maxP99Ms=-1"),
        ("maxRegressionPercent", -5, "settings maxRegressionPercent=-5: expected null (off) or a number"),
        ("minRequests", 2.5, "settings minRequests=2.5: expected a whole number from 1"),
        (
            "progressDeadlineSeconds",
            30,
            "settings progressDeadlineSeconds=30: expected at least intervalSeconds (60)",
        ),
        ("onDeadline", "pause", "settings onDeadline='pause': expected one of ['hold', 'rollback']"),
        ("failureLimit", 0, "settings failureLimit=0: expected a whole number from 1 to 1000"),
        ("revision", "", "settings revision='': expected a non-empty string"),
        ("canaryImage", None, "settings canaryImage=None: expected a non-empty string"),
        ("target", "shark v2", "settings target='shark v2': expected a Kubernetes name"),
    ],
)
def test_bad_settings_are_refused_naming_key_value_and_what_is_allowed(key: str, value: object, message: str):
    with pytest.raises(ValueError) as raised:
        parse_settings({**INTENT, key: value})
    assert message in str(raised.value)


def test_bad_metric_labels_and_unknown_keys_are_refused():
    with pytest.raises(ValueError, match=r"settings metrics.app='sh\"ark': expected a Kubernetes name"):
        parse_settings({**INTENT, "metrics": {**INTENT["metrics"], "app": 'sh"ark'}})
    with pytest.raises(ValueError, match=r"metrics.canaryVersion='v1': expected a version other than"):
        parse_settings({**INTENT, "metrics": {**INTENT["metrics"], "canaryVersion": "v1"}})
    with pytest.raises(ValueError, match=r"unknown keys \['maxErrorPercents'\] \(allowed: \["):
        parse_settings({**INTENT, "maxErrorPercents": 1})
    with pytest.raises(ValueError, match=r"settings metrics=\['apps'\]: expected an object with \['namespace'"):
        parse_settings({**INTENT, "metrics": ["apps"]})
    with pytest.raises(ValueError, match=r"settings metrics has unknown keys \['service'\]"):
        parse_settings({**INTENT, "metrics": {**INTENT["metrics"], "service": "shark"}})
    with pytest.raises(ValueError, match=r"settings must be a JSON object, got list"):
        POLICY.parse_settings([INTENT])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"settings revision=None: expected a non-empty string"):
        parse_settings({key: value for key, value in INTENT.items() if key != "revision"})


# -- queries ----------------------------------------------------------------------------------------------------

V2 = 'reporter="destination",destination_workload_namespace="apps",destination_app="shark",destination_version="v2"'
V1 = V2.replace('"v2"', '"v1"')


def test_queries_read_v2_from_its_own_sidecars_over_one_interval():
    assert POLICY.queries(SETTINGS) == {
        "requests": f"sum(increase(istio_requests_total{{{V2}}}[60s])) or vector(0)",
        "errorPercent": (
            f'100 * (sum(rate(istio_requests_total{{{V2},response_code=~"5.."}}[60s])) or vector(0))'
            f" / clamp_min(sum(rate(istio_requests_total{{{V2}}}[60s])) or vector(0), 1e-9)"
        ),
        "p99Ms": (
            "(histogram_quantile(0.99, sum by (le) "
            f"(rate(istio_request_duration_milliseconds_bucket{{{V2}}}[60s]))) >= 0) or vector(0)"
        ),
    }


def test_relative_analysis_adds_the_same_queries_for_v1():
    queries = POLICY.queries(with_settings(maxRegressionPercent=20))
    assert sorted(queries) == [
        "errorPercent",
        "p99Ms",
        "requests",
        "stableErrorPercent",
        "stableP99Ms",
        "stableRequests",
    ]
    assert queries["stableRequests"] == f"sum(increase(istio_requests_total{{{V1}}}[60s])) or vector(0)"
    assert queries["stableP99Ms"] == queries["p99Ms"].replace(V2, V1)


def test_target_is_the_v2_deployment():
    assert POLICY.target(SETTINGS) == "shark-v2"
    assert POLICY.name == "canary"


# -- analysis ---------------------------------------------------------------------------------------------------


def test_error_rate_over_the_limit_fails_with_the_figures():
    result = analyse(SETTINGS, readings(errorPercent=7.3), 25)
    assert (result.result, result.text) == ("fail", "fail: error rate 7.3 % > 1 % at step 25")


def test_p99_over_the_limit_fails_and_both_failures_are_named():
    assert analyse(SETTINGS, readings(p99Ms=949.99999), 10).text == "fail: p99 950 ms > 500 ms at step 10"
    both = analyse(SETTINGS, readings(errorPercent=2, p99Ms=600), 50).text
    assert both == "fail: error rate 2 % > 1 %, p99 600 ms > 500 ms at step 50"


def test_a_window_at_the_limits_passes():
    result = analyse(SETTINGS, readings(errorPercent=1.0, p99Ms=500.0, requests=20), 5)
    assert (result.result, result.text) == (
        "pass",
        "pass: error rate 1 % <= 1 %, p99 500 ms <= 500 ms, 20 requests at step 5",
    )


def test_fewer_requests_than_min_is_no_verdict_even_with_every_request_failing():
    result = analyse(SETTINGS, readings(requests=19.6, errorPercent=100, p99Ms=9000), 25)
    assert (result.result, result.text) == ("wait", "wait: 19.6 requests to v2 in 60 s < minRequests 20 at step 25")


def test_relative_analysis_fails_v2_worse_than_v1_by_more_than_the_margin():
    relative = with_settings(maxRegressionPercent=50)
    v1 = {"stableRequests": 500.0, "stableErrorPercent": 0.1, "stableP99Ms": 100.0}
    slower = analyse(relative, {**readings(p99Ms=151), **v1}, 25)
    assert slower.text == "fail: p99 151 ms > v1 100 ms + 50 % at step 25"
    within = analyse(relative, {**readings(p99Ms=150, errorPercent=0.6), **v1}, 25)
    assert within.result == "pass"
    assert "error rate 0.6 % <= v1 0.1 % + 50 points" in within.text
    errors = analyse(
        with_settings(maxRegressionPercent=0.2, maxErrorPercent=5), {**readings(errorPercent=0.4), **v1}, 5
    )
    assert errors.text == "fail: error rate 0.4 % > v1 0.1 % + 0.2 points at step 5"


def test_the_status_of_a_step_names_its_limits():
    rollout = Rollout(with_settings(maxRegressionPercent=25))
    both = {**HEALTHY, "stableRequests": 900.0, "stableErrorPercent": 0.0, "stableP99Ms": 30.0}
    assert rollout.tick(both).state["phase"] == "Waiting"
    assert rollout.tick(HEALTHY).state["phase"] == "Waiting", "v1's readings are missing"
    started = rollout.tick(both)
    assert started.status["message"] == (
        "step 1/5 (5 %): held at least 60 s, then judged on error rate <= 1 %, p99 <= 500 ms, "
        "error rate <= v1's + 25 points, p99 <= v1's + 25 %"
    )


def test_relative_analysis_skips_a_v1_baseline_with_too_little_traffic():
    relative = with_settings(maxRegressionPercent=10)
    # At step 100 v1 gets no weighted traffic: its 0 ms p99 would fail any v2; the absolute limits still hold.
    result = analyse(relative, {**HEALTHY, "stableRequests": 0.0, "stableErrorPercent": 0.0, "stableP99Ms": 0.0}, 100)
    assert result.result == "pass"
    assert "v1 baseline skipped (0 requests)" in result.text


# -- phases -----------------------------------------------------------------------------------------------------


def test_first_start_takes_over_the_live_share_and_moves_nothing():
    policy_state = POLICY.initial_state(SETTINGS, 20, 0, 100.0)
    assert policy_state["phase"] == "Idle" and policy_state["share"] == 20
    decision = POLICY.decide(SETTINGS, policy_state, Observation(105.0, 20, HEALTHY, True))
    assert (decision.share, decision.state["phase"], decision.events) == (20, "Idle", ())
    assert decision.status["weight"] == "20" and decision.status["step"] == "0/5"
    assert "a new v2 image" in decision.status["message"]


def test_with_no_live_route_the_intents_initial_share_is_taken():
    assert POLICY.initial_state(SETTINGS, None, 35, 100.0)["share"] == 35


def test_a_new_revision_moves_v2_to_zero_and_waits_for_its_rollout():
    rollout = Rollout(live=20)
    decision = rollout.tick(ready=False)
    assert (decision.state["phase"], decision.share) == ("Waiting", 0)
    [event] = decision.events
    assert (event.previous, event.phase) == ("Idle", "Waiting")
    assert event.reason == "new v2 revision rev-b (was rev-a)"
    for _ in range(5):
        assert (rollout.tick(ready=False).share, rollout.phase) == (0, "Waiting")
    assert "waiting for deployment shark-v2 to roll out revision rev-b" in rollout.decisions[-1].status["message"]
    assert (rollout.tick(ready=None).share, rollout.phase) == (0, "Waiting")
    started = rollout.tick(ready=True)
    assert (started.state["phase"], started.share, started.status["step"]) == ("Progressing", 5, "1/5")
    assert [(e.previous, e.phase) for e in started.events] == [("Waiting", "Progressing")]


def test_a_healthy_v2_walks_every_step_and_is_promoted_with_the_promote_command():
    rollout = progressing()
    promoted = rollout.until("Promoted")
    shares = [d.share for d in rollout.decisions]
    assert list(dict.fromkeys(shares)) == [0, 5, 10, 25, 50, 100]
    assert promoted.share == 100 and promoted.status["step"] == "5/5"
    assert promoted.status["message"].endswith(
        "pulumi config set --path 'images.shark-v1' registry.example/shark:v2.1 -s primary && pulumi up -s primary"
    )
    assert (
        promoted.status["lastVerdict"] == "pass: error rate 0.2 % <= 1 %, p99 40 ms <= 500 ms, 300 requests at step 100"
    )
    assert [(e.previous, e.phase) for e in promoted.events] == [("Progressing", "Promoted")]
    for _ in range(3):
        assert rollout.tick().share == 100 and rollout.phase == "Promoted"


def test_each_step_is_held_a_whole_interval_from_when_it_was_seen_live():
    rollout = progressing()
    seen_live: dict[int, float] = {}
    left: dict[int, float] = {}
    while rollout.phase != "Promoted":
        before = rollout.live
        assert before is not None
        decision = rollout.tick(dt=7.0)
        seen_live.setdefault(before, rollout.now)
        if decision.share != before or decision.state["phase"] == "Promoted":
            left[before] = rollout.now
    assert sorted(left) == [5, 10, 25, 50, 100]
    for share in (5, 10, 25, 50, 100):
        assert left[share] - seen_live[share] >= 60, (share, left[share] - seen_live[share])


def test_a_weight_not_yet_live_gets_no_verdict():
    rollout = Rollout()
    assert rollout.tick().state["phase"] == "Waiting"
    for _ in range(30):
        decision = rollout.tick(apply=False)  # the writes never land: live stays 0
        assert (decision.state["phase"], decision.share, decision.verdict) == ("Progressing", 5, None)
    assert "weight 5 not live yet (live: 0): no verdict" in decision.log
    assert decision.state["heldFrom"] is None
    rollout.live = 5
    assert rollout.tick(dt=59).verdict is None, "held 0 s"
    assert rollout.tick(dt=59).verdict is None, "held 59 s"
    assert rollout.tick(dt=1).verdict == "pass"


def test_failures_in_a_row_roll_back_at_the_failure_limit_with_the_reason():
    rollout = progressing()
    rollout.until("Progressing", dt=5)
    while rollout.state["share"] != 25:
        rollout.tick()
    bad = readings(errorPercent=7.3)
    verdicts = []
    while rollout.phase == "Progressing":
        decision = rollout.tick(bad)
        if decision.verdict:
            verdicts.append((decision.verdict, decision.share))
    assert verdicts == [("fail", 25), ("fail", 0)]
    last = rollout.decisions[-1]
    assert (last.state["phase"], last.share, last.status["weight"]) == ("RolledBack", 0, "0")
    assert last.status["lastVerdict"] == "fail: error rate 7.3 % > 1 % at step 25"
    assert last.status["message"].startswith("rolled back: fail: error rate 7.3 % > 1 % at step 25 (2 failed in a row)")
    [event] = last.events
    assert (event.previous, event.phase) == ("Progressing", "RolledBack")
    for _ in range(40):  # healthy again: still rolled back until a new revision
        assert rollout.tick().share == 0 and rollout.phase == "RolledBack"


def test_two_failures_are_a_whole_window_apart():
    rollout = progressing(with_settings(failureLimit=3))
    fails = []
    while rollout.phase == "Progressing":
        decision = rollout.tick(readings(p99Ms=800), dt=1.0)
        if decision.verdict == "fail":
            fails.append(rollout.now)
    assert len(fails) == 3
    assert all(b - a >= 60 for a, b in itertools.pairwise(fails))


def test_a_pass_between_failures_resets_the_count():
    rollout = progressing(with_settings(failureLimit=2))
    sequence = [readings(errorPercent=5), HEALTHY, readings(errorPercent=5), HEALTHY]
    results = []
    for values in sequence:
        while True:
            decision = rollout.tick(values, dt=10)
            if decision.verdict in ("pass", "fail"):
                results.append((decision.verdict, decision.state["failures"]))
                break
    assert results == [("fail", 1), ("pass", 0), ("fail", 1), ("pass", 0)]
    assert rollout.phase == "Progressing" and rollout.state["share"] == 25


def test_low_traffic_waits_then_the_deadline_halts_at_the_step():
    rollout = progressing()
    low = readings(requests=3)
    decision = rollout.tick(low, dt=60)
    assert decision.verdict == "wait" and decision.share == 5
    assert "too little traffic to v2 for a verdict" in decision.status["message"]
    assert "wait: 3 requests to v2 in 60 s < minRequests 20 at step 5" in decision.log
    while rollout.phase == "Progressing":
        decision = rollout.tick(low, dt=30)
    assert (decision.state["phase"], decision.share) == ("Halted", 5)
    assert rollout.now - rollout.decisions[1].state["windowFrom"] >= 600
    assert decision.events[0].reason.startswith("no verdict for 6")
    assert decision.status["message"].startswith("halted at step 1/5 (5 %): no verdict for")
    assert rollout.tick(HEALTHY).share == 5 and rollout.phase == "Halted"


def test_low_traffic_with_rollback_on_deadline_rolls_back():
    rollout = progressing(with_settings(onDeadline="rollback"))
    while rollout.phase == "Progressing":
        decision = rollout.tick(readings(requests=0), dt=30)
    assert (decision.state["phase"], decision.share) == ("RolledBack", 0)


def test_the_deadline_counts_from_the_last_verdict():
    rollout = progressing()
    while rollout.state["share"] != 10:
        rollout.tick()
    passed_at = rollout.now
    while rollout.phase == "Progressing":
        rollout.tick(readings(requests=1), dt=20)
    assert rollout.phase == "Halted" and rollout.state["share"] == 10
    assert 600 <= rollout.now - passed_at < 620


def test_missing_readings_decide_nothing_and_say_so():
    rollout = progressing()
    while rollout.state["share"] != 25:
        rollout.tick()
    before = dict(rollout.state)
    for _ in range(300):  # far past every interval and the deadline
        decision = rollout.tick(MISSING, dt=10)
        assert (decision.share, decision.state["phase"], decision.verdict) == (25, "Progressing", None)
    assert "readings missing (errorPercent, p99Ms, requests): no verdict, no change" in decision.log
    assert decision.state["failures"] == before["failures"]
    partly = rollout.tick(readings(p99Ms=None), dt=100)
    assert partly.verdict is None and "readings missing (p99Ms)" in partly.log
    nan = rollout.tick(readings(errorPercent=math.nan), dt=100)
    assert nan.verdict is None and "readings missing (errorPercent)" in nan.log


def test_missing_readings_keep_a_waiting_rollout_at_zero():
    rollout = Rollout()
    rollout.tick()
    for _ in range(5):
        assert rollout.tick(MISSING, ready=True).share == 0 and rollout.phase == "Waiting"


def test_promoted_returns_to_idle_at_zero_once_v1_runs_the_promoted_revision():
    rollout = progressing()
    rollout.until("Promoted")
    rollout.config = with_settings(stableRevision="rev-b")  # pulumi up with images.shark-v1 = the v2 image
    decision = rollout.tick(MISSING)
    assert (decision.state["phase"], decision.share, decision.status["step"]) == ("Idle", 0, "0/5")
    assert decision.events[0].reason == "v1 now runs revision rev-b, the promoted one"


@pytest.mark.parametrize("phase", ["Waiting", "Progressing", "Promoted", "RolledBack", "Halted"])
def test_a_new_revision_in_any_phase_restarts_at_waiting_with_zero(phase: str):
    rollout = progressing(with_settings(failureLimit=1))
    script = {
        "Progressing": [],
        "Promoted": [HEALTHY] * 200,
        "RolledBack": [readings(errorPercent=50)] * 30,
        "Halted": [readings(requests=0)] * 200,
    }
    for values in script.get(phase, []):
        if rollout.phase == phase:
            break
        rollout.tick(values, dt=10)
    if phase == "Waiting":
        rollout = Rollout()
        rollout.tick(ready=False)
    assert rollout.phase == phase
    rollout.config = with_settings(revision="rev-c", failureLimit=1)
    decision = rollout.tick(MISSING)
    assert (decision.state["phase"], decision.share, decision.state["revision"]) == ("Waiting", 0, "rev-c")


def test_a_new_revision_equal_to_v1s_is_nothing_to_roll_out():
    rollout = progressing()
    rollout.config = with_settings(revision="rev-a")
    decision = rollout.tick()
    assert (decision.state["phase"], decision.share) == ("Idle", 0)


def test_a_restart_resumes_from_the_persisted_state_at_the_same_step():
    rollout = progressing()
    while rollout.state["share"] != 25:
        rollout.tick()
    rollout.tick()  # 25 % seen live: the hold runs
    persisted = json.loads(json.dumps(rollout.state))
    assert persisted["heldFrom"] == rollout.now
    resumed = POLICY.decide(SETTINGS, persisted, Observation(rollout.now + 2, 25, HEALTHY, True))
    assert (resumed.share, resumed.state["step"], resumed.state["heldFrom"]) == (25, 2, persisted["heldFrom"])


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"phase": "Sleeping", "revision": "r", "share": 0}, "state phase='Sleeping'"),
        ({"phase": "Idle", "revision": 3, "share": 0}, "state revision=3"),
        ({"phase": "Idle", "revision": "r", "share": 101}, "state share=101"),
        ({"phase": "Progressing", "revision": "r", "share": 30, "step": 2}, "state step=2 share=30"),
        ({"phase": "Halted", "revision": "r", "share": 5, "step": 9}, "state step=9"),
        ({"phase": "Idle", "revision": "r", "share": 0, "heldFrom": "soon"}, "state heldFrom='soon'"),
        ({"phase": "Idle", "revision": "r", "share": 0, "failures": -1}, "state failures=-1: not a count"),
        ({"phase": "Idle", "revision": "r", "share": 0, "verdict": "pass"}, "state verdict='pass': not an object"),
    ],
)
def test_a_state_this_policy_did_not_write_is_refused(state: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        read_state(state, SETTINGS)


# -- metrics ----------------------------------------------------------------------------------------------------


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"route": "shark", **labels})


def test_record_sets_phase_step_verdicts_and_last_figures():
    metrics = Metrics()
    rollout = progressing()
    while rollout.state["share"] != 10:
        rollout.tick(readings(requests=250, errorPercent=0.5, p99Ms=42))
    decision = rollout.decisions[-1]
    POLICY.record(metrics, "shark", decision, Observation(rollout.now, 5, readings(requests=250, p99Ms=42), True))
    assert sample(metrics, "meshburst_canary_phase", phase="Progressing") == 1
    assert all(sample(metrics, "meshburst_canary_phase", phase=p) == 0 for p in PHASES if p != "Progressing")
    assert sample(metrics, "meshburst_canary_step") == 2
    assert sample(metrics, "meshburst_canary_verdicts_total", result="pass") == 1
    assert sample(metrics, "meshburst_canary_last_requests") == 250
    assert sample(metrics, "meshburst_canary_last_p99_ms") == 42
    assert sample(metrics, "meshburst_canary_last_error_percent") == 0.2

    waiting = rollout.tick(readings(requests=0), dt=60)
    POLICY.record(metrics, "shark", waiting, Observation(rollout.now, 10, readings(requests=0), True))
    assert sample(metrics, "meshburst_canary_verdicts_total", result="wait") == 1
    assert sample(metrics, "meshburst_canary_last_requests") == 0
    assert math.isnan(sample(metrics, "meshburst_canary_last_p99_ms") or 0.0)
    assert math.isnan(sample(metrics, "meshburst_canary_last_error_percent") or 0.0)

    gone = rollout.tick(MISSING)
    POLICY.record(metrics, "shark", gone, Observation(rollout.now, 10, MISSING, True))
    assert math.isnan(sample(metrics, "meshburst_canary_last_requests") or 0.0)
    assert sample(metrics, "meshburst_canary_verdicts_total", result="wait") == 1


def test_record_shows_no_step_after_a_rollback():
    metrics = Metrics()
    rollout = progressing(with_settings(failureLimit=1))
    decision = rollout.until("RolledBack", readings(errorPercent=9))
    POLICY.record(metrics, "shark", decision, Observation(rollout.now, 5, readings(errorPercent=9), True))
    assert sample(metrics, "meshburst_canary_step") == 0
    assert sample(metrics, "meshburst_canary_phase", phase="RolledBack") == 1
    assert sample(metrics, "meshburst_canary_verdicts_total", result="fail") == 1


# -- properties over random rollouts ----------------------------------------------------------------------------

KINDS = ("healthy", "errors", "slow", "low", "missing", "partly")


def reading_of(kind: str) -> dict[str, float | None]:
    return {
        "healthy": HEALTHY,
        "errors": readings(errorPercent=4.0),
        "slow": readings(p99Ms=900.0),
        "low": readings(requests=7.0, errorPercent=50.0),
        "missing": MISSING,
        "partly": readings(p99Ms=None),
    }[kind]


ticks = st.lists(
    st.tuples(
        st.sampled_from(("healthy",) * 6 + KINDS),  # mostly healthy, so that many rollouts get far
        st.floats(min_value=0.5, max_value=90.0),
        st.sampled_from([True] * 8 + [False, None]),
        st.booleans().map(lambda lost: not lost) | st.just(True),
    ),
    min_size=3,
    max_size=120,
)
configs = st.builds(
    lambda steps, interval, limit, deadline, on_deadline: with_settings(
        steps=steps,
        intervalSeconds=interval,
        failureLimit=limit,
        progressDeadlineSeconds=interval * deadline,
        onDeadline=on_deadline,
    ),
    st.lists(st.integers(1, 99), max_size=5, unique=True).map(lambda s: [*sorted(s), 100]),
    st.sampled_from([3.0, 10.0, 60.0]),
    st.integers(1, 4),
    st.integers(1, 5),
    st.sampled_from(["hold", "rollback"]),
)


@dataclass
class Trace:
    """What happened in a random rollout, tick by tick."""

    config: CanarySettings
    rows: list[tuple[str, dict[str, Any], Decision, dict[str, Any], float, int | None]]


def run_random(config: CanarySettings, script: list[tuple[str, float, bool | None, bool]]) -> Trace:
    rollout = Rollout(config)
    rows = []
    for kind, dt, ready, apply in script:
        before = dict(rollout.state)
        live = rollout.live
        decision = rollout.tick(reading_of(kind), dt=dt, ready=ready, apply=apply)
        rows.append((kind, before, decision, dict(decision.state), rollout.now, live))
    return Trace(config, rows)


@settings(max_examples=300, deadline=None)
@given(configs, ticks)
def test_share_is_always_a_step_zero_or_a_hundred(config: CanarySettings, script):
    trace = run_random(config, script)
    allowed = {0, 100, *config.steps}
    assert all(decision.share in allowed for _, _, decision, _, _, _ in trace.rows)
    assert all(decision.status["weight"] == str(decision.share) for _, _, decision, _, _, _ in trace.rows)


@settings(max_examples=300, deadline=None)
@given(configs, ticks)
def test_never_promoted_without_a_pass_at_every_step_each_held_an_interval(config: CanarySettings, script):
    trace = run_random(config, script)
    passed: set[int] = set()
    seen_live_at: float | None = None
    for _, before, decision, after, now, live in trace.rows:
        if before["phase"] == "Progressing" and live == before["share"] and seen_live_at is None:
            seen_live_at = now
        if after["phase"] != "Progressing" or after.get("step") != before.get("step"):
            if before["phase"] == "Progressing" and decision.verdict == "pass":
                assert seen_live_at is not None and now - seen_live_at >= config.interval_s
                passed.add(before["step"])
            seen_live_at = None
        if after["phase"] == "Progressing" and before["phase"] == "Progressing" and after["step"] > before["step"]:
            assert after["step"] == before["step"] + 1 and decision.verdict == "pass"
        if after["phase"] == "Promoted" and before["phase"] != "Promoted":
            assert passed == set(range(len(config.steps))), passed
        if after["phase"] in ("Waiting", "Idle", "RolledBack"):
            passed.clear()


@settings(max_examples=300, deadline=None)
@given(configs, ticks)
def test_failures_in_a_row_roll_back_at_exactly_the_failure_limit(config: CanarySettings, script):
    trace = run_random(config, script)
    in_a_row = 0
    for _, before, decision, after, _, _ in trace.rows:
        if before["phase"] != "Progressing":
            in_a_row = 0
            continue
        if decision.verdict == "fail":
            in_a_row += 1
        elif decision.verdict == "pass":
            in_a_row = 0
        by_failures = after["phase"] == "RolledBack" and decision.verdict == "fail"
        assert by_failures == (decision.verdict == "fail" and in_a_row == config.failure_limit)
        if after["phase"] == "RolledBack":
            assert decision.share == 0
            if not by_failures:
                assert decision.verdict == "wait" and config.on_deadline == "rollback"


@settings(max_examples=300, deadline=None)
@given(configs, ticks)
def test_missing_readings_never_change_phase_or_share(config: CanarySettings, script):
    trace = run_random(config, script)
    for kind, before, decision, after, _, _ in trace.rows:
        if kind in ("missing", "partly") and before["revision"] == config.revision:
            assert (after["phase"], decision.share) == (before["phase"], before["share"])
            assert decision.verdict is None


@settings(max_examples=300, deadline=None)
@given(configs, ticks)
def test_low_traffic_never_passes_or_fails(config: CanarySettings, script):
    trace = run_random(config, script)
    for kind, before, decision, after, _, _ in trace.rows:
        if kind == "low":
            assert decision.verdict in (None, "wait")
            assert after["failures"] == before.get("failures", 0) or after["phase"] == "Waiting"
            if after["phase"] != before["phase"] and before["phase"] == "Progressing":
                assert after["phase"] == {"hold": "Halted", "rollback": "RolledBack"}[config.on_deadline]
