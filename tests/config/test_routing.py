"""config/routing.py: the shark canary's mirror, matches, sticky cookie and fault, from config to route.

Bad values stop the real program (under mocks) before any resource; each change moves only the shark route
(or, for the fault, only v2's fault filter); the offline plan diff shows each one readably.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.lib.meshroute import RouteSpec, virtual_service_manifest
from apps.shark.component import shark_route
from config.routing import (
    DEFAULT_MATCH,
    FAULT_KEY,
    MATCH_KEY,
    MIRROR_KEY,
    STICKY_KEY,
    CanaryRouting,
    MatchRule,
    parse_canary_routing,
)
from config.settings import ConfigError
from tests.support.paths import ROOT
from tools.mockrun import Run, RunFailed, run_stack
from tools.plan import diff, plan_document

VS = "kubernetes:networking.istio.io/v1:VirtualService"
FILTER = "kubernetes:networking.istio.io/v1alpha3:EnvoyFilter"
ABORT_503 = {"abort": {"status": 503, "percent": 5}}


def parsed(**raw: str) -> CanaryRouting:
    routing, problems = parse_canary_routing({f"meshburst:{key}": value for key, value in raw.items()})
    assert problems == []
    return routing


def test_defaults_keep_todays_route():
    assert parsed() == CanaryRouting(mirror_percent=0, match=DEFAULT_MATCH, sticky_cookie=None, fault=None)
    assert [(m.kind, m.name, m.match_type, m.value) for m in DEFAULT_MATCH] == [
        ("header", "canary", "exact", "canary-tester")
    ]


def test_good_values_parse_to_what_the_route_takes():
    routing = parsed(
        canaryMirrorPercent=" 25 ",
        canaryMatch=json.dumps(
            [
                {"header": "X-Beta", "exact": "yes"},  # header names are case-insensitive: lowercased for Istio
                {"cookie": "beta", "exact": 1},  # `pulumi config set --path` stores 1 as a number
                {"header": "user-agent", "regex": ".*Firefox/[0-9]+.*"},
                {"cookie": "team", "prefix": "blue-"},
            ]
        ),
        canaryStickyCookie="shark-canary",
        canaryFault=json.dumps({"delay": {"fixed": "1.5s", "percent": "10"}, "abort": {"status": 503, "percent": 5}}),
    )
    assert routing.mirror_percent == 25
    assert routing.match == (
        MatchRule("header", "x-beta", "exact", "yes"),
        MatchRule("cookie", "beta", "exact", "1"),
        MatchRule("header", "user-agent", "regex", ".*Firefox/[0-9]+.*"),
        MatchRule("cookie", "team", "prefix", "blue-"),
    )
    assert routing.sticky_cookie == "shark-canary"
    assert routing.fault is not None and routing.fault.delay is not None and routing.fault.abort is not None
    assert (routing.fault.delay.fixed_ms, routing.fault.delay.percent) == (1500, 10)
    assert (routing.fault.abort.status, routing.fault.abort.percent) == (503, 5)


def test_an_empty_match_list_and_an_empty_fault_turn_them_off():
    routing = parsed(canaryMatch="[]", canaryFault="{}")
    assert (routing.match, routing.fault) == ((), None)


RE2_DOCS = "see https://github.com/google/re2/wiki/Syntax"
BAD = [
    # (key, config value, where the problem is, the bad value there, what the message says is allowed)
    (MIRROR_KEY, "101", MIRROR_KEY, "101", "a whole number from 0 to 100"),
    (MIRROR_KEY, "-1", MIRROR_KEY, "-1", "a whole number from 0 to 100"),
    (MIRROR_KEY, "12.5", MIRROR_KEY, "12.5", "a whole number from 0 to 100"),
    (MATCH_KEY, "canary", MATCH_KEY, "canary", "a JSON list of request matches"),
    (MATCH_KEY, {"header": "x"}, MATCH_KEY, '{"header": "x"}', "a JSON list of request matches"),
    (
        MATCH_KEY,
        [{"header": "x-beta", "suffix": "yes"}],
        f"{MATCH_KEY}[0]",
        {"header": "x-beta", "suffix": "yes"},
        "one of exact, prefix, regex (an RE2 regex) (unknown: suffix)",
    ),
    (
        MATCH_KEY,
        [{"query": "x", "exact": "1"}],
        f"{MATCH_KEY}[0]",
        {"query": "x", "exact": "1"},
        "one of header or cookie",
    ),
    (
        MATCH_KEY,
        [{"header": "x", "cookie": "y", "exact": "1"}],
        f"{MATCH_KEY}[0]",
        {"header": "x", "cookie": "y", "exact": "1"},
        "one of header or cookie",
    ),
    (MATCH_KEY, [{"header": "x beta", "exact": "yes"}], f"{MATCH_KEY}[0].header", "x beta", "a header name"),
    (MATCH_KEY, [{"header": ":path", "exact": "/"}], f"{MATCH_KEY}[0].header", ":path", "a header name"),
    (MATCH_KEY, [{"cookie": "a;b", "exact": "1"}], f"{MATCH_KEY}[0].cookie", "a;b", "a cookie name"),
    (
        MATCH_KEY,
        [{"header": "x", "regex": "(a)\\1"}],
        f"{MATCH_KEY}[0].regex",
        "(a)\\1",
        f"a regex RE2 accepts (RE2 says: invalid escape sequence: \\1); {RE2_DOCS}",
    ),
    (
        MATCH_KEY,
        [{"cookie": "beta", "regex": "(?=x)y"}],
        f"{MATCH_KEY}[0].regex",
        "(?=x)y",
        "a regex RE2 accepts (RE2 says: invalid perl operator: (?=)",
    ),
    (
        MATCH_KEY,
        [{"header": "x", "regex": "a{1001}"}],
        f"{MATCH_KEY}[0].regex",
        "a{1001}",
        "(RE2 says: invalid repetition size: {1001})",
    ),
    (
        MATCH_KEY,
        [{"header": "x", "regex": ".{1000}" * 5}],
        f"{MATCH_KEY}[0].regex",
        ".{1000}" * 5,
        "its RE2 program size 40004 is over Envoy's limit in Istio, 32768",
    ),
    (MATCH_KEY, [{"cookie": "beta", "exact": "a b"}], f"{MATCH_KEY}[0].exact", "a b", "a cookie value"),
    (MATCH_KEY, [{"header": "x", "prefix": " padded"}], f"{MATCH_KEY}[0].prefix", " padded", "a header value"),
    (MATCH_KEY, [{"header": "x", "exact": ""}], f"{MATCH_KEY}[0].exact", "", "a non-empty string"),
    (
        MATCH_KEY,
        [{"header": "canary", "exact": "canary-tester"}, {"header": "x", "prefix": True}],
        f"{MATCH_KEY}[1].prefix",
        True,
        "a non-empty string",
    ),
    (STICKY_KEY, "shark canary", STICKY_KEY, "shark canary", "a cookie name"),
    (STICKY_KEY, "a;b", STICKY_KEY, "a;b", "a cookie name"),
    (FAULT_KEY, "nope", FAULT_KEY, "nope", "a JSON object with a delay and/or an abort"),
    (FAULT_KEY, [1], FAULT_KEY, [1], "a JSON object with a delay and/or an abort"),
    (FAULT_KEY, {"crash": {}}, FAULT_KEY, {"crash": {}}, "a JSON object with a delay and/or an abort"),
    (
        FAULT_KEY,
        {"abort": {"status": 700, "percent": 5}},
        f"{FAULT_KEY}.abort.status",
        700,
        "an HTTP status from 200 to 599",
    ),
    (
        FAULT_KEY,
        {"abort": {"status": 199, "percent": 5}},
        f"{FAULT_KEY}.abort.status",
        199,
        "an HTTP status from 200 to 599",
    ),
    (FAULT_KEY, {"abort": {"status": "teapot", "percent": 5}}, f"{FAULT_KEY}.abort.status", "teapot", "an HTTP status"),
    (
        FAULT_KEY,
        {"abort": {"status": 503, "percent": 0}},
        f"{FAULT_KEY}.abort.percent",
        0,
        "a whole number from 1 to 100",
    ),
    (FAULT_KEY, {"abort": {"status": 503, "percent": 101}}, f"{FAULT_KEY}.abort.percent", 101, "from 1 to 100"),
    (
        FAULT_KEY,
        {"abort": {"status": 503}},
        f"{FAULT_KEY}.abort",
        {"status": 503},
        "an object with exactly status and percent",
    ),
    (
        FAULT_KEY,
        {"delay": {"fixed": "5m", "percent": 10}},
        f"{FAULT_KEY}.delay.fixed",
        "5m",
        "a duration from 1ms to 60s",
    ),
    (
        FAULT_KEY,
        {"delay": {"fixed": "61s", "percent": 10}},
        f"{FAULT_KEY}.delay.fixed",
        "61s",
        "a duration from 1ms to 60s",
    ),
    (
        FAULT_KEY,
        {"delay": {"fixed": "0.5ms", "percent": 10}},
        f"{FAULT_KEY}.delay.fixed",
        "0.5ms",
        "whole milliseconds",
    ),
    (FAULT_KEY, {"delay": {"fixed": 2, "percent": 10}}, f"{FAULT_KEY}.delay.fixed", 2, "e.g. 250ms or 2s"),
    (FAULT_KEY, {"delay": {"fixed": "2s", "percent": 150}}, f"{FAULT_KEY}.delay.percent", 150, "from 1 to 100"),
]


@pytest.mark.parametrize(("key", "value", "where", "bad", "allowed"), BAD)
def test_a_bad_value_stops_the_run_before_any_resource_naming_key_value_and_allowed(
    key: str, value: Any, where: str, bad: Any, allowed: str
):
    with pytest.raises(RunFailed) as caught:
        run_stack("primary", {key: value})
    assert caught.value.resources == []
    assert isinstance(caught.value.error, ConfigError)
    [message] = caught.value.error.problems
    assert message.startswith(f"{where} = {bad!r} is not allowed: expected "), message
    assert allowed in message, message
    assert "pulumi config set" in message, message


def test_every_bad_part_of_a_value_is_reported_at_once():
    fault = {"delay": {"fixed": "1h", "percent": 0}, "abort": {"status": 99, "percent": 5}}
    _, problems = parse_canary_routing({FAULT_KEY: json.dumps(fault), MIRROR_KEY: "200"})
    assert [p.split(" = ")[0] for p in problems] == [
        MIRROR_KEY,
        f"{FAULT_KEY}.delay.fixed",
        f"{FAULT_KEY}.delay.percent",
        f"{FAULT_KEY}.abort.status",
    ]


# --- Under the mock runner: what each option changes, and how the plan shows it. ---


def comparable(run: Run) -> dict[str, str]:
    return {r.urn.split("::")[-1]: json.dumps(r.inputs, sort_keys=True) for r in run.resources}


def changed(before: Run, after: Run) -> tuple[set[str], set[str], set[str]]:
    """(added, removed, changed) resource names."""
    old, new = comparable(before), comparable(after)
    return (
        set(new) - set(old),
        set(old) - set(new),
        {name for name in old.keys() & new.keys() if old[name] != new[name]},
    )


def plan_diff(before: Run, after: Run) -> list[str]:
    def document(run: Run) -> dict[str, Any]:
        return json.loads(json.dumps(plan_document(run), sort_keys=True))

    return diff(document(before), document(after)).splitlines()


def shark_rules(run: Run) -> list[dict[str, Any]]:
    return run.one(VS, "shark-route-virtual-service").get("spec.http")


OPTIONS = {
    "mirror": {"canaryMirrorPercent": "10"},
    "match": {"canaryMatch": [{"header": "canary", "exact": "canary-tester"}, {"cookie": "beta", "prefix": "team-"}]},
    "no match": {"canaryMatch": []},
    "sticky": {"canaryStickyCookie": "shark-canary"},
}


@pytest.fixture(scope="module")
def manual_default() -> Run:
    return run_stack("primary")


@pytest.fixture(scope="module")
def manual_runs() -> dict[str, Run]:
    return {name: run_stack("primary", config) for name, config in OPTIONS.items()}


@pytest.mark.parametrize("option", OPTIONS)
def test_each_routing_option_moves_only_the_shark_virtual_service(manual_default, manual_runs, option: str):
    assert changed(manual_default, manual_runs[option]) == (set(), set(), {"shark-route-virtual-service"})
    assert manual_runs[option].outputs == manual_default.outputs


def test_each_option_renders_the_route_it_promises(manual_default, manual_runs):
    assert [rule["name"] for rule in shark_rules(manual_default)] == ["canary-header", "weighted"]
    assert [rule["name"] for rule in shark_rules(manual_runs["no match"])] == ["weighted"]
    assert [rule["name"] for rule in shark_rules(manual_runs["match"])] == ["canary-header", "beta-cookie", "weighted"]
    assert shark_rules(manual_runs["match"])[1]["match"] == [
        {"headers": {"cookie": {"regex": "^(?:.*;\\s*)?beta=team-[^;]*(?:;.*)?$"}}}
    ]
    sticky = shark_rules(manual_runs["sticky"])
    assert [rule["name"] for rule in sticky] == ["canary-header", "sticky", "weighted"]
    assert sticky[2]["route"][1]["headers"] == {
        "response": {"add": {"set-cookie": "shark-canary=v2; Path=/; HttpOnly; SameSite=Lax"}}
    }
    [mirror] = shark_rules(manual_runs["mirror"])[1]["mirrors"]
    assert mirror == {
        "destination": {"host": "shark", "subset": "v2", "port": {"number": 8080}},
        "percentage": {"value": 10},
    }


def test_the_plan_diff_shows_each_routing_change_readably(manual_default, manual_runs):
    header = ["meshburst plan diff, stack primary", f"~ {VS} shark-route-virtual-service"]
    unchanged = f"0 to add, 1 to change, 0 to remove, {len(manual_default.resources) - 1} unchanged"
    assert plan_diff(manual_default, manual_runs["mirror"]) == [
        *header,
        "    spec.http[1].mirrors[0].destination.host: (absent) -> shark",
        "    spec.http[1].mirrors[0].destination.port.number: (absent) -> 8080",
        "    spec.http[1].mirrors[0].destination.subset: (absent) -> v2",
        "    spec.http[1].mirrors[0].percentage.value: (absent) -> 10",
        unchanged,
    ]
    assert plan_diff(manual_default, manual_runs["sticky"]) == [
        *header,
        "    spec.http[name=sticky].match[0].headers.cookie.regex: (absent) -> ^(?:.*;\\s*)?shark-canary=v2(?:;.*)?$",
        "    spec.http[name=sticky].route[0].destination.host: (absent) -> shark",
        "    spec.http[name=sticky].route[0].destination.port.number: (absent) -> 8080",
        "    spec.http[name=sticky].route[0].destination.subset: (absent) -> v2",
        "    spec.http[name=sticky].route[0].weight: (absent) -> 100",
        "    spec.http[name=weighted].route[1].headers.response.add.set-cookie: (absent) -> "
        "shark-canary=v2; Path=/; HttpOnly; SameSite=Lax",
        unchanged,
    ]
    assert plan_diff(manual_default, manual_runs["no match"]) == [
        *header,
        "    spec.http[name=canary-header].match[0].headers.canary.exact: canary-tester -> (absent)",
        "    spec.http[name=canary-header].route[0].destination.host: shark -> (absent)",
        "    spec.http[name=canary-header].route[0].destination.port.number: 8080 -> (absent)",
        "    spec.http[name=canary-header].route[0].destination.subset: v2 -> (absent)",
        "    spec.http[name=canary-header].route[0].weight: 100 -> (absent)",
        unchanged,
    ]
    assert "    spec.http[name=beta-cookie].route[0].destination.subset: (absent) -> v2" in plan_diff(
        manual_default, manual_runs["match"]
    )


@pytest.fixture(scope="module")
def fault_runs() -> dict[str, Run]:
    return {
        "abort": run_stack("primary", {"canaryFault": ABORT_503}),
        "abort 500 + delay": run_stack(
            "primary",
            {"canaryFault": {"abort": {"status": 500, "percent": 5}, "delay": {"fixed": "2s", "percent": 50}}},
        ),
    }


def test_turning_the_fault_on_adds_only_v2s_fault_filter_and_says_so(manual_default, fault_runs):
    on = fault_runs["abort"]
    assert changed(manual_default, on) == ({"shark-v2-fault"}, set(), set())
    assert (manual_default.outputs["canaryFaultActive"], on.outputs["canaryFaultActive"]) == (False, True)
    assert plan_diff(manual_default, on) == [
        "meshburst plan diff, stack primary",
        f"+ {FILTER} shark-v2-fault",
        "~ output canaryFaultActive: false -> true",
        f"1 to add, 0 to change, 0 to remove, {len(manual_default.resources)} unchanged",
    ]
    fault_filter = on.one(FILTER, "shark-v2-fault")
    assert fault_filter.get("spec.workloadSelector") == {"labels": {"app": "shark", "version": "v2"}}
    assert fault_filter.get("spec.configPatches")[0]["patch"]["value"]["typed_config"]["abort"] == {
        "http_status": 503,
        "percentage": {"numerator": 5, "denominator": "HUNDRED"},
    }
    # The route itself does not change: the fault is on v2's sidecar, not on a (whole) http rule.
    assert shark_rules(on) == shark_rules(manual_default)


def test_changing_the_fault_changes_only_the_fault_filter(fault_runs):
    before, after = fault_runs["abort"], fault_runs["abort 500 + delay"]
    assert changed(before, after) == (set(), set(), {"shark-v2-fault"})
    lines = plan_diff(before, after)
    prefix = "    spec.configPatches[0].patch.value.typed_config"
    assert f"{prefix}.abort.http_status: 503 -> 500" in lines
    delay = '{"fixed_delay": "2s", "percentage": {"denominator": "HUNDRED", "numerator": 50}}'
    assert f"{prefix}.delay: (absent) -> {delay}" in lines


def test_the_plan_warns_loudly_while_a_fault_is_on(tmp_path: Path):
    result = subprocess.run(
        [
            *(sys.executable, "-m", "tools.plan", "primary", "--out", str(tmp_path)),
            *("--set", "canaryFault.abort.status=503", "--set", "canaryFault.abort.percent=5"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "shark: FAULT INJECTION is ON for v2: abort with HTTP 503 on 5% of v2's requests" in result.stderr
    assert (tmp_path / "manifests" / "envoyfilter-meshburst-shark-v2-fault.yaml").exists()


@pytest.fixture(scope="module")
def progressive_runs() -> tuple[Run, Run]:
    base = {"canaryMode": "progressive"}
    everything = {**base, **OPTIONS["sticky"], **OPTIONS["mirror"], **OPTIONS["match"], "canaryFault": ABORT_503}
    return run_stack("primary", base), run_stack("primary", everything)


def test_in_progressive_mode_the_options_reach_the_controller_through_the_intent(progressive_runs):
    before, after = progressive_runs
    # The controller owns the VirtualService; Pulumi changes only the intent it renders from (and adds the fault).
    assert changed(before, after) == ({"shark-v2-fault"}, set(), {"shark-route-intent"})
    intent = json.loads(after.one("kubernetes:core/v1:ConfigMap", "shark-route-intent").get("data")["intent.json"])
    spec = RouteSpec.from_json(intent["route"])
    assert (spec.sticky_cookie, spec.mirror_percent) == ("shark-canary", 10)
    # What the controller writes at any step keeps them, as Pulumi set them.
    for share in (5, 50):
        http = virtual_service_manifest(spec.with_share(share))["spec"]["http"]
        assert [rule["name"] for rule in http] == ["canary-header", "beta-cookie", "sticky", "weighted"]
        assert http[-1]["mirrors"][0]["percentage"] == {"value": 10}
        assert [r["weight"] for r in http[-1]["route"]] == [100 - share, share]


# --- Properties over random valid configs: config -> parse -> shark route. ---

_HEADER_NAME = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", fullmatch=True)
_COOKIE_NAME = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", fullmatch=True)
_HEADER_VALUE = st.from_regex(r"[\x21-\x7e]([\x20-\x7e]{0,8}[\x21-\x7e])?", fullmatch=True)
_COOKIE_VALUE = st.from_regex(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,10}", fullmatch=True)
_REGEX = st.sampled_from([".*", "[a-z]+", "(alpha|beta)[0-9]{1,3}", "v\\d+\\.\\d+", "^x-[^;]*$", "a|b|c"])


@st.composite
def match_entries(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["header", "cookie"]))
    match_type = draw(st.sampled_from(["exact", "prefix", "regex"]))
    if match_type == "regex":
        value: Any = draw(_REGEX)
    else:
        value = draw(_HEADER_VALUE if kind == "header" else _COOKIE_VALUE)
    name = draw(_HEADER_NAME if kind == "header" else _COOKIE_NAME)
    return {kind: name, match_type: value}


@settings(max_examples=200, deadline=None)
@given(
    weight=st.integers(0, 100),
    mirror=st.integers(0, 100),
    entries=st.lists(match_entries(), max_size=5),
    sticky=st.none() | _COOKIE_NAME,
)
def test_any_valid_config_renders_a_route_that_keeps_its_promises(
    weight: int, mirror: int, entries: list[dict[str, Any]], sticky: str | None
):
    raw = {MIRROR_KEY: str(mirror), MATCH_KEY: json.dumps(entries), STICKY_KEY: sticky}
    routing, problems = parse_canary_routing(raw)
    assert problems == []
    http = virtual_service_manifest(shark_route("apps", weight, routing))["spec"]["http"]
    names = [rule["name"] for rule in http]
    # Targeted rules in config order, then the sticky rule while v2 has a weight, the weighted rule last.
    has_sticky = sticky is not None and weight > 0
    assert len(http) == len(entries) + has_sticky + 1
    assert names[-1] == "weighted" and "match" not in http[-1]
    assert names[len(entries) : -1] == (["sticky"] if has_sticky else [])
    for entry, rule in zip(entries, http, strict=False):
        [(kind, name)] = [(k, v) for k, v in entry.items() if k in ("header", "cookie")]
        assert rule["name"].startswith(f"{name.lower()}-{kind}")
        [condition] = rule["match"][0]["headers"].items()
        assert condition[0] == (name.lower() if kind == "header" else "cookie")
    for rule in http:
        weights = [d["weight"] for d in rule["route"]]
        assert sum(weights) == 100 and all(w >= 0 for w in weights)
        for destination in rule["route"] + rule.get("mirrors", []):
            assert destination["destination"]["subset"] in ("v1", "v2")
            assert destination["destination"]["host"] == "shark"
        if rule is not http[-1]:
            assert [d["destination"]["subset"] for d in rule["route"]] == ["v2"]
    assert [d["weight"] for d in http[-1]["route"]] == [100 - weight, weight]
    assert ("mirrors" in http[-1]) is (mirror > 0 and weight < 100)
