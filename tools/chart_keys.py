"""Generate the key list of a Helm chart's values, which the values gate (tests/test_gates.py) checks against.

    helm show values istio/istiod --version 1.30.3 > values.yaml
    python -m tools.chart_keys values.yaml --chart istiod --version 1.30.3 --extra profile \\
        > tests/data/chart-keys/istiod-1.30.3.json

Every key path of the values becomes a known key. A map whose content is free-form (labels,
annotations, env, and any map that is empty by default) is "open": anything below it is accepted.
Istio charts keep their defaults under `_internal_defaults_do_not_set`; those are unwrapped, as Helm
users set them at the top level. --extra adds keys a chart reads without declaring a default (Istio's
`profile`); --open marks more free-form maps.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ISTIO_DEFAULTS = "_internal_defaults_do_not_set"
FREE_FORM = {
    "labels",
    "annotations",
    "podLabels",
    "podAnnotations",
    "env",
    "nodeSelector",
    "meshConfig",
    "serviceAnnotations",
    "deploymentLabels",
    "deploymentAnnotations",
    "extraLabels",
    "datasources",
    "resources",
}


def key_paths(values: Mapping[str, Any], prefix: str = "") -> tuple[set[str], set[str]]:
    """(every key path, the paths whose children are free-form)."""
    keys: set[str] = set()
    open_paths: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        keys.add(path)
        if isinstance(value, Mapping):
            if not value or key in FREE_FORM:
                open_paths.add(path)
            else:
                child_keys, child_open = key_paths(value, path)
                keys |= child_keys
                open_paths |= child_open
    return keys, open_paths


def chart_keys(
    values: Mapping[str, Any], extra: Iterable[str] = (), open_paths: Iterable[str] = ()
) -> dict[str, list[str]]:
    if ISTIO_DEFAULTS in values:
        values = {**values[ISTIO_DEFAULTS], **{k: v for k, v in values.items() if k != ISTIO_DEFAULTS}}
    keys, opened = key_paths(values)
    return {"keys": sorted(keys | set(extra)), "open": sorted(opened | set(open_paths))}


def unknown_keys(values: Mapping[str, Any], known: Mapping[str, list[str]], prefix: str = "") -> list[str]:
    """The key paths of `values` that the chart does not know (what the values gate reports)."""
    keys, open_paths = set(known["keys"]), set(known["open"])
    found: list[str] = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if path not in keys:
            found.append(path)
        elif isinstance(value, Mapping) and path not in open_paths:
            found += unknown_keys(value, known, path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.chart_keys",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("values", type=Path, help="the chart's values.yaml (`helm show values CHART --version V`)")
    parser.add_argument("--chart", required=True, help="chart name, e.g. istiod")
    parser.add_argument("--version", required=True, help="chart version the values belong to")
    parser.add_argument("--source", default="", help="where the values came from (recorded in the output)")
    parser.add_argument("--extra", action="append", default=[], help="a key the chart reads with no default")
    parser.add_argument("--open", action="append", default=[], help="a map whose children are free-form")
    args = parser.parse_args(argv)
    if not args.values.is_file():
        parser.error(f"{args.values}: no such file; get it with `helm show values CHART --version VERSION`")
    values = yaml.safe_load(args.values.read_text())
    if not isinstance(values, Mapping):
        parser.error(f"{args.values}: not a values.yaml (the top level is not a map)")
    document = {
        "chart": args.chart,
        "version": args.version,
        "source": args.source,
        **chart_keys(values, args.extra, args.open),
    }
    json.dump(document, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
