"""The prometheus.yml the chart writes from our values, proven by the real `promtool check config`.

The prometheus chart writes `server.global` and `serverFiles."prometheus.yml"` into the server's ConfigMap
(templates/cm.yaml). Helm merges our values over the chart's defaults first, so a default we do not set (the
chart's `scrape_timeout: 10s`) is still part of the config Prometheus reads.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from builders.dashboards import DashboardSettings, dashboard_config_maps
from builders.observability import (
    GRAFANA_CHART,
    KIALI_CHART,
    KIALI_SECRETS_DIR,
    PROMETHEUS_CHART,
    kiali_remote_secret_metadata,
    kiali_remote_secret_name,
    prometheus_values,
)
from tests.support.chart_render import RENDERS, current_values, values_digest
from tests.support.paths import DATA

RENDER_HOW = json.loads(RENDERS.read_text())["how"]

CHART_DEFAULTS = DATA / "prometheus-chart-27.46.0.yaml"
# Blocks templates/cm.yaml adds to prometheus.yml that this renderer does not write; our values must leave them unset.
UNRENDERED = (
    ("server", "remoteWrite"),
    ("server", "remoteRead"),
    ("server", "tsdb"),
    ("server", "exemplars"),
    ("server", "otlp"),
    ("server", "alertmanagers"),
    ("server", "configMapOverrideName"),
    ("server", "configFromSecret"),
    ("scrapeConfigFiles",),
    ("extraScrapeConfigs",),
    ("alertmanager", "enabled"),
)


def chart_defaults() -> dict[str, Any]:
    document = yaml.safe_load(CHART_DEFAULTS.read_text())
    assert (document["chart"], document["version"]) == PROMETHEUS_CHART[1:], "refresh tests/data for the pinned chart"
    return document["values"]


def helm_merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values over chart values: maps merge per key, other values replace, null deletes."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _to_yaml(value: Any) -> str:
    # Helm's toYaml (sigs.k8s.io/yaml) sorts keys and writes block style.
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False, width=1_000_000)


def render_prometheus_yml(values: dict[str, Any]) -> str:
    """The ConfigMap key prometheus.yml as templates/cm.yaml writes it (without the ConfigMap's 4-space indent)."""
    merged = helm_merge(chart_defaults(), values)
    for path in UNRENDERED:
        node: Any = merged
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        assert not node, f"{'.'.join(path)}={node!r} adds a block to prometheus.yml that this renderer does not write"
    global_block = "".join(f"  {line}\n" for line in _to_yaml(merged["server"]["global"]).splitlines())
    return f"global:\n{global_block}{_to_yaml(merged['serverFiles']['prometheus.yml'])}"


def without_kubernetes_sd(config: str) -> str:
    """The same config with each job's `kubernetes_sd_configs` swapped for an empty `static_configs`.

    Debian builds Prometheus without Kubernetes service discovery ("Kubernetes support has been completely
    removed", /usr/share/doc/prometheus/NEWS.Debian.gz), so its promtool stops at that field before validating
    anything else. With the swap it still checks the globals, every job's interval and timeout against them,
    and every relabel rule; only the discovery blocks (`role: pod` and the like, chart defaults) go unchecked.
    """
    document = yaml.safe_load(config)
    for job in document.get("scrape_configs", []):
        if job.pop("kubernetes_sd_configs", None) is not None:
            job.setdefault("static_configs", [])
    return _to_yaml(document)


def run_promtool(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run .ci/run, or apt-get install prometheus"
    path = tmp_path / "prometheus.yml"
    path.write_text(config)
    # --syntax-only: the chart's scrape configs name the pod's service-account token and CA files, which exist
    # only inside the cluster; every setting is still parsed and validated.
    return subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(path)], capture_output=True, text=True, timeout=60
    )


def promtool_check(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_promtool(without_kubernetes_sd(config), tmp_path)


def old_values() -> dict[str, Any]:
    """The values before the fix: only scrape_interval stated, the chart's 10 s timeout inherited."""
    values = prometheus_values()
    values["server"]["global"] = {"scrape_interval": "5s"}
    return values


def test_helm_merge_merges_maps_and_replaces_lists_and_scalars():
    defaults = {"a": {"x": 1, "y": [1, 2]}, "b": "keep", "c": {"d": 1}}
    merged = helm_merge(defaults, {"a": {"y": [3]}, "c": None, "e": {"f": True}})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": "keep", "e": {"f": True}}
    assert defaults["a"]["y"] == [1, 2]


def test_the_rendered_global_block_is_exactly_what_the_program_states():
    config = yaml.safe_load(render_prometheus_yml(prometheus_values()))
    assert config["global"] == {"scrape_interval": "5s", "scrape_timeout": "4s", "evaluation_interval": "5s"}
    # The chart's own scrape jobs stay: they are what scrapes the sidecars (kubernetes-pods).
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert "kubernetes-pods" in jobs and "prometheus" in jobs
    assert "alerting" not in config


def test_old_values_inherit_the_chart_timeout_and_promtool_refuses_them(tmp_path: Path):
    config = render_prometheus_yml(old_values())
    assert yaml.safe_load(config)["global"] == {
        "scrape_interval": "5s",
        "scrape_timeout": "10s",
        "evaluation_interval": "1m",
    }
    result = promtool_check(config, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "scrape timeout greater than scrape interval" in result.stdout + result.stderr


def test_promtool_accepts_the_prometheus_yml_the_program_produces(tmp_path: Path):
    result = promtool_check(render_prometheus_yml(prometheus_values()), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("global_", "error"),
    [
        ({"scrape_interval": "5s", "scrape_timeout": "6s"}, "scrape timeout greater than scrape interval"),
        ({"scrape_interval": "five seconds"}, 'not a valid duration string: "five seconds"'),
    ],
)
def test_promtool_is_the_judge_of_other_bad_globals_too(global_: dict[str, str], error: str, tmp_path: Path):
    values = prometheus_values()
    values["server"]["global"] = global_
    result = promtool_check(render_prometheus_yml(values), tmp_path)
    assert result.returncode == 1
    assert error in result.stdout + result.stderr


def test_debian_promtool_knows_no_kubernetes_sd_and_the_swap_changes_nothing_else(tmp_path: Path):
    config = render_prometheus_yml(prometheus_values())
    result = run_promtool(config, tmp_path)
    assert result.returncode == 1
    errors = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("line ")]
    assert len(errors) == 9
    assert {error.split(": ", 1)[1] for error in errors} == {
        "field kubernetes_sd_configs not found in type config.ScrapeConfig"
    }
    original, swapped = yaml.safe_load(config), yaml.safe_load(without_kubernetes_sd(config))
    for job in original["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = []
    assert swapped == original


# Grafana's dashboards and Kiali's remote cluster, as the charts render our values (real `helm template`, recorded
# in tests/data/chart-renders.json by tests/support/chart_render.py).


def recorded(chart: str) -> dict[str, Any]:
    document = json.loads(RENDERS.read_text())[chart]
    assert document["values_sha256"] == values_digest(current_values()[chart]), (
        f"the {chart} values changed since tests/data/chart-renders.json was rendered: re-render it ({RENDER_HOW})"
    )
    return document


def test_the_renders_are_of_the_pinned_charts_and_of_todays_values():
    document = json.loads(RENDERS.read_text())
    assert document["grafana"]["chart"] == list(GRAFANA_CHART[1:])
    assert document["kiali"]["chart"] == list(KIALI_CHART[1:])
    recorded("grafana")
    recorded("kiali")


def test_grafana_loads_every_dashboard_config_map_the_program_creates():
    render = recorded("grafana")
    volumes = {v["name"]: v["configMap"]["name"] for v in render["volumes"]}
    mounted = {m["mountPath"]: volumes[m["name"]] for m in render["mounts"] if m["name"] in volumes}
    # Each provider reads a folder; the chart mounts one ConfigMap there; Grafana loads every *.json in it.
    read = {p["name"]: mounted[p["options"]["path"]] for p in render["provisioning"]["providers"]}
    assert all(p["type"] == "file" for p in render["provisioning"]["providers"])
    maps = {m["metadata"]["name"]: m["data"] for m in dashboard_config_maps("1.30.3", DashboardSettings())}
    assert set(read.values()) == set(maps), "every ConfigMap the program creates is read, and no other"
    titles = {
        json.loads(text)["title"]
        for name in read.values()
        for file, text in maps[name].items()
        if file.endswith(".json")
    }
    assert titles == {
        "Istio Mesh Dashboard",
        "Istio Service Dashboard",
        "Istio Workload Dashboard",
        "Istio Control Plane Dashboard",
        "meshburst: canary and cloud burst",
    }
    assert {
        "mountPath": "/etc/grafana/provisioning/dashboards/dashboardproviders.yaml",
        "name": "config",
        "subPath": "dashboardproviders.yaml",
    } in render["mounts"]


def test_kiali_reads_the_burst_clusters_secret_as_cluster_burst_and_starts_without_it():
    render = recorded("kiali")
    assert render["config"]["auth"]["strategy"] == "anonymous"
    assert render["config"]["view_only_mode"] is True
    assert render["config"]["kubernetes_config"] == {"cluster_name": "primary"}
    assert render["config"]["clustering"]["autodetect_secrets"]["enabled"] is False
    name = kiali_remote_secret_name("burst")
    [volume] = [v for v in render["volumes"] if v["secret"]["secretName"] == name]
    assert volume["secret"]["optional"] is True, "Kiali starts before the burst stack writes the secret"
    [mount] = [m for m in render["mounts"] if m["name"] == volume["name"]]
    # Kiali reads /kiali-remote-cluster-secrets/<secret>/<file> as the kubeconfig of the cluster named <file>: the
    # burst stack's secret has one key, the cluster's Istio name.
    assert mount["mountPath"] == f"{KIALI_SECRETS_DIR}/{name}"
    assert kiali_remote_secret_metadata("burst")["name"] == name
