"""The shark canary's routing options (issue 14), parsed from raw config strings into plain values.

Four keys, each off (or today's behaviour) by default:
- `canaryMirrorPercent`: share of the weighted requests also sent to v2 (shadow traffic), 0-100;
- `canaryMatch`: request matches (header or cookie; exact, prefix or an RE2 regex) that always reach v2;
  default: the `canary: canary-tester` header; `[]`: the weights alone decide;
- `canaryStickyCookie`: a cookie name; a client the weights sent to v2 keeps reaching v2;
- `canaryFault`: a delay and/or an abort injected into requests that reach v2 (v2's own sidecar).

Pure: `parse_canary_routing` takes the raw values (None: unset) and returns the parsed options and every
problem found, each naming the key (with its path inside the value), the bad value and what is allowed.
A regex is checked by RE2 itself (google-re2), the engine Envoy runs, with Istio's program size limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2

from apps.lib.meshroute import MATCH_KINDS, MATCH_TYPES, TOKEN, Abort, Delay, FaultInjection, cookie_regex

MIRROR_KEY = "meshburst:canaryMirrorPercent"
MATCH_KEY = "meshburst:canaryMatch"
STICKY_KEY = "meshburst:canaryStickyCookie"
FAULT_KEY = "meshburst:canaryFault"
CANARY_HEADER = {"header": "canary", "exact": "canary-tester"}
ROUTING_DEFAULTS: Mapping[str, str | None] = {
    MIRROR_KEY: "0",
    MATCH_KEY: json.dumps([CANARY_HEADER]),
    STICKY_KEY: None,
    FAULT_KEY: None,
}
# Istio raises Envoy's limit on a regex's compiled size (re2.max_program_size.error_level) to this; Envoy
# refuses the whole route configuration when one regex is bigger.
MAX_REGEX_PROGRAM_SIZE = 32768
MAX_DELAY_MS = 60_000
_DURATION = re.compile(r"^(?P<number>[0-9]+(\.[0-9]+)?)(?P<unit>ms|s)$")
_WHOLE = re.compile(r"^[0-9]+$")
# RFC 6265 cookie-octet: no whitespace, double quote, comma, semicolon or backslash.
_COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$")
_HEADER_VALUE = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")


@dataclass(frozen=True)
class MatchRule:
    """One canaryMatch entry: requests whose header (or cookie) `name` matches `value` always reach v2."""

    kind: str
    """`header` or `cookie`."""
    name: str
    """Header name (lowercased) or cookie name."""
    match_type: str
    """`exact`, `prefix` or `regex`."""
    value: str


DEFAULT_MATCH = (MatchRule("header", "canary", "exact", "canary-tester"),)


@dataclass(frozen=True)
class CanaryRouting:
    """How the shark route treats v2 beyond its weight; the defaults render today's route."""

    mirror_percent: int = 0
    """Percent of the weighted requests also sent to v2, whose responses are dropped."""
    match: tuple[MatchRule, ...] = DEFAULT_MATCH
    """Requests that always reach v2, tried in order before the weights; empty: the weights alone decide."""
    sticky_cookie: str | None = None
    """Cookie that keeps a client the weights sent to v2 on v2; None: off."""
    fault: FaultInjection | None = None
    """Delay and/or abort injected into the requests v2 receives; None: off."""


def _hint(key: str, example: str, path: bool = False) -> str:
    """How to set the key; with `path`, `example` is the path after the key, a closing quote and a value."""
    short = key.removeprefix("meshburst:")
    if path:
        return f"set it with `pulumi config set --path '{short}{example}`"
    return f"set it with `pulumi config set {short} {example}`"


class _Problems:
    def __init__(self) -> None:
        self.found: list[str] = []

    def bad(self, where: str, value: object, allowed: str, fix: str) -> None:
        self.found.append(f"{where} = {value!r} is not allowed: expected {allowed}; {fix}")


def _whole(value: object) -> int | None:
    """A whole number given as a JSON number or (as `pulumi config set --path` may store it) a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE.match(value.strip()):
        return int(value.strip())
    return None


def _json(raw: str, problems: _Problems, key: str, allowed: str, fix: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        problems.bad(key, raw, allowed, fix)
        return None


def _parse_mirror(raw: str | None, problems: _Problems) -> int:
    value = ROUTING_DEFAULTS[MIRROR_KEY] if raw is None else raw
    number = _whole(value)
    if number is None or not 0 <= number <= 100:
        problems.bad(MIRROR_KEY, value, "a whole number from 0 to 100 (percent)", _hint(MIRROR_KEY, "10"))
        return 0
    return number


def regex_problem(pattern: str) -> str | None:
    """Why RE2 (Envoy's engine) refuses `pattern`, or None when it compiles within Istio's size limit."""
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    if compiled.programsize > MAX_REGEX_PROGRAM_SIZE:
        return f"its RE2 program size {compiled.programsize} is over Envoy's limit in Istio, {MAX_REGEX_PROGRAM_SIZE}"
    return None


_MATCH_ALLOWED = (
    "an object with the name of a header or a cookie and one way to match its value, e.g. "
    '{"header": "x-beta", "exact": "yes"} or {"cookie": "beta", "prefix": "team-"}: one of '
    f"{' or '.join(MATCH_KINDS)}, and one of {', '.join(MATCH_TYPES)} (an RE2 regex)"
)


def _parse_entry(index: int, entry: object, problems: _Problems) -> MatchRule | None:
    where = f"{MATCH_KEY}[{index}]"
    fix = _hint(MATCH_KEY, f"[{index}].header' x-beta", path=True)
    kinds = [k for k in MATCH_KINDS if isinstance(entry, dict) and k in entry]
    types = [t for t in MATCH_TYPES if isinstance(entry, dict) and t in entry]
    if not isinstance(entry, dict) or len(kinds) != 1 or len(types) != 1 or len(entry) != 2:
        unknown = sorted(set(entry) - set(MATCH_KINDS) - set(MATCH_TYPES)) if isinstance(entry, dict) else []
        problems.bad(where, entry, _MATCH_ALLOWED + (f" (unknown: {', '.join(unknown)})" if unknown else ""), fix)
        return None
    (kind,), (match_type,) = kinds, types
    name, value = entry[kind], entry[match_type]
    if not isinstance(name, str) or not TOKEN.match(name):
        allowed = f"a {kind} name: letters, digits and !#$%&'*+-.^_`|~ only (no spaces, colons or other separators)"
        problems.bad(f"{where}.{kind}", name, allowed, _hint(MATCH_KEY, f"[{index}].{kind}' x-beta", path=True))
        return None
    if kind == "header":
        name = name.lower()  # header names are case-insensitive; Istio wants them lowercase
    text = str(value) if _whole(value) is not None and not isinstance(value, str) else value
    value_fix = _hint(MATCH_KEY, f"[{index}].{match_type}' yes", path=True)
    if not isinstance(text, str) or not text:
        problems.bad(f"{where}.{match_type}", value, "a non-empty string", value_fix)
        return None
    if match_type == "regex":
        reason = regex_problem(text)
        if reason is None and kind == "cookie":
            reason = regex_problem(cookie_regex(name, match_type, text))
        if reason is not None:
            allowed = f"a regex RE2 accepts (RE2 says: {reason}); see https://github.com/google/re2/wiki/Syntax"
            problems.bad(f"{where}.regex", text, allowed, value_fix)
            return None
    elif kind == "cookie" and not _COOKIE_VALUE.match(text):
        allowed = "a cookie value: printable ASCII without spaces, double quotes, commas, semicolons or backslashes"
        problems.bad(f"{where}.{match_type}", text, allowed, value_fix)
        return None
    elif kind == "header" and not _HEADER_VALUE.match(text):
        allowed = "a header value: printable ASCII, no control characters, no spaces at either end"
        problems.bad(f"{where}.{match_type}", text, allowed, value_fix)
        return None
    return MatchRule(kind=kind, name=name, match_type=match_type, value=text)


def _parse_match(raw: str | None, problems: _Problems) -> tuple[MatchRule, ...]:
    value = ROUTING_DEFAULTS[MATCH_KEY] if raw is None else raw
    allowed = 'a JSON list of request matches, e.g. [{"header": "canary", "exact": "canary-tester"}]; [] for none'
    entries = _json(str(value), problems, MATCH_KEY, allowed, _hint(MATCH_KEY, "'[]'"))
    if entries is None:
        return DEFAULT_MATCH
    if not isinstance(entries, list):
        problems.bad(MATCH_KEY, value, allowed, _hint(MATCH_KEY, "'[]'"))
        return DEFAULT_MATCH
    before = len(problems.found)
    rules = [_parse_entry(i, entry, problems) for i, entry in enumerate(entries)]
    if len(problems.found) > before:
        return DEFAULT_MATCH
    return tuple(rule for rule in rules if rule is not None)


def _parse_sticky(raw: str | None, problems: _Problems) -> str | None:
    if raw is None:
        return None
    if not TOKEN.match(raw.strip()):
        fix = f"{_hint(STICKY_KEY, 'shark-canary')}, or turn stickiness off with `pulumi config rm canaryStickyCookie`"
        problems.bad(STICKY_KEY, raw, "a cookie name: letters, digits and !#$%&'*+-.^_`|~ only", fix)
        return None
    return raw.strip()


def _percent(where: str, value: object, problems: _Problems, fix: str) -> int | None:
    number = _whole(value)
    if number is None or not 1 <= number <= 100:
        problems.bad(where, value, "a whole number from 1 to 100 (percent of the requests v2 receives)", fix)
        return None
    return number


def _delay_ms(where: str, value: object, problems: _Problems, fix: str) -> int | None:
    found = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if found is not None:
        scale = 1 if found["unit"] == "ms" else 1000
        milliseconds = float(found["number"]) * scale
        if milliseconds.is_integer() and 1 <= milliseconds <= MAX_DELAY_MS:
            return int(milliseconds)
    problems.bad(
        where, value, f"a duration from 1ms to {MAX_DELAY_MS // 1000}s in whole milliseconds, e.g. 250ms or 2s", fix
    )
    return None


def _part(part: str, value: object, keys: tuple[str, str], problems: _Problems) -> dict[str, Any] | None:
    """canaryFault.delay or .abort: an object with exactly `keys`."""
    if isinstance(value, dict) and set(value) == set(keys):
        return value
    example = "fixed' 2s" if part == "delay" else "status' 503"
    problems.bad(
        f"{FAULT_KEY}.{part}", value, f"an object with exactly {' and '.join(keys)}", _fault_hint(f"{part}.{example}")
    )
    return None


def _fault_hint(example: str) -> str:
    return _hint(FAULT_KEY, f".{example}", path=True)


def _parse_delay(value: object, problems: _Problems) -> Delay | None:
    delay = _part("delay", value, ("fixed", "percent"), problems)
    if delay is None:
        return None
    fixed = _delay_ms(f"{FAULT_KEY}.delay.fixed", delay["fixed"], problems, _fault_hint("delay.fixed' 2s"))
    percent = _percent(f"{FAULT_KEY}.delay.percent", delay["percent"], problems, _fault_hint("delay.percent' 10"))
    return Delay(fixed_ms=fixed, percent=percent) if fixed is not None and percent is not None else None


def _parse_abort(value: object, problems: _Problems) -> Abort | None:
    abort = _part("abort", value, ("status", "percent"), problems)
    if abort is None:
        return None
    status = _whole(abort["status"])
    if status is None or not 200 <= status <= 599:
        problems.bad(
            f"{FAULT_KEY}.abort.status",
            abort["status"],
            "an HTTP status from 200 to 599",
            _fault_hint("abort.status' 503"),
        )
        status = None
    percent = _percent(f"{FAULT_KEY}.abort.percent", abort["percent"], problems, _fault_hint("abort.percent' 5"))
    return Abort(status=status, percent=percent) if status is not None and percent is not None else None


def _parse_fault(raw: str | None, problems: _Problems) -> FaultInjection | None:
    if raw is None:
        return None
    allowed = (
        'a JSON object with a delay and/or an abort, e.g. {"delay": {"fixed": "2s", "percent": 10}, '
        '"abort": {"status": 503, "percent": 5}}; {} or unset: off'
    )
    fault = _json(raw, problems, FAULT_KEY, allowed, _fault_hint("abort.status' 503"))
    if fault is None:
        return None
    if not isinstance(fault, dict) or set(fault) - {"delay", "abort"}:
        problems.bad(FAULT_KEY, fault, allowed, _fault_hint("abort.status' 503"))
        return None
    delay = _parse_delay(fault["delay"], problems) if "delay" in fault else None
    abort = _parse_abort(fault["abort"], problems) if "abort" in fault else None
    if delay is None and abort is None:
        return None
    return FaultInjection(delay=delay, abort=abort)


def parse_canary_routing(raw: Mapping[str, str | None]) -> tuple[CanaryRouting, list[str]]:
    """The four keys' raw values (full key -> string, None when unset) -> the options and every problem."""
    problems = _Problems()
    routing = CanaryRouting(
        mirror_percent=_parse_mirror(raw.get(MIRROR_KEY), problems),
        match=_parse_match(raw.get(MATCH_KEY), problems),
        sticky_cookie=_parse_sticky(raw.get(STICKY_KEY), problems),
        fault=_parse_fault(raw.get(FAULT_KEY), problems),
    )
    return routing, problems.found


def fault_summary(fault: FaultInjection | None) -> str:
    """One line saying what the fault does, for the plan's warning and the stack output; "off" when off."""
    if fault is None:
        return "off"
    parts = []
    if fault.delay is not None:
        parts.append(f"delay {fault.delay.fixed_ms} ms on {fault.delay.percent}% of v2's requests")
    if fault.abort is not None:
        parts.append(f"abort with HTTP {fault.abort.status} on {fault.abort.percent}% of v2's requests")
    return ", ".join(parts)
