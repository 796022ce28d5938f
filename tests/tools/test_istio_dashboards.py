"""tools/istio_dashboards.py: Istio's dashboards vendored from a release's samples/addons/grafana.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from builders.dashboards import ISTIO_DASHBOARDS, ISTIO_DASHBOARDS_DIR
from tools.istio_dashboards import extract, main, write


def grafana_yaml(dashboards: dict[str, str]) -> list[dict]:
    """The shape of Istio's generated file: Grafana's own objects, then the two dashboard ConfigMaps."""
    services = {k: v for k, v in dashboards.items() if k != "pilot-dashboard.json"}
    return [
        {"kind": "Deployment", "metadata": {"name": "grafana"}},
        {"kind": "ConfigMap", "metadata": {"name": "grafana"}, "data": {"grafana.ini": ""}},
        {
            "kind": "ConfigMap",
            "metadata": {"name": "istio-grafana-dashboards"},
            "data": {"pilot-dashboard.json": dashboards["pilot-dashboard.json"], "ztunnel-dashboard.json": "{}"},
        },
        {"kind": "ConfigMap", "metadata": {"name": "istio-services-grafana-dashboards"}, "data": services},
    ]


def vendored() -> dict[str, str]:
    return {name: (ISTIO_DASHBOARDS_DIR / "1.30" / name).read_text() for name in ISTIO_DASHBOARDS}


def test_the_four_dashboards_are_taken_byte_for_byte_and_the_rest_left(tmp_path: Path):
    source = tmp_path / "grafana.yaml"
    source.write_text(yaml.safe_dump_all([None, *grafana_yaml(vendored())]))
    folder = write("1.31.2", extract(yaml.safe_load_all(source.read_text())), root=tmp_path / "istio")
    assert folder == tmp_path / "istio" / "1.31"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*ISTIO_DASHBOARDS, "SOURCE"])
    for name, text in vendored().items():
        assert (folder / name).read_text() == text
    assert (folder / "SOURCE").read_text().startswith("istio/istio 1.31.2 samples/addons/grafana.yaml")


def test_a_missing_or_renamed_dashboard_is_refused():
    dashboards = vendored()
    without_services = grafana_yaml(dashboards)[:3]
    with pytest.raises(ValueError) as refused:
        extract(without_services)
    assert str(refused.value) == (
        "grafana.yaml has no ['istio-mesh-dashboard.json', 'istio-service-dashboard.json', "
        "'istio-workload-dashboard.json'] in the ConfigMaps ['istio-grafana-dashboards', "
        "'istio-services-grafana-dashboards']"
    )
    renamed = {**dashboards, "pilot-dashboard.json": json.dumps({"title": "Something Else"})}
    with pytest.raises(ValueError, match=r"pilot-dashboard\.json is titled 'Something Else', expected 'Istio Control"):
        extract(grafana_yaml(renamed))


def test_the_command_says_what_is_wrong_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exited:
        main(["1.31.2", str(tmp_path / "missing.yaml")])
    assert exited.value.code == 2
    assert "missing.yaml" in capsys.readouterr().err
