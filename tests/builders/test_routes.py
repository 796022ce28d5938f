"""WeightedRoute's pure pieces: the split, the VirtualService (overrides, sticky cookie, mirror), the
DestinationRule and the fault filter, proven by Istio's schemas and by walking the rules as Istio does."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.lib.meshroute import STICKY_RULE, WEIGHTED_RULE, cookie_regex, http_fault_config, re2_escape
from builders.routes import (
    Abort,
    Delay,
    FaultInjection,
    RequestMatch,
    RouteSpec,
    destination_rule_manifest,
    fault_filter_manifest,
    header_override,
    live_share,
    split_weights,
    virtual_service_manifest,
)
from tests.support.gates import istio_findings


@pytest.mark.parametrize(
    ("share", "expected"), [(0, (100, 0)), (1, (99, 1)), (20, (80, 20)), (50, (50, 50)), (99, (1, 99)), (100, (0, 100))]
)
def test_split_weights(share: int, expected: tuple[int, int]):
    assert split_weights(share) == expected


@given(st.integers(min_value=0, max_value=100))
def test_split_always_sums_to_100_with_non_negative_integers(share: int):
    first, second = split_weights(share)
    assert first + second == 100
    assert first >= 0 and second >= 0
    assert type(first) is int and type(second) is int
    assert second == share


@pytest.mark.parametrize("bad", [-1, 101, 20.5, "20", True, None])
def test_split_rejects_what_is_not_a_percentage(bad):
    with pytest.raises((TypeError, ValueError), match="share must be"):
        split_weights(bad)


SPEC = RouteSpec(
    name="svc", namespace="ns", host="svc", subsets={"a": {"v": "a"}, "b": {"v": "b"}}, share_to_second=30, port=8080
)
TO_B = {"host": "svc", "subset": "b", "port": {"number": 8080}}


def rules(spec: RouteSpec) -> list[dict[str, Any]]:
    return virtual_service_manifest(spec)["spec"]["http"]


def test_virtual_service_without_override_is_one_weighted_rule_on_the_mesh():
    vs = virtual_service_manifest(SPEC)
    assert vs["apiVersion"] == "networking.istio.io/v1"
    assert vs["spec"]["hosts"] == ["svc"]
    assert "gateways" not in vs["spec"]
    assert vs["spec"]["http"] == [
        {
            "name": "weighted",
            "route": [
                {"destination": {"host": "svc", "subset": "a", "port": {"number": 8080}}, "weight": 70},
                {"destination": TO_B, "weight": 30},
            ],
        }
    ]


def test_header_override_comes_first():
    first, weighted = rules(replace(SPEC, overrides=[header_override("x-test", "yes", "b")]))
    assert first == {
        "name": "x-test-header",
        "match": [{"headers": {"x-test": {"exact": "yes"}}}],
        "route": [{"destination": TO_B, "weight": 100}],
    }
    assert weighted["name"] == "weighted"


def test_override_to_an_unknown_subset_is_refused():
    with pytest.raises(ValueError, match="override header 'x': subset 'c' is not a subset"):
        virtual_service_manifest(replace(SPEC, overrides=[header_override("x", "y", "c")]))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (RequestMatch("query", "x", "exact", "y", "b"), "kind must be one of"),
        (RequestMatch("header", "x", "suffix", "y", "b"), "match type 'suffix' is not one of"),
        (RequestMatch("header", "x y", "exact", "y", "b"), "not a valid header name"),
        (RequestMatch("header", "X-Beta", "exact", "y", "b"), "not a valid header name"),
        (RequestMatch("cookie", "a;b", "exact", "y", "b"), "not a valid cookie name"),
    ],
)
def test_the_renderer_refuses_a_match_istio_would_reject_or_misread(override: RequestMatch, message: str):
    with pytest.raises(ValueError, match=message):
        virtual_service_manifest(replace(SPEC, overrides=[override]))


@pytest.mark.parametrize(
    ("changes", "message"), [({"sticky_cookie": "a b"}, "sticky cookie"), ({"mirror_percent": 101}, "mirror")]
)
def test_the_renderer_refuses_a_bad_sticky_cookie_or_mirror(changes: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        virtual_service_manifest(replace(SPEC, **changes))


@pytest.mark.parametrize(
    ("match_type", "value", "header", "expected"),
    [
        ("exact", "team-a", "team=team-a", True),
        ("exact", "team-a", "x=1; team=team-a; y=2", True),
        ("exact", "team-a", "team=team-ab", False),
        ("exact", "team-a", "myteam=team-a", False),
        ("exact", "a.b", "team=aXb", False),  # the dot is escaped, not "any character"
        ("prefix", "team-", "x=1; team=team-zebra", True),
        ("prefix", "team-", "team=other", False),
        ("regex", "(alpha|beta)[0-9]+", "team=beta7; z=1", True),
        ("regex", "(alpha|beta)[0-9]+", "team=gamma7", False),
    ],
)
def test_a_cookie_match_is_a_whole_cookie_header_regex_re2_evaluates(
    match_type: str, value: str, header: str, expected: bool
):
    [match] = RequestMatch("cookie", "team", match_type, value, "b").istio_match()["headers"].items()
    assert match[0] == "cookie"
    assert (re2.fullmatch(match[1]["regex"], header) is not None) is expected


@given(
    name=st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}", fullmatch=True),
    value=st.from_regex(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,16}", fullmatch=True),
)
def test_an_exact_cookie_match_finds_its_cookie_and_nothing_else(name: str, value: str):
    pattern = cookie_regex(name, "exact", value)
    assert re2.fullmatch(pattern, f"{name}={value}")
    assert re2.fullmatch(pattern, f"a=1; {name}={value}; b=2")
    assert not re2.fullmatch(pattern, f"{name}={value}x")
    assert not re2.fullmatch(pattern, f"x{name}={value}")
    assert re2.fullmatch(re2_escape(value), value)


def test_sticky_cookie_rule_sits_between_the_overrides_and_the_weights():
    spec = replace(SPEC, overrides=[header_override("x-test", "yes", "b")], sticky_cookie="stay")
    names = [rule["name"] for rule in rules(spec)]
    assert names == ["x-test-header", STICKY_RULE, WEIGHTED_RULE]
    sticky, weighted = rules(spec)[1:]
    assert sticky == {
        "name": "sticky",
        "match": [{"headers": {"cookie": {"regex": "^(?:.*;\\s*)?stay=b(?:;.*)?$"}}}],
        "route": [{"destination": TO_B, "weight": 100}],
    }
    # The cookie is set on responses from b only: a header rule on b's destination, none on a's.
    assert "headers" not in weighted["route"][0]
    assert weighted["route"][1]["headers"] == {
        "response": {"add": {"set-cookie": "stay=b; Path=/; HttpOnly; SameSite=Lax"}}
    }


def test_without_a_weight_for_the_second_subset_stickiness_is_gone():
    # A rollback (share 0) sends clients holding the cookie back to the weights, so to the first subset.
    names = [rule["name"] for rule in rules(replace(SPEC, sticky_cookie="stay", share_to_second=0))]
    assert names == [WEIGHTED_RULE]
    assert "headers" not in rules(replace(SPEC, sticky_cookie="stay", share_to_second=0))[0]["route"][1]


def test_mirror_copies_the_weighted_requests_to_the_second_subset():
    [weighted] = rules(replace(SPEC, mirror_percent=25))
    assert weighted["mirrors"] == [{"destination": TO_B, "percentage": {"value": 25}}]
    assert "mirrors" not in rules(SPEC)[0]
    # At 100 every request already reaches the second subset: nothing left to copy.
    assert "mirrors" not in rules(replace(SPEC, mirror_percent=25, share_to_second=100))[0]


def test_overrides_with_one_name_get_distinct_rule_names():
    spec = replace(
        SPEC, overrides=[header_override("x", "1", "b"), header_override("x", "2", "b"), header_override("x", "3", "a")]
    )
    assert [rule["name"] for rule in rules(spec)] == ["x-header", "x-header-2", "x-header-3", WEIGHTED_RULE]


# --- Istio evaluates http rules in order; the first whose match fits wins (no match: always fits). ---


def _string_match(condition: Mapping[str, str], value: str | None) -> bool:
    if value is None:
        return False
    [(how, pattern)] = condition.items()
    if how == "exact":
        return value == pattern
    if how == "prefix":
        return value.startswith(pattern)
    assert how == "regex", how
    return re2.fullmatch(pattern, value) is not None  # Envoy's safe_regex: RE2, whole value


def route_request(vs: Mapping[str, Any], headers: Mapping[str, str], dice: int) -> tuple[str, dict[str, Any]]:
    """The rule and destination Istio picks for a request; `dice` (0-99) is the weighted draw."""
    for rule in vs["spec"]["http"]:
        matches = rule.get("match")
        fits = matches is None or any(
            all(_string_match(cond, headers.get(name)) for name, cond in m["headers"].items()) for m in matches
        )
        if not fits:
            continue
        total = 0
        for destination in rule["route"]:
            total += destination["weight"]
            if dice < total:
                return rule["name"], destination
        raise AssertionError(f"weights of {rule['name']} do not reach {dice}")
    raise AssertionError("no rule fits: Istio would answer 404")


class Client:
    """A browser: keeps the cookies the responses set and sends them back."""

    def __init__(self, **headers: str) -> None:
        self.headers = dict(headers)
        self.cookies: dict[str, str] = {"session": "abc"}

    def get(self, vs: Mapping[str, Any], dice: int) -> tuple[str, str]:
        headers = {**self.headers, "cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        rule, destination = route_request(vs, headers, dice)
        set_cookie = destination.get("headers", {}).get("response", {}).get("add", {}).get("set-cookie")
        if set_cookie:
            name, _, value = set_cookie.split(";")[0].partition("=")
            self.cookies[name] = value
        return rule, destination["destination"]["subset"]


SHARKISH = RouteSpec(
    name="shark",
    namespace="apps",
    host="shark",
    subsets={"v1": {"version": "v1"}, "v2": {"version": "v2"}},
    share_to_second=20,
    port=8080,
    overrides=[header_override("canary", "canary-tester", "v2")],
    sticky_cookie="shark-canary",
)
ON_V1, ON_V2 = 10, 90  # weighted draws that land on v1 (0-79) and on v2 (80-99) at 80/20


def test_a_client_the_weights_sent_to_v2_stays_on_v2():
    vs = virtual_service_manifest(SHARKISH)
    client = Client()
    assert client.get(vs, ON_V2) == (WEIGHTED_RULE, "v2")
    assert client.cookies["shark-canary"] == "v2"
    # Every later draw would send it to v1; the cookie's rule comes first.
    assert [client.get(vs, ON_V1) for _ in range(3)] == [(STICKY_RULE, "v2")] * 3


def test_a_client_the_weights_sent_to_v1_gets_no_cookie_and_stays_on_the_weights():
    vs = virtual_service_manifest(SHARKISH)
    client = Client()
    assert client.get(vs, ON_V1) == (WEIGHTED_RULE, "v1")
    assert "shark-canary" not in client.cookies
    assert client.get(vs, ON_V2) == (WEIGHTED_RULE, "v2")


def test_the_canary_header_wins_before_the_cookie_and_the_weights():
    vs = virtual_service_manifest(SHARKISH)
    tester = Client(canary="canary-tester")
    assert tester.get(vs, ON_V1) == ("canary-header", "v2")
    assert "shark-canary" not in tester.cookies  # the header's rule sets no cookie: testers stay testers
    tester.cookies["shark-canary"] = "v2"
    assert tester.get(vs, ON_V1) == ("canary-header", "v2")
    wrong_header = Client(canary="someone-else")
    assert wrong_header.get(vs, ON_V1) == (WEIGHTED_RULE, "v1")


def test_a_cookie_with_another_value_or_name_is_not_sticky():
    vs = virtual_service_manifest(SHARKISH)
    for cookies in ({"shark-canary": "v1"}, {"shark-canaryx": "v2"}, {"xshark-canary": "v2"}):
        client = Client()
        client.cookies.update(cookies)
        assert client.get(vs, ON_V1) == (WEIGHTED_RULE, "v1"), cookies


def test_after_a_rollback_a_sticky_client_goes_back_to_v1():
    client = Client()
    client.get(virtual_service_manifest(SHARKISH), ON_V2)
    rolled_back = virtual_service_manifest(SHARKISH.with_share(0))
    assert client.get(rolled_back, ON_V2) == (WEIGHTED_RULE, "v1")


def test_cookie_and_header_matches_target_v2_in_their_order():
    spec = replace(
        SHARKISH,
        overrides=[
            RequestMatch("cookie", "beta", "prefix", "team-", "v2"),
            RequestMatch("header", "user-agent", "regex", ".*Firefox/[0-9]+.*", "v2"),
        ],
        sticky_cookie=None,
    )
    vs = virtual_service_manifest(spec)
    beta = Client()
    beta.cookies["beta"] = "team-blue"
    assert beta.get(vs, ON_V1) == ("beta-cookie", "v2")
    assert Client(**{"user-agent": "Mozilla/5.0 Firefox/128.0"}).get(vs, ON_V1) == ("user-agent-header", "v2")
    assert Client(**{"user-agent": "curl/8.5"}).get(vs, ON_V1) == (WEIGHTED_RULE, "v1")


# --- Properties over random valid routes. ---

_SUBSET = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)
_TOKEN = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9a-z]{1,10}", fullmatch=True)
_COOKIE_VALUE = st.from_regex(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,10}", fullmatch=True)
_REGEX = st.sampled_from([".*", "[a-z]+", "(alpha|beta)[0-9]{1,3}", "v\\d+\\.\\d+", "^x-[^;]*$"])


@st.composite
def route_specs(draw: st.DrawFn) -> RouteSpec:
    first = draw(_SUBSET)
    second = draw(_SUBSET.filter(lambda name: name != first))

    def a_match(subset: str) -> RequestMatch:
        kind = draw(st.sampled_from(["header", "cookie"]))
        match_type = draw(st.sampled_from(["exact", "prefix", "regex"]))
        value = draw(_REGEX if match_type == "regex" else _COOKIE_VALUE)
        return RequestMatch(kind, draw(_TOKEN), match_type, value, subset)

    overrides = [a_match(draw(st.sampled_from([first, second]))) for _ in range(draw(st.integers(0, 4)))]
    return RouteSpec(
        name="r",
        namespace="ns",
        host="svc",
        subsets={first: {"version": first}, second: {"version": second}},
        share_to_second=draw(st.integers(0, 100)),
        port=draw(st.integers(1, 65535)),
        hosts=draw(st.sampled_from([(), ("*",)])),
        gateways=draw(st.sampled_from([(), ("gw",)])),
        overrides=overrides,
        sticky_cookie=draw(st.none() | _TOKEN),
        mirror_percent=draw(st.integers(0, 100)),
    )


@settings(max_examples=300)
@given(route_specs())
def test_every_rendered_route_is_one_istio_accepts_and_means_what_the_spec_says(spec: RouteSpec):
    http = rules(spec)
    weighted = http[-1]
    # The weighted rule is last and catches everything; every rule before it matches something.
    assert weighted["name"] == WEIGHTED_RULE and "match" not in weighted
    assert all(rule["match"] for rule in http[:-1])
    assert len({rule["name"] for rule in http}) == len(http)
    # Weights: non-negative whole numbers that sum to 100 in every rule.
    for rule in http:
        weights = [destination["weight"] for destination in rule["route"]]
        assert sum(weights) == 100 and all(type(w) is int and w >= 0 for w in weights)
    # Every destination, mirrors too, names an existing subset of the route's host.
    destinations = [d["destination"] for rule in http for d in rule["route"] + rule.get("mirrors", [])]
    assert all(d["subset"] in spec.subsets and d["host"] == "svc" for d in destinations)
    # Overrides first in their order, then the sticky rule (while the second subset has a weight).
    sticky = spec.sticky_cookie is not None and spec.share_to_second > 0
    assert len(http) == len(spec.overrides) + sticky + 1
    assert [rule["route"][0]["destination"]["subset"] for rule in http[: len(spec.overrides)]] == [
        o.subset for o in spec.overrides
    ]
    assert [rule["name"] for rule in http[len(spec.overrides) : -1]] == ([STICKY_RULE] if sticky else [])
    mirrored = spec.mirror_percent > 0 and spec.share_to_second < 100
    assert ("mirrors" in weighted) is mirrored
    assert live_share(virtual_service_manifest(spec), spec) == spec.share_to_second
    # Every regex is one RE2 (Envoy) compiles.
    for rule in http[:-1]:
        for condition in rule["match"][0]["headers"].values():
            if "regex" in condition:
                re2.compile(condition["regex"])


@settings(max_examples=300)
@given(route_specs())
def test_a_route_spec_survives_the_intent_json(spec: RouteSpec):
    assert RouteSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.with_share(7).to_json() == {**spec.to_json(), "share_to_second": 7}


def test_an_intent_written_before_overrides_still_reads():
    old = {k: v for k, v in SHARKISH.to_json().items() if k not in ("overrides", "sticky_cookie", "mirror_percent")}
    old["header_override"] = {"name": "canary", "value": "canary-tester", "subset": "v2"}
    spec = RouteSpec.from_json(old)
    assert spec.overrides == (header_override("canary", "canary-tester", "v2"),)
    assert (spec.sticky_cookie, spec.mirror_percent) == (None, 0)


def test_destination_rule_subsets_and_load_balancer():
    rule = destination_rule_manifest(replace(SPEC, load_balancer="RANDOM"))
    assert rule["spec"] == {
        "host": "svc",
        "subsets": [{"name": "a", "labels": {"v": "a"}}, {"name": "b", "labels": {"v": "b"}}],
        "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
    }
    assert "trafficPolicy" not in destination_rule_manifest(SPEC)["spec"]


# --- Fault injection: an EnvoyFilter on the second subset's inbound sidecar. ---

FAULT = FaultInjection(delay=Delay(fixed_ms=1500, percent=10), abort=Abort(status=503, percent=5))


def test_the_fault_filter_sits_on_v2s_inbound_chain_only():
    manifest = fault_filter_manifest("shark-v2-fault", "apps", {"app": "shark", "version": "v2"}, 8080, FAULT)
    assert manifest["apiVersion"] == "networking.istio.io/v1alpha3" and manifest["kind"] == "EnvoyFilter"
    spec = manifest["spec"]
    assert spec["workloadSelector"] == {"labels": {"app": "shark", "version": "v2"}}
    [patch] = spec["configPatches"]
    assert patch["applyTo"] == "HTTP_FILTER"
    assert patch["match"] == {
        "context": "SIDECAR_INBOUND",
        "listener": {
            "portNumber": 8080,
            "filterChain": {
                "filter": {
                    "name": "envoy.filters.network.http_connection_manager",
                    "subFilter": {"name": "envoy.filters.http.router"},
                }
            },
        },
    }
    assert patch["patch"] == {
        "operation": "INSERT_BEFORE",
        "value": {
            "name": "envoy.filters.http.fault",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
                "delay": {"fixed_delay": "1.500s", "percentage": {"numerator": 10, "denominator": "HUNDRED"}},
                "abort": {"http_status": 503, "percentage": {"numerator": 5, "denominator": "HUNDRED"}},
            },
        },
    }


@pytest.mark.parametrize(("milliseconds", "duration"), [(1, "0.001s"), (250, "0.250s"), (2000, "2s"), (60000, "60s")])
def test_delays_are_protobuf_json_durations(milliseconds: int, duration: str):
    config = http_fault_config(FaultInjection(delay=Delay(fixed_ms=milliseconds, percent=1)))
    assert config["delay"]["fixed_delay"] == duration
    assert "abort" not in config


def test_a_fault_filter_needs_a_fault_and_a_workload():
    with pytest.raises(ValueError, match="needs a delay, an abort or both"):
        fault_filter_manifest("f", "apps", {"app": "shark"}, 8080, FaultInjection())
    with pytest.raises(ValueError, match="every pod in apps"):
        fault_filter_manifest("f", "apps", {}, 8080, FAULT)


def test_every_option_renders_objects_istios_schemas_accept():
    variants = {
        "plain": SPEC,
        "header": replace(SPEC, overrides=[header_override("x-test", "yes", "b")]),
        "cookie": replace(SPEC, overrides=[RequestMatch("cookie", "beta", "prefix", "team-", "b")]),
        "regex": replace(SPEC, overrides=[RequestMatch("header", "user-agent", "regex", ".*Firefox.*", "b")]),
        "sticky": replace(SPEC, sticky_cookie="stay"),
        "mirror": replace(SPEC, mirror_percent=10),
        "all": replace(
            SHARKISH,
            overrides=[*SHARKISH.overrides, RequestMatch("cookie", "beta", "regex", "(a|b)[0-9]+", "v2")],
            mirror_percent=50,
            gateways=["gw"],
            hosts=["*"],
        ),
    }
    objects = [
        {**virtual_service_manifest(spec), "metadata": {"name": name, "namespace": "ns"}}
        for name, spec in variants.items()
    ]
    objects.append(destination_rule_manifest(SHARKISH))
    for name, fault in {
        "delay": FaultInjection(delay=Delay(fixed_ms=250, percent=100)),
        "abort": FaultInjection(abort=Abort(status=500, percent=1)),
        "both": FAULT,
    }.items():
        objects.append(fault_filter_manifest(f"fault-{name}", "ns", {"app": "shark", "version": "v2"}, 8080, fault))
    assert istio_findings(objects) == []
    # The gate reads what it is given: a misspelt field in the new parts is caught.
    broken = virtual_service_manifest(variants["all"])
    broken["spec"]["http"][-1]["mirrors"][0]["percentag"] = broken["spec"]["http"][-1]["mirrors"][0].pop("percentage")
    broken_filter = fault_filter_manifest("broken", "ns", {"app": "shark"}, 8080, FAULT)
    broken_filter["spec"]["configPatches"][0]["match"]["context"] = "SIDECAR_INBUOND"
    findings = istio_findings([broken, broken_filter])
    assert 'VirtualService shark: unknown field "percentag"' in findings, findings
    assert any(f.startswith("EnvoyFilter broken: /spec/configPatches/0/match/context") for f in findings), findings
