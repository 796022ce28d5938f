"""The canary policy: walk v2's share through the steps, judge each step on Istio's metrics, roll back by itself.

Phases: Idle (nothing to roll out) -> Waiting (a new v2 revision: share 0 until its Deployment has rolled it out)
-> Progressing (step i at steps[i] percent) -> Promoted (100 %) -> Idle again once v1 runs the same revision.
RolledBack (share 0) and Halted (share kept) hold until the next revision; a new revision restarts at Waiting
from any phase.

A step is held at least `intervalSeconds`, counted from the first tick that saw its weight live in the route (so
from after the write, whatever the write cost), then judged on the last `intervalSeconds` of v2's traffic:
pass -> next step (Promoted after the last); fail -> one more failure in a row, `failureLimit` of them -> rolled
back; fewer than `minRequests` requests -> no verdict (low traffic is not a verdict), and after
`progressDeadlineSeconds` without one the rollout stops as `onDeadline` says. Two verdicts are always a whole
window apart, so failures in a row are failures of separate windows. A failing window needs no hold: it is judged
as soon as a whole window of v2's new revision exists, which is what makes a rollback take about
`failureLimit` windows. Readings that are missing (Prometheus down, nonsense) decide nothing: no step, no verdict,
no deadline. Only the intent (a new revision, v1 catching up) moves the route without them, and only to safety.

State is plain JSON (persisted in the status object; times are wall-clock `Observation.now`), so a restarted
controller resumes at the same step with the same clocks.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

# The image runs these files side by side (`import policy`); the tests import the package, where `policy` alone
# would be the repository's policy pack (as in core.py).
if __package__:
    from .policy import Decision, Event, Observation, known_settings
else:
    from policy import Decision, Event, Observation, known_settings

IDLE, WAITING, PROGRESSING, PROMOTED, ROLLED_BACK, HALTED = (
    "Idle",
    "Waiting",
    "Progressing",
    "Promoted",
    "RolledBack",
    "Halted",
)
PHASES = (IDLE, WAITING, PROGRESSING, PROMOTED, ROLLED_BACK, HALTED)
ON_DEADLINE = {"hold": HALTED, "rollback": ROLLED_BACK}
STACK = "primary"
"""The stack whose config holds the images (the promote command names it)."""

REQUESTS, ERROR_PERCENT, P99_MS = "requests", "errorPercent", "p99Ms"
STABLE_REQUESTS, STABLE_ERROR_PERCENT, STABLE_P99_MS = "stableRequests", "stableErrorPercent", "stableP99Ms"

LABEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,253}$")
"""What may go into a PromQL label matcher unquoted-safe: Kubernetes names and label values."""


@dataclass(frozen=True)
class CanarySettings:
    """The intent's canary settings, checked (keys as in the contract, camelCase there)."""

    revision: str
    """v2's revision (hash of its image and how it starts); a change starts a rollout."""
    stable_revision: str
    """v1's revision, same hash; equal to `revision` once v1 runs what was promoted."""
    canary_image: str
    """v2's image reference, printed in the promote command."""
    target: str
    """v2's Deployment, whose rollout of `revision` the rollout waits for."""
    steps: tuple[int, ...] = (5, 10, 25, 50, 100)
    interval_s: float = 60.0
    max_error_percent: float = 1.0
    max_p99_ms: float = 500.0
    max_regression_percent: float | None = None
    min_requests: int = 20
    progress_deadline_s: float = 600.0
    on_deadline: str = "hold"
    failure_limit: int = 2
    namespace: str = "apps"
    app: str = "shark"
    stable_version: str = "v1"
    canary_version: str = "v2"

    @property
    def window(self) -> str:
        """The analysis window as a PromQL duration (whole milliseconds, so 2.5 s works too)."""
        millis = round(self.interval_s * 1000)
        return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"

    def promote_command(self) -> str:
        """What makes the promoted v2 the new stable v1."""
        key = f"images.{self.app}-{self.stable_version}"
        return f"pulumi config set --path '{key}' {self.canary_image} -s {STACK} && pulumi up -s {STACK}"


SETTING_KEYS = (
    "revision",
    "stableRevision",
    "canaryImage",
    "target",
    "steps",
    "intervalSeconds",
    "maxErrorPercent",
    "maxP99Ms",
    "maxRegressionPercent",
    "minRequests",
    "progressDeadlineSeconds",
    "onDeadline",
    "failureLimit",
    "metrics",
)
METRICS_KEYS = ("namespace", "app", "stableVersion", "canaryVersion")


def _show(value: object) -> str:
    return repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."


def _bad(key: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"settings {key}={_show(value)}: expected {allowed}")


def _is_number(value: object) -> TypeGuard[int | float]:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _is_whole(value: object) -> TypeGuard[int]:
    return not isinstance(value, bool) and isinstance(value, int)


def _text(settings: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None = None) -> str:
    value = settings.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _bad(key, value, "a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise _bad(key, value, "a Kubernetes name or label value (letters, digits, . _ -)")
    return value


def _number(settings: Mapping[str, Any], key: str, default: float, low: float, high: float, low_open: bool) -> float:
    value = settings.get(key, default)
    above = _is_number(value) and (value > low if low_open else value >= low)
    if not (above and value <= high):
        raise _bad(key, value, f"a number {'greater than' if low_open else 'at least'} {low:g} and at most {high:g}")
    return float(value)


def _whole(settings: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = settings.get(key, default)
    if not (_is_whole(value) and low <= value <= high):
        raise _bad(key, value, f"a whole number from {low} to {high}")
    return int(value)


def _steps(settings: Mapping[str, Any]) -> tuple[int, ...]:
    value = settings.get("steps", list(CanarySettings.steps))
    fine = (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(_is_whole(step) and 1 <= step <= 100 for step in value)
        and all(a < b for a, b in itertools.pairwise(value))
        and value[-1] == 100
    )
    if not fine:
        raise _bad("steps", value, "a list of whole percentages from 1 to 100, strictly ascending, ending at 100")
    return tuple(value)


def parse_settings(settings: Mapping[str, Any]) -> CanarySettings:
    """The intent's canary settings; ValueError naming the key, the value and what is allowed."""
    settings = known_settings(settings, SETTING_KEYS)
    metrics = settings.get("metrics", {})
    if not isinstance(metrics, Mapping):
        raise _bad("metrics", metrics, f"an object with {list(METRICS_KEYS)}")
    unknown = sorted(set(metrics) - set(METRICS_KEYS))
    if unknown:
        raise ValueError(f"settings metrics has unknown keys {unknown} (allowed: {sorted(METRICS_KEYS)})")
    defaults = CanarySettings("", "", "", "")
    labels = {
        key: metrics.get(key, default)
        for key, default in zip(
            METRICS_KEYS,
            (defaults.namespace, defaults.app, defaults.stable_version, defaults.canary_version),
            strict=True,
        )
    }
    for key in METRICS_KEYS:
        _text({f"metrics.{key}": labels[key]}, f"metrics.{key}", LABEL_VALUE)
    if labels["stableVersion"] == labels["canaryVersion"]:
        raise _bad("metrics.canaryVersion", labels["canaryVersion"], "a version other than metrics.stableVersion")
    interval = _number(settings, "intervalSeconds", defaults.interval_s, 0, 86_400, low_open=True)
    deadline = _number(settings, "progressDeadlineSeconds", defaults.progress_deadline_s, 0, 7 * 86_400, True)
    if deadline < interval:
        raise _bad(
            "progressDeadlineSeconds",
            settings.get("progressDeadlineSeconds"),
            f"at least intervalSeconds ({interval:g})",
        )
    regression = settings.get("maxRegressionPercent")
    if regression is not None and not (_is_number(regression) and 0 <= regression <= 10_000):
        raise _bad("maxRegressionPercent", regression, "null (off) or a number from 0 to 10000")
    on_deadline = settings.get("onDeadline", defaults.on_deadline)
    if on_deadline not in ON_DEADLINE:
        raise _bad("onDeadline", on_deadline, f"one of {sorted(ON_DEADLINE)}")
    return CanarySettings(
        revision=_text(settings, "revision"),
        stable_revision=_text(settings, "stableRevision"),
        canary_image=_text(settings, "canaryImage"),
        target=_text(settings, "target", LABEL_VALUE)
        if "target" in settings
        else f"{labels['app']}-{labels['canaryVersion']}",
        steps=_steps(settings),
        interval_s=interval,
        max_error_percent=_number(settings, "maxErrorPercent", defaults.max_error_percent, 0, 100, low_open=False),
        max_p99_ms=_number(settings, "maxP99Ms", defaults.max_p99_ms, 0, 3_600_000, low_open=True),
        max_regression_percent=None if regression is None else float(regression),
        min_requests=_whole(settings, "minRequests", defaults.min_requests, 1, 10_000_000),
        progress_deadline_s=deadline,
        on_deadline=on_deadline,
        failure_limit=_whole(settings, "failureLimit", defaults.failure_limit, 1, 1000),
        namespace=labels["namespace"],
        app=labels["app"],
        stable_version=labels["stableVersion"],
        canary_version=labels["canaryVersion"],
    )


def _selector(settings: CanarySettings, version: str) -> str:
    # reporter="destination": the v1/v2 sidecars' own reports; the gateway's `source` reports of the same
    # requests would count each one twice.
    return (
        f'reporter="destination",destination_workload_namespace="{settings.namespace}",'
        f'destination_app="{settings.app}",destination_version="{version}"'
    )


def version_queries(settings: CanarySettings, version: str) -> tuple[str, str, str]:
    """(requests, error percent, p99 ms) of one version over the window; each answers a number even with no traffic.

    No data must not read as a fault: with no 5xx series the error share is 0 (`or vector(0)`), with no traffic
    at all the requests are 0 (which is what makes the step wait), and error share and p99 read 0 then too. The
    policy never judges them below `minRequests`, and the gauges show NaN for a window with no requests.
    """
    sel, window = _selector(settings, version), settings.window
    requests = f"sum(increase(istio_requests_total{{{sel}}}[{window}])) or vector(0)"
    errors = f'sum(rate(istio_requests_total{{{sel},response_code=~"5.."}}[{window}])) or vector(0)'
    total = f"sum(rate(istio_requests_total{{{sel}}}[{window}])) or vector(0)"
    error_percent = f"100 * ({errors}) / clamp_min({total}, 1e-9)"
    buckets = f"sum by (le) (rate(istio_request_duration_milliseconds_bucket{{{sel}}}[{window}]))"
    # histogram_quantile of a window without requests is NaN; `>= 0` drops it, so the answer is 0, not NaN.
    p99 = f"(histogram_quantile(0.99, {buckets}) >= 0) or vector(0)"
    return requests, error_percent, p99


def _fmt(value: float) -> str:
    """A figure for people: at most two decimals, no trailing zeros (7.3, 0.96, 250)."""
    return f"{round(value, 2):g}" if abs(value) < 1e6 else f"{value:.0f}"


@dataclass(frozen=True)
class Analysis:
    """One window of v2 (and v1) judged against the limits."""

    result: str
    """pass, fail or wait (too few requests for a verdict)."""
    text: str
    """The verdict with its figures, e.g. `fail: error rate 7.3 % > 1 % at step 25`."""


def analyse(settings: CanarySettings, readings: Mapping[str, float], share: int) -> Analysis:
    """Judge one window; `readings` holds every query of `CanaryPolicy.queries`, all known."""
    requests, errors, p99 = readings[REQUESTS], readings[ERROR_PERCENT], readings[P99_MS]
    where = f"at step {share}"
    if requests < settings.min_requests:
        return Analysis(
            "wait",
            f"wait: {_fmt(requests)} requests to {settings.canary_version} in {_fmt(settings.interval_s)} s "
            f"< minRequests {settings.min_requests} {where}",
        )
    failed: list[str] = []
    passed: list[str] = []
    for figure, limit, name, unit in (
        (errors, settings.max_error_percent, "error rate", "%"),
        (p99, settings.max_p99_ms, "p99", "ms"),
    ):
        (failed if figure > limit else passed).append(
            f"{name} {_fmt(figure)} {unit} {'>' if figure > limit else '<='} {_fmt(limit)} {unit}"
        )
    margin = settings.max_regression_percent
    if margin is not None:
        stable = settings.stable_version
        if readings[STABLE_REQUESTS] < settings.min_requests:
            passed.append(f"{stable} baseline skipped ({_fmt(readings[STABLE_REQUESTS])} requests)")
        else:
            stable_errors, stable_p99 = readings[STABLE_ERROR_PERCENT], readings[STABLE_P99_MS]
            worse = errors > stable_errors + margin
            (failed if worse else passed).append(
                f"error rate {_fmt(errors)} % {'>' if worse else '<='} {stable} {_fmt(stable_errors)} % "
                f"+ {_fmt(margin)} points"
            )
            worse = p99 > stable_p99 * (1 + margin / 100)
            (failed if worse else passed).append(
                f"p99 {_fmt(p99)} ms {'>' if worse else '<='} {stable} {_fmt(stable_p99)} ms + {_fmt(margin)} %"
            )
    if failed:
        return Analysis("fail", f"fail: {', '.join(failed)} {where}")
    return Analysis("pass", f"pass: {', '.join(passed)}, {_fmt(requests)} requests {where}")


@dataclass(frozen=True)
class State:
    """The policy's state; `to_json` is what is persisted."""

    phase: str
    revision: str
    share: int
    step: int | None = None
    """Index into steps while a rollout has one (Progressing, Halted; RolledBack: where it stopped)."""
    failures: int = 0
    """Failed verdicts in a row at this step."""
    held_from: float | None = None
    """When the step's weight was first seen live: the hold counts from here."""
    window_from: float | None = None
    """Start of the next analysis window: the last verdict, or when v2 finished rolling out."""
    verdict: Mapping[str, Any] | None = None
    """The last pass/fail verdict: {result, step, at, text}."""
    reason: str = ""
    """Why the phase is what it is, for people."""

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "revision": self.revision,
            "share": self.share,
            "step": self.step,
            "failures": self.failures,
            "heldFrom": self.held_from,
            "windowFrom": self.window_from,
            "verdict": dict(self.verdict) if self.verdict is not None else None,
            "reason": self.reason,
        }

    def but(self, **changes: Any) -> State:
        return replace(self, **changes)


def _time(value: object, key: str) -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        raise ValueError(f"state {key}={_show(value)}: not a time")
    return float(value)


def read_state(state: Mapping[str, Any], settings: CanarySettings) -> State:
    """The State a persisted JSON object holds; ValueError when this policy did not write it for these steps."""
    phase, revision, share, step = state.get("phase"), state.get("revision"), state.get("share"), state.get("step")
    if phase not in PHASES:
        raise ValueError(f"state phase={_show(phase)}: not one of {list(PHASES)}")
    if not isinstance(revision, str):
        raise ValueError(f"state revision={_show(revision)}: not a string")
    if not (_is_whole(share) and 0 <= share <= 100):
        raise ValueError(f"state share={_show(share)}: not a share from 0 to 100")
    if step is not None and not (_is_whole(step) and 0 <= step < len(settings.steps)):
        raise ValueError(f"state step={_show(step)}: not a step of {list(settings.steps)}")
    if phase == PROGRESSING and (step is None or share != settings.steps[step]):
        raise ValueError(f"state step={step} share={share}: not a step of {list(settings.steps)}")
    failures = state.get("failures", 0)
    if not (_is_whole(failures) and failures >= 0):
        raise ValueError(f"state failures={_show(failures)}: not a count")
    verdict = state.get("verdict")
    if verdict is not None and not isinstance(verdict, Mapping):
        raise ValueError(f"state verdict={_show(verdict)}: not an object")
    return State(
        phase=phase,
        revision=revision,
        share=share,
        step=step,
        failures=failures,
        held_from=_time(state.get("heldFrom"), "heldFrom"),
        window_from=_time(state.get("windowFrom"), "windowFrom"),
        verdict=verdict,
        reason=str(state.get("reason", "")),
    )


@dataclass(frozen=True)
class CanaryDecision(Decision):
    """A Decision that also says which verdict (if any) this tick gave, for the verdict counter."""

    verdict: str | None = None
    """pass, fail or wait when an analysis was due this tick; None otherwise."""


def _usable(value: float | None) -> TypeGuard[float]:
    """A reading to act on: a number, finite, not negative (anything else is a fault, not a figure)."""
    return value is not None and math.isfinite(value) and value >= 0


def _step_text(settings: CanarySettings, state: State) -> str:
    count = len(settings.steps)
    if state.phase == PROMOTED:
        return f"{count}/{count}"
    if state.phase == IDLE or state.step is None:
        return f"0/{count}"
    return f"{state.step + 1}/{count}"


def _message(settings: CanarySettings, state: State, analysis: Analysis | None) -> str:
    v2 = settings.canary_version
    if state.phase == IDLE:
        return (
            f"nothing to roll out: {v2} revision {settings.revision} is not new; a new {v2} image "
            f"(pulumi config set --path 'images.{settings.app}-{v2}' <image> -s {STACK} && pulumi up -s {STACK}) "
            "starts a canary"
        )
    if state.phase == WAITING:
        return (
            f"waiting for deployment {settings.target} to roll out revision {settings.revision}; "
            f"{v2} gets no weighted traffic until then (the header override still reaches it)"
        )
    if state.phase == PROGRESSING:
        limits = f"error rate <= {_fmt(settings.max_error_percent)} %, p99 <= {_fmt(settings.max_p99_ms)} ms"
        if settings.max_regression_percent is not None:
            margin, stable = _fmt(settings.max_regression_percent), settings.stable_version
            limits += f", error rate <= {stable}'s + {margin} points, p99 <= {stable}'s + {margin} %"
        if analysis is not None and analysis.result == "wait":
            return (
                f"step {_step_text(settings, state)} ({state.share} %): too little traffic to {v2} for a verdict "
                f"(fewer than {settings.min_requests} requests in {_fmt(settings.interval_s)} s); after "
                f"{_fmt(settings.progress_deadline_s)} s without one: {settings.on_deadline}"
            )
        return (
            f"step {_step_text(settings, state)} ({state.share} %): held at least {_fmt(settings.interval_s)} s, "
            f"then judged on {limits}"
        )
    if state.phase == PROMOTED:
        return f"{v2} ({settings.canary_image}) takes all traffic. Make it the stable version: " + (
            settings.promote_command()
        )
    if state.phase == ROLLED_BACK:
        return (
            f"rolled back: {state.reason}. All weighted traffic is on {settings.stable_version}; "
            f"a new {v2} revision starts again"
        )
    return (
        f"halted at step {_step_text(settings, state)} ({state.share} %): {state.reason}. {v2} keeps its share; "
        f"a new {v2} revision starts again"
    )


class CanaryPolicy:
    """The canary policy as the core's Policy (see the module docstring for the phases)."""

    name = "canary"

    def parse_settings(self, settings: Mapping[str, Any]) -> CanarySettings:
        return parse_settings(settings)

    def queries(self, settings: CanarySettings) -> Mapping[str, str]:
        names: list[tuple[str, str, str, str]] = [(REQUESTS, ERROR_PERCENT, P99_MS, settings.canary_version)]
        if settings.max_regression_percent is not None:
            names.append((STABLE_REQUESTS, STABLE_ERROR_PERCENT, STABLE_P99_MS, settings.stable_version))
        found: dict[str, str] = {}
        for requests, errors, p99, version in names:
            found[requests], found[errors], found[p99] = version_queries(settings, version)
        return found

    def target(self, settings: CanarySettings) -> str | None:
        return settings.target

    def initial_state(
        self, settings: CanarySettings, live_share: int | None, initial_share: int, now: float
    ) -> Mapping[str, Any]:
        share = live_share if live_share is not None else initial_share
        return State(IDLE, settings.revision, share, reason="taken over from the live route").to_json()

    def decide(self, settings: CanarySettings, state: Mapping[str, Any], observation: Observation) -> CanaryDecision:
        current = read_state(state, settings)
        now = observation.now
        readings = {name: observation.readings.get(name) for name in self.queries(settings)}
        missing = sorted(name for name, value in readings.items() if not _usable(value))
        known = {name: float(value) for name, value in readings.items() if _usable(value)}
        analysis: Analysis | None = None
        note: str

        if current.revision != settings.revision:
            if settings.revision == settings.stable_revision:
                v1, v2 = settings.stable_version, settings.canary_version
                reason = f"{v2} revision {settings.revision} is what {v1} runs: nothing to roll out"
                new = State(IDLE, settings.revision, 0, reason=reason)
            else:
                reason = f"new {settings.canary_version} revision {settings.revision} (was {current.revision})"
                new = State(WAITING, settings.revision, 0, reason=reason)
            note = reason
        elif current.phase == PROMOTED and settings.stable_revision == settings.revision:
            reason = f"{settings.stable_version} now runs revision {settings.revision}, the promoted one"
            new, note = State(IDLE, settings.revision, 0, reason=reason), reason
        elif current.phase in (IDLE, PROMOTED, ROLLED_BACK, HALTED):
            new, note = current, f"holding ({current.reason})" if current.reason else "holding"
        elif missing:
            new = current
            note = f"readings missing ({', '.join(missing)}): no verdict, no change"
        elif current.phase == WAITING:
            if observation.target_ready:
                reason = f"deployment {settings.target} runs revision {settings.revision}"
                new = State(PROGRESSING, settings.revision, settings.steps[0], step=0, window_from=now, reason=reason)
                note = f"{reason}: step 1/{len(settings.steps)} ({settings.steps[0]} %)"
            else:
                new = current
                note = f"deployment {settings.target} has not rolled out revision {settings.revision} yet"
        else:
            new, note, analysis = self._progress(settings, current, observation, known)

        events: tuple[Event, ...] = ()
        if new.phase != current.phase:
            events = (Event(previous=current.phase, phase=new.phase, reason=new.reason),)
        status = {
            "phase": new.phase,
            "step": _step_text(settings, new),
            "weight": str(new.share),
            "revision": settings.revision,
            "lastVerdict": str((new.verdict or {}).get("text", "none yet")),
            "message": _message(settings, new, analysis),
        }
        figures = ", ".join(
            f"{name}={_fmt(value) if value is not None else 'none'}" for name, value in readings.items()
        )
        log = f"{new.phase} step {_step_text(settings, new)} weight {new.share}: {note} [{figures}]"
        return CanaryDecision(
            state=new.to_json(),
            share=new.share,
            status=status,
            log=log,
            events=events,
            verdict=analysis.result if analysis is not None else None,
        )

    def _progress(
        self, settings: CanarySettings, current: State, observation: Observation, readings: Mapping[str, float]
    ) -> tuple[State, str, Analysis | None]:
        """One tick of a Progressing rollout with every reading known."""
        now, step = observation.now, current.step
        assert step is not None  # read_state refuses a Progressing state without one
        if observation.live_share != current.share:
            # Not written yet (or someone else wrote): the hold starts again once the weight is live.
            new = current.but(held_from=None)
            return new, f"weight {current.share} not live yet (live: {observation.live_share}): no verdict", None
        held_from = current.held_from if current.held_from is not None else now
        current = current.but(held_from=held_from)
        window_from = current.window_from if current.window_from is not None else held_from
        if now - window_from < settings.interval_s:
            return current, f"collecting a window ({_fmt(now - window_from)} of {_fmt(settings.interval_s)} s)", None
        analysis = analyse(settings, readings, current.share)
        if analysis.result == "wait":
            if now - window_from >= settings.progress_deadline_s:
                phase = ON_DEADLINE[settings.on_deadline]
                reason = f"no verdict for {_fmt(now - window_from)} s ({analysis.text})"
                share = 0 if phase == ROLLED_BACK else current.share
                return current.but(phase=phase, share=share, reason=reason), reason, analysis
            return current, analysis.text, analysis
        verdict = {"result": analysis.result, "step": step, "at": now, "text": analysis.text}
        if analysis.result == "fail":
            failures = current.failures + 1
            if failures >= settings.failure_limit:
                reason = f"{analysis.text} ({failures} failed in a row)"
                new = current.but(phase=ROLLED_BACK, share=0, failures=failures, verdict=verdict, reason=reason)
                return (
                    new,
                    f"{analysis.text}: {failures}/{settings.failure_limit} failed in a row, rolling back",
                    analysis,
                )
            new = current.but(failures=failures, window_from=now, verdict=verdict)
            return new, f"{analysis.text}: {failures}/{settings.failure_limit} failed in a row", analysis
        if now - held_from < settings.interval_s:
            # A passing window is not enough: the step is held a whole interval first.
            return current, f"{analysis.text}, step held {_fmt(now - held_from)} of {_fmt(settings.interval_s)} s", None
        if step + 1 == len(settings.steps):
            reason = f"every step passed ({analysis.text}); make it the stable version: {settings.promote_command()}"
            new = current.but(phase=PROMOTED, share=100, failures=0, verdict=verdict, reason=reason)
            return new, f"{analysis.text}: promoted; make it the stable version: {settings.promote_command()}", analysis
        nxt = settings.steps[step + 1]
        new = current.but(
            step=step + 1, share=nxt, failures=0, held_from=None, window_from=now, verdict=verdict, reason=""
        )
        return new, f"{analysis.text}: next step {step + 2}/{len(settings.steps)} ({nxt} %)", analysis

    def record(self, metrics: Any, route: str, decision: Decision, observation: Observation) -> None:
        phase = decision.state["phase"]
        for name in PHASES:
            metrics.canary_phase.labels(route=route, phase=name).set(int(name == phase))
        # The status says "k/n"; the gauge is k while a step is in force (Progressing, Halted, Promoted), else 0.
        step = int(decision.status["step"].split("/")[0]) if phase in (PROGRESSING, HALTED, PROMOTED) else 0
        metrics.canary_step.labels(route=route).set(step)
        verdict = getattr(decision, "verdict", None)
        if verdict is not None:
            metrics.canary_verdicts.labels(route=route, result=verdict).inc()
        requests = observation.readings.get(REQUESTS)
        errors = observation.readings.get(ERROR_PERCENT)
        p99 = observation.readings.get(P99_MS)
        # With no request in the window, error share and p99 are unknown (the queries answer 0 then).
        unknown = requests is None or requests == 0
        metrics.canary_last_requests.labels(route=route).set(math.nan if requests is None else requests)
        metrics.canary_last_error_percent.labels(route=route).set(math.nan if unknown or errors is None else errors)
        metrics.canary_last_p99_ms.labels(route=route).set(math.nan if unknown or p99 is None else p99)
