"""What the Grafana and Kiali charts make of meshburst's values, rendered by the real `helm template` and kept in
tests/data/chart-renders.json, so tests assert on what the charts produce without helm or the charts at test time.

Regenerate after changing grafana_values() or kiali_values() (tests/builders/test_observability.py names this
command when the recorded values differ from today's):

    helm pull grafana/grafana --version 8.0.0 --untar -d charts
    helm pull kiali/kiali-server --version 2.5.0 --untar -d charts
    .venv/bin/python -m tests.support.chart_render "$(command -v helm)" charts > tests/data/chart-renders.json
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from builders.observability import GRAFANA_CHART, KIALI_CHART, grafana_values, kiali_values
from tests.support.paths import DATA

RENDERS = DATA / "chart-renders.json"


def values_digest(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def current_values() -> dict[str, dict[str, Any]]:
    return {"grafana": grafana_values(), "kiali": kiali_values(with_grafana=True)}


def _render(helm: str, chart: Path, release: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(dict(values), file)
        file.flush()
        text = subprocess.run(
            [helm, "template", release, str(chart), "--namespace", "istio-system", "-f", file.name],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def _pod(deployment: dict[str, Any], container: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    spec = deployment["spec"]["template"]["spec"]
    [main] = [c for c in spec["containers"] if c["name"] == container]
    return spec["volumes"], main["volumeMounts"]


def grafana_excerpt(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Grafana's dashboard provisioning file and the dashboard volumes mounted into the grafana container."""
    volumes, mounts = _pod(_one(docs, "Deployment", "grafana"), "grafana")
    return {
        "provisioning": yaml.safe_load(_one(docs, "ConfigMap", "grafana")["data"]["dashboardproviders.yaml"]),
        "volumes": [v for v in volumes if v["name"].startswith("dashboards-")],
        "mounts": [m for m in mounts if m["name"].startswith("dashboards-") or m.get("subPath", "").startswith("dash")],
    }


def kiali_excerpt(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Kiali's config (what it reads at start) and the secret volumes mounted into the kiali container."""
    config = yaml.safe_load(_one(docs, "ConfigMap", "kiali")["data"]["config.yaml"])
    volumes, mounts = _pod(_one(docs, "Deployment", "kiali"), "kiali")
    secret_volumes = {v["name"] for v in volumes if "secret" in v}
    return {
        "config": {key: config.get(key) for key in ("auth", "clustering", "kubernetes_config")}
        | {"view_only_mode": config["deployment"]["view_only_mode"]},
        "volumes": [v for v in volumes if "secret" in v],
        "mounts": [m for m in mounts if m["name"] in secret_volumes],
    }


def _chart_dir(charts: Path, name: str, version: str) -> Path:
    """charts/<name> as `helm pull --untar` leaves it, or charts/<name>-<version>; its Chart.yaml must match."""
    for folder in (charts / f"{name}-{version}", charts / name):
        if (folder / "Chart.yaml").is_file():
            chart = yaml.safe_load((folder / "Chart.yaml").read_text())
            if (chart["name"], chart["version"]) != (name, version):
                raise SystemExit(f"{folder} is {chart['name']} {chart['version']}, not {name} {version}")
            return folder
    raise SystemExit(f"no {name} {version} chart under {charts}")


def main(argv: list[str]) -> int:
    helm, charts = argv[0], Path(argv[1])
    values = current_values()
    grafana = _render(helm, _chart_dir(charts, *GRAFANA_CHART[1:]), "grafana", values["grafana"])
    kiali = _render(helm, _chart_dir(charts, *KIALI_CHART[1:]), "kiali", values["kiali"])
    document = {
        "how": "; ".join(line.strip() for line in __doc__.split("\n\n")[2].splitlines()),
        "grafana": {
            "chart": list(GRAFANA_CHART[1:]),
            "values_sha256": values_digest(values["grafana"]),
            **grafana_excerpt(grafana),
        },
        "kiali": {
            "chart": list(KIALI_CHART[1:]),
            "values_sha256": values_digest(values["kiali"]),
            **kiali_excerpt(kiali),
        },
    }
    json.dump(document, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
