"""config/settings.py: the config contract, checked before any resource exists."""

from __future__ import annotations

import json

import pytest
import yaml

from config.settings import DEFAULTS, ConfigError, parse_settings
from tests.support.paths import ROOT
from tools.mockrun import (
    PROJECT_ID,
    RunFailed,
    run_stack,
)

BASE = {"gcp:project": PROJECT_ID, "gcp:zone": "us-west1-a"}


def parse(stack: str = "primary", **config: str | None) -> object:
    raw = {"gcp:project": PROJECT_ID} | {k if ":" in k else f"meshburst:{k}": v for k, v in config.items()}
    return parse_settings(raw, stack)


def problems(stack: str = "primary", **config: str | None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(stack, **config)
    return caught.value.problems


BAD_PROGRAM_CONFIGS = [
    (
        "primary",
        {"canryWeight": "50"},
        "meshburst:canryWeight is not a setting meshburst reads (did you mean canaryWeight?)",
    ),
    ("burst", {"maxNode": "3"}, "meshburst:maxNode is not a setting meshburst reads (did you mean maxNodes?)"),
    ("primary", {"hashrMaxRps": "5000"}, "meshburst:hashrMaxRps"),
    ("primary", {"canaryWeight": "-1"}, "meshburst:canaryWeight"),
    ("primary", {"canaryWeight": "101"}, "meshburst:canaryWeight"),
    ("primary", {"burstWeight": "abc"}, "meshburst:burstWeight"),
    ("primary", {"burstWeight": "20.5"}, "meshburst:burstWeight"),
    ("primary", {"canaryWeight": ""}, "meshburst:canaryWeight"),
    ("burst", {"minNodes": "3", "maxNodes": "2"}, "meshburst:minNodes"),
    ("burst", {"maxNodes": "0"}, "meshburst:maxNodes"),
    ("primary", {"nodeCount": "0"}, "meshburst:nodeCount"),
    ("primary", {"role": "edge"}, "meshburst:role"),
    ("primary", {"burstMode": "sometimes"}, "meshburst:burstMode"),
    ("primary", {"burstMode": "auto", "burstPolicy": "spill"}, "meshburst:burstPolicy"),
    ("primary", {"burstPolicy": "overflow", "primaryCapacityRps": "0"}, "meshburst:primaryCapacityRps"),
    ("primary", {"burstLowRps": "20"}, "meshburst:burstLowRps"),
    ("primary", {"gcp:project": None}, "gcp:project"),
    ("burst", {"istioVersion": "newest"}, "meshburst:istioVersion"),
    ("primary", {"apiAuthorizedNetworks": '["203.0.113.0/33"]'}, "meshburst:apiAuthorizedNetworks"),
    ("burst", {"binaryAuthorization": "enforce"}, "meshburst:binaryAuthorization"),
    ("primary", {"kmsKey": "keyRings/r/cryptoKeys/k"}, "meshburst:kmsKey"),
    ("burst", {"intranodeVisibility": "1"}, "meshburst:intranodeVisibility"),
    ("primary", {"rbacSecurityGroup": "not-an-email"}, "meshburst:rbacSecurityGroup"),
]


@pytest.mark.parametrize(
    ("key", "bad", "allowed"),
    [
        ("apiAuthorizedNetworks", '["10.0.0.300/8"]', "IPv4 CIDRs"),
        ("apiAuthorizedNetworks", '["10.0.0.1/8"]', "IPv4 CIDRs"),
        ("apiAuthorizedNetworks", '["0.0.0.0/0"]', "none of them 0.0.0.0/0"),
        ("apiAuthorizedNetworks", '"203.0.113.0/24"', "a JSON list"),
        ("apiAuthorizedNetworks", '["2001:db8::/32"]', "IPv4 CIDRs"),
        ("binaryAuthorization", "yes", "true or false"),
        ("kmsKey", "my-key", "a Cloud KMS key id projects/PROJECT/locations/REGION/keyRings/RING/cryptoKeys/KEY"),
        ("kmsKey", "projects/p/locations/us-west1/keyRings/r", "a Cloud KMS key id"),
        ("intranodeVisibility", "on", "true or false"),
        ("rbacSecurityGroup", "admins", "gke-security-groups@<your domain>"),
        ("rbacSecurityGroup", "admins@example.com", "gke-security-groups@<your domain>"),
    ],
)
def test_a_bad_security_value_is_refused_naming_key_value_and_what_is_allowed(key: str, bad: str, allowed: str):
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, f"meshburst:{key}": bad}, "primary")
    [message] = caught.value.problems
    assert message.startswith(f"meshburst:{key} = ")
    assert repr(bad) in message or repr(bad.strip('[]"')) in message
    assert allowed in message


def test_more_authorized_networks_than_gke_allows_are_refused():
    cidrs = [f"203.0.{i}.0/24" for i in range(50)]
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, "meshburst:apiAuthorizedNetworks": str(cidrs).replace("'", '"')}, "primary")
    assert "at most 49" in caught.value.problems[0]


def test_a_kms_key_outside_the_stacks_region_is_refused():
    key = "projects/meshburst-test-123/locations/europe-west1/keyRings/r/cryptoKeys/k"
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, "meshburst:kmsKey": key}, "primary")
    assert caught.value.problems == [
        f"meshburst:kmsKey = {key!r} is in europe-west1, but this stack's clusters and registry are in us-west1: "
        "expected a key under projects/PROJECT/locations/us-west1/..."
    ]


def test_good_security_values_parse_to_what_the_components_take():
    security = parse_settings(
        {
            **BASE,
            "meshburst:apiAuthorizedNetworks": '[" 203.0.113.0/24 ", "203.0.113.0/24", "10.0.0.0/8"]',
            "meshburst:binaryAuthorization": "TRUE",
            "meshburst:rbacSecurityGroup": "gke-security-groups@corp.example.co.uk",
        },
        "primary",
    ).security
    assert security.api_authorized_networks == ("203.0.113.0/24", "10.0.0.0/8")
    assert security.binary_authorization is True and security.rbac_security_group.endswith("example.co.uk")
    assert security.enabled == {"apiAuthorizedNetworks", "binaryAuthorization", "rbacSecurityGroup"}


def test_auto_mode_without_prometheus_stops_before_any_resource():
    with pytest.raises(RunFailed) as caught:
        run_stack("primary", {"burstMode": "auto", "addons": {"prometheus": False}})
    assert isinstance(caught.value.error, ConfigError)
    assert "burstMode = 'auto' needs Prometheus" in str(caught.value.error)
    assert caught.value.resources == []


def test_defaults_follow_the_design_table():
    s = parse()
    assert (s.role, s.zone, s.region, s.network, s.machine_type) == (
        "primary",
        "us-west1-a",
        "us-west1",
        "default",
        "n1-standard-2",
    )
    assert (s.disk_size_gb, s.node_count, s.min_nodes, s.max_nodes) == (100, 4, 1, 5)
    assert (s.istio_version, s.mesh_id, s.mesh_network) == ("1.30.3", "mesh1", "network1")
    assert (s.canary_weight, s.burst_weight, s.burst_mode) == (20, 0, "manual")
    assert (s.burst_high_rps, s.burst_low_rps) == (15.0, 10.0)
    assert (s.burst_policy, s.primary_capacity_rps) == ("switch", 40.0)
    assert s.primary_stack == "organization/meshburst/primary"
    assert s.hashr_max_rps == 100
    assert s.images is None
    assert (s.addons.prometheus, s.addons.grafana, s.addons.kiali) == (True, False, False)
    assert s.deletion_protection is False


def test_settings_are_frozen():
    s = parse()
    with pytest.raises(AttributeError):
        s.canary_weight = 50  # type: ignore[misc]


def test_role_defaults_to_stack_name_and_can_be_set():
    assert parse("burst").role == "burst"
    assert parse("dev", role="burst").role == "burst"


def test_role_of_a_stack_with_another_name_must_be_set():
    [message] = problems("dev")
    assert "meshburst:role is not set" in message and "'dev'" in message and "pulumi config set role" in message


def test_pulumi_yaml_declares_every_key_with_the_settings_default():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for key, default in DEFAULTS.items():
        namespace, name = key.split(":")
        if namespace != "meshburst" or name in ("images", "addons", "canaryMatch", "canaryFault"):
            continue
        assert name in declared, f"{name} is not declared in Pulumi.yaml"
        # The only types Pulumi's project schema (sdk/go/common/workspace/project.json) accepts for a config key.
        assert declared[name]["type"] in ("string", "integer", "boolean", "array"), name
        assert declared[name]["description"]
        if default is not None:
            assert str(declared[name]["default"]).lower() == default.lower(), name


@pytest.mark.parametrize("key", ["canaryWeight", "burstWeight"])
@pytest.mark.parametrize("bad", ["-1", "101", "abc", "20.5", ""])
def test_bad_weight_names_key_value_and_range(key: str, bad: str):
    [message] = problems(**{key: bad})
    assert message.startswith(f"meshburst:{key} = {bad!r} is not allowed")
    assert "a whole number from 0 to 100" in message
    assert f"pulumi config set {key}" in message


@pytest.mark.parametrize("good", ["0", "1", "50", "100", " 7 "])
def test_good_weights_parse(good: str):
    assert parse(canaryWeight=good).canary_weight == int(good)


def test_min_nodes_above_max_nodes():
    [message] = problems("burst", minNodes="4", maxNodes="2")
    assert message == (
        "meshburst:minNodes = 4 is greater than meshburst:maxNodes = 2: expected 0 <= minNodes <= maxNodes <= 100"
    )


def test_max_nodes_zero():
    [message] = problems("burst", maxNodes="0")
    assert "meshburst:maxNodes = '0'" in message and "from 1 to 100" in message


def test_node_count_zero():
    [message] = problems(nodeCount="0")
    assert "meshburst:nodeCount = '0'" in message and "from 1 to 100" in message


def test_unknown_role():
    [message] = problems(role="edge")
    assert "meshburst:role = 'edge'" in message and "primary or burst" in message


def test_unknown_burst_mode():
    [message] = problems(burstMode="turbo")
    assert "meshburst:burstMode = 'turbo'" in message and "manual or auto" in message


@pytest.mark.parametrize(("low", "high"), [("15", "15"), ("20", "15")])
def test_low_rps_must_be_below_high_rps(low: str, high: str):
    [message] = problems(burstLowRps=low, burstHighRps=high)
    assert f"meshburst:burstLowRps = {float(low):g} is not below meshburst:burstHighRps = {float(high):g}" in message


@pytest.mark.parametrize("bad", ["switched", "Overflow", "", "auto"])
def test_unknown_burst_policy_names_key_value_and_the_policies(bad: str):
    [message] = problems(burstPolicy=bad)
    assert message.startswith(f"meshburst:burstPolicy = {bad!r} is not allowed: expected switch or overflow")
    assert "pulumi config set burstPolicy" in message


@pytest.mark.parametrize("bad", ["0", "-40", "nan", "inf", "forty", ""])
def test_primary_capacity_must_be_a_positive_number(bad: str):
    [message] = problems(burstPolicy="overflow", primaryCapacityRps=bad)
    assert message.startswith(
        f"meshburst:primaryCapacityRps = {bad!r} is not allowed: expected a number greater than 0"
    )


@pytest.mark.parametrize(("policy", "capacity"), [("switch", "40"), ("overflow", "12.5"), ("overflow", " 400 ")])
def test_good_policies_and_capacities_parse(policy: str, capacity: str):
    s = parse(burstMode="auto", burstPolicy=policy, primaryCapacityRps=capacity)
    assert (s.burst_policy, s.primary_capacity_rps) == (policy, float(capacity))


def test_a_bad_capacity_does_not_hide_thresholds_in_the_wrong_order():
    found = problems(primaryCapacityRps="0", burstLowRps="20", burstHighRps="15")
    assert [p.split(" = ")[0] for p in found] == ["meshburst:primaryCapacityRps", "meshburst:burstLowRps"]


@pytest.mark.parametrize("bad", ["0", "-3", "nan", "inf", "fast"])
def test_rps_thresholds_must_be_positive_numbers(bad: str):
    assert any("meshburst:burstHighRps" in p and "a number greater than 0" in p for p in problems(burstHighRps=bad))


def test_missing_project():
    with pytest.raises(ConfigError) as caught:
        parse_settings({}, "primary")
    [message] = caught.value.problems
    assert message.startswith("gcp:project is required but not set")
    assert "pulumi config set gcp:project" in message


@pytest.mark.parametrize("bad", ["latest", "1.30", "v1.30.3", "1.30.x"])
def test_istio_version_must_be_a_version(bad: str):
    [message] = problems(istioVersion=bad)
    assert f"meshburst:istioVersion = {bad!r}" in message and "a version such as 1.30.3" in message


def test_auto_mode_without_prometheus_is_refused():
    [message] = problems(burstMode="auto", addons='{"prometheus": false}')
    assert "burstMode = 'auto' needs Prometheus" in message and "addons.prometheus true" in message


def test_addons_reject_unknown_names_and_non_booleans():
    assert "meshburst:addons" in problems(addons='{"jaeger": true}')[0]
    assert "meshburst:addons" in problems(addons='{"grafana": "yes"}')[0]
    assert parse(addons='{"grafana": true}').addons.grafana is True


def test_images_may_name_some_images_and_only_known_ones():
    assert parse(images='{"worker": "example/worker:1"}').images == {"worker": "example/worker:1"}
    [message] = problems(images='{"workers": "example/worker:1", "frontend": " "}')
    assert "meshburst:images" in message and "unknown names ['workers']" in message
    assert "not an image reference: ['frontend']" in message


def test_images_under_a_former_name_say_its_new_one():
    images = {n: f"example/{n}:1" for n in ("shark-v1", "shark-v2", "worker", "frontend", "burstwatch")}
    [message] = problems(images=json.dumps(images))
    assert "unknown names ['burstwatch']" in message and "burstwatch is now called controller" in message


def test_every_problem_is_reported_at_once():
    found = problems(canaryWeight="101", burstMode="turbo", nodeCount="0")
    assert [p.split(" ")[0] for p in found] == ["meshburst:nodeCount", "meshburst:canaryWeight", "meshburst:burstMode"]


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("canryWeight", "canaryWeight"), ("burstweight", "burstWeight"), ("minNode", "minNodes"), ("addon", "addons")],
)
def test_a_misspelt_key_is_refused_with_the_closest_known_one(typo: str, meant: str):
    [message] = problems(**{typo: "50"})
    assert message == (
        f"meshburst:{typo} is not a setting meshburst reads (did you mean {meant}?); "
        f"remove it with `pulumi config rm {typo}`"
    )


def test_an_unknown_key_with_no_close_match_lists_the_known_keys():
    [message] = problems(colour="blue")
    assert message.startswith("meshburst:colour is not a setting meshburst reads (known keys: addons, ")
    assert "burstHighRps, " in message and "canaryWeight" in message and "pulumi config rm colour" in message


def test_keys_of_other_namespaces_are_left_to_their_owners():
    assert parse(**{"gcp:region": "us-west1", "pulumi:tags": '{"team": "mesh"}'}).canary_weight == 20


def test_primary_stack_defaults_to_the_current_organization():
    raw = {"gcp:project": PROJECT_ID}
    assert parse_settings(raw, "burst").primary_stack == "organization/meshburst/primary"
    assert parse_settings(raw, "burst", organization="acme").primary_stack == "acme/meshburst/primary"
    assert parse("burst", primaryStack="acme/meshburst/prod").primary_stack == "acme/meshburst/prod"


@pytest.mark.parametrize("bad", ["0", "1001", "fast", "2.5"])
def test_hashr_max_rps_is_a_whole_number_from_1_to_1000(bad: str):
    [message] = problems(hashrMaxRps=bad)
    assert message.startswith(f"meshburst:hashrMaxRps = {bad!r} is not allowed: expected a whole number from 1 to 1000")


@pytest.mark.parametrize(("stack", "config", "key"), BAD_PROGRAM_CONFIGS)
def test_bad_config_stops_the_real_program_before_any_resource(stack: str, config: dict, key: str):
    from tools.mockrun import base_config

    full = {
        k: v
        for k, v in (base_config(stack) | {(k if ":" in k else f"meshburst:{k}"): v for k, v in config.items()}).items()
        if v is not None
    }
    with pytest.raises(RunFailed) as caught:
        run_stack(stack, full, replace_config=True)
    assert isinstance(caught.value.error, ConfigError)
    assert key in str(caught.value.error)
    assert str(caught.value.error).startswith("meshburst: invalid stack configuration, nothing was changed")
    assert caught.value.resources == []


# --- the progressive canary's keys ------------------------------------------------------------------------------


def test_canary_defaults_are_manual_with_flaggers_usual_steps():
    canary = parse().canary
    assert canary.mode == "manual"
    assert canary.steps == (5, 10, 25, 50, 100)
    assert (canary.interval_s, canary.min_requests, canary.progress_deadline_s) == (60, 20, 600)
    assert (canary.max_error_percent, canary.max_p99_ms, canary.max_regression_percent) == (1.0, 500.0, None)
    assert (canary.on_deadline, canary.failure_limit, canary.webhook_url) == ("hold", 2, None)


@pytest.mark.parametrize(
    ("key", "bad", "allowed"),
    [
        ("canaryMode", "auto", "manual or progressive"),
        ("canarySteps", "[5, 10, 50]", "ending at 100"),
        ("canarySteps", "[50, 10, 100]", "strictly ascending"),
        ("canarySteps", "[10, 10, 100]", "strictly ascending"),
        ("canarySteps", "[0, 100]", "each 1-100"),
        ("canarySteps", "[10.5, 100]", "whole percentages"),
        ("canarySteps", "[]", "a JSON list"),
        ("canarySteps", "10,100", "a JSON list"),
        ("canaryInterval", "5", "a whole number from 10 to 3600"),
        ("canaryInterval", "1m", "a whole number from 10 to 3600"),
        ("canaryMaxErrorPercent", "0", "a number greater than 0 and at most 100"),
        ("canaryMaxErrorPercent", "101", "a number greater than 0 and at most 100"),
        ("canaryMaxP99Ms", "-5", "a number greater than 0"),
        ("canaryMaxP99Ms", "nan", "a number greater than 0"),
        ("canaryMaxRegressionPercent", "-1", "a number at least 0"),
        ("canaryMinRequests", "0", "a whole number from 1 to 1000000"),
        ("canaryProgressDeadline", "abc", "a whole number from 10 to 86400"),
        ("canaryOnDeadline", "pause", "hold or rollback"),
        ("canaryFailureLimit", "0", "a whole number from 1 to 100"),
    ],
)
def test_bad_canary_value_names_key_value_and_what_is_allowed(key: str, bad: str, allowed: str):
    [message] = problems(**{key: bad})
    assert message.startswith(f"meshburst:{key} = {bad!r} is not allowed")
    assert allowed in message


def test_good_canary_values_parse():
    canary = parse(
        canaryMode="progressive",
        canarySteps="[1, 100]",
        canaryInterval="10",
        canaryMaxErrorPercent="0.5",
        canaryMaxP99Ms="1200",
        canaryMaxRegressionPercent="0",
        canaryMinRequests="1",
        canaryProgressDeadline="10",
        canaryOnDeadline="rollback",
        canaryFailureLimit="1",
    ).canary
    assert canary.steps == (1, 100)
    assert (canary.max_error_percent, canary.max_p99_ms, canary.max_regression_percent) == (0.5, 1200.0, 0.0)
    assert (canary.interval_s, canary.progress_deadline_s, canary.on_deadline, canary.failure_limit) == (
        10,
        10,
        "rollback",
        1,
    )


def test_progressive_needs_prometheus():
    [message] = problems(canaryMode="progressive", addons='{"prometheus": false}')
    assert "canaryMode = 'progressive'" in message and "addons.prometheus true" in message


def test_deadline_shorter_than_an_interval_is_refused():
    [message] = problems(canaryInterval="120", canaryProgressDeadline="60")
    assert "canaryProgressDeadline = 60 is shorter than meshburst:canaryInterval = 120" in message


URL = "https://hooks.example.com/services/T000/B000/s3cr3t"


def test_webhook_url_must_be_stored_encrypted():
    [message] = problems(canaryWebhookUrl=URL)
    assert "meshburst:canaryWebhookUrl is stored in plain text" in message
    assert "pulumi config set --secret canaryWebhookUrl" in message
    assert "s3cr3t" not in message


@pytest.mark.parametrize(
    "bad", ["hooks.example.com/x", "ftp://example.com/s3cr3t", "https:///s3cr3t", "https://a b/s3cr3t"]
)
def test_bad_webhook_url_is_refused_without_echoing_the_secret(bad: str):
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            {"gcp:project": PROJECT_ID, "meshburst:canaryWebhookUrl": bad},
            "primary",
            secret_keys=frozenset({"meshburst:canaryWebhookUrl"}),
        )
    [message] = caught.value.problems
    assert "not an http:// or https:// URL with a host" in message
    assert "s3cr3t" not in message and bad not in message


def test_webhook_url_held_as_secret_parses_and_never_shows_in_a_repr():
    settings = parse_settings(
        {"gcp:project": PROJECT_ID, "meshburst:canaryWebhookUrl": URL},
        "primary",
        secret_keys=frozenset({"meshburst:canaryWebhookUrl"}),
    )
    assert settings.canary.webhook_url == URL
    assert "s3cr3t" not in repr(settings)


def test_a_bad_canary_value_registers_nothing():
    with pytest.raises(RunFailed) as caught:
        run_stack("primary", {"canaryMode": "progressive", "canarySteps": "[5, 50]"})
    assert "meshburst:canarySteps" in str(caught.value)
    assert caught.value.resources == []
