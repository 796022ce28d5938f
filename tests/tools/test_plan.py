"""The offline plan, run as users run it: `python -m tools.plan ...` in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT
from tools.plan import PlanError, apply_overrides, diff, parse_sets, path_value


def plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.plan", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def primary_plan(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "primary"
    result = plan("primary", "--out", str(out))
    assert result.returncode == 0, result.stderr
    # The summary ends stderr, after the program's warnings (an API endpoint open to the internet, said loudly),
    # and there is no stray teardown traceback from Pulumi's mock runtime.
    assert result.stderr.splitlines()[-1].startswith(f"wrote the primary plan to {out}/ (")
    assert "Traceback" not in result.stderr, result.stderr
    assert "public endpoint is OPEN" in result.stderr
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


def test_diff_of_canary_20_to_50_is_exactly_the_route_weights(primary_plan: Path):
    result = plan("primary", "--set", "canaryWeight=50", "--diff", str(primary_plan))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "meshburst plan diff, stack primary",
        "~ kubernetes:core/v1:ConfigMap shark-route-intent",
        "    data.intent.json.share: 20 -> 50",
        "~ kubernetes:networking.istio.io/v1:VirtualService shark-route-virtual-service",
        "    spec.http[1].route[0].weight: 80 -> 50",
        "    spec.http[1].route[1].weight: 20 -> 50",
        "~ output canaryWeight: 20 -> 50",
        f"0 to add, 2 to change, 0 to remove, {len(rows(primary_plan)) - 2} unchanged",
    ]


def test_diff_shows_what_appears(primary_plan: Path):
    result = plan("primary", "--set", "burstMode=auto", "--diff", str(primary_plan))
    lines = result.stdout.splitlines()
    assert "+ kubernetes:apps/v1:Deployment burstwatch-controller" in lines
    assert "+ kubernetes:rbac.authorization.k8s.io/v1:Role burstwatch-role" in lines
    assert "+ kubernetes:core/v1:ConfigMap worker-split-status" in lines
    assert "~ output burstMode: manual -> auto" in lines
    # The controller writes the worker route now: Pulumi lets go of it without deleting it, and says so.
    assert (
        "- kubernetes:networking.istio.io/v1:VirtualService worker-split-virtual-service"
        "  (leaves the stack; the live object stays: retainOnDelete)"
    ) in lines
    assert "~ kubernetes:core/v1:ConfigMap worker-split-intent" in lines
    assert "    data.intent.json.writer: pulumi -> controller" in lines
    assert "    data.intent.json.settings.highRps: (absent) -> 15.0" in lines
    assert "+ kubernetes:networking.k8s.io/v1:NetworkPolicy burstwatch-controller-network-policy" in lines
    # The Hashr page now reads the split from the controller's /status, through its Service.
    assert "+ kubernetes:core/v1:Service burstwatch-service" in lines
    assert "~ kubernetes:apps/v1:Deployment worker-frontend" in lines
    assert "    spec.template.spec.containers[0].env[name=SPLIT_MODE].value: manual -> auto" in lines
    assert lines[-1].startswith("9 to add, 2 to change, 1 to remove")


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
        "--set KEY.PATH=VALUE",
        "addons.grafana=true",
        "apiAuthorizedNetworks[0]=10.0.0.0/8",
    ):
        assert text in result.stdout, text


def test_every_plan_folder_the_help_suggests_is_ignored_by_git():
    folders = set(re.findall(r"--out (\S+/)", plan("--help").stdout))
    assert folders >= {"plan/", "plan-burst/"}
    for folder in folders:
        ignored = subprocess.run(["git", "check-ignore", "-q", f"{folder}resources.json"], cwd=ROOT, timeout=30)
        assert ignored.returncode == 0, f"{folder} (from tools.plan --help) is not in .gitignore"


def test_set_by_path_turns_grafana_on_like_pulumi_config_set_path(primary_plan: Path):
    # The README's `pulumi config set --path addons.grafana true`, planned offline.
    result = plan("primary", "--set", "addons.grafana=true", "--diff", str(primary_plan))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "+ kubernetes:helm.sh/v3:Release observability-grafana" in lines
    assert not any(line.startswith("- ") for line in lines), "prometheus stays: the path merges into addons"


@pytest.mark.parametrize(
    ("value", "typed"),
    [
        ("true", True),
        ("false", False),
        ("42", 42),
        ("-3", -3),
        ("+7", 7),
        ("0", 0),
        ("007", "007"),
        ("1.5", "1.5"),
        ("True", "True"),
        ("ghcr.io/acme/worker:1.2", "ghcr.io/acme/worker:1.2"),
        ("9223372036854775808", "9223372036854775808"),
    ],
)
def test_path_values_are_typed_as_pulumi_types_them(value: str, typed: object):
    assert path_value(value) == typed and type(path_value(value)) is type(typed)


def test_path_overrides_merge_into_the_stack_value_in_order():
    config = {"meshburst:addons": '{"prometheus": true}', "meshburst:apiAuthorizedNetworks": "[]"}
    sets = [
        "addons.grafana=true",
        "addons.kiali=false",
        'images["shark-v1"]=ghcr.io/acme/shark:1',
        "images.worker=ghcr.io/acme/worker:1.2",
        "apiAuthorizedNetworks[0]=10.0.0.0/8",
        "apiAuthorizedNetworks[1]=192.168.0.0/16",
        "apiAuthorizedNetworks[0]=10.1.0.0/16",
        "canaryWeight=50",
        "gcp:zone=europe-west4-b",
    ]
    result = apply_overrides(config, parse_sets(sets))
    assert json.loads(result["meshburst:addons"]) == {"prometheus": True, "grafana": True, "kiali": False}
    assert json.loads(result["meshburst:images"]) == {
        "shark-v1": "ghcr.io/acme/shark:1",
        "worker": "ghcr.io/acme/worker:1.2",
    }
    assert json.loads(result["meshburst:apiAuthorizedNetworks"]) == ["10.1.0.0/16", "192.168.0.0/16"]
    assert (result["meshburst:canaryWeight"], result["gcp:zone"]) == ("50", "europe-west4-b")


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("color.red=1", "unknown key 'color'"),
        ("addons..grafana=true", "empty name at position 7"),
        ("addons[x]=true", "expected [N] or [\"name\"] at '[x]'"),
        ("addons[0]grafana=true", "expected '.', '[N]' or '[\"name\"]' at 'grafana'"),
        ("[0]=true", "a path starts with a config key name"),
        ("apiAuthorizedNetworks[2]=10.0.0.0/8", "index 2 is past the end of the list (length 0)"),
        ("canaryWeight.max=5", ".max names an object field, but the value there is 20"),
        ("burstMode.x=1", "meshburst:burstMode is 'manual', not an object or list to set a path in"),
        ("addons.grafana[0]=true", "[0] indexes a list, but the value there is false"),
    ],
)
def test_bad_paths_name_the_argument_and_the_problem(pair: str, message: str):
    config = {
        "meshburst:addons": '{"grafana": false}',
        "meshburst:apiAuthorizedNetworks": "[]",
        "meshburst:canaryWeight": "20",
        "meshburst:burstMode": "manual",
    }
    with pytest.raises(PlanError) as raised:
        apply_overrides(config, parse_sets([pair]))
    assert str(raised.value).startswith(f"--set {pair!r}: ")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["edge", "--out", "x"], "argument stack: invalid choice: 'edge'"),
        (["primary"], "nothing to do: give --out DIR"),
        (["primary", "--set", "canaryWeight", "--out", "x"], "--set 'canaryWeight': expected KEY=VALUE"),
        (["primary", "--set", "color=blue", "--out", "x"], "unknown key 'color'"),
        (["primary", "--set", "addons..grafana=true", "--out", "x"], "--set 'addons..grafana=true': 'addons..grafana'"),
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


def test_diff_lists_what_disappears_and_warns_when_the_stacks_differ():
    base = {
        "stack": "primary",
        "resources": [
            {"type": "t:a", "name": "kept", "inputs": {"x": 1}},
            {"type": "t:b", "name": "gone", "inputs": {}},
        ],
        "outputs": {},
    }
    head = {"stack": "burst", "resources": [{"type": "t:a", "name": "kept", "inputs": {"x": 1}}], "outputs": {}}
    assert diff(base, head).splitlines() == [
        "meshburst plan diff, stack burst",
        "warning: comparing stack burst with a plan of stack primary",
        "- t:b gone",
        "0 to add, 0 to change, 1 to remove, 1 unchanged",
    ]


def test_diff_refuses_a_file_that_is_not_a_plan(tmp_path: Path):
    bad = tmp_path / "resources.json"
    bad.write_text("not json")
    result = plan("primary", "--diff", str(tmp_path))
    assert result.returncode == 2
    assert f"--diff {tmp_path}: {bad} is not a plan file (" in result.stderr


def test_out_replaces_the_manifests_of_an_earlier_plan(tmp_path: Path):
    stale = tmp_path / "manifests" / "deployment-meshburst-gone.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("kind: Deployment\n")
    result = plan("primary", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not stale.exists(), "a manifest the program no longer renders stays out of the plan"
    assert (tmp_path / "manifests" / "virtualservice-meshburst-shark.yaml").exists()


def test_a_json_document_in_a_string_changes_field_by_field():
    from tools.plan import changed_fields

    old = {"data": {"intent.json": '{"writer": "controller", "settings": {"steps": [5, 100], "intervalSeconds": 60}}'}}
    new = {"data": {"intent.json": '{"writer": "controller", "settings": {"steps": [10, 100], "intervalSeconds": 60}}'}}
    assert changed_fields(old, new) == [("data.intent.json.settings.steps[0]", 5, 10)]
    # Plain strings, and strings that are not JSON objects, still change as a whole.
    assert changed_fields({"a": "{not json"}, {"a": "{still not"}) == [("a", "{not json", "{still not")]
    assert changed_fields({"a": "[1]"}, {"a": "[2]"}) == [("a", "[1]", "[2]")]
