"""meshburst offline plan: what a stack would create, and what a change would change, with no cloud at all.

Runs the real program (__main__.py) under Pulumi mocks in preview mode for one stack, with that stack's
Pulumi.<stack>.yaml config plus any --set overrides, and writes:

  resources.txt   one row per resource: type, name, parent, the inputs that matter
  resources.json  every resource with all its inputs (what --diff compares)
  manifests/      every Kubernetes and Istio object as YAML
  helm/           every Helm release: repository, chart, version and values

Values that only exist after `pulumi up` (cluster endpoints, image digests, load balancer IPs) are shown
as "(known after apply)". The burst stack reads the primary's outputs: the primary is planned first,
from Pulumi.primary.yaml.

--set takes the forms `pulumi config set` does:
  --set KEY=VALUE         a plain key, the value as given (canaryWeight=50, burstMode=auto)
  --set KEY.PATH=VALUE    a field inside an object or list key, as `pulumi config set --path KEY.PATH VALUE`
                          sets it (addons.grafana=true, images.worker=ghcr.io/acme/worker:1.2,
                          apiAuthorizedNetworks[0]=10.0.0.0/8, images["shark-v1"]=...): merged into the
                          stack's value of KEY; true/false become booleans, whole numbers become numbers
                          (not with a leading 0), anything else a string

examples:
  python -m tools.plan primary --out plan/
  python -m tools.plan primary --set canaryWeight=50 --diff plan/
  python -m tools.plan primary --set addons.grafana=true --set addons.kiali=true --diff plan/
  python -m tools.plan burst --set maxNodes=8 --out plan-burst/
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from config.settings import DEFAULTS, ROLES, default_primary_stack
from tools.mockrun import (
    KNOWN_AFTER_APPLY,
    OFFLINE_ORGANIZATION,
    ROOT,
    Resource,
    Run,
    RunFailed,
    full_key,
    run_stack,
)

PLACEHOLDER_PROJECT = "your-gcp-project"
SUMMARY_WIDTH = 110
SHORT = 80
"""The longest value a diff line shows whole."""
EXIT_BAD_CONFIG = 2


class PlanError(Exception):
    """A problem with the command line or a plan folder; printed without a traceback."""


PathSegment = str | int
_NAME = re.compile(r"[^.\[\]]+")
# Go's strconv.Atoi, which `pulumi config set --path` uses: optional sign, decimal digits, 64-bit range.
_GO_INT = re.compile(r"^[+-]?[0-9]+$")


@dataclass(frozen=True)
class Override:
    """One --set: a config key, the path inside its value (empty for a plain key) and the value as typed."""

    key: str
    path: tuple[PathSegment, ...]
    value: str
    given: str
    """The --set argument as typed, for messages."""


def parse_path(text: str) -> list[PathSegment]:
    """`addons.grafana` -> ["addons", "grafana"]; `nets[0]` -> ["nets", 0]; `images["shark-v1"]` -> [...]."""
    parts: list[PathSegment] = []
    i = 0
    while i < len(text):
        if text[i] == "[":
            end = text.find("]", i)
            inner = text[i + 1 : end] if end != -1 else ""
            if inner.isdigit():
                parts.append(int(inner))
            elif len(inner) >= 2 and inner[0] == inner[-1] == '"':
                parts.append(inner[1:-1])
            else:
                raise PlanError(f'{text!r}: expected [N] or ["name"] at {text[i:]!r}')
            i = end + 1
            continue
        if parts:
            if text[i] != ".":
                raise PlanError(f"{text!r}: expected '.', '[N]' or '[\"name\"]' at {text[i:]!r}")
            i += 1
        name = _NAME.match(text, i)
        if name is None:
            raise PlanError(f"{text!r}: empty name at position {i}")
        parts.append(name.group())
        i = name.end()
    if not parts or not isinstance(parts[0], str):
        raise PlanError(f"{text!r}: a path starts with a config key name")
    return parts


def path_value(value: str) -> bool | int | str:
    """A value set by path, typed as `pulumi config set --path` types it."""
    if value in ("true", "false"):
        return value == "true"
    if len(value) > 1 and value[0] == "0":
        return value  # "0123" stays a string, as in Pulumi
    if _GO_INT.match(value) and -(2**63) <= int(value) < 2**63:
        return int(value)
    return value


def parse_sets(pairs: Iterable[str]) -> list[Override]:
    """--set KEY=VALUE or KEY.PATH=VALUE pairs, top-level keys checked against the config contract."""
    known = {key.split(":", 1)[1] if key.startswith("meshburst:") else key for key in DEFAULTS}
    result: list[Override] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PlanError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set canaryWeight=50")
        # A namespace (gcp:project) is part of the key's name, before any path.
        first = _NAME.match(key)
        namespace, colon, rest = key.partition(":") if first and ":" in first.group() else ("", "", key)
        try:
            path = parse_path(rest)
        except PlanError as error:
            raise PlanError(f"--set {pair!r}: {error}") from None
        name = f"{namespace}{colon}{path[0]}"
        if name not in known:
            raise PlanError(f"--set {pair!r}: unknown key {name!r}; known keys: {', '.join(sorted(known))}")
        result.append(Override(full_key(name), tuple(path[1:]), value, pair))
    return result


def _set_path(container: Any, path: tuple[PathSegment, ...], value: Any, where: str) -> Any:
    """`container` with `value` at `path`, creating objects and lists on the way as Pulumi does."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        container = [] if container is None else container
        if not isinstance(container, list):
            raise PlanError(f"{where}: [{head}] indexes a list, but the value there is {json.dumps(container)}")
        if head > len(container):
            raise PlanError(f"{where}: index {head} is past the end of the list (length {len(container)})")
        if head == len(container):
            container.append(None)
        container[head] = _set_path(container[head], rest, value, where)
        return container
    container = {} if container is None else container
    if not isinstance(container, dict):
        raise PlanError(f"{where}: .{head} names an object field, but the value there is {json.dumps(container)}")
    container[head] = _set_path(container.get(head), rest, value, where)
    return container


def apply_overrides(config: dict[str, str], overrides: Iterable[Override]) -> dict[str, str]:
    """Config after the overrides, in order; a path override merges into the key's current JSON value."""
    result = dict(config)
    for override in overrides:
        if not override.path:
            result[override.key] = override.value
            continue
        where = f"--set {override.given!r}"
        current = result.get(override.key)
        try:
            existing = json.loads(current) if current is not None else None
        except json.JSONDecodeError:
            raise PlanError(f"{where}: {override.key} is {current!r}, not an object or list to set a path in") from None
        updated = _set_path(existing, override.path, path_value(override.value), where)
        result[override.key] = json.dumps(updated)
    return result


def stack_config(stack: str, overrides: Iterable[Override]) -> dict[str, str]:
    """The stack's Pulumi.<stack>.yaml config, a placeholder project if none is set, then the overrides."""
    path = ROOT / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text()) if path.exists() else None
    config: dict[str, str] = {}
    for key, value in ((document or {}).get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue  # encrypted values cannot be read offline, and none of ours are secret inputs
        config[key] = value if isinstance(value, str) else json.dumps(value)
    config.setdefault("gcp:project", PLACEHOLDER_PROJECT)
    return apply_overrides(config, overrides)


def plan_stack(stack: str, overrides: Iterable[Override]) -> Run:
    references: dict[str, Any] = {}
    secrets: dict[str, set[str]] = {}
    config = stack_config(stack, overrides)
    if stack == "burst":
        primary = run_stack("primary", stack_config("primary", []), replace_config=True, preview=True)
        ref = config.get("meshburst:primaryStack") or default_primary_stack(OFFLINE_ORGANIZATION)
        # The primary is applied before the burst stack runs, so its outputs are known then; the values
        # only the cloud will know are shown by name.
        references[ref] = {
            k: (f"<primary output {k}>" if v == KNOWN_AFTER_APPLY else v) for k, v in primary.outputs.items()
        }
        secrets[ref] = primary.secret_outputs
    return run_stack(stack, config, references, secrets, replace_config=True, preview=True)


def resource_key(resource: Resource | Mapping[str, Any]) -> str:
    kind, name = (
        (resource.type, resource.name) if isinstance(resource, Resource) else (resource["type"], resource["name"])
    )
    return f"{kind} {name}"


# The inputs a reviewer looks at first, by resource type; other types show their top-level scalars.
SUMMARY_PATHS: Mapping[str, tuple[str, ...]] = {
    "gcp:container/cluster:Cluster": ("name", "location", "network", "releaseChannel.channel", "deletionProtection"),
    "gcp:container/nodePool:NodePool": (
        "nodeCount",
        "autoscaling",
        "nodeConfig.machineType",
        "nodeConfig.diskSizeGb",
        "nodeConfig.tags",
    ),
    "gcp:compute/firewall:Firewall": ("direction", "priority", "sourceRanges", "targetTags"),
    "docker-build:index:Image": ("context.location", "buildArgs", "tags"),
}


def lookup(inputs: Mapping[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def summary(resource: Resource) -> str:
    """The inputs a reviewer looks at first, in one line."""
    inputs = resource.inputs
    if resource.read:
        text = "reads an existing object"
    elif resource.type in SUMMARY_PATHS:
        found = ((p, lookup(inputs, p)) for p in SUMMARY_PATHS[resource.type])
        text = " ".join(
            f"{p}={json.dumps(v, sort_keys=True) if not isinstance(v, str) else v}" for p, v in found if v is not None
        )
    elif resource.type == "kubernetes:helm.sh/v3:Release":
        text = f"{inputs.get('chart')} {inputs.get('version')} from {inputs.get('repositoryOpts', {}).get('repo')}"
    elif isinstance(inputs.get("metadata"), dict) and resource.type.startswith("kubernetes:"):
        meta = inputs["metadata"]
        text = f"{meta.get('namespace', '-')}/{meta.get('name', '-')}"
    else:
        scalars = [f"{k}={v}" for k, v in sorted(inputs.items()) if isinstance(v, str | int | float | bool)]
        text = " ".join(scalars)
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 1] + "…"


def table(run: Run) -> str:
    names = {r.urn: r.name for r in run.resources}
    rows = [("TYPE", "NAME", "PARENT", "INPUTS")]
    rows += [(r.type, r.name, names.get(r.parent, "-"), summary(r)) for r in run.resources]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return (
        "\n".join(
            "  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip() for row in rows
        )
        + "\n"
    )


def manifest(resource: Resource) -> dict[str, Any]:
    """A Kubernetes object as kubectl would show it (Pulumi's own bookkeeping keys left out)."""
    return {k: v for k, v in resource.inputs.items() if not k.startswith("__")}


def record(run: Run) -> list[dict[str, Any]]:
    names = {r.urn: r.name for r in run.resources}
    return [
        {
            "type": r.type,
            "name": r.name,
            "parent": names.get(r.parent, ""),
            "inputs": r.inputs,
            "options": {"ignoreChanges": r.ignore_changes, **({"retainOnDelete": True} if r.retain_on_delete else {})},
            "secrets": sorted(r.secret_paths),
            "read": r.read,
        }
        for r in run.resources
    ]


def redact(value: Any, path: str, secret_paths: set[str]) -> Any:
    """Secrets never reach plan files: their values are replaced, their presence kept."""
    if path in secret_paths:
        return "[secret]"
    if isinstance(value, dict):
        return {k: redact(v, f"{path}.{k}" if path else k, secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    return value


def plan_document(run: Run) -> dict[str, Any]:
    """What resources.json holds, and what --diff compares."""
    return {"stack": run.stack, "resources": record(run), "outputs": run.outputs}


def redacted(run: Run) -> Run:
    for resource in run.resources:
        resource.inputs = redact(resource.inputs, "", resource.secret_paths)
    run.outputs = {k: ("[secret]" if k in run.secret_outputs else v) for k, v in run.outputs.items()}
    return run


def write_plan(run: Run, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "resources.txt").write_text(table(run))
    (out / "resources.json").write_text(json.dumps(plan_document(run), indent=1, sort_keys=True))
    for folder in ("manifests", "helm"):
        (out / folder).mkdir(exist_ok=True)
        for old in (out / folder).glob("*.yaml"):
            old.unlink()
    for resource in run.resources:
        if resource.is_object:
            obj = manifest(resource)
            meta = obj.get("metadata", {})
            filename = f"{obj['kind']}-{meta.get('namespace', 'cluster')}-{meta.get('name', resource.name)}.yaml"
            (out / "manifests" / filename.lower()).write_text(yaml.safe_dump(obj, sort_keys=False))
        elif resource.type == "kubernetes:helm.sh/v3:Release":
            inputs = resource.inputs
            release = {
                "release": inputs.get("name"),
                "namespace": inputs.get("namespace"),
                "repository": inputs.get("repositoryOpts", {}).get("repo"),
                "chart": inputs.get("chart"),
                "version": inputs.get("version"),
                "values": inputs.get("values", {}),
            }
            (out / "helm" / f"{inputs.get('name', resource.name)}.yaml").write_text(
                yaml.safe_dump(release, sort_keys=False)
            )


def load_plan(path: Path) -> dict[str, Any]:
    file = path / "resources.json" if path.is_dir() else path
    if not file.exists():
        raise PlanError(f"--diff {path}: no plan there (expected {file}); write one with --out {path}")
    try:
        return json.loads(file.read_text())
    except ValueError as exc:
        raise PlanError(f"--diff {path}: {file} is not a plan file ({exc})") from None


ABSENT = "(absent)"


def _by_name(items: list[Any]) -> dict[str, Any] | None:
    """A list of objects with distinct `name`s (an Istio route's http rules) by name; None for any other list."""
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
        return None
    return dict(zip(names, items, strict=True))


def _unnamed(item: Any) -> Any:
    """A named list element without its name, which its path already shows."""
    return {k: v for k, v in item.items() if k != "name"} if isinstance(item, dict) else item


def _leaves(value: Any, path: str) -> list[tuple[str, Any]]:
    """Every scalar (or empty container) inside `value`, with its dotted path."""
    if isinstance(value, dict) and value:
        return [leaf for key in value for leaf in _leaves(value[key], f"{path}.{key}")]
    if isinstance(value, list) and value:
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{path}[{i}]")]
    return [(path, value)]


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def changed_fields(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every leaf that differs, as (dotted path, old, new).

    Lists of named objects whose names no longer line up (an http rule added or removed) are compared by
    name (`spec.http[name=sticky]`); an object or list that appears or disappears whole and is too long for
    one line is shown leaf by leaf.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            child = f"{path}.{key}" if path else str(key)
            changes += changed_fields(old.get(key, ABSENT), new.get(key, ABSENT), child)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        named_old, named_new = _by_name(old), _by_name(new)
        if named_old is not None and named_new is not None and list(named_old) != list(named_new):
            order = list(named_new) + [name for name in named_old if name not in named_new]
            return [
                change
                for name in order
                for change in changed_fields(
                    _unnamed(named_old.get(name, ABSENT)), _unnamed(named_new.get(name, ABSENT)), f"{path}[name={name}]"
                )
            ]
        if len(old) == len(new):
            return [
                c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in changed_fields(a, b, f"{path}[{i}]")
            ]
    if old == new:
        return []
    if isinstance(old, str) and isinstance(new, str):
        # A JSON document held as a string (a route's intent.json) changes field by field, not as one blob.
        documents = _json_object(old), _json_object(new)
        if documents[0] is not None and documents[1] is not None:
            return changed_fields(documents[0], documents[1], path)
    whole = new if old == ABSENT else old if new == ABSENT else None
    if isinstance(whole, dict | list) and len(json.dumps(whole)) > SHORT:
        return [
            (leaf, ABSENT, value) if old == ABSENT else (leaf, value, ABSENT) for leaf, value in _leaves(whole, path)
        ]
    return [(path, old, new)]


def short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= SHORT else text[: SHORT - 3] + "..."


def diff(base: Mapping[str, Any], head: Mapping[str, Any]) -> str:
    """A short, readable diff of two plans of the same stack: what appears, disappears or changes, and how."""
    before = {resource_key(r): r for r in base["resources"]}
    after = {resource_key(r): r for r in head["resources"]}
    lines = [f"meshburst plan diff, stack {head['stack']}"]
    if base.get("stack") != head.get("stack"):
        lines.append(f"warning: comparing stack {head['stack']} with a plan of stack {base.get('stack')}")
    added = [k for k in after if k not in before]
    removed = [k for k in before if k not in after]

    def compared(resource: Mapping[str, Any]) -> dict[str, Any]:
        return {"inputs": resource["inputs"], "options": resource.get("options", {})}

    changed = [k for k in after if k in before and compared(after[k]) != compared(before[k])]
    for key in added:
        lines.append(f"+ {key}")
    for key in removed:
        kept = before[key].get("options", {}).get("retainOnDelete")
        lines.append(f"- {key}" + ("  (leaves the stack; the live object stays: retainOnDelete)" if kept else ""))
    for key in changed:
        lines.append(f"~ {key}")
        fields = changed_fields(compared(before[key]), compared(after[key]))
        # Input paths read as the object's own fields; option changes keep their `options.` prefix.
        lines += [f"    {path.removeprefix('inputs.')}: {short(a)} -> {short(b)}" for path, a, b in fields]
    output_changes = changed_fields(base.get("outputs", {}), head.get("outputs", {}))
    for path, a, b in output_changes:
        lines.append(f"~ output {path}: {short(a)} -> {short(b)}")
    unchanged = len(after) - len(added) - len(changed)
    lines.append(f"{len(added)} to add, {len(changed)} to change, {len(removed)} to remove, {unchanged} unchanged")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.plan",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stack", choices=ROLES, help="which stack to plan")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key of the stack (repeatable): KEY=VALUE (canaryWeight=50) or, as "
        "`pulumi config set --path` does, KEY.PATH=VALUE (addons.grafana=true, apiAuthorizedNetworks[0]=10.0.0.0/8)",
    )
    parser.add_argument("--out", type=Path, help="folder to write the plan to (created if missing)")
    parser.add_argument(
        "--diff",
        type=Path,
        metavar="OTHER_PLAN",
        help="print what changes from the plan in OTHER_PLAN (a folder written by --out) to this one",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is None and args.diff is None:
        parser.error("nothing to do: give --out DIR to write the plan, --diff OTHER_PLAN to compare, or both")
    try:
        overrides = parse_sets(args.sets)
        base = load_plan(args.diff) if args.diff is not None else None
        try:
            run = redacted(plan_stack(args.stack, overrides))
        except RunFailed as failed:
            print(f"error: the {args.stack} stack does not evaluate:\n{failed.error}", file=sys.stderr)
            return EXIT_BAD_CONFIG
        if args.out is not None:
            write_plan(run, args.out)
            print(f"wrote the {args.stack} plan to {args.out}/ ({len(run.resources)} resources)", file=sys.stderr)
        if base is not None:
            # Compared in the JSON form a plan read back from disk has (tuples as lists, keys as strings).
            head = json.loads(json.dumps(plan_document(run), sort_keys=True))
            sys.stdout.write(diff(base, head))
    except PlanError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    exit_code = main()
    # Pulumi's mock runtime leaves an event loop behind per worker thread. Collect them now, while they
    # can close cleanly; left to interpreter teardown they sometimes print a spurious traceback.
    gc.collect()
    sys.exit(exit_code)
