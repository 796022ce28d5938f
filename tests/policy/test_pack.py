"""The policy pack as the Pulumi CLI runs it, over every resource the real program registers.

The CLI starts `python policy/` (policy/__main__.py); pulumi-policy's PolicyPack serves the analyzer gRPC
service on a free loopback port and prints the port. These tests do the same, then play the engine: each
resource the program registers under mocks goes to Analyze as the engine sends it (camelCase properties in
a protobuf Struct, numbers as doubles, secrets marked with Pulumi's secret signature), and the whole stack
to AnalyzeStack. Both stacks, in every mode, must draw no diagnostic at all.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policy import gcp_controls
from policy.pack import PACK_NAME, RESOURCE_RULES, STACK_RULES
from tests.support.paths import ROOT
from tools.mockrun import KNOWN_AFTER_APPLY, Resource, Run, run_both, run_stack

POLICY_DIR = ROOT / "policy"
SECRET_KEY = "4dabf18193072939515e22adb298388d"  # Pulumi's wire signature key and its secret marker
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
PREBUILT = {n: f"ghcr.io/acme/{n}:1.4.2" for n in ("shark-v1", "shark-v2", "worker", "frontend", "controller")}


@contextmanager
def pack_server() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """policy/ started as the CLI starts it; yields a client of the analyzer it serves."""
    # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [sys.executable, str(POLICY_DIR)],
            cwd=POLICY_DIR,
            stdout=subprocess.PIPE,
            stderr=errors,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert process.stdout is not None
            # A selector, not select(): select() fails outright on a descriptor numbered 1024 or more.
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                ready = selector.select(timeout=60)
            line = process.stdout.readline().decode() if ready else ""
            if not re.fullmatch(r"\d+\n", line):
                process.kill()
                process.wait(timeout=30)
                errors.seek(0)
                raise AssertionError(f"the pack did not print its port (got {line!r}): {errors.read().decode()}")
            with grpc.insecure_channel(f"127.0.0.1:{int(line)}") as channel:
                grpc.channel_ready_future(channel).result(timeout=30)
                yield analyzer_pb2_grpc.AnalyzerStub(channel)
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    with pack_server() as stub:
        yield stub


def _path(path: str) -> list[str | int]:
    """`stringData.config` / `spec.containers[0].env` -> keys and indexes."""
    return [int(index) if index else key for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)]


def wire_properties(resource: Resource) -> struct_pb2.Struct:
    """A resource's inputs as the engine sends them to an analyzer: secrets keep their signature, and values
    known only after apply (in a preview) are the engine's unknown sentinel."""
    properties: dict[str, Any] = _copy(resource.inputs)
    for path in sorted(resource.secret_paths, key=len, reverse=True):
        *parents, last = _path(path)
        node: Any = properties
        for part in parents:
            node = node[part]
        node[last] = {SECRET_KEY: SECRET_SIG, "value": node[last]}
    struct = struct_pb2.Struct()
    struct.update(properties)
    return struct


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return rpc.UNKNOWN if value == KNOWN_AFTER_APPLY else value


def analyze(stub: analyzer_pb2_grpc.AnalyzerStub, resource: Resource) -> list[analyzer_pb2.AnalyzeDiagnostic]:
    request = analyzer_pb2.AnalyzeRequest(
        type=resource.type,
        properties=wire_properties(resource),
        urn=resource.urn,
        name=resource.name,
        options=analyzer_pb2.AnalyzerResourceOptions(parent=resource.parent),
    )
    return list(stub.Analyze(request, timeout=30).diagnostics)


def analyze_stack(stub: analyzer_pb2_grpc.AnalyzerStub, run: Run) -> list[analyzer_pb2.AnalyzeDiagnostic]:
    request = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                properties=wire_properties(r),
                urn=r.urn,
                name=r.name,
                parent=r.parent,
                dependencies=r.dependencies,
            )
            for r in run.resources
        ]
    )
    return list(stub.AnalyzeStack(request, timeout=60).diagnostics)


def findings(diagnostics: list[analyzer_pb2.AnalyzeDiagnostic]) -> list[str]:
    return [f"{d.policyName} {d.urn}: {d.message}" for d in diagnostics]


@pytest.fixture(scope="module")
def every_mode(default_runs: tuple[Run, Run]) -> dict[str, Run]:
    """Both stacks by default; auto burst, progressive canary with a fault and every add-on; prebuilt images with
    every add-on off."""
    full = run_both(
        {
            "burstMode": "auto",
            "canaryMode": "progressive",
            "canaryFault": {"abort": {"status": 500, "percent": 5}},
            "addons": {"prometheus": True, "grafana": True, "kiali": True},
        },
        # Kiali on both stacks: the burst one then gives the primary's Kiali its reader.
        {"addons": {"kiali": True}},
    )
    prebuilt = run_both({"images": PREBUILT, "addons": {"prometheus": False, "grafana": False, "kiali": False}})
    runs = {"primary": default_runs[0], "burst": default_runs[1]}
    runs |= {"primary auto+addons": full[0], "burst (auto primary)": full[1]}
    runs |= {"primary prebuilt": prebuilt[0], "burst (prebuilt primary)": prebuilt[1]}
    return runs


def test_the_pack_starts_as_the_cli_starts_it_and_lists_its_policies(analyzer: analyzer_pb2_grpc.AnalyzerStub):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == PACK_NAME == "meshburst"
    expected = [r.name for r in RESOURCE_RULES] + [r.name for r in STACK_RULES]
    assert [p.name for p in info.policies] == expected
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}
    short = [p.name for p in info.policies if len(p.description.split()) < 5]
    assert short == [], "each policy says what it protects and why"
    kinds = {p.name: p.policy_type for p in info.policies}
    assert kinds["apps-network-policy-and-pdb"] == kinds["istio-route-subsets"] == analyzer_pb2.POLICY_TYPE_STACK
    assert kinds["workload-non-root"] == analyzer_pb2.POLICY_TYPE_RESOURCE
    for name in ("credentials-secret", "helm-chart-pinned", "istio-route-weights", "firewall-not-open"):
        assert name in kinds


@pytest.mark.parametrize(
    "mode",
    [
        "primary",
        "burst",
        "primary auto+addons",
        "burst (auto primary)",
        "primary prebuilt",
        "burst (prebuilt primary)",
    ],
)
def test_every_resource_the_program_registers_passes_every_policy(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, every_mode: dict[str, Run], mode: str
):
    run = every_mode[mode]
    diagnostics = [d for r in run.resources for d in analyze(analyzer, r)]
    assert findings(diagnostics) == []
    assert findings(analyze_stack(analyzer, run)) == []


def test_the_runs_cover_what_the_policies_check(every_mode: dict[str, Run]):
    """No vacuous pass: the modes register every kind of resource a policy checks."""
    types = {r.type for run in every_mode.values() for r in run.resources}
    assert {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:networking.istio.io/v1:VirtualService",
        "kubernetes:networking.istio.io/v1:DestinationRule",
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:core/v1:Secret",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        "kubernetes:policy/v1:PodDisruptionBudget",
        "pulumi:providers:kubernetes",
        "gcp:container/cluster:Cluster",
        "gcp:container/nodePool:NodePool",
        "gcp:compute/firewall:Firewall",
    } <= types
    burst = every_mode["burst"]
    assert any(r.is_secret("stringData") for r in burst.of_type("kubernetes:core/v1:Secret")), (
        "the remote secret's kubeconfig reaches the pack wrapped as a secret"
    )
    charts = {r.inputs["chart"] for run in every_mode.values() for r in run.of_type("kubernetes:helm.sh/v3:Release")}
    assert charts == {"base", "istiod", "gateway", "prometheus", "grafana", "kiali-server"}


def test_in_a_preview_values_known_only_after_apply_are_left_to_pulumi_up(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
):
    """`pulumi preview` sends unknowns (the digests of images it has not built yet): no policy fails on them,
    pulumi-policy notes each check it could not run (advisory), and `pulumi up` checks the real values."""
    run = run_stack("primary", preview=True)
    diagnostics = [(r.name, d) for r in run.resources for d in analyze(analyzer, r)]
    assert [(name, d.policyName) for name, d in diagnostics if d.enforcementLevel != analyzer_pb2.ADVISORY] == []
    assert all("during preview" in d.message for _, d in diagnostics), findings([d for _, d in diagnostics])
    unjudged = {name for name, d in diagnostics if d.policyName == "workload-image-pinned"}
    assert unjudged == {"shark-shark-v1", "shark-shark-v2", "worker-worker", "worker-frontend"}
    assert findings(analyze_stack(analyzer, run)) == []


def _root_deployment(primary: Run) -> Resource:
    shark = primary.one("kubernetes:apps/v1:Deployment", "shark-shark-v1")
    inputs = _copy(shark.inputs)
    inputs["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    return Resource(**{**shark.__dict__, "inputs": inputs})


def test_the_served_pack_reports_a_root_container_as_mandatory(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, primary_run: Run
):
    bad = _root_deployment(primary_run)
    diagnostics = analyze(analyzer, bad)
    assert {(d.policyPackName, d.enforcementLevel) for d in diagnostics} == {("meshburst", analyzer_pb2.MANDATORY)}
    descriptions = {r.name: r.description for r in RESOURCE_RULES}
    assert [(d.policyName, d.message) for d in diagnostics] == [
        (
            "workload-non-root",
            f"{descriptions['workload-non-root']}\nDeployment meshburst/shark-v1: container 'shark-v1' runs as root: "
            "securityContext.runAsUser is 0",
        ),
        (
            "workload-high-uid",
            f"{descriptions['workload-high-uid']}\nDeployment meshburst/shark-v1: container 'shark-v1' runs as UID 0: "
            "use 10000 or above, clear of the node's own users",
        ),
    ]


def test_the_served_pack_reports_a_missing_subset_and_an_unfenced_deployment(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, primary_run: Run
):
    resources = []
    for r in primary_run.resources:
        if r.type == "kubernetes:networking.istio.io/v1:VirtualService" and r.inputs["metadata"]["name"] == "shark":
            inputs = _copy(r.inputs)
            inputs["spec"]["http"][1]["route"][1]["destination"]["subset"] = "v3"
            r = Resource(**{**r.__dict__, "inputs": inputs})
        if r.name == "worker-redis-pdb":
            continue
        resources.append(r)
    broken = Run(primary_run.stack, resources, primary_run.outputs)
    found = sorted(
        (d.policyName, d.urn.rsplit("::", 1)[1], d.message.split("\n", 1)[1]) for d in analyze_stack(analyzer, broken)
    )
    assert found == [
        (
            "apps-network-policy-and-pdb",
            "worker-redis",
            "Deployment meshburst/redis: no PodDisruptionBudget selects its pods (labels {'app': 'redis'})",
        ),
        (
            "istio-route-subsets",
            "shark-route-virtual-service",
            "VirtualService meshburst/shark: spec.http[1].route[1] sends to subset 'v3' of "
            "shark.meshburst.svc.cluster.local, which no DestinationRule for that host defines (it defines "
            "['v1', 'v2'])",
        ),
    ]


def test_the_packs_requirements_are_what_the_tests_run_with():
    pins = dict(
        line.split("==")
        for line in (POLICY_DIR / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert pins == {"pulumi": version("pulumi"), "pulumi-policy": version("pulumi-policy")}
    program = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    assert pins["pulumi"] == program["pulumi"], "the pack and the program use one Pulumi SDK"
    manifest = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}


def test_the_pull_request_preview_runs_the_pack():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    steps = workflow["jobs"]["pulumi-preview"]["steps"]
    [preview] = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["policyPacks"] == "policy/"
    install = next(i for i, s in enumerate(steps) if "policy/requirements.txt" in s.get("run", ""))
    assert "python -m venv policy/venv" in steps[install]["run"]
    assert install < steps.index(preview), "the pack's requirements are installed before the preview runs"


def test_the_readme_lists_every_policy_and_how_to_run_and_waive():
    text = (ROOT / "README.md").read_text()
    start = text.index("## Policy pack\n")
    section = text[start : text.index("\n## ", start + 1)]
    gcp = {c.id for c in gcp_controls.CONTROLS}
    ours = [r.name for r in (*RESOURCE_RULES, *STACK_RULES) if r.name not in gcp]
    assert [name for name in ours if f"`{name}`" not in section] == []
    named = set(re.findall(r"`([a-z]+(?:-[a-z0-9]+)+)`", section)) - {"pulumi-policy"}
    assert named <= {r.name for r in (*RESOURCE_RULES, *STACK_RULES)}, "every policy the README names exists"
    assert "pulumi preview --policy-pack policy/ -s primary" in section
    assert "policyPacks: policy/" in section and "policy/exceptions.py" in section


def test_the_pack_imports_nothing_its_own_requirements_do_not_provide():
    """The CLI runs the pack in policy/venv (pulumi-policy and the Pulumi SDK only), not in the program's venv."""
    program_only = ["components", "stacks", "tools", "tests", "pulumi_kubernetes", "pulumi_gcp"]
    program_only += ["pulumi_random", "pulumi_docker_build", "kubernetes_validate", "httpx"]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, policy.pack; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(done.stdout.split())
    assert {"pulumi_policy", "policy"} <= loaded
    assert loaded.isdisjoint(program_only), sorted(loaded & set(program_only))
    # From the program, only the pure route renderer and its Pulumi-free wrapper: the standard library's alone.
    shared = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, policy.pack; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('apps', 'builders', 'config'))))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert shared.stdout.split() == ["apps", "apps.lib", "apps.lib.meshroute", "builders", "builders.routes"]
