"""Vendor Istio's Grafana dashboards for an Istio release, from that release's samples/addons/grafana.yaml.

    curl -sL https://raw.githubusercontent.com/istio/istio/1.30.3/samples/addons/grafana.yaml \\
        | .venv/bin/python -m tools.istio_dashboards 1.30.3 /dev/stdin

Istio generates grafana.yaml with its dashboards as minified JSON in two ConfigMaps (istio-grafana-dashboards
and istio-services-grafana-dashboards). This keeps the four the stack provisions (builders/dashboards.py
ISTIO_DASHBOARDS: mesh, service, workload, control plane) byte for byte, in dashboards/istio/<minor>/, with a
SOURCE file naming the release they came from. Istio changes its dashboards between minor versions only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from builders.dashboards import ISTIO_DASHBOARDS, ISTIO_DASHBOARDS_DIR, istio_minor

CONFIG_MAPS = ("istio-grafana-dashboards", "istio-services-grafana-dashboards")


def extract(documents: Iterable[Mapping[str, Any] | None]) -> dict[str, str]:
    """The wanted dashboards (file -> JSON text) from grafana.yaml's documents; ValueError if one is missing."""
    found: dict[str, str] = {}
    for doc in documents:
        if doc and doc.get("kind") == "ConfigMap" and doc.get("metadata", {}).get("name") in CONFIG_MAPS:
            found.update({k: v for k, v in (doc.get("data") or {}).items() if k in ISTIO_DASHBOARDS})
    missing = sorted(set(ISTIO_DASHBOARDS) - set(found))
    if missing:
        raise ValueError(f"grafana.yaml has no {missing} in the ConfigMaps {list(CONFIG_MAPS)}")
    for name, text in found.items():
        title = json.loads(text).get("title")
        if title != ISTIO_DASHBOARDS[name]:
            raise ValueError(f"{name} is titled {title!r}, expected {ISTIO_DASHBOARDS[name]!r}")
    return found


def write(version: str, dashboards: Mapping[str, str], root: Path = ISTIO_DASHBOARDS_DIR) -> Path:
    folder = root / istio_minor(version)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in dashboards.items():
        (folder / name).write_text(text)
    (folder / "SOURCE").write_text(
        f"istio/istio {version} samples/addons/grafana.yaml, ConfigMaps {', '.join(CONFIG_MAPS)} "
        "(Apache License 2.0); written by `python -m tools.istio_dashboards`.\n"
    )
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.istio_dashboards",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("version", help="the Istio release the file comes from, e.g. 1.30.3")
    parser.add_argument("grafana_yaml", type=Path, help="that release's samples/addons/grafana.yaml")
    args = parser.parse_args(argv)
    try:
        folder = write(args.version, extract(yaml.safe_load_all(args.grafana_yaml.read_text())))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        parser.error(str(exc))
    print(f"wrote {len(ISTIO_DASHBOARDS)} dashboards to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
