"""builders/dashboards.py: Istio's dashboards for the pinned version, and the meshburst dashboard built as code.

Every panel's query runs against a real Prometheus scraping Istio's metric names (tests/support/istio_exporter.py)
and the controller's own /metrics (apps/controller/metrics.py, the names of the contract), and must return the
series the panel is there to show: a misspelt metric or label returns nothing and fails.
"""

from __future__ import annotations

import json
import math
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from apps.controller.metrics import Metrics
from builders.dashboards import (
    DATASOURCE_UID,
    ISTIO_DASHBOARDS,
    DashboardSettings,
    dashboard_config_maps,
    dashboard_json,
    istio_dashboards,
    istio_minor,
)
from tests.support.istio_exporter import IstioExporter
from tests.support.loopback import LoopbackServer
from tests.support.servers import PrometheusServer, wait_until
from tools.mockrun import RunFailed, run_stack

NAMESPACE = "meshburst"
CONTROLLED = DashboardSettings(
    canary_weight=None, burst_weight=None, max_error_percent=2.5, high_rps=15, low_rps=10, rate_window="10s"
)
MANUAL = DashboardSettings(canary_weight=20, burst_weight=30)


def board(settings: DashboardSettings) -> dict[str, Any]:
    return json.loads(dashboard_json(settings))


def panels(settings: DashboardSettings) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in board(settings)["panels"] if p["type"] != "row"}


# Istio's own dashboards


def test_the_four_istio_dashboards_of_the_pinned_minor_are_vendored_whole():
    found = istio_dashboards("1.30.3")
    assert istio_minor("1.30.3") == "1.30"
    assert {name: json.loads(text)["title"] for name, text in found.items()} == {
        "istio-mesh-dashboard.json": "Istio Mesh Dashboard",
        "istio-service-dashboard.json": "Istio Service Dashboard",
        "istio-workload-dashboard.json": "Istio Workload Dashboard",
        "pilot-dashboard.json": "Istio Control Plane Dashboard",
    }
    # They pick their data source through a variable of type prometheus: ours is the only one, and the default.
    for text in found.values():
        variables = {v["name"]: v for v in json.loads(text)["templating"]["list"]}
        assert variables["datasource"]["query"] == "prometheus"


def test_an_istio_version_with_no_vendored_dashboards_is_refused_with_how_to_vendor_them():
    with pytest.raises(
        ValueError, match=r"no Istio dashboards are vendored for istioVersion 1\.29\.2 \(have: \['1\.30'\]\)"
    ):
        istio_dashboards("1.29.2")
    with pytest.raises(ValueError, match=r"tools\.istio_dashboards 1\.29\.2"):
        dashboard_config_maps("1.29.2", MANUAL)


def test_the_config_maps_hold_istios_dashboards_and_meshburst_s():
    maps = {m["metadata"]["name"]: m for m in dashboard_config_maps("1.30.3", MANUAL)}
    assert set(maps) == {"istio-grafana-dashboards", "meshburst-grafana-dashboards"}
    assert sorted(maps["istio-grafana-dashboards"]["data"]) == sorted(ISTIO_DASHBOARDS)
    assert maps["meshburst-grafana-dashboards"]["data"] == {"meshburst-dashboard.json": dashboard_json(MANUAL)}
    for config_map in maps.values():
        assert config_map["metadata"]["namespace"] == "istio-system"
        # A ConfigMap holds at most 1 MiB.
        assert sum(len(v.encode()) for v in config_map["data"].values()) < 1024 * 1024


# The meshburst dashboard: built with the SDK, checked through the SDK's types


def test_the_dashboard_round_trips_through_the_sdks_types():
    register_default_plugins()
    for settings in (CONTROLLED, MANUAL):
        written = board(settings)
        parsed = Dashboard.from_json(written)
        assert json.loads(json.dumps(parsed, cls=JSONEncoder)) == written
        assert parsed.uid == "meshburst" and parsed.title == "meshburst: canary and cloud burst"


def test_every_panel_says_its_unit_and_reads_the_provisioned_data_source():
    for settings in (CONTROLLED, MANUAL):
        for title, panel in panels(settings).items():
            assert panel["fieldConfig"]["defaults"]["unit"] in {"reqps", "percent", "ms", "none", "short"}, title
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, title
            assert panel["description"], title
    figures = panels(CONTROLLED)["Last verdict's figures"]["fieldConfig"]["overrides"]
    assert [(o["matcher"]["options"], o["properties"][0]["value"]) for o in figures] == [
        ("A", "percent"),
        ("B", "ms"),
        ("C", "short"),
    ]


def test_thresholds_are_the_configured_limits_drawn_as_dashed_lines():
    found = panels(CONTROLLED)
    expected = {
        "5xx share by version": [None, 2.5],
        "p99 latency by version": [None, 500.0],
        "Offered request rate vs thresholds": [None, 10, 15],
    }
    for title, values in expected.items():
        defaults = found[title]["fieldConfig"]["defaults"]
        assert [step["value"] for step in defaults["thresholds"]["steps"]] == values, title
        assert defaults["custom"]["thresholdsStyle"] == {"mode": "dashed"}, title


def test_the_namespace_variable_lists_the_apps_namespaces_and_starts_at_the_stacks():
    [variable] = board(MANUAL)["templating"]["list"]
    assert (variable["name"], variable["type"]) == ("namespace", "query")
    assert variable["query"] == "label_values(istio_requests_total, destination_workload_namespace)"
    assert variable["current"] == {"selected": True, "text": NAMESPACE, "value": NAMESPACE}
    for panel in board(CONTROLLED)["panels"]:
        for target in panel.get("targets", []):
            if "vector(" not in target["expr"]:
                assert "$namespace" in target["expr"], (panel["title"], target["expr"])


def test_controller_panels_appear_only_in_the_modes_a_controller_runs():
    controller_only = {
        "Rollout phase",
        "Step",
        "Last verdict",
        "Last verdict's figures",
        "Verdicts",
        "Burst mode",
        "Controller decisions",
        "Controller faults",
    }
    assert controller_only <= set(panels(CONTROLLED))
    assert not controller_only & set(panels(MANUAL))
    rows = [p["title"] for p in board(MANUAL)["panels"] if p["type"] == "row"]
    assert rows == ["Canary: shark v1 -> v2", "Burst: worker split between the clusters"]


# Every panel's query, against a real Prometheus


class WorkerTraffic(IstioExporter):
    """frontend -> worker-service as the frontend's sidecar reports it; one 'version' per cluster that answers."""

    def _labels(self, reporter: str, version: str, code: str) -> str:
        labels = super()._labels(reporter, version, code)
        return labels.replace('destination_cluster="Kubernetes"', f'destination_cluster="{version}"')


class ControllerMetrics(LoopbackServer):
    """The controller's /metrics (apps/controller/metrics.py), set by the test."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        registry = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = registry.render()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return

        self.serve(Handler)
        self.target = self.address


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    logs = tmp_path_factory.mktemp("dashboards")
    shark = IstioExporter(namespace=NAMESPACE, app="shark", versions=("v1", "v2"))
    workers = WorkerTraffic(
        namespace=NAMESPACE,
        app="worker-service",
        versions=("primary", "burst"),
        source_workload="frontend",
        source_namespace=NAMESPACE,
    )
    controller = ControllerMetrics()
    shark.set_traffic("v1", rps=30, latency_ms=20)
    shark.set_traffic("v2", rps=10, error_share=0.2, latency_ms={20: 0.5, 900: 0.5})
    workers.set_traffic("primary", rps=6)
    workers.set_traffic("burst", rps=12)
    m = controller.metrics
    for route, subsets, weights in (
        ("shark", ("v1", "v2"), (75, 25)),
        ("worker-split", ("primary", "burst"), (0, 100)),
    ):
        m.start(route)
        m.is_writer.labels(route=route).set(1)
        for subset, weight in zip(subsets, weights, strict=True):
            m.weight.labels(route=route, subset=subset).set(weight)
    m.burst_rate.labels(route="worker-split").set(18)
    m.burst_threshold.labels(route="worker-split", bound="high").set(15)
    m.burst_threshold.labels(route="worker-split", bound="low").set(10)
    m.burst_mode.labels(route="worker-split", mode="burst").set(1)
    m.burst_mode.labels(route="worker-split", mode="natural").set(0)
    m.burst_switches.labels(route="worker-split", to="burst")
    m.fault("worker-split", "prometheus")
    for phase in ("Idle", "Waiting", "Progressing", "Promoted", "RolledBack", "Halted"):
        m.canary_phase.labels(route="shark", phase=phase).set(1 if phase == "Progressing" else 0)
    m.canary_step.labels(route="shark").set(3)
    for result in ("pass", "fail", "wait"):
        m.canary_verdicts.labels(route="shark", result=result)
    m.canary_last_error_percent.labels(route="shark").set(0.4)
    m.canary_last_p99_ms.labels(route="shark").set(120)
    m.canary_last_requests.labels(route="shark").set(57)
    server = PrometheusServer(
        logs, [shark.target, workers.target, controller.target], scrape_interval="1s", labels={"namespace": NAMESPACE}
    )
    try:
        wait_until(lambda: len(query(server, "up == 1")) == 3, 20, "three targets scraped")
        # Decisions and verdicts happen while Prometheus watches: a switch to burst, a fault, then a pass and,
        # over 5 s later, a fail (the last verdict).
        m.burst_switches.labels(route="worker-split", to="burst").inc()
        m.fault("worker-split", "prometheus")
        m.canary_verdicts.labels(route="shark", result="pass").inc()
        wait_until(lambda: query(server, 'meshburst_canary_verdicts_total{result="pass"} == 1'), 10, "the pass seen")
        # The verdicts are judged apart at the in-cluster scrape interval (5 s): the fail comes one step later.
        time.sleep(6)
        m.canary_verdicts.labels(route="shark", result="fail").inc()
        wait_until(lambda: query(server, 'meshburst_canary_verdicts_total{result="fail"} == 1'), 10, "the fail seen")
        yield server
    finally:
        server.stop()
        for exporter in (shark, workers, controller):
            exporter.stop()


def query(server: PrometheusServer, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(server.url + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def run(server: PrometheusServer, expr: str) -> dict[str, float]:
    """The query as Grafana sends it ($namespace and $__rate_interval filled in): {legend labels: value}."""
    expr = expr.replace("$namespace", NAMESPACE).replace("$__rate_interval", "5s")
    return {
        ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k != "__name__"): float(r["value"][1])
        for r in query(server, expr)
    }


def targets(settings: DashboardSettings, title: str) -> list[str]:
    return [t["expr"] for t in panels(settings)[title]["targets"]]


def close(value: float, expected: float, tolerance: float) -> bool:
    return math.isfinite(value) and abs(value - expected) <= tolerance


def test_canary_panels_show_each_versions_rate_errors_and_latency(prometheus):
    [rates] = targets(CONTROLLED, "Requests per second by version")
    found = run(prometheus, rates)
    assert set(found) == {"destination_version=v1", "destination_version=v2"}
    assert close(found["destination_version=v1"], 30, 3) and close(found["destination_version=v2"], 10, 1.5)

    [errors] = targets(CONTROLLED, "5xx share by version")
    found = run(prometheus, errors)
    assert close(found["destination_version=v1"], 0, 0.001), "a clean version shows 0 %, not no data"
    assert close(found["destination_version=v2"], 20, 2)

    [p99] = targets(CONTROLLED, "p99 latency by version")
    found = run(prometheus, p99)
    assert found["destination_version=v1"] <= 25
    assert 500 < found["destination_version=v2"] <= 1000, "half of v2's requests take 900 ms"


def test_the_weight_panel_shows_what_sets_it_and_the_share_observed(prometheus):
    controller, observed = targets(CONTROLLED, "v2 weight")
    assert run(prometheus, controller) == {"subset=v2": 25.0}
    [(labels, share)] = run(prometheus, observed).items()
    assert labels == "" and close(share, 25, 3), "v2 answers 10 of 40 requests per second"
    configured, _ = targets(MANUAL, "v2 weight")
    assert run(prometheus, configured) == {"subset=v2": 20.0}


def test_rollout_phase_step_and_last_verdict(prometheus):
    [phase] = targets(CONTROLLED, "Rollout phase")
    [labels] = run(prometheus, phase)
    assert "phase=Progressing" in labels.split(",") and f"namespace={NAMESPACE}" in labels.split(",")
    [step] = targets(CONTROLLED, "Step")
    assert list(run(prometheus, step).values()) == [3.0]
    [verdict] = targets(CONTROLLED, "Last verdict")

    # The panel looks back in steps of the scrape interval: the fail shows within one step, and alone.
    def last() -> list[str]:
        return [labels for labels in run(prometheus, verdict) if "result=fail" in labels.split(",")]

    assert len(wait_until(last, 10, "the fail, which came after the pass, shown as the last verdict")) == 1
    assert len(run(prometheus, verdict)) == 1
    error_percent, p99, requests = targets(CONTROLLED, "Last verdict's figures")
    assert [list(run(prometheus, e).values()) for e in (error_percent, p99, requests)] == [[0.4], [120.0], [57.0]]
    [verdicts] = targets(CONTROLLED, "Verdicts")
    found = run(prometheus, verdicts.replace("$__rate_interval", "1m"))
    assert found["result=fail"] > 0 and found["result=pass"] > 0 and found["result=wait"] == 0


def test_burst_panels_show_rate_thresholds_split_clusters_decisions_and_faults(prometheus):
    offered, reading, thresholds = targets(CONTROLLED, "Offered request rate vs thresholds")
    [(_, rate)] = run(prometheus, offered).items()
    assert close(rate, 18, 2), "6 + 12 requests per second from the frontend"
    assert list(run(prometheus, reading).values()) == [18.0]
    assert run(prometheus, thresholds) == {"bound=high": 15.0, "bound=low": 10.0}

    [split] = targets(CONTROLLED, "Split between the clusters")
    assert run(prometheus, split) == {"subset=burst": 100.0, "subset=primary": 0.0}
    primary, burst = targets(MANUAL, "Split between the clusters")
    assert run(prometheus, primary) == {"subset=primary": 70.0}
    assert run(prometheus, burst) == {"subset=burst": 30.0}

    [served] = targets(CONTROLLED, "Requests served per cluster")
    found = run(prometheus, served)
    assert set(found) == {"destination_cluster=primary", "destination_cluster=burst"}
    assert close(found["destination_cluster=primary"], 6, 1) and close(found["destination_cluster=burst"], 12, 1.5)

    [mode] = targets(CONTROLLED, "Burst mode")
    assert [re.search(r"mode=(\w+)", k).group(1) for k in run(prometheus, mode)] == ["burst"]
    [decisions] = targets(CONTROLLED, "Controller decisions")
    assert run(prometheus, decisions.replace("$__rate_interval", "1m"))["to=burst"] > 0
    [faults] = targets(CONTROLLED, "Controller faults")
    assert run(prometheus, faults.replace("$__rate_interval", "1m"))["kind=prometheus"] > 0


def test_the_namespace_variable_finds_the_apps_namespace(prometheus):
    # What Grafana asks Prometheus for label_values(istio_requests_total, destination_workload_namespace).
    answer = httpx.get(
        prometheus.url + "/api/v1/label/destination_workload_namespace/values",
        params={"match[]": "istio_requests_total"},
        timeout=10,
    ).json()
    assert answer["data"] == [NAMESPACE]


def test_a_misspelt_metric_or_label_returns_nothing(prometheus):
    [rates] = targets(CONTROLLED, "Requests per second by version")
    assert run(prometheus, rates) != {}
    assert run(prometheus, rates.replace("destination_app", "destination_application")) == {}
    assert run(prometheus, rates.replace("istio_requests_total", "istio_request_total")) == {}


def test_grafana_with_an_istio_version_without_dashboards_is_refused_before_any_resource():
    with pytest.raises(RunFailed) as refused:
        run_stack("primary", {"addons": {"grafana": True}, "istioVersion": "1.29.2"})
    assert "meshburst:addons.grafana provisions Istio's dashboards, but no Istio dashboards are vendored for " in str(
        refused.value.error
    )
    assert not [r for r in refused.value.resources if not r.type.startswith("pulumi:")]
