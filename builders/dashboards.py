"""Grafana dashboards the stack provisions: Istio's own for the pinned Istio version, and meshburst's, built as code.

Istio's dashboards (mesh, service, workload, control plane) are vendored from the Istio release's
samples/addons/grafana.yaml into dashboards/istio/<minor>/ (tools/istio_dashboards.py does it), because Istio
changes them between minor versions and Grafana must not download anything at start. The meshburst dashboard is
built with grafana-foundation-sdk from the settings that define it (thresholds, routes, who sets the weights).

Both reach Grafana as the chart reads them: `dashboardProviders` tells Grafana to load every JSON file under
/var/lib/grafana/dashboards/<provider>, and `dashboardsConfigMaps` mounts one ConfigMap at each of those folders
(the chart's templates/_pod.tpl); the program creates the ConfigMaps (dashboard_config_maps).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from apps.contract import APPS_NAMESPACE
from apps.worker.contract import FRONTEND_APP, RATE_WINDOW, WORKER_ROUTE, WORKER_SERVICE
from builders.istio import ISTIO_NAMESPACE

ISTIO_DASHBOARDS_DIR = Path(__file__).resolve().parent.parent / "dashboards" / "istio"
ISTIO_DASHBOARDS = {
    "istio-mesh-dashboard.json": "Istio Mesh Dashboard",
    "istio-service-dashboard.json": "Istio Service Dashboard",
    "istio-workload-dashboard.json": "Istio Workload Dashboard",
    "pilot-dashboard.json": "Istio Control Plane Dashboard",
}
"""File in the Istio release's istio-services/istio ConfigMaps -> the dashboard's title."""
DASHBOARDS_PATH = "/var/lib/grafana/dashboards"
"""Where the chart mounts `dashboardsConfigMaps[provider]`: DASHBOARDS_PATH/<provider>."""
DATASOURCE_UID = "prometheus"
"""The provisioned Prometheus data source's uid, fixed so that dashboards can name it."""
MESHBURST_UID = "meshburst"
MESHBURST_FILE = "meshburst-dashboard.json"


@dataclass(frozen=True)
class Provider:
    name: str
    """Provider name, also its folder under DASHBOARDS_PATH and the chart's volume `dashboards-<name>`."""
    folder: str
    """Grafana folder the dashboards appear in."""
    config_map: str
    """ConfigMap (in istio-system) holding the provider's JSON files."""


PROVIDERS = (
    Provider("istio", "Istio", "istio-grafana-dashboards"),
    Provider("meshburst", "meshburst", "meshburst-grafana-dashboards"),
)


def istio_minor(version: str) -> str:
    """1.30.3 -> 1.30: Istio's dashboards change between minor versions, not between patches."""
    parts = version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"istioVersion {version!r} is not a version such as 1.30.3")
    return ".".join(parts[:2])


def vendored_istio_minors() -> list[str]:
    return sorted(p.name for p in ISTIO_DASHBOARDS_DIR.iterdir() if p.is_dir())


def istio_dashboards_problem(version: str) -> str | None:
    """Why Grafana cannot get Istio's dashboards for `version` (with how to vendor them), or None."""
    try:
        folder = ISTIO_DASHBOARDS_DIR / istio_minor(version)
    except ValueError as exc:
        return str(exc)
    if all((folder / name).is_file() for name in ISTIO_DASHBOARDS):
        return None
    return (
        f"no Istio dashboards are vendored for istioVersion {version} (have: {vendored_istio_minors()}): "
        f"vendor them with `curl -sL https://raw.githubusercontent.com/istio/istio/{version}/samples/addons/"
        f"grafana.yaml | .venv/bin/python -m tools.istio_dashboards {version} /dev/stdin`"
    )


def istio_dashboards(version: str) -> dict[str, str]:
    """Istio's dashboards for `version` (file name -> JSON text), or ValueError naming how to vendor them."""
    problem = istio_dashboards_problem(version)
    if problem is not None:
        raise ValueError(problem)
    folder = ISTIO_DASHBOARDS_DIR / istio_minor(version)
    return {name: (folder / name).read_text() for name in ISTIO_DASHBOARDS}


# The meshburst dashboard


@dataclass(frozen=True)
class DashboardSettings:
    """What the meshburst dashboard shows: the routes, their thresholds and who sets their weights."""

    namespace: str = APPS_NAMESPACE
    """The apps' namespace: the default of the dashboard's `namespace` variable."""
    canary_route: str = "shark"
    """The shark VirtualService (`route` label of the controller's metrics)."""
    canary_app: str = "shark"
    """`app` label of the shark pods (destination_app in Istio's metrics)."""
    versions: tuple[str, str] = ("v1", "v2")
    canary_weight: int | None = 20
    """manual mode: the configured v2 weight (canaryWeight); None: the canary controller sets it (progressive)."""
    canary_steps: tuple[int, ...] = (5, 10, 25, 50, 100)
    max_error_percent: float = 1.0
    max_p99_ms: float = 500.0
    burst_route: str = WORKER_ROUTE
    clusters: tuple[str, str] = ("primary", "burst")
    """The worker route's subsets, named after the Istio clusters (destination_cluster in Istio's metrics)."""
    burst_weight: int | None = 0
    """manual mode: the configured burst share (burstWeight); None: the burst controller sets it (auto)."""
    high_rps: float = 15.0
    low_rps: float = 10.0
    rate_window: str = RATE_WINDOW
    """The window the burst controller measures the offered rate over."""

    @property
    def canary_controlled(self) -> bool:
        return self.canary_weight is None

    @property
    def burst_controlled(self) -> bool:
        return self.burst_weight is None


NS = "$namespace"
RATE = "$__rate_interval"
# Step of the "last verdict" look-back: the in-cluster scrape interval (builders/observability.SCRAPE_INTERVAL).
VERDICT_STEP = "5s"
FIVE_XX = 'response_code=~"5.."'


def _labels(**labels: str) -> str:
    return ",".join(f'{key}="{value}"' for key, value in labels.items())


def _canary_selector(s: DashboardSettings, *matchers: str) -> str:
    """The v1/v2 sidecars' own reports, as the canary controller reads them (contract: reporter=destination)."""
    labels = _labels(reporter="destination", destination_workload_namespace=NS, destination_app=s.canary_app)
    return "{" + ",".join([labels, *matchers]) + "}"


def _burst_selector(**extra: str) -> str:
    """Frontend -> worker-service, as the frontend's sidecar reports it: every request, whichever cluster serves it."""
    return (
        "{"
        + _labels(
            reporter="source",
            source_workload=FRONTEND_APP,
            source_workload_namespace=NS,
            destination_service=f"{WORKER_SERVICE}.{NS}.svc.cluster.local",
            **extra,
        )
        + "}"
    )


def _controller(metric: str, route: str, **extra: str) -> str:
    return f"{metric}{{{_labels(namespace=NS, route=route, **extra)}}}"


def _rate(selector: str) -> str:
    return f"rate({selector}[{RATE}])"


def _increase(selector: str) -> str:
    return f"increase({selector}[{RATE}])"


def _query(expr: str, legend: str, ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
    return query.instant() if instant else query.range()


def _constant(value: float, label: str, label_value: str) -> str:
    """A configured value as a series with one label, so it shares a legend with the controller's series."""
    return f'label_replace(vector({value:g}), "{label}", "{label_value}", "", "")'


def _thresholds(steps: list[tuple[float | None, str]]) -> dashboard_builder.ThresholdsConfig:
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def _series(
    title: str, description: str, unit: str, targets: list[prometheus.Dataquery], width: int = 12
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID))
        .span(width)
        .height(8)
        .min(0)
        .line_width(2)
        .fill_opacity(10)
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def _with_threshold_lines(panel: timeseries.Panel, steps: list[tuple[float | None, str]]) -> timeseries.Panel:
    """Thresholds drawn as dashed lines across the graph (the limits a verdict or a switch compares with)."""
    dashed = common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
    return panel.thresholds(_thresholds(steps)).thresholds_style(dashed)


def _stat(
    title: str, description: str, unit: str, targets: list[prometheus.Dataquery], width: int = 6, names: bool = False
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID))
        .span(width)
        .height(4)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .text_mode(common.BigValueTextMode.NAME if names else common.BigValueTextMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def _canary_panels(s: DashboardSettings) -> list[Any]:
    stable, candidate = s.versions
    all_requests = f"istio_requests_total{_canary_selector(s)}"
    errors = f"istio_requests_total{_canary_selector(s, FIVE_XX)}"
    by_version = "sum by (destination_version)"
    panels: list[Any] = [
        _series(
            "Requests per second by version",
            f"Requests the {s.canary_app} pods answered, per version (their sidecars' reports, reporter=destination).",
            "reqps",
            [_query(f"{by_version} (rate({all_requests}[{RATE}]))", "{{destination_version}}")],
        ),
        _with_threshold_lines(
            _series(
                "5xx share by version",
                f"Percent of each version's answers that were 5xx. Dashed line: canaryMaxErrorPercent "
                f"({s.max_error_percent:g} %), the most a canary step may show and pass.",
                "percent",
                [
                    _query(
                        # A version with no 5xx has no error series: `or 0 * ...` shows it at 0, not as no data.
                        f"100 * ({by_version} ({_rate(errors)}) or 0 * {by_version} ({_rate(all_requests)}))"
                        f" / {by_version} ({_rate(all_requests)})",
                        "{{destination_version}}",
                    )
                ],
            ),
            [(None, "green"), (s.max_error_percent, "red")],
        ),
        _with_threshold_lines(
            _series(
                "p99 latency by version",
                "99th percentile of each version's request duration. "
                f"Dashed line: canaryMaxP99Ms ({s.max_p99_ms:g} ms).",
                "ms",
                [
                    _query(
                        "histogram_quantile(0.99, sum by (le, destination_version) "
                        f"(rate(istio_request_duration_milliseconds_bucket{_canary_selector(s)}[{RATE}])))",
                        "{{destination_version}}",
                    )
                ],
            ),
            [(None, "green"), (s.max_p99_ms, "red")],
        ),
    ]
    candidate_only = _canary_selector(s, _labels(destination_version=candidate))
    observed = _query(
        f"100 * sum(rate(istio_requests_total{candidate_only}[{RATE}])) / sum(rate({all_requests}[{RATE}]))",
        f"{candidate} share observed",
        "B",
    )
    if s.canary_controlled:
        weight = _query(
            f"max by (subset) ({_controller('meshburst_controller_weight', s.canary_route, subset=candidate)})",
            "{{subset}} weight (controller)",
        )
        where = "the weight the canary controller wrote (progressive mode)"
    else:
        weight = _query(_constant(s.canary_weight or 0, "subset", candidate), "{{subset}} weight (canaryWeight)")
        where = f"canaryWeight = {s.canary_weight} (manual mode)"
    panels.append(
        _series(
            f"{candidate} weight",
            f"Percent of {s.canary_app} traffic routed to {candidate}: {where}; and the share {candidate} actually "
            f"answered ({candidate} requests / all, including canary-header requests). {stable} gets the rest.",
            "percent",
            [weight, observed],
        ).max(100)
    )
    if s.canary_controlled:
        verdicts = _controller("meshburst_canary_verdicts_total", s.canary_route)
        panels += [
            _stat(
                "Rollout phase",
                "Phase of the progressive rollout (Idle, Waiting, Progressing, Promoted, RolledBack, Halted).",
                "none",
                [_query(f"{_controller('meshburst_canary_phase', s.canary_route)} == 1", "{{phase}}", instant=True)],
                names=True,
            ),
            _stat(
                "Step",
                f"Current step, 1-based, of {len(s.canary_steps)} (v2 weights {list(s.canary_steps)}); 0: none.",
                "none",
                [_query(_controller("meshburst_canary_step", s.canary_route), "step", instant=True)],
            ),
            _stat(
                "Last verdict",
                "Result of the analysis verdict counted last (pass, fail or wait: too few requests to judge).",
                "none",
                [
                    _query(
                        f"topk(1, max_over_time((timestamp({verdicts} > {verdicts} offset {VERDICT_STEP}))"
                        f"[1h:{VERDICT_STEP}]))",
                        "{{result}}",
                        instant=True,
                    )
                ],
                names=True,
            ),
            _stat(
                "Last verdict's figures",
                f"What the last verdict measured of {candidate} over its window: 5xx share, p99 latency, requests.",
                "none",
                [
                    _query(_controller("meshburst_canary_last_error_percent", s.canary_route), "5xx %", "A", True),
                    _query(_controller("meshburst_canary_last_p99_ms", s.canary_route), "p99 ms", "B", True),
                    _query(_controller("meshburst_canary_last_requests", s.canary_route), "requests", "C", True),
                ],
            )
            .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
            .override_by_query("A", [DynamicConfigValue(id_val="unit", value="percent")])
            .override_by_query("B", [DynamicConfigValue(id_val="unit", value="ms")])
            .override_by_query("C", [DynamicConfigValue(id_val="unit", value="short")]),
            _series(
                "Verdicts",
                "Analysis verdicts per interval, by result.",
                "short",
                [_query(f"sum by (result) (increase({verdicts}[{RATE}]))", "{{result}}")],
                width=24,
            ).draw_style(common.GraphDrawStyle.BARS),
        ]
    return panels


def _burst_panels(s: DashboardSettings) -> list[Any]:
    primary, burst = s.clusters
    offered = _query(
        f"sum(rate(istio_requests_total{_burst_selector()}[{s.rate_window}]))", f"offered ({s.rate_window} window)"
    )
    rate_targets = [offered]
    if s.burst_controlled:
        rate_targets += [
            _query(f"max({_controller('meshburst_burst_rate_rps', s.burst_route)})", "controller's reading", "B"),
            _query(
                f"max by (bound) ({_controller('meshburst_burst_threshold_rps', s.burst_route)})",
                "{{bound}} threshold (controller)",
                "C",
            ),
        ]
    if s.burst_controlled:
        split = _query(
            f"max by (subset) ({_controller('meshburst_controller_weight', s.burst_route)})", "{{subset}} (controller)"
        )
        split_targets = [split]
        where = "as the burst controller wrote them (auto mode)"
    else:
        weight = s.burst_weight or 0
        split_targets = [
            _query(_constant(100 - weight, "subset", primary), "{{subset}} (burstWeight)", "A"),
            _query(_constant(weight, "subset", burst), "{{subset}} (burstWeight)", "B"),
        ]
        where = f"burstWeight = {weight} (manual mode)"
    panels: list[Any] = [
        _with_threshold_lines(
            _series(
                "Offered request rate vs thresholds",
                f"Frontend -> {WORKER_SERVICE} requests per second over {s.rate_window}, as the burst controller "
                f"measures it. Dashed lines: burstLowRps ({s.low_rps:g}) and burstHighRps ({s.high_rps:g}); above "
                "the high one the work goes to the burst cluster, below the low one it comes back.",
                "reqps",
                rate_targets,
            ),
            [(None, "green"), (s.low_rps, "yellow"), (s.high_rps, "red")],
        ),
        _series(
            "Split between the clusters",
            f"Percent of worker traffic routed to each cluster: {where}.",
            "percent",
            split_targets,
        ).max(100),
        _series(
            "Requests served per cluster",
            "Worker requests per second by the cluster that answered (destination_cluster).",
            "reqps",
            [
                _query(
                    f"sum by (destination_cluster) (rate(istio_requests_total{_burst_selector()}[{RATE}]))",
                    "{{destination_cluster}}",
                )
            ],
        ),
    ]
    if s.burst_controlled:
        panels += [
            _stat(
                "Burst mode",
                "The split's mode as the controller holds it: natural (primary) or burst.",
                "none",
                [_query(f"{_controller('meshburst_burst_mode', s.burst_route)} == 1", "{{mode}}", instant=True)],
                names=True,
            ),
            _series(
                "Controller decisions",
                "Switches the burst controller decided and wrote, by the mode switched to.",
                "short",
                [
                    _query(
                        f"sum by (to) ({_increase(_controller('meshburst_burst_switches_total', s.burst_route))})",
                        "to {{to}}",
                    )
                ],
                width=9,
            ).draw_style(common.GraphDrawStyle.BARS),
            _series(
                "Controller faults",
                "Faults by kind (Prometheus, Kubernetes, intent, webhook); none of them moves traffic.",
                "short",
                [
                    _query(
                        f"sum by (kind) ({_increase(_controller('meshburst_controller_faults_total', s.burst_route))})",
                        "{{kind}}",
                    )
                ],
                width=9,
            ).draw_style(common.GraphDrawStyle.BARS),
        ]
    return panels


def meshburst_dashboard(s: DashboardSettings) -> dashboard_builder.Dashboard:
    """The canary and burst dashboard, as an SDK builder (build() gives the typed Dashboard)."""
    namespace = (
        dashboard_builder.QueryVariable("namespace")
        .label("namespace")
        .description("Namespace of the apps and their controllers.")
        .datasource(DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID))
        .query("label_values(istio_requests_total, destination_workload_namespace)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .current(VariableOption(selected=True, text=s.namespace, value=s.namespace))
    )
    board = (
        dashboard_builder.Dashboard("meshburst: canary and cloud burst")
        .uid(MESHBURST_UID)
        .tags(["meshburst", "istio"])
        .description("The shark canary and the worker burst split, as Istio and the meshburst controllers see them.")
        .readonly()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-30m", "now")
        .refresh("10s")
        .with_variable(namespace)
    )
    rows = {
        f"Canary: {s.canary_app} {s.versions[0]} -> {s.versions[1]}": _canary_panels(s),
        "Burst: worker split between the clusters": _burst_panels(s),
    }
    ids = iter(range(1, 100))
    for title, panels in rows.items():
        board = board.with_row(dashboard_builder.Row(title).id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)))
    return board


def dashboard_json(s: DashboardSettings) -> str:
    return json.dumps(meshburst_dashboard(s).build(), cls=JSONEncoder, sort_keys=True, separators=(",", ":"))


# Provisioning: what the Grafana chart reads


def dashboard_providers() -> dict[str, Any]:
    """The chart's `dashboardProviders`: one file provider per ConfigMap, reading the folder it is mounted at."""
    return {
        "dashboardproviders.yaml": {
            "apiVersion": 1,
            "providers": [
                {
                    "name": p.name,
                    "orgId": 1,
                    "folder": p.folder,
                    "type": "file",
                    # Provisioned from the stack: an edit in the UI could not be saved back, so none is allowed.
                    "disableDeletion": True,
                    "allowUiUpdates": False,
                    "options": {"path": f"{DASHBOARDS_PATH}/{p.name}"},
                }
                for p in PROVIDERS
            ],
        }
    }


def dashboards_config_maps() -> dict[str, str]:
    """The chart's `dashboardsConfigMaps`: provider -> ConfigMap mounted at DASHBOARDS_PATH/<provider>."""
    return {p.name: p.config_map for p in PROVIDERS}


def dashboard_config_maps(istio_version: str, settings: DashboardSettings) -> list[dict[str, Any]]:
    """The ConfigMaps the providers read: Istio's dashboards, and meshburst's."""
    contents: Mapping[str, Mapping[str, str]] = {
        "istio": istio_dashboards(istio_version),
        "meshburst": {MESHBURST_FILE: dashboard_json(settings)},
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": p.config_map,
                "namespace": ISTIO_NAMESPACE,
                "labels": {"app.kubernetes.io/part-of": "meshburst", "grafana-dashboard-provider": p.name},
            },
            "data": dict(contents[p.name]),
        }
        for p in PROVIDERS
    ]
