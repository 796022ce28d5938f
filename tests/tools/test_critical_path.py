"""tools/critical_path.py: the longest chain of waits, on small graphs by hand and on the real program."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Sequence

import pytest

from tests.support.paths import ROOT
from tools.critical_path import (
    FIGURES,
    IRREDUCIBLE_CHAIN,
    Node,
    build_graph,
    chain_steps,
    critical_path,
    deploy_path,
    engine_waits,
    figure_of,
    helm_figure,
    minutes,
    schedule,
)
from tools.mockrun import Resource, Run

TARGET = 1.10


def node(name: str, seconds: float, *waits: str, ready_with: Sequence[str] = ()) -> Node:
    return Node(
        urn=name, name=name, type="t", figure="f", seconds=seconds, waits_for=waits, ready_with=tuple(ready_with)
    )


def graph(*nodes: Node) -> dict[str, Node]:
    return {n.urn: n for n in nodes}


def names(path) -> list[str]:
    return [step.node.name for step in path]


def recorded(type_: str, name: str = "r", **fields) -> Resource:
    defaults = dict(
        urn=f"urn:{name}",
        inputs={},
        secret_paths=set(),
        parent="",
        provider="",
        dependencies=[],
        ignore_changes=[],
        custom=True,
    )
    return Resource(type=type_, name=name, **(defaults | fields))


# Small graphs by hand.


def test_a_chain_takes_the_sum_of_its_durations():
    g = graph(node("a", 10), node("b", 20, "a"), node("c", 5, "b"))
    steps = schedule(g)
    assert [(steps[u].start, steps[u].finish) for u in "abc"] == [(0, 10), (10, 30), (30, 35)]
    assert names(critical_path(g)) == ["a", "b", "c"]


def test_the_longer_branch_is_the_path_and_the_join_starts_when_it_ends():
    g = graph(node("a", 10), node("short", 5, "a"), node("long", 30, "a"), node("join", 1, "short", "long"))
    assert schedule(g)["join"].start == 40
    assert names(critical_path(g)) == ["a", "long", "join"]


def test_a_tie_between_waits_goes_to_the_one_registered_first():
    first = graph(node("x", 10), node("y", 10), node("end", 1, "y", "x"))
    assert names(critical_path(first)) == ["x", "end"]
    swapped = graph(node("y", 10), node("x", 10), node("end", 1, "y", "x"))
    assert names(critical_path(swapped)) == ["y", "end"]


def test_a_tie_between_last_finishers_goes_to_the_one_registered_first():
    g = graph(node("root", 5), node("p", 10, "root"), node("q", 10, "root"))
    assert names(critical_path(g)) == ["root", "p"]


def test_a_zero_second_component_passes_its_wait_on():
    g = graph(node("cluster", 420), node("component", 0, "cluster"), node("child", 60, "component"))
    assert names(critical_path(g)) == ["cluster", "component", "child"]
    assert schedule(g)["child"].finish == 480


def test_a_service_is_done_when_the_pods_it_selects_are_ready():
    # Registered first (its Deployment waits for an image): the tie at 160 goes to it.
    g = graph(
        node("service", 1, ready_with=["deployment"]),
        node("image", 100),
        node("deployment", 60, "image"),
    )
    steps = schedule(g)
    assert (steps["service"].start, steps["service"].finish) == (0, 160)
    assert names(critical_path(g)) == ["image", "deployment", "service"]


def test_offset_moves_every_step():
    g = graph(node("a", 10), node("b", 20, "a"))
    assert [(s.start, s.finish) for s in critical_path(g, offset=100)] == [(100, 110), (110, 130)]


def test_a_cycle_is_refused_naming_its_resources():
    with pytest.raises(ValueError, match=r"cycle through: \['a', 'b'\]"):
        schedule(graph(node("a", 1, "b"), node("b", 1, "a"), node("c", 1)))


def test_a_wait_on_an_unknown_resource_is_refused():
    with pytest.raises(ValueError, match=r"a waits for resources not in the graph: \['ghost'\]"):
        schedule(graph(node("a", 1, "ghost")))


def test_minutes_are_minutes_and_seconds():
    assert [minutes(s) for s in (0, 59.6, 61, 1416)] == ["0:00", "1:00", "1:01", "23:36"]


# Figures, decided by type and inputs.


def test_helm_figure_reads_what_the_release_renders():
    assert helm_figure({"chart": "gateway", "values": {"service": {"type": "LoadBalancer"}}}) == "helm-lb"
    assert helm_figure({"chart": "base", "values": {}}) == "helm-no-pods"
    assert helm_figure({"chart": "istiod", "values": {"profile": "remote"}}) == "helm-no-pods"
    assert helm_figure({"chart": "istiod", "values": {"global": {}}}) == "helm-pods"
    assert helm_figure({"chart": "prometheus", "values": {"server": {"service": {"servicePort": 9090}}}}) == (
        "helm-pods"
    )


def test_figures_by_type_and_inputs():
    token = recorded("kubernetes:core/v1:Secret", inputs={"type": "kubernetes.io/service-account-token"})
    assert figure_of(token) == "token-secret"
    assert figure_of(recorded("kubernetes:core/v1:Secret", inputs={"stringData": {}})) == "k8s-object"
    assert figure_of(recorded("meshburst:apps:HashrApp", custom=False)) == "instant"
    assert figure_of(recorded("pulumi:providers:kubernetes")) == "instant"
    assert figure_of(recorded("gcp:container/cluster:Cluster")) == "gke-cluster"


def test_a_load_balancer_service_outside_helm_is_refused_not_guessed():
    lb = recorded("kubernetes:core/v1:Service", "web", inputs={"spec": {"type": "LoadBalancer"}})
    with pytest.raises(ValueError, match="Service web: no figure for a LoadBalancer Service"):
        figure_of(lb)


def test_a_service_without_a_selector_awaits_no_deployment():
    deployment = recorded(
        "kubernetes:apps/v1:Deployment", "d", inputs={"spec": {"template": {"metadata": {"labels": {"app": "x"}}}}}
    )
    headless = recorded("kubernetes:core/v1:Service", "s", inputs={"spec": {"ports": []}})
    run = Run("primary", [deployment, headless], {})
    assert build_graph(run)["urn:s"].ready_with == ()
    assert critical_path({}) == []


def test_a_type_without_a_figure_is_refused_by_name():
    with pytest.raises(ValueError, match="gcp:sql/databaseInstance:DatabaseInstance db: no creation time"):
        figure_of(recorded("gcp:sql/databaseInstance:DatabaseInstance", "db"))


def test_every_figure_says_where_it_comes_from():
    for key, figure in FIGURES.items():
        assert figure.source, key
        if figure.seconds:
            # Nothing here measures GCP: a figure is an estimate or an assumption, and says so.
            assert figure.source.startswith(("estimate", "assumption")), key


def test_engine_waits_are_dependencies_parent_and_provider_not_the_root_stack():
    child = recorded(
        "kubernetes:core/v1:Namespace",
        "ns",
        parent="urn:component",
        provider="urn:provider::provider-id",
        dependencies=["urn:dep", "urn:component"],
    )
    known = ["urn:dep", "urn:component", "urn:provider", "urn:ns"]
    assert engine_waits(child, known) == ("urn:dep", "urn:component", "urn:provider")
    top = recorded("meshburst:apps:X", "x", parent="urn:pulumi:primary::meshburst::pulumi:pulumi:Stack::s")
    assert engine_waits(top, known) == ()


# The real program.


def test_the_graph_holds_exactly_the_waits_the_run_records(primary_run: Run, burst_run: Run):
    for run in (primary_run, burst_run):
        g = build_graph(run)
        for resource in run.resources:
            closure: set[str] = set()
            pending = [resource.urn]
            while pending:
                for urn in g[pending.pop()].waits_for:
                    if urn not in closure:
                        closure.add(urn)
                        pending.append(urn)
            assert closure == run.created_before(resource) & set(g), f"{run.stack} {resource.name}"


def test_the_deploy_path_runs_through_the_irreducible_chain(primary_run: Run, burst_run: Run):
    deploy = deploy_path([primary_run, burst_run])
    primary, burst = deploy.stacks
    assert burst.start == primary.finish, "burst starts when primary ends"
    on_path = {stack.stack: {(s.node.name, s.node.type) for s in stack.path} for stack in deploy.stacks}
    for stack, name in IRREDUCIBLE_CHAIN:
        assert any(n == name for n, _ in on_path[stack]), f"{stack} {name} is off the critical path"
    for stack in deploy.stacks:
        for before, after in itertools.pairwise(stack.path):
            # Each step starts when the one before ends, or (a Service) ends when the one before does.
            assert after.start == before.finish or after.finish == before.finish, after.node.name
    assert deploy.ratio <= TARGET, f"{minutes(deploy.total)} vs chain {minutes(deploy.chain_seconds)}"


def test_the_chain_is_a_chain_of_waits_and_out_of_order_it_is_refused(primary_run: Run, burst_run: Run):
    graphs = {"primary": build_graph(primary_run), "burst": build_graph(burst_run)}
    steps = chain_steps(graphs, IRREDUCIBLE_CHAIN)
    assert steps[0].start == 0 and all(a.finish == b.start for a, b in itertools.pairwise(steps))
    with pytest.raises(ValueError, match="primary: primary-cluster does not wait for primary-pool"):
        chain_steps(graphs, [("primary", "primary-pool"), ("primary", "primary-cluster")])
    with pytest.raises(ValueError, match="expected one resource named 'istio-gateway', found 0"):
        chain_steps(graphs, [("primary", "istio-gateway")])


def created_before_names(run: Run, name: str, type_: str | None = None) -> set[str]:
    resource = run.one(type_, name) if type_ else run.named(name)
    return {run.by_urn(urn).name for urn in run.created_before(resource)}


def test_removed_waits_stay_removed(primary_run: Run):
    # The apps need their namespace (which waits for istiod, so pods are injected), not the ingress gateway.
    assert "istio-ingress" not in created_before_names(primary_run, "shark-shark-v1", "kubernetes:apps/v1:Deployment")
    # The add-ons need only istio-system: not istiod, the apps' namespace or the gateways' load balancers.
    before = created_before_names(primary_run, "observability-prometheus")
    assert {"istio-istio-system", "primary-k8s"} <= before
    assert not before & {"istio-base", "istio-istiod", "istio-apps-namespace", "istio-ingress", "istio-eastwest"}
    # Images build while the cluster is created: a build waits for its repository, never for the cluster.
    for image in primary_run.of_type("docker-build:index:Image"):
        assert created_before_names(primary_run, image.name) == {"images", "images-repository"}, image.name


REQUIRED = [
    # (stack, resource, what it must still wait for): nodes, NAT, CRDs, the injection webhook, the mesh join.
    ("primary", "primary-k8s", {"primary-pool", "nat-nat"}),
    ("primary", "istio-istiod", {"istio-base", "istio-istio-system"}),
    ("primary", "istio-eastwest", {"istio-istiod", "istio-istiod-address"}),
    ("primary", "istio-istiod-gateway", {"istio-base", "istio-eastwest"}),
    ("primary", "shark-shark-v1", {"istio-apps-namespace", "istio-istiod", "images-shark-v1"}),
    ("primary", "worker-frontend", {"istio-apps-namespace", "worker-hashr-token-secret"}),
    ("burst", "remote-secret-reader-token", {"istio-base", "istio-istiod"}),
    ("burst", "worker-worker", {"remote-secret-secret", "mesh-pods", "istio-apps-namespace", "burst-pool"}),
]


@pytest.mark.parametrize(("stack", "name", "waits"), REQUIRED, ids=[f"{s}-{n}" for s, n, _ in REQUIRED])
def test_required_waits_stay(primary_run: Run, burst_run: Run, stack: str, name: str, waits: set[str]):
    run = {"primary": primary_run, "burst": burst_run}[stack]
    found = [r for r in run.resources if r.name == name and r.custom]
    assert len(found) == 1
    assert waits <= {run.by_urn(urn).name for urn in run.created_before(found[0])}


def test_bench_help_says_what_it_prints():
    result = subprocess.run(
        [sys.executable, "bench/critical_path.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "critical path" in result.stdout and "pulumi up -s primary" in result.stdout


def test_the_readme_figures_are_what_the_model_gives(primary_run: Run, burst_run: Run):
    readme = (ROOT / "README.md").read_text()
    benchmarks = readme[readme.index("## Benchmarks\n") :]
    assert ".venv/bin/python bench/critical_path.py" in benchmarks
    deploy = deploy_path([primary_run, burst_run])
    said = re.search(
        r"critical path of the deploy is ([\d:]+) .*?irreducible chain's ([\d:]+) \(ratio ([\d.]+)\)",
        " ".join(benchmarks.split()),
    )
    assert said, "README Benchmarks: the critical path sentence is missing"
    assert said.groups() == (minutes(deploy.total), minutes(deploy.chain_seconds), f"{deploy.ratio:.2f}"), (
        "re-run .venv/bin/python bench/critical_path.py and update the README"
    )
