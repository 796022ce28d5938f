"""Stack configuration, read in one place and validated before any resource is registered.

`parse_settings` is pure (a mapping of raw config strings in, a frozen `Settings` out) so tests can
drive every bad value directly; `load_settings` is the thin adapter over `pulumi.Config`.
"""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pulumi

from builders.images import FORMER_IMAGE_NAMES, IMAGE_NAMES
from config.routing import ROUTING_DEFAULTS, CanaryRouting, parse_canary_routing

PROJECT = "meshburst"
NAMESPACE = f"{PROJECT}:"
ROLES = ("primary", "burst")
BURST_MODES = ("manual", "auto")
BURST_POLICIES = ("switch", "overflow")
CANARY_MODES = ("manual", "progressive")
DEADLINE_ACTIONS = ("hold", "rollback")
ADDON_DEFAULTS: Mapping[str, bool] = {"prometheus": True, "grafana": False, "kiali": False}

# Every key the program reads, by its full name, with its default (None: required or derived).
DEFAULTS: Mapping[str, str | None] = {
    "meshburst:role": None,
    "gcp:project": None,
    "gcp:zone": "us-west1-a",
    "meshburst:network": "default",
    "meshburst:machineType": "n1-standard-2",
    "meshburst:diskSizeGb": "100",
    "meshburst:nodeCount": "4",
    "meshburst:minNodes": "1",
    "meshburst:maxNodes": "5",
    "meshburst:istioVersion": "1.30.3",
    "meshburst:meshId": "mesh1",
    "meshburst:meshNetwork": "network1",
    "meshburst:canaryWeight": "20",
    "meshburst:canaryMode": "manual",
    "meshburst:canarySteps": "[5, 10, 25, 50, 100]",
    "meshburst:canaryInterval": "60",
    "meshburst:canaryMaxErrorPercent": "1",
    "meshburst:canaryMaxP99Ms": "500",
    "meshburst:canaryMaxRegressionPercent": None,
    "meshburst:canaryMinRequests": "20",
    "meshburst:canaryProgressDeadline": "600",
    "meshburst:canaryOnDeadline": "hold",
    "meshburst:canaryFailureLimit": "2",
    "meshburst:canaryWebhookUrl": None,
    # canaryMirrorPercent, canaryMatch, canaryStickyCookie, canaryFault: config/routing.py.
    **ROUTING_DEFAULTS,
    "meshburst:burstWeight": "0",
    "meshburst:burstMode": "manual",
    "meshburst:burstHighRps": "15",
    "meshburst:burstLowRps": "10",
    "meshburst:burstPolicy": "switch",
    "meshburst:primaryCapacityRps": "40",
    "meshburst:hashrMaxRps": "100",
    "meshburst:primaryStack": None,
    "meshburst:images": None,
    "meshburst:addons": None,
    "meshburst:deletionProtection": "false",
    "meshburst:apiAuthorizedNetworks": "[]",
    "meshburst:binaryAuthorization": "false",
    "meshburst:kmsKey": None,
    "meshburst:intranodeVisibility": "false",
    "meshburst:rbacSecurityGroup": None,
}

_ZONE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
_GCP_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_PROJECT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*-[a-z0-9-]+$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_STACK_REF = re.compile(r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$")
_WHOLE = re.compile(r"^[+-]?[0-9]+$")
_KMS_KEY = re.compile(
    r"^projects/(?P<project>[a-z][-a-z0-9]{4,28}[a-z0-9])/locations/(?P<location>[a-z0-9-]+)"
    r"/keyRings/[A-Za-z0-9_-]{1,63}/cryptoKeys/[A-Za-z0-9_-]{1,63}$"
)
# GKE's Google Groups for RBAC reads exactly this group name in the organisation's domain.
_RBAC_GROUP = re.compile(r"^gke-security-groups@([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# GKE allows 50 authorized networks on a cluster's public endpoint; one place is kept for the primary's pods.
MAX_AUTHORIZED_NETWORKS = 49

T = TypeVar("T")


class ConfigError(pulumi.RunError):
    """Bad stack configuration. A RunError, so Pulumi prints the message without a traceback."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"meshburst: invalid stack configuration, nothing was changed:\n{lines}")


@dataclass(frozen=True)
class Addons:
    prometheus: bool = True
    grafana: bool = False
    kiali: bool = False


@dataclass(frozen=True)
class Security:
    """The opt-in hardening of both clusters; everything off leaves the hardened defaults alone."""

    api_authorized_networks: tuple[str, ...] = ()
    """CIDRs allowed to reach the API servers; empty: the public endpoint is open to any address."""
    binary_authorization: bool = False
    """Enforce the project's Binary Authorization policy."""
    kms_key: str | None = None
    """Cloud KMS key (full id) for Secrets encryption and the image repository."""
    intranode_visibility: bool = False
    """Route same-node pod traffic through the VPC."""
    rbac_security_group: str | None = None
    """gke-security-groups@<domain>, for Google Groups in RBAC."""

    @property
    def enabled(self) -> frozenset[str]:
        """The config keys of the opt-ins this configuration turns on."""
        on = {
            "apiAuthorizedNetworks": bool(self.api_authorized_networks),
            "binaryAuthorization": self.binary_authorization,
            "kmsKey": self.kms_key is not None,
            "intranodeVisibility": self.intranode_visibility,
            "rbacSecurityGroup": self.rbac_security_group is not None,
        }
        return frozenset(key for key, value in on.items() if value)


@dataclass(frozen=True)
class Canary:
    """How the shark canary moves: by hand (`manual`), or stepped and judged by the controller (`progressive`)."""

    mode: str = "manual"
    steps: tuple[int, ...] = (5, 10, 25, 50, 100)
    """Percent of traffic for v2 at each step, ascending, ending at 100."""
    interval_s: int = 60
    """Each step is held at least this long; also the window the analysis reads."""
    max_error_percent: float = 1.0
    """Largest 5xx share of v2's responses in a window that still passes."""
    max_p99_ms: float = 500.0
    """Largest p99 latency of v2 in a window that still passes."""
    max_regression_percent: float | None = None
    """Relative analysis: how much worse than v1 v2 may be (None: off)."""
    min_requests: int = 20
    """Fewer requests to v2 in a window: no verdict, the step waits."""
    progress_deadline_s: int = 600
    """No verdict possible for this long: `on_deadline`."""
    on_deadline: str = "hold"
    failure_limit: int = 2
    """Failed verdicts in a row that roll back."""
    webhook_url: str | None = field(default=None, repr=False)
    """Where phase changes are posted (a secret: never in a repr, an error or a log)."""


@dataclass(frozen=True)
class Settings:
    """Everything the program needs from config, typed and validated."""

    role: str
    project: str
    zone: str
    network: str
    machine_type: str
    disk_size_gb: int
    node_count: int
    min_nodes: int
    max_nodes: int
    istio_version: str
    mesh_id: str
    mesh_network: str
    canary_weight: int
    canary: Canary
    burst_weight: int
    burst_mode: str
    burst_high_rps: float
    burst_low_rps: float
    burst_policy: str
    """auto mode: `switch` (all work to burst above burstHighRps) or `overflow` (the share above the capacity)."""
    primary_capacity_rps: float
    """auto mode, overflow: requests per second the primary's workers serve at most."""
    hashr_max_rps: int
    primary_stack: str
    images: Mapping[str, str] | None
    addons: Addons = field(default_factory=Addons)
    deletion_protection: bool = False
    security: Security = field(default_factory=Security)
    canary_routing: CanaryRouting = field(default_factory=CanaryRouting)
    """What reaches shark v2 beyond its weight, and the fault injected into v2."""

    @property
    def region(self) -> str:
        """The zone's region (us-west1-a -> us-west1), where regional resources live."""
        return self.zone.rsplit("-", 1)[0]

    @property
    def cluster_name(self) -> str:
        """Istio's name for this stack's cluster: the role itself."""
        return self.role


def _short(key: str) -> str:
    return key.removeprefix(NAMESPACE)


def default_primary_stack(organization: str) -> str:
    """The primary stack of this project in the same organization (`organization` on a self-managed backend)."""
    return f"{organization}/{PROJECT}/primary"


def _unknown_key_problems(raw: Mapping[str, str | None]) -> list[str]:
    """A key under `meshburst:` the program does not read is a typo until proven otherwise: refuse it."""
    known = [_short(key) for key in DEFAULTS if key.startswith(NAMESPACE)]
    problems = []
    for key in sorted(k for k in raw if k.startswith(NAMESPACE) and k not in DEFAULTS):
        name = _short(key)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(sorted(known))}"
        problems.append(f"{key} is not a setting meshburst reads ({hint}); remove it with `pulumi config rm {name}`")
    return problems


def _fix_hint(key: str) -> str:
    return f"set it with `pulumi config set {_short(key)} <value>`"


class _Reader:
    """Reads raw config strings, collecting every problem instead of stopping at the first."""

    def __init__(self, raw: Mapping[str, str | None]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def _value(self, key: str) -> str | None:
        value = self.raw.get(key)
        return DEFAULTS[key] if value is None else value

    def _bad(self, key: str, value: object, allowed: str) -> None:
        self.problems.append(f"{key} = {value!r} is not allowed: expected {allowed}; {_fix_hint(key)}")

    def _parse(self, key: str, allowed: str, convert: Callable[[str], T | None], fallback: T) -> T:
        value = self._value(key)
        if value is None:
            self.problems.append(f"{key} is required but not set: expected {allowed}; {_fix_hint(key)}")
            return fallback
        result = convert(value.strip()) if value.strip() else None
        if result is None:
            self._bad(key, value, allowed)
            return fallback
        return result

    def integer(self, key: str, low: int, high: int) -> int:
        def convert(text: str) -> int | None:
            if not _WHOLE.match(text):
                return None
            number = int(text)
            return number if low <= number <= high else None

        return self._parse(key, f"a whole number from {low} to {high}", convert, low)

    def number(self, key: str) -> float:
        def convert(text: str) -> float | None:
            try:
                number = float(text)
            except ValueError:
                return None
            return number if math.isfinite(number) and number > 0 else None

        return self._parse(key, "a number greater than 0", convert, 1.0)

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        return self._parse(key, " or ".join(allowed), lambda t: t if t in allowed else None, allowed[0])

    def matching(self, key: str, pattern: re.Pattern[str], allowed: str) -> str:
        return self._parse(key, allowed, lambda t: t if pattern.match(t) else None, "")

    def boolean(self, key: str) -> bool:
        table = {"true": True, "false": False}
        return self._parse(key, "true or false", lambda t: table.get(t.lower()), False)

    def json_object(self, key: str) -> dict[str, Any] | None:
        value = self._value(key)
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            self._bad(key, value, "a JSON object (set it with `pulumi config set --path`)")
            return None
        return parsed


def _parse_images(reader: _Reader, key: str) -> Mapping[str, str] | None:
    images = reader.json_object(key)
    if images is None:
        return None
    unknown = sorted(set(images) - set(IMAGE_NAMES))
    empty = sorted(k for k, v in images.items() if k in IMAGE_NAMES and not (isinstance(v, str) and v.strip()))
    if unknown or empty:
        details = "; ".join(
            part
            for part in (
                f"unknown names {unknown}" if unknown else "",
                *(f"{old} is now called {new}" for old, new in FORMER_IMAGE_NAMES.items() if old in unknown),
                f"not an image reference: {empty}" if empty else "",
            )
            if part
        )
        reader._bad(key, images, f"image references by name, among {list(IMAGE_NAMES)} ({details})")
        return None
    # Each image named is taken as given; the others are built from apps/.
    return {name: images[name].strip() for name in IMAGE_NAMES if name in images}


def _parse_addons(reader: _Reader, key: str) -> Addons:
    given = reader.json_object(key) or {}
    unknown = sorted(set(given) - set(ADDON_DEFAULTS))
    not_bool = sorted(k for k, v in given.items() if k in ADDON_DEFAULTS and not isinstance(v, bool))
    if unknown or not_bool:
        reader._bad(key, given, f"an object of true/false flags for {list(ADDON_DEFAULTS)}")
        return Addons()
    return Addons(**{**ADDON_DEFAULTS, **given})


def _role(raw: Mapping[str, str | None], stack: str, reader: _Reader) -> str:
    if raw.get("meshburst:role") is None and stack in ROLES:
        return stack
    if raw.get("meshburst:role") is None:
        reader.problems.append(
            f"meshburst:role is not set and the stack name {stack!r} is not one of {list(ROLES)}: "
            "set it with `pulumi config set role primary` (or burst)"
        )
        return ROLES[0]
    return reader.choice("meshburst:role", ROLES)


def parse_settings(
    raw: Mapping[str, str | None],
    stack: str,
    organization: str = "organization",
    secret_keys: frozenset[str] = frozenset(),
) -> Settings:
    """Turn raw config strings (full key -> value or None) into Settings, or raise ConfigError.

    `raw` holds every key the stack sets; keys of other namespaces (gcp:region, pulumi:tags, ...) are left
    to their owners, but a `meshburst:` key this program does not read is refused. `secret_keys`: the keys the
    stack holds encrypted (a webhook URL must be one of them).
    """
    reader = _Reader(raw)
    reader.problems.extend(_unknown_key_problems(raw))
    role = _role(raw, stack, reader)
    settings = Settings(
        role=role,
        project=reader.matching("gcp:project", _PROJECT_ID, "a GCP project ID such as my-project-123"),
        zone=reader.matching("gcp:zone", _ZONE, "a GCP zone such as us-west1-a"),
        network=reader.matching("meshburst:network", _GCP_NAME, "a VPC network name (lowercase letters, digits, -)"),
        machine_type=reader.matching("meshburst:machineType", _MACHINE_TYPE, "a machine type such as n1-standard-2"),
        disk_size_gb=reader.integer("meshburst:diskSizeGb", 10, 2000),
        node_count=reader.integer("meshburst:nodeCount", 1, 100),
        min_nodes=reader.integer("meshburst:minNodes", 0, 100),
        max_nodes=reader.integer("meshburst:maxNodes", 1, 100),
        istio_version=reader.matching("meshburst:istioVersion", _VERSION, "a version such as 1.30.3"),
        mesh_id=reader.matching("meshburst:meshId", _DNS_LABEL, "a lowercase DNS label such as mesh1"),
        mesh_network=reader.matching("meshburst:meshNetwork", _DNS_LABEL, "a lowercase DNS label such as network1"),
        canary_weight=reader.integer("meshburst:canaryWeight", 0, 100),
        canary=_parse_canary(reader, secret_keys),
        canary_routing=_parse_routing(reader),
        burst_weight=reader.integer("meshburst:burstWeight", 0, 100),
        burst_mode=reader.choice("meshburst:burstMode", BURST_MODES),
        burst_high_rps=reader.number("meshburst:burstHighRps"),
        burst_low_rps=reader.number("meshburst:burstLowRps"),
        burst_policy=reader.choice("meshburst:burstPolicy", BURST_POLICIES),
        primary_capacity_rps=reader.number("meshburst:primaryCapacityRps"),
        hashr_max_rps=reader.integer("meshburst:hashrMaxRps", 1, 1000),
        primary_stack=reader.matching(
            "meshburst:primaryStack", _STACK_REF, "a stack reference such as organization/meshburst/primary"
        )
        if raw.get("meshburst:primaryStack") is not None
        else default_primary_stack(organization),
        images=_parse_images(reader, "meshburst:images"),
        addons=_parse_addons(reader, "meshburst:addons"),
        deletion_protection=reader.boolean("meshburst:deletionProtection"),
        security=_parse_security(reader),
    )
    _check_relations(settings, reader)
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings


def _parse_cidrs(reader: _Reader, key: str) -> tuple[str, ...]:
    value = reader._value(key)
    allowed = (
        f'a JSON list of at most {MAX_AUTHORIZED_NETWORKS} IPv4 CIDRs such as ["203.0.113.0/24"], none of them '
        f"0.0.0.0/0 (set each with `pulumi config set --path '{_short(key)}[0]' 203.0.113.0/24`)"
    )
    try:
        parsed = json.loads(value) if value is not None else []
    except ValueError:
        parsed = None
    if not isinstance(parsed, list) or len(parsed) > MAX_AUTHORIZED_NETWORKS:
        reader._bad(key, value, allowed)
        return ()
    cidrs: list[str] = []
    for item in parsed:
        try:
            network = ipaddress.IPv4Network(item.strip(), strict=True) if isinstance(item, str) else None
        except ValueError:
            network = None
        if network is None or network.prefixlen == 0:
            reader._bad(key, item, allowed)
            return ()
        cidrs.append(str(network))
    return tuple(dict.fromkeys(cidrs))


def _optional(reader: _Reader, key: str, pattern: re.Pattern[str], allowed: str) -> str | None:
    return reader.matching(key, pattern, allowed) or None if reader._value(key) is not None else None


def _parse_security(reader: _Reader) -> Security:
    return Security(
        api_authorized_networks=_parse_cidrs(reader, "meshburst:apiAuthorizedNetworks"),
        binary_authorization=reader.boolean("meshburst:binaryAuthorization"),
        kms_key=_optional(
            reader,
            "meshburst:kmsKey",
            _KMS_KEY,
            "a Cloud KMS key id projects/PROJECT/locations/REGION/keyRings/RING/cryptoKeys/KEY",
        ),
        intranode_visibility=reader.boolean("meshburst:intranodeVisibility"),
        rbac_security_group=_optional(
            reader,
            "meshburst:rbacSecurityGroup",
            _RBAC_GROUP,
            "the Google Group email gke-security-groups@<your domain>, e.g. gke-security-groups@example.com",
        ),
    )


def _decimal(reader: _Reader, key: str, low: float, high: float, low_open: bool = True) -> float:
    def convert(text: str) -> float | None:
        try:
            number = float(text)
        except ValueError:
            return None
        above = number > low if low_open else number >= low
        return number if math.isfinite(number) and above and number <= high else None

    bound = "greater than" if low_open else "at least"
    return reader._parse(key, f"a number {bound} {low:g} and at most {high:g}", convert, high)


def _parse_steps(reader: _Reader, key: str) -> tuple[int, ...]:
    value = reader._value(key)
    allowed = (
        "a JSON list of up to 20 whole percentages, strictly ascending, each 1-100, ending at 100, "
        "such as [5, 10, 25, 50, 100] (`pulumi config set canarySteps '[10, 50, 100]'`)"
    )
    try:
        steps = json.loads(value) if value is not None else None
    except ValueError:
        steps = None
    fine = (
        isinstance(steps, list)
        and 0 < len(steps) <= 20
        and all(type(step) is int and 1 <= step <= 100 for step in steps)
        and all(a < b for a, b in itertools.pairwise(steps))
        and steps[-1] == 100
    )
    if not fine or not isinstance(steps, list):
        reader._bad(key, value, allowed)
        return Canary.steps
    return tuple(steps)


def _parse_webhook(reader: _Reader, key: str, secret_keys: frozenset[str]) -> str | None:
    value = reader._value(key)
    if value is None:
        return None
    url = urlsplit(value.strip())
    if url.scheme not in ("http", "https") or not url.hostname or any(c.isspace() for c in value.strip()):
        # The value is a secret: say what is wrong without echoing it.
        reader.problems.append(
            f"{key} (a secret, not shown) is not an http:// or https:// URL with a host; set it with "
            f"`pulumi config set --secret {_short(key)} https://hooks.example.com/...`"
        )
        return None
    if key not in secret_keys:
        reader.problems.append(
            f"{key} is stored in plain text: the webhook URL carries its own credentials; store it encrypted with "
            f"`pulumi config set --secret {_short(key)} <url>`"
        )
        return None
    return value.strip()


def _parse_routing(reader: _Reader) -> CanaryRouting:
    routing, problems = parse_canary_routing({key: reader.raw.get(key) for key in ROUTING_DEFAULTS})
    reader.problems.extend(problems)
    return routing


def _parse_canary(reader: _Reader, secret_keys: frozenset[str]) -> Canary:
    regression = reader._value("meshburst:canaryMaxRegressionPercent")
    return Canary(
        mode=reader.choice("meshburst:canaryMode", CANARY_MODES),
        steps=_parse_steps(reader, "meshburst:canarySteps"),
        interval_s=reader.integer("meshburst:canaryInterval", 10, 3600),
        max_error_percent=_decimal(reader, "meshburst:canaryMaxErrorPercent", 0, 100),
        max_p99_ms=_decimal(reader, "meshburst:canaryMaxP99Ms", 0, 600_000),
        max_regression_percent=None
        if regression is None
        else _decimal(reader, "meshburst:canaryMaxRegressionPercent", 0, 1000, low_open=False),
        min_requests=reader.integer("meshburst:canaryMinRequests", 1, 1_000_000),
        progress_deadline_s=reader.integer("meshburst:canaryProgressDeadline", 10, 86_400),
        on_deadline=reader.choice("meshburst:canaryOnDeadline", DEADLINE_ACTIONS),
        failure_limit=reader.integer("meshburst:canaryFailureLimit", 1, 100),
        webhook_url=_parse_webhook(reader, "meshburst:canaryWebhookUrl", secret_keys),
    )


def _check_relations(settings: Settings, reader: _Reader) -> None:
    """Rules that tie two keys together; only meaningful when each key parsed on its own."""
    failed = " ".join(reader.problems)
    if "minNodes" not in failed and "maxNodes" not in failed and settings.min_nodes > settings.max_nodes:
        reader.problems.append(
            f"meshburst:minNodes = {settings.min_nodes} is greater than meshburst:maxNodes = {settings.max_nodes}: "
            "expected 0 <= minNodes <= maxNodes <= 100"
        )
    if settings.addons.grafana and "istioVersion" not in failed:
        # Imported here: the dashboards' module loads the Grafana SDK, which nothing else in settings needs.
        from builders.dashboards import istio_dashboards_problem

        problem = istio_dashboards_problem(settings.istio_version)
        if problem is not None:
            reader.problems.append(f"meshburst:addons.grafana provisions Istio's dashboards, but {problem}")
    # Each policy reads only its own keys (switch: the thresholds; overflow: the capacity), and both are checked
    # whatever the policy, so changing burstPolicy alone is always a valid change.
    thresholds_parsed = "burstLowRps" not in failed and "burstHighRps" not in failed
    if thresholds_parsed and settings.burst_low_rps >= settings.burst_high_rps:
        reader.problems.append(
            f"meshburst:burstLowRps = {settings.burst_low_rps:g} is not below meshburst:burstHighRps = "
            f"{settings.burst_high_rps:g}: expected 0 < burstLowRps < burstHighRps"
        )
    if settings.burst_mode == "auto" and not settings.addons.prometheus:
        reader.problems.append(
            "meshburst:burstMode = 'auto' needs Prometheus, but meshburst:addons turns prometheus off: "
            "set `pulumi config set --path addons.prometheus true` or `pulumi config set burstMode manual`"
        )
    canary = settings.canary
    if canary.mode == "progressive" and not settings.addons.prometheus:
        reader.problems.append(
            "meshburst:canaryMode = 'progressive' judges v2 on Prometheus's metrics, but meshburst:addons turns "
            "prometheus off: set `pulumi config set --path addons.prometheus true` or "
            "`pulumi config set canaryMode manual`"
        )
    deadline_keys = ("canaryInterval", "canaryProgressDeadline")
    if not any(key in failed for key in deadline_keys) and canary.progress_deadline_s < canary.interval_s:
        reader.problems.append(
            f"meshburst:canaryProgressDeadline = {canary.progress_deadline_s} is shorter than meshburst:canaryInterval"
            f" = {canary.interval_s}: expected a deadline of at least one interval (seconds)"
        )
    key_id = _KMS_KEY.match(settings.security.kms_key or "")
    location = key_id.group("location") if key_id else None
    if "gcp:zone" not in failed and location is not None and location != settings.region:
        # GKE and Artifact Registry only use a key in the resource's own region.
        reader.problems.append(
            f"meshburst:kmsKey = {settings.security.kms_key!r} is in {location}, but this stack's clusters and "
            f"registry are in {settings.region}: expected a key under projects/PROJECT/locations/{settings.region}/..."
        )


def _keys_set_on_stack() -> set[str]:
    """Every config key the stack sets, in full (`ns:key`), however the engine handed config over."""
    return set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.get_config_env())


def load_settings() -> Settings:
    """Read the stack's config through pulumi.Config and validate it."""
    configs: dict[str, pulumi.Config] = {}
    raw: dict[str, str | None] = {}
    for key in sorted(set(DEFAULTS) | {k for k in _keys_set_on_stack() if k.startswith(NAMESPACE)}):
        namespace, name = key.split(":", 1)
        config = configs.setdefault(namespace, pulumi.Config(namespace))
        raw[key] = config.get(name)
    secret_keys = frozenset(key for key in raw if pulumi.runtime.config.is_config_secret(key))
    return parse_settings(raw, pulumi.get_stack(), pulumi.get_organization(), secret_keys)
