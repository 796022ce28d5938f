"""The deploy's critical path: when each resource of `pulumi up` can start and finish, and the chain of waits
that decides how long the whole deploy takes.

Input: a mock run (tools/mockrun.py) records every resource with what the engine makes it wait for (its
dependencies, its parent, its provider: `Run.created_before` documents why), and a table of typical
creation times (FIGURES). Nothing here measures GCP, and nothing in this repository can: every figure says
where it comes from, and an estimate says it is one. The durations are a model; the graph is the program's.

Scheduling is as-soon-as-possible with unlimited parallelism (`pulumi up --parallel` defaults to unbounded, and
scripts/up.sh sets none): a resource starts when everything it waits for has finished. One wait is
modelled beyond the engine's: a Service is done only once the pods it selects are ready (pulumi-kubernetes
waits for its Endpoints), so it also waits for the Deployments of its cluster whose pods it selects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

SKIP_AWAIT = "pulumi.com/skipAwait"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"


class RecordedResource(Protocol):
    """What the critical path reads of a recorded resource (tools.mockrun.Resource has it)."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def urn(self) -> str: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...
    @property
    def parent(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def dependencies(self) -> Sequence[str]: ...
    @property
    def custom(self) -> bool: ...


class RecordedRun(Protocol):
    """A recorded stack run (tools.mockrun.Run)."""

    @property
    def stack(self) -> str: ...
    @property
    def resources(self) -> Sequence[RecordedResource]: ...


@dataclass(frozen=True)
class Figure:
    """A typical creation time and where it comes from."""

    what: str
    seconds: float
    source: str


# Public `terraform apply` logs quoted below were found in public repositories' READMEs and lab write-ups; they
# time the same GCP API operations the Pulumi gcp provider (built on the Terraform provider) runs.
FIGURES: Mapping[str, Figure] = MappingProxyType(
    {
        "gke-cluster": Figure(
            "GKE cluster (zonal, Standard)",
            420,
            "estimate, from public `terraform apply` logs of zonal clusters (3m33s, 7m19s for a private zonal "
            "cluster, 9m22s); meshburst's also deletes GKE's default pool inside the create "
            "(remove_default_node_pool), so the middle of that range",
        ),
        "node-pool": Figure(
            "GKE node pool (1-4 nodes)",
            120,
            "estimate, from public `terraform apply` logs of 1-3-node pools (1m04s, 1m22s, 1m46s, 1m56s): "
            "VMs boot and register as nodes",
        ),
        "image-build": Figure(
            "image build and push (docker-build)",
            180,
            "assumption: a cold `docker build` of a small Python image and a push to Artifact Registry from the "
            "machine running pulumi; it depends on that machine and its uplink, no public figure applies",
        ),
        "artifact-repository": Figure(
            "Artifact Registry repository",
            10,
            "estimate: one create operation; no public log found, taken of the order of other single GCP "
            "objects (addresses, service accounts: 2-14 s)",
        ),
        "service-account": Figure("service account", 5, "estimate, from public `terraform apply` logs (2 s, 2 s, 3 s)"),
        "iam-member": Figure(
            "IAM member (project or repository)",
            10,
            "estimate: a read-modify-write of one IAM policy; no public log found",
        ),
        "address": Figure(
            "reserved address (regional)", 5, "estimate, from public `terraform apply` logs (2 s to 14 s)"
        ),
        "router": Figure(
            "Cloud Router",
            10,
            "estimate: one Compute operation, of the order of a firewall rule's (8-23 s in public logs)",
        ),
        "cloud-nat": Figure(
            "Cloud NAT", 15, "estimate, from public `terraform apply` logs of google_compute_router_nat (11-23 s)"
        ),
        "firewall": Figure("firewall rule", 15, "estimate, from public `terraform apply` logs (8-23 s)"),
        "helm-pods": Figure(
            "Helm release with pods, no load balancer",
            60,
            "estimate: install, then pulumi-kubernetes waits (skip_await=False) for the chart's pods to be "
            "ready: an in-region image pull and a readiness probe (a StatefulSet of that size: 1m18s in a "
            "public `terraform apply` log)",
        ),
        "helm-lb": Figure(
            "Helm release with a LoadBalancer Service",
            120,
            "estimate: the pods as above (60 s), then GCP creating the forwarding rule and health check on the "
            "reserved address before the Service reports it: about a minute more",
        ),
        "helm-no-pods": Figure(
            "Helm release without pods (CRDs, RBAC, webhooks)",
            10,
            "estimate: API writes only, nothing to become ready (istio `base`; `istiod` with profile remote "
            "renders no Deployment)",
        ),
        "deployment": Figure(
            "Deployment (or a patch that rolls it)",
            60,
            "estimate, as a Helm release with pods: pulumi-kubernetes waits for the rollout (pull, sidecar "
            "injection, readiness)",
        ),
        "service": Figure(
            "Service",
            1,
            "estimate: one API write; then pulumi-kubernetes waits for ready Endpoints, modelled as waiting "
            "for the Deployments of its cluster whose pods it selects",
        ),
        "token-secret": Figure(
            "service-account token Secret",
            2,
            "estimate: one write, then pulumi-kubernetes waits for the token controller (control plane) to "
            "fill the token in",
        ),
        "k8s-object": Figure(
            "plain Kubernetes object (Namespace, ConfigMap, Secret, RBAC, PDB, NetworkPolicy, HPA, Istio CR)",
            1,
            "estimate: one API write with no await rule; public `terraform apply` logs show a Namespace and "
            "a Secret done after 1 s",
        ),
        "instant": Figure(
            "component, provider, StackReference, random value",
            0,
            "no cloud call: a grouping, a provider configuration, the other stack's state, a local value",
        ),
    }
)

TYPE_FIGURES: Mapping[str, str] = MappingProxyType(
    {
        "gcp:container/cluster:Cluster": "gke-cluster",
        "gcp:container/nodePool:NodePool": "node-pool",
        "docker-build:index:Image": "image-build",
        "gcp:artifactregistry/repository:Repository": "artifact-repository",
        "gcp:serviceaccount/account:Account": "service-account",
        "gcp:projects/iAMMember:IAMMember": "iam-member",
        "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": "iam-member",
        "gcp:compute/address:Address": "address",
        "gcp:compute/router:Router": "router",
        "gcp:compute/routerNat:RouterNat": "cloud-nat",
        "gcp:compute/firewall:Firewall": "firewall",
        DEPLOYMENT: "deployment",
        "kubernetes:apps/v1:DeploymentPatch": "deployment",
        "pulumi:pulumi:StackReference": "instant",
        "random:index/randomPassword:RandomPassword": "instant",
    }
)


def _get(mapping: Mapping[str, Any] | None, *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def helm_figure(inputs: Mapping[str, Any]) -> str:
    """A Helm release's figure, from what it renders: a LoadBalancer Service, pods, or neither."""
    values = inputs.get("values") or {}
    if _get(values, "service", "type") == "LoadBalancer":
        return "helm-lb"
    chart = inputs.get("chart")
    if chart == "base" or (chart == "istiod" and values.get("profile") == "remote"):
        return "helm-no-pods"
    return "helm-pods"


def figure_of(resource: RecordedResource) -> str:
    """The FIGURES key of a resource: by its type and, where the type is not enough, by its inputs."""
    if resource.type == HELM_RELEASE:
        return helm_figure(resource.inputs)
    if resource.type == SERVICE:
        if _get(resource.inputs, "spec", "type") == "LoadBalancer":
            raise ValueError(f"Service {resource.name}: no figure for a LoadBalancer Service outside Helm; add one")
        return "service"
    if resource.type == "kubernetes:core/v1:Secret" and resource.inputs.get("type") == SERVICE_ACCOUNT_TOKEN:
        return "token-secret"
    if resource.type in TYPE_FIGURES:
        return TYPE_FIGURES[resource.type]
    if not resource.custom or resource.type.startswith("pulumi:providers:"):
        return "instant"
    if resource.type.startswith("kubernetes:"):
        return "k8s-object"
    raise ValueError(f"{resource.type} {resource.name}: no creation time in FIGURES; add the type to TYPE_FIGURES")


@dataclass(frozen=True)
class Node:
    """One resource in the graph: how long it takes and what it waits for."""

    urn: str
    name: str
    type: str
    figure: str
    seconds: float
    waits_for: tuple[str, ...] = ()
    """URNs the engine creates first (dependencies, parent, provider)."""
    ready_with: tuple[str, ...] = ()
    """URNs that must finish before this one counts as created (a Service's pods' Deployments)."""


def provider_urn(reference: str) -> str:
    """`urn::id` provider reference -> the provider's URN."""
    return reference.rsplit("::", 1)[0] if reference else ""


def engine_waits(resource: RecordedResource, known: Iterable[str]) -> tuple[str, ...]:
    """What the engine creates before this resource, one step back: dependencies, parent, provider (as
    `Run.created_before` does, not transitively); the root stack and anything outside the run left out."""
    present = set(known)
    candidates = [*resource.dependencies, resource.parent, provider_urn(resource.provider)]
    return tuple(dict.fromkeys(urn for urn in candidates if urn and urn in present and urn != resource.urn))


def _selects(service: RecordedResource, deployment: RecordedResource) -> bool:
    selector = _get(service.inputs, "spec", "selector")
    labels = _get(deployment.inputs, "spec", "template", "metadata", "labels")
    if not isinstance(selector, Mapping) or not selector or not isinstance(labels, Mapping):
        return False
    return service.provider == deployment.provider and selector.items() <= labels.items()


def _ready_with(resource: RecordedResource, deployments: Sequence[RecordedResource]) -> tuple[str, ...]:
    if resource.type != SERVICE or _get(resource.inputs, "metadata", "annotations", SKIP_AWAIT) == "true":
        return ()
    return tuple(d.urn for d in deployments if _selects(resource, d))


def build_graph(run: RecordedRun, figures: Mapping[str, Figure] = FIGURES) -> dict[str, Node]:
    """The run's resources as nodes, in registration order (the order ties are broken by)."""
    urns = [r.urn for r in run.resources]
    deployments = [r for r in run.resources if r.type == DEPLOYMENT]
    graph: dict[str, Node] = {}
    for resource in run.resources:
        key = figure_of(resource)
        graph[resource.urn] = Node(
            urn=resource.urn,
            name=resource.name,
            type=resource.type,
            figure=key,
            seconds=figures[key].seconds,
            waits_for=engine_waits(resource, urns),
            ready_with=_ready_with(resource, deployments),
        )
    return graph


@dataclass(frozen=True)
class Step:
    """A node placed in time (seconds from the start of the deploy)."""

    node: Node
    start: float
    finish: float


def _topological(graph: Mapping[str, Node]) -> list[str]:
    """URNs, each after everything it waits for; a cycle or a wait on an unknown URN is an error."""
    edges = {urn: (*node.waits_for, *node.ready_with) for urn, node in graph.items()}
    for urn, before in edges.items():
        unknown = [b for b in before if b not in graph]
        if unknown:
            raise ValueError(f"{graph[urn].name} waits for resources not in the graph: {unknown}")
    remaining = {urn: len(set(before)) for urn, before in edges.items()}
    dependents: dict[str, list[str]] = {urn: [] for urn in graph}
    for urn, before in edges.items():
        for b in set(before):
            dependents[b].append(urn)
    ready = [urn for urn in graph if remaining[urn] == 0]
    order: list[str] = []
    while ready:
        urn = ready.pop(0)
        order.append(urn)
        for dependent in dependents[urn]:
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                ready.append(dependent)
    if len(order) != len(graph):
        stuck = sorted(graph[urn].name for urn in graph if urn not in order)
        raise ValueError(f"the waits form a cycle through: {stuck}")
    return order


def schedule(graph: Mapping[str, Node], offset: float = 0.0) -> dict[str, Step]:
    """Earliest start and finish of every node, the first starting at `offset`."""
    steps: dict[str, Step] = {}
    for urn in _topological(graph):
        node = graph[urn]
        start = max((steps[w].finish for w in node.waits_for), default=offset)
        finish = max([start + node.seconds, *(steps[r].finish for r in node.ready_with)])
        steps[urn] = Step(node, start, finish)
    return steps


def _first(candidates: Iterable[str], order: Mapping[str, int]) -> str | None:
    return min(candidates, key=lambda urn: order[urn], default=None)


def critical_path(graph: Mapping[str, Node], offset: float = 0.0) -> list[Step]:
    """The longest chain of waits, first resource first, ending at the one that finishes last.

    Ties (two resources ending at the same time) go to the one registered first, so the path is stable.
    """
    if not graph:
        return []
    steps = schedule(graph, offset)
    order = {urn: i for i, urn in enumerate(graph)}
    last = max(s.finish for s in steps.values())
    current = steps[min((u for u, s in steps.items() if s.finish == last), key=order.__getitem__)]
    path = [current]
    while True:
        node = current.node
        if current.finish > current.start + node.seconds:
            # Done when something it awaits is ready, not by its own duration.
            urn = _first((r for r in node.ready_with if steps[r].finish == current.finish), order)
        else:
            urn = _first((w for w in node.waits_for if steps[w].finish == current.start), order)
        if urn is None:
            break
        current = steps[urn]
        path.append(current)
    path.reverse()
    return path


def total(steps: Mapping[str, Step], offset: float = 0.0) -> float:
    """When the last resource finishes (`offset` for nothing)."""
    return max((s.finish for s in steps.values()), default=offset)


def waits_transitively(graph: Mapping[str, Node], later: str, earlier: str) -> bool:
    """Whether `later` (URN) cannot finish before `earlier` has: a chain of waits (or awaits) links them."""
    seen: set[str] = set()
    pending = [later]
    while pending:
        node = graph[pending.pop()]
        for urn in (*node.waits_for, *node.ready_with):
            if urn == earlier:
                return True
            if urn not in seen:
                seen.add(urn)
                pending.append(urn)
    return False


IRREDUCIBLE_CHAIN: tuple[tuple[str, str], ...] = (
    # Primary: nodes only in a cluster, Kubernetes objects only on nodes, Istio's CRDs before istiod, the
    # gateways after istiod (its webhook injects them); the east-west gateway is what the burst stack reaches.
    ("primary", "primary-cluster"),
    ("primary", "primary-pool"),
    ("primary", "istio-istio-system"),
    ("primary", "istio-base"),
    ("primary", "istio-istiod"),
    ("primary", "istio-eastwest"),
    # Burst (after the primary: it reads the primary's outputs): its cluster and nodes, the remote Istio
    # (CRDs, then the injection webhook and istiod's reader RBAC), the reader's token, and the mesh join:
    # the remote secret in the primary, from which istiod in the primary reads the burst cluster.
    ("burst", "burst-cluster"),
    ("burst", "burst-pool"),
    ("burst", "istio-istio-system"),
    ("burst", "istio-base"),
    ("burst", "istio-istiod"),
    ("burst", "remote-secret-reader-token"),
    ("burst", "remote-secret-secret"),
)
"""(stack, resource name): what no reordering can overlap, each waiting for the one before."""


def named(graph: Mapping[str, Node], name: str) -> Node:
    """The one resource (not component) of that name."""
    found = [n for n in graph.values() if n.name == name and n.figure != "instant"]
    if len(found) != 1:
        raise ValueError(f"expected one resource named {name!r}, found {len(found)}")
    return found[0]


@dataclass(frozen=True)
class StackPath:
    stack: str
    start: float
    finish: float
    path: tuple[Step, ...]


@dataclass(frozen=True)
class DeployPath:
    """`pulumi up` of each stack in turn, each starting when the one before has finished."""

    stacks: tuple[StackPath, ...]
    chain: tuple[Step, ...]
    """The irreducible chain laid end to end, each link starting when the one before finishes."""

    @property
    def total(self) -> float:
        return self.stacks[-1].finish if self.stacks else 0.0

    @property
    def chain_seconds(self) -> float:
        return self.chain[-1].finish if self.chain else 0.0

    @property
    def ratio(self) -> float:
        return self.total / self.chain_seconds


def chain_steps(graphs: Mapping[str, Mapping[str, Node]], chain: Sequence[tuple[str, str]]) -> list[Step]:
    """The chain's links end to end; each must wait (transitively) for the link before it in its stack."""
    steps: list[Step] = []
    clock = 0.0
    previous: dict[str, Node] = {}
    for stack, name in chain:
        node = named(graphs[stack], name)
        before = previous.get(stack)
        if before is not None and not waits_transitively(graphs[stack], node.urn, before.urn):
            raise ValueError(f"{stack}: {name} does not wait for {before.name}; the chain is not a chain")
        previous[stack] = node
        steps.append(Step(node, clock, clock + node.seconds))
        clock += node.seconds
    return steps


def deploy_path(
    runs: Sequence[RecordedRun],
    chain: Sequence[tuple[str, str]] = IRREDUCIBLE_CHAIN,
    figures: Mapping[str, Figure] = FIGURES,
) -> DeployPath:
    """The critical path of `pulumi up` on each run's stack in turn, and the irreducible chain to compare with."""
    graphs = {run.stack: build_graph(run, figures) for run in runs}
    stacks: list[StackPath] = []
    clock = 0.0
    for run in runs:
        graph = graphs[run.stack]
        finish = total(schedule(graph, clock), clock)
        stacks.append(StackPath(run.stack, clock, finish, tuple(critical_path(graph, clock))))
        clock = finish
    return DeployPath(tuple(stacks), tuple(chain_steps(graphs, chain)))


def minutes(seconds: float) -> str:
    """1430 -> '23:50' (minutes:seconds)."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
