"""The offline plan, run as users run it: `python -m tools.plan ...` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.plan", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def primary_plan(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "primary"
    result = plan("primary", "--out", str(out))
    assert result.returncode == 0, result.stderr
    # Exactly one line: no stray teardown traceback from Pulumi's mock runtime.
    assert result.stderr.startswith(f"wrote the primary plan to {out}/ (")
    assert result.stderr.count("\n") == 1, result.stderr
    return out


def rows(out: Path) -> dict[str, list[str]]:
    lines = (out / "resources.txt").read_text().splitlines()
    assert lines[0].split() == ["TYPE", "NAME", "PARENT", "INPUTS"]
    return {" ".join(line.split()[:2]): line.split(None, 3) for line in lines[1:]}


def test_table_lists_every_resource_with_parent_and_key_inputs(primary_plan: Path):
    table = rows(primary_plan)
    data = json.loads((primary_plan / "resources.json").read_text())
    assert len(table) == len(data["resources"])
    pool = table["gcp:container/nodePool:NodePool primary-pool"]
    assert pool[2] == "primary"
    assert pool[3].startswith("nodeCount=4 nodeConfig.machineType=n1-standard-2 nodeConfig.diskSizeGb=100")
    assert table["kubernetes:helm.sh/v3:Release istio-istiod"][3] == (
        "istiod 1.30.3 from https://istio-release.storage.googleapis.com/charts"
    )
    assert table["kubernetes:apps/v1:Deployment shark-shark-v2"][2:] == ["shark", "meshburst/shark-v2"]
    assert table["pulumi:providers:kubernetes primary-k8s"][3] == "kubeconfig=[secret]"


def test_values_only_known_after_apply_are_marked(primary_plan: Path):
    deployment = yaml.safe_load((primary_plan / "manifests" / "deployment-meshburst-shark-v1.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "(known after apply)"
    outputs = json.loads((primary_plan / "resources.json").read_text())["outputs"]
    assert outputs["ingressIp"] == "(known after apply)"
    assert outputs["kubeconfig"] == "[secret]"
    assert outputs["canaryWeight"] == 20


def test_every_kubernetes_and_istio_object_is_written_as_yaml(primary_plan: Path):
    files = sorted(p.name for p in (primary_plan / "manifests").glob("*.yaml"))
    assert "virtualservice-meshburst-shark.yaml" in files
    assert "destinationrule-meshburst-worker-split.yaml" in files
    assert "gateway-istio-system-istiod-gateway.yaml" in files
    vs = yaml.safe_load((primary_plan / "manifests" / "virtualservice-meshburst-shark.yaml").read_text())
    assert vs["apiVersion"] == "networking.istio.io/v1" and vs["kind"] == "VirtualService"
    assert [r["weight"] for r in vs["spec"]["http"][1]["route"]] == [80, 20]
    helm = yaml.safe_load((primary_plan / "helm" / "istiod.yaml").read_text())
    assert (helm["chart"], helm["version"], helm["values"]["global"]["meshID"]) == ("istiod", "1.30.3", "mesh1")


def test_diff_of_canary_20_to_50_is_exactly_the_virtual_service_weights(primary_plan: Path):
    result = plan("primary", "--set", "canaryWeight=50", "--diff", str(primary_plan))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "meshburst plan diff, stack primary",
        "~ kubernetes:networking.istio.io/v1:VirtualService shark-route-virtual-service",
        "    spec.http[1].route[0].weight: 80 -> 50",
        "    spec.http[1].route[1].weight: 20 -> 50",
        "~ output canaryWeight: 20 -> 50",
        f"0 to add, 1 to change, 0 to remove, {len(rows(primary_plan)) - 1} unchanged",
    ]


def test_diff_shows_what_appears(primary_plan: Path):
    result = plan("primary", "--set", "burstMode=auto", "--diff", str(primary_plan))
    lines = result.stdout.splitlines()
    assert "+ kubernetes:apps/v1:Deployment burstwatch-controller" in lines
    assert "+ kubernetes:rbac.authorization.k8s.io/v1:Role burstwatch-role" in lines
    assert "~ output burstMode: manual -> auto" in lines
    # The controller owns the worker weights now: Pulumi is told to ignore them.
    assert "~ kubernetes:networking.istio.io/v1:VirtualService worker-split-virtual-service" in lines
    assert '    options.ignoreChanges: [] -> ["spec.http[0].route[0].weight", "spec.http[0].route[1].weight"]' in lines
    assert '    metadata.annotations: {"pulumi.com/patchForce": "true"} -> (absent)' in lines
    assert "+ kubernetes:networking.k8s.io/v1:NetworkPolicy burstwatch-controller-network-policy" in lines
    assert lines[-1].startswith("7 to add, 1 to change, 0 to remove")


def test_burst_plan_reads_the_primary_outputs_by_name(tmp_path: Path):
    result = plan("burst", "--set", "maxNodes=8", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    istiod = yaml.safe_load((tmp_path / "helm" / "istiod.yaml").read_text())
    assert istiod["values"]["global"]["remotePilotAddress"] == "<primary output istiodAddress>"
    pool = rows(tmp_path)["gcp:container/nodePool:NodePool burst-pool"]
    assert pool[3].startswith('autoscaling={"maxNodeCount": 8, "minNodeCount": 1}')
    secret = yaml.safe_load((tmp_path / "manifests" / "secret-istio-system-istio-remote-secret-burst.yaml").read_text())
    assert secret["stringData"] == "[secret]", "tokens never reach plan files"


def test_help_explains_the_command():
    result = plan("--help")
    assert result.returncode == 0
    for text in (
        "usage: python -m tools.plan",
        "{primary,burst}",
        "--set KEY=VALUE",
        "--out OUT",
        "--diff OTHER_PLAN",
        "(known after apply)",
        "python -m tools.plan primary --set canaryWeight=50",
    ):
        assert text in result.stdout, text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["edge", "--out", "x"], "argument stack: invalid choice: 'edge'"),
        (["primary"], "nothing to do: give --out DIR"),
        (["primary", "--set", "canaryWeight", "--out", "x"], "--set 'canaryWeight': expected KEY=VALUE"),
        (["primary", "--set", "color=blue", "--out", "x"], "unknown key 'color'"),
        (["primary", "--diff", "/nonexistent/plan"], "--diff /nonexistent/plan: no plan there"),
    ],
)
def test_bad_arguments_get_clear_errors(args, message):
    result = plan(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_value_is_reported_like_pulumi_would(tmp_path: Path):
    result = plan("primary", "--set", "canaryWeight=150", "--out", str(tmp_path / "p"))
    assert result.returncode == 2
    assert "meshburst:canaryWeight = '150' is not allowed: expected a whole number from 0 to 100" in result.stderr
    assert not (tmp_path / "p").exists()
