"""WeightedRoute's pure pieces: the split, the VirtualService and the DestinationRule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builders.routes import (
    HeaderOverride,
    RouteSpec,
    destination_rule_manifest,
    split_weights,
    virtual_service_manifest,
)


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
                {"destination": {"host": "svc", "subset": "b", "port": {"number": 8080}}, "weight": 30},
            ],
        }
    ]


def test_header_override_comes_first():
    from dataclasses import replace

    vs = virtual_service_manifest(replace(SPEC, header_override=HeaderOverride("x-test", "yes", "b")))
    first = vs["spec"]["http"][0]
    assert first["match"] == [{"headers": {"x-test": {"exact": "yes"}}}]
    assert first["route"] == [{"destination": {"host": "svc", "subset": "b", "port": {"number": 8080}}, "weight": 100}]
    assert vs["spec"]["http"][1]["name"] == "weighted"


def test_override_to_an_unknown_subset_is_refused():
    from dataclasses import replace

    with pytest.raises(ValueError, match="header override subset 'c' is not a subset"):
        virtual_service_manifest(replace(SPEC, header_override=HeaderOverride("x", "y", "c")))


def test_destination_rule_subsets_and_load_balancer():
    from dataclasses import replace

    rule = destination_rule_manifest(replace(SPEC, load_balancer="RANDOM"))
    assert rule["spec"] == {
        "host": "svc",
        "subsets": [{"name": "a", "labels": {"v": "a"}}, {"name": "b", "labels": {"v": "b"}}],
        "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
    }
    assert "trafficPolicy" not in destination_rule_manifest(SPEC)["spec"]
