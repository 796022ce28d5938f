"""Gates on what the program renders: schemas, chart keys, checkov and zizmor; each shown to bite."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from policy.exceptions import WAIVERS
from tests.support.gates import (
    ROOT,
    chart_key_findings,
    checkov_results,
    controller_routes,
    istio_findings,
    kubernetes_findings,
    objects,
    releases,
    zizmor_findings,
)
from tools.mockrun import Run, run_stack

# The only checkov checks a workload may skip, with why: written once, in policy/exceptions.py, which the policy
# pack reads too. The workloads carry the same reasons as checkov.io/skip annotations.
ALLOWED_CHECKOV_SKIPS = {(w.checkov_id, w.checkov_resource, w.reason) for w in WAIVERS if w.checkov_id is not None}


@pytest.fixture(scope="module")
def everything(default_runs: tuple[Run, Run]) -> list[Run]:
    """Both stacks, and the primary with every option on (auto burst, progressive canary with every routing
    option and a fault, Grafana, Kiali)."""
    full = run_stack(
        "primary",
        {
            "burstMode": "auto",
            "canaryMode": "progressive",
            "canaryMirrorPercent": "10",
            "canaryStickyCookie": "shark-canary",
            "canaryMatch": [{"header": "canary", "exact": "canary-tester"}, {"cookie": "beta", "regex": "^(yes|1)$"}],
            "canaryFault": {"delay": {"fixed": "2s", "percent": 10}, "abort": {"status": 500, "percent": 5}},
            "addons": {"grafana": True, "kiali": True},
        },
    )
    return [*default_runs, full]


def deployment(objs: list[dict], name: str) -> dict:
    return copy.deepcopy(next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == name))


def test_rendered_kubernetes_objects_match_the_gke_schemas(everything):
    objs = objects(everything)
    kinds = {o["kind"] for o in objs}
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
        "Secret",
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    } <= kinds
    assert kubernetes_findings(objs) == []


def test_kubernetes_gate_bites_on_a_wrong_type_and_an_unknown_field(everything):
    wrong_type = deployment(objects(everything), "shark-v1")
    wrong_type["spec"]["replicas"] = "two"
    unknown_field = deployment(objects(everything), "shark-v2")
    unknown_field["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    first, second = kubernetes_findings([wrong_type, unknown_field])
    assert first.startswith("Deployment shark-v1: spec.replicas: 'two' is not of type 'integer'"), first
    assert second.startswith("Deployment shark-v2: spec.template.spec.containers.0.livenessProbe.httpGet:"), second
    assert "pathh" in second


def test_rendered_istio_objects_match_istios_schemas(everything):
    objs = [o for o in objects(everything) if o["apiVersion"].startswith("networking.istio.io/")]
    assert {o["kind"] for o in objs} == {"VirtualService", "DestinationRule", "Gateway", "EnvoyFilter"}
    assert len(objs) >= 10
    assert istio_findings(objs) == []


def test_routes_the_controllers_would_write_pass_the_istio_gate_at_every_share(everything):
    rendered = controller_routes(everything)
    shares = {(vs["metadata"]["name"], vs["spec"]["http"][-1]["route"][1]["weight"]) for vs in rendered}
    # The shark at its starting 20 %, 0, 100 and every canary step; the worker split at 0 and 100.
    assert shares == {("shark", s) for s in (0, 5, 10, 20, 25, 50, 100)} | {("worker-split", 0), ("worker-split", 100)}
    assert istio_findings(rendered) == []
    assert all(vs in objects(everything) for vs in rendered), "the gates above see them too"


def test_istio_gate_bites_on_a_non_integer_weight_and_a_bad_enum(everything):
    vs = copy.deepcopy(
        next(o for o in objects(everything) if o["kind"] == "VirtualService" and o["metadata"]["name"] == "shark")
    )
    vs["spec"]["http"][1]["route"][0]["weight"] = "eighty"
    rule = copy.deepcopy(
        next(
            o for o in objects(everything) if o["kind"] == "DestinationRule" and o["metadata"]["name"] == "worker-split"
        )
    )
    rule["spec"]["trafficPolicy"]["loadBalancer"]["simple"] = "WHEEL_OF_FORTUNE"
    findings = istio_findings([vs, rule])
    assert any(f.startswith("VirtualService shark: /spec/http/1/route/0/weight must be integer") for f in findings), (
        findings
    )
    assert any(f.startswith("DestinationRule worker-split:") for f in findings), findings


def test_istio_gate_bites_on_fields_the_crd_does_not_declare(everything):
    # The API server would prune these silently: the route would lose its weight, the rule its balancer.
    vs = copy.deepcopy(
        next(o for o in objects(everything) if o["kind"] == "VirtualService" and o["metadata"]["name"] == "shark")
    )
    route = vs["spec"]["http"][1]["route"][0]
    route["weigth"] = route.pop("weight")
    rule = copy.deepcopy(
        next(
            o for o in objects(everything) if o["kind"] == "DestinationRule" and o["metadata"]["name"] == "worker-split"
        )
    )
    rule["spec"]["trafficPolicy"]["loadBalancer"]["simpel"] = rule["spec"]["trafficPolicy"]["loadBalancer"].pop(
        "simple"
    )
    assert istio_findings([vs, rule]) == [
        'VirtualService shark: unknown field "weigth"',
        'DestinationRule worker-split: unknown field "simpel"',
    ]


def test_every_helm_release_uses_only_keys_its_chart_knows(everything):
    found = releases(everything)
    assert {r["chart"] for r in found} == {"base", "istiod", "gateway", "prometheus", "grafana", "kiali-server"}
    assert chart_key_findings(found) == []


def test_chart_key_gate_bites_on_a_misspelt_key_and_an_unlisted_chart(everything):
    istiod = copy.deepcopy(next(r for r in releases(everything) if r["chart"] == "istiod"))
    istiod["values"]["global"]["meshId"] = "mesh1"  # the chart's key is meshID
    unknown_chart = {"name": "x", "chart": "nginx", "version": "1.0.0", "values": {}}
    findings = chart_key_findings([istiod, unknown_chart])
    assert findings[0] == "istiod (istiod 1.30.3): unknown key global.meshId"
    assert findings[1].startswith("nginx 1.0.0: no key list in tests/data/chart-keys/nginx-1.0.0.json")


def test_checkov_passes_with_only_the_written_skips(everything, tmp_path: Path):
    result = checkov_results(objects(everything), tmp_path / "manifests")
    assert result["summary"]["passed"] > 500
    assert result["failed"] == []
    assert set(result["skipped"]) == ALLOWED_CHECKOV_SKIPS


def test_checkov_gate_bites_on_a_privileged_root_container(everything, tmp_path: Path):
    bad = deployment(objects(everything), "shark-v1")
    bad["metadata"]["name"] = "shark-bad"
    container = bad["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"privileged": True, "runAsUser": 0, "allowPrivilegeEscalation": True}
    del container["resources"]
    failed = {check for check, _ in checkov_results([bad], tmp_path / "bad")["failed"]}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_11", "CKV_K8S_13"} <= failed, failed


def test_workflows_pass_zizmor():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert [p.name for p in workflows] == ["preview.yml", "test.yml"]
    assert zizmor_findings(workflows) == []


def test_zizmor_gate_bites_on_an_unsafe_workflow(tmp_path: Path):
    unsafe = tmp_path / "unsafe.yml"
    unsafe.write_text(
        "name: unsafe\non:\n  pull_request_target:\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with:\n          ref: ${{ github.event.pull_request.head.sha }}\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    idents = {finding.split(" ")[0] for finding in zizmor_findings([unsafe])}
    assert {"dangerous-triggers", "template-injection", "unpinned-uses", "artipacked"} <= idents, idents
