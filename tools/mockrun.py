"""Run the real __main__.py under Pulumi mocks and record every resource it registers.

`run_stack("primary", {...config...})` returns a `Run`: every resource with its type, name, inputs
(secrets unwrapped, their paths listed), parent, provider, dependencies and options, plus the
stack's exported outputs. Used two ways:

- tests (`preview=False`): the mocks play GCP and the Kubernetes API server and fill in the values only
  the cloud knows (cluster endpoints, pod CIDRs, tokens, load balancer IPs) with fixed fakes, so tests
  can assert exact values;
- the offline plan (`preview=True`): nothing is invented, and those values stay unknown, shown as
  "(known after apply)".
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import runpy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from config.settings import default_primary_stack

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "__main__.py"
PROJECT = "meshburst"
# The organization a self-managed backend reports; mocks run as if on one.
OFFLINE_ORGANIZATION = "organization"
PROJECT_ID = "meshburst-test-123"

# What the fake cloud answers for values that only exist after apply.
FAKE_ENDPOINTS = {"meshburst-primary": "34.1.1.1", "meshburst-burst": "34.2.2.2"}
FAKE_POD_CIDRS = {"meshburst-primary": "10.4.0.0/14", "meshburst-burst": "10.8.0.0/14"}
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n").decode()
FAKE_RANDOM_PASSWORD = "fakeRandomPassword0123456789abcd"
FAKE_READER_TOKEN = "eyJhbGciOiJSUzI1NiJ9.fake-reader-token"
# Reserved addresses by their GCP name.
FAKE_ADDRESSES = {"meshburst-istiod": "10.128.0.50", "meshburst-ingress": "35.3.3.3"}
FAKE_SUBNETWORK = "default"
# The control planes' internal (private endpoint) addresses, in the nodes' subnet.
FAKE_PRIVATE_ENDPOINTS = {"meshburst-primary": "10.128.0.2", "meshburst-burst": "10.128.0.3"}


KNOWN_AFTER_APPLY = "(known after apply)"


def unwrap(value: Any, path: str = "", secrets: set[str] | None = None) -> Any:
    """Strip Pulumi's secret wrappers, noting the path of every secret found; unknowns become a marker."""
    if isinstance(value, Unknown) or value == rpc.UNKNOWN:
        return KNOWN_AFTER_APPLY
    if rpc.is_rpc_secret(value):
        if secrets is not None:
            secrets.add(path)
        return unwrap(rpc.unwrap_rpc_secret(value), path, secrets)
    if isinstance(value, dict):
        return {k: unwrap(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    # The wire format carries every number as a double; whole numbers read back as the ints they were.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    secret_paths: set[str]
    parent: str
    provider: str
    dependencies: list[str]
    ignore_changes: list[str]
    custom: bool
    retain_on_delete: bool = False
    """`pulumi destroy` (or dropping it from the program) leaves the live object in place."""
    read: bool = False
    aliases: list[str] = field(default_factory=list)
    """Earlier URNs this resource answers to (its own aliases and those inherited from its parents)."""

    def get(self, path: str) -> Any:
        """Input at a dotted path, e.g. `metadata.labels.app` (list items by index: `spec.0`)."""
        value: Any = self.inputs
        for part in path.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        return value

    @property
    def is_object(self) -> bool:
        """A Kubernetes or Istio object the program applies itself (not a Helm release, not a read)."""
        return (
            self.type.startswith("kubernetes:")
            and not self.read
            and self.type != "kubernetes:helm.sh/v3:Release"
            and "apiVersion" in self.inputs
        )

    def is_secret(self, key: str) -> bool:
        return any(p == key or p.startswith(key + ".") or p.startswith(key + "[") for p in self.secret_paths)


@dataclass
class Run:
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Resource:
        found = [r for r in self.resources if r.type == type_ and r.name == name]
        assert len(found) == 1, f"expected one {type_} named {name}, found {[r.name for r in self.of_type(type_)]}"
        return found[0]

    def named(self, name: str) -> Resource:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    def parent_of(self, resource: Resource) -> Resource:
        return self.by_urn(resource.parent)

    def created_before(self, resource: Resource) -> set[str]:
        """URNs of every resource the engine must create before this one.

        What Pulumi waits for: the resource's own dependencies (the SDK records a dependency on a component
        as the resources beneath it), its parents' (a child waits for its parent's registration, which
        waits for the parent's dependencies), its provider's, and transitively theirs.
        """
        by_urn = {r.urn: r for r in self.resources}
        found: set[str] = set()
        pending = [resource.urn]
        while pending:
            current = by_urn.get(pending.pop())
            if current is None:
                continue
            waits_for = list(current.dependencies)
            if current.parent in by_urn:
                waits_for.append(current.parent)
            if current.provider:
                waits_for.append(current.provider.rsplit("::", 1)[0])
            for urn in waits_for:
                if urn not in found:
                    found.add(urn)
                    pending.append(urn)
        return found

    def provider_name(self, resource: Resource) -> str:
        """Name of the provider resource a resource uses (`urn::id` reference -> name)."""
        return resource.provider.split("::")[-2] if resource.provider else ""


class FakeCloud(pulumi_mocks.Mocks):
    """Answers resource registrations as GCP and Kubernetes would: with fixed fakes, or (invent=False) not at all."""

    def __init__(
        self,
        stack_references: Mapping[str, Mapping[str, Any]],
        secret_outputs: Mapping[str, set[str]],
        invent: bool = True,
    ):
        self.stack_references = stack_references
        self.secret_outputs = secret_outputs
        self.invent = invent

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        state = dict(args.inputs)
        resource_id = args.resource_id or f"{args.name}-id"
        if args.typ == "pulumi:pulumi:StackReference":
            if args.resource_id not in self.stack_references:
                raise Exception(f"no fake stack {args.resource_id!r}; known: {list(self.stack_references)}")
            outputs = dict(self.stack_references[args.resource_id])
            return resource_id, {
                "name": args.resource_id,
                "outputs": outputs,
                "secretOutputNames": sorted(self.secret_outputs.get(args.resource_id, set())),
            }
        if not self.invent:
            return resource_id, state
        if args.typ == "gcp:container/cluster:Cluster":
            name = state["name"]
            state |= {
                "endpoint": FAKE_ENDPOINTS[name],
                "clusterIpv4Cidr": FAKE_POD_CIDRS[name],
                "subnetwork": FAKE_SUBNETWORK,
                "masterAuth": {**state.get("masterAuth", {}), "clusterCaCertificate": FAKE_CA},
                "privateClusterConfig": {
                    **state.get("privateClusterConfig", {}),
                    "privateEndpoint": FAKE_PRIVATE_ENDPOINTS[name],
                },
            }
        elif args.typ == "docker-build:index:Image":
            # A pushed build answers with its digest; the ref pins the first tag to it.
            digest = "sha256:" + hashlib.sha256(args.name.encode()).hexdigest()
            state |= {"digest": digest, "ref": f"{state['tags'][0].rsplit(':', 1)[0]}@{digest}"}
        elif args.typ == "gcp:serviceaccount/account:Account":
            state["email"] = f"{state['accountId']}@{state['project']}.iam.gserviceaccount.com"
        elif args.typ == "kubernetes:core/v1:Secret" and state.get("type") == "kubernetes.io/service-account-token":
            # The token controller fills the secret in; pulumi-kubernetes waits for it.
            state["data"] = {"token": base64.b64encode(FAKE_READER_TOKEN.encode()).decode(), "ca.crt": FAKE_CA}
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = FAKE_RANDOM_PASSWORD
        elif args.typ == "gcp:compute/address:Address":
            state["address"] = FAKE_ADDRESSES[state["name"]]
        return resource_id, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict, list]:
        raise AssertionError(f"meshburst must not call cloud functions during a run (called {args.token})")


ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


def engine_urn(parent_urn: str, type_: str, name: str) -> str:
    """The URN the Pulumi engine gives a resource: its parents' whole type chain, the root stack left out."""
    parent_type = parent_urn.split("::")[2] if parent_urn else ""
    qualified = f"{parent_type}${type_}" if parent_type and parent_type != ROOT_STACK_TYPE else type_
    return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), qualified, name])


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Pulumi's mock monitor, with the engine's URNs and aliases, plus a record of every registration's options."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.records: list[Resource] = []
        self._aliases: dict[str, list[str]] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The mock's own URNs keep only the parent's last type; the engine keeps the chain, and a URN change is
        # what makes a refactor replace resources, so tests must see the engine's.
        return engine_urn(parent, type_, name)

    def _resolve_aliases(self, request: Any, urn: str) -> list[str]:
        """Earlier URNs, as the engine resolves alias specs, including those a child inherits from its parent."""
        parent = request.parent
        found: list[str] = []
        for alias in request.aliases:
            if alias.urn:
                found.append(alias.urn)
                continue
            spec = alias.spec
            alias_parent = "" if spec.noParent else (spec.parentUrn or parent)
            found.append(engine_urn(alias_parent, spec.type or request.type, spec.name or request.name))
        parent_name = parent.rsplit("::", 1)[-1] if parent else ""
        for parent_alias in self._aliases.get(parent, []):
            name = request.name
            if parent_name and name.startswith(parent_name):
                name = parent_alias.rsplit("::", 1)[-1] + name[len(parent_name) :]
            found.append(engine_urn(parent_alias, request.type, name))
        self._aliases[urn] = [alias for alias in dict.fromkeys(found) if alias != urn]
        return self._aliases[urn]

    def _record(self, request: Any, response: Any, read: bool) -> None:
        secrets: set[str] = set()
        inputs = unwrap(rpc.deserialize_properties(request.properties if read else request.object), "", secrets)
        self.records.append(
            Resource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                inputs=inputs,
                secret_paths=secrets,
                parent=request.parent,
                provider=request.provider,
                dependencies=list(request.dependencies),
                ignore_changes=[] if read else list(request.ignoreChanges),
                custom=True if read else request.custom,
                retain_on_delete=False if read else request.retainOnDelete,
                read=read,
                aliases=[] if read else self._resolve_aliases(request, response.urn),
            )
        )

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self._record(request, response, read=False)
        return response

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)
        self._record(request, response, read=True)
        return response


class RunFailed(Exception):
    """The program raised; `resources` holds what it had registered before (should be nothing)."""

    def __init__(self, error: BaseException, resources: list[Resource]) -> None:
        super().__init__(str(error))
        self.error = error
        self.resources = resources


def base_config(stack: str) -> dict[str, str]:
    """The smallest valid config of a stack, as a user's Pulumi.<stack>.yaml would give it."""
    return {"gcp:project": PROJECT_ID, "gcp:zone": "us-west1-a"}


def full_key(key: str) -> str:
    """`canaryWeight` -> `meshburst:canaryWeight`; namespaced keys stay as they are."""
    return key if ":" in key else f"meshburst:{key}"


_run_loops: list[asyncio.AbstractEventLoop] = []


def _fresh_event_loop() -> None:
    """A new event loop for this run, after closing the previous run's.

    The mock monitor answers each registration on a thread of the loop's default executor, and Pulumi gives each
    of those threads an event loop of its own: a run's loop left open keeps its threads, and their loops' file
    descriptors, alive for the rest of the process (over a thousand after a few dozen runs).
    """
    while _run_loops:
        loop = _run_loops.pop()
        if not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
    loop = asyncio.new_event_loop()
    _run_loops.append(loop)
    asyncio.set_event_loop(loop)


def _end_pending_tasks() -> None:
    loop = asyncio.get_event_loop()
    # The run's error is raised as RunFailed; the futures still holding it would each log it again.
    loop.set_exception_handler(lambda _loop, _context: None)
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def run_stack(
    stack: str,
    config: Mapping[str, Any] | None = None,
    stack_references: Mapping[str, Mapping[str, Any]] | None = None,
    secret_outputs: Mapping[str, set[str]] | None = None,
    replace_config: bool = False,
    preview: bool = False,
    secret_keys: Iterable[str] = (),
) -> Run:
    """Run __main__.py as stack `stack`; short config keys mean `meshburst:<key>`; `secret_keys` are held encrypted
    (`pulumi config set --secret`)."""
    full_config = {} if replace_config else base_config(stack)
    for key, value in (config or {}).items():
        full_config[full_key(key)] = value if isinstance(value, str) else json.dumps(value)
    monitor = RecordingMonitor(FakeCloud(stack_references or {}, secret_outputs or {}, invent=not preview))
    # Pulumi's runtime asks for the thread's event loop; a test that ran asyncio.run() before leaves none set.
    _fresh_event_loop()
    reset_options(project=PROJECT, stack=stack, organization=OFFLINE_ORGANIZATION)
    pulumi.runtime.set_mocks(
        monitor.mocks,
        project=PROJECT,
        stack=stack,
        preview=preview,
        monitor=monitor,
        organization=OFFLINE_ORGANIZATION,
    )
    pulumi.runtime.set_all_config(full_config, [full_key(key) for key in secret_keys])
    root = pulumi.runtime.settings.get_root_resource()
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(MAIN), run_name="__main__")))
    except BaseException as error:
        # A failed run leaves registrations waiting on the error: end them and collect them now. Left to a
        # later garbage collection, their finalizers may run inside an unrelated compile(), which CPython 3.11
        # breaks with "AST constructor recursion depth mismatch" (pytest rewriting a module at the suite's end).
        _end_pending_tasks()
        gc.collect()
        raise RunFailed(error, monitor.records) from error
    outputs: dict[str, Any] = {}
    secret_outputs_found: set[str] = set()
    for name, value in root.outputs.items():
        output = pulumi.Output.from_input(value)
        known = _sync_await(output.is_known())
        outputs[name] = _sync_await(output.future()) if known else KNOWN_AFTER_APPLY
        if _sync_await(output.is_secret()):
            secret_outputs_found.add(name)
    return Run(stack, list(monitor.records), outputs, secret_outputs_found)


def run_both(
    primary_config: Mapping[str, Any] | None = None, burst_config: Mapping[str, Any] | None = None
) -> tuple[Run, Run]:
    """Run primary, then burst reading primary's real exported outputs through its StackReference."""
    primary = run_stack("primary", primary_config)
    ref = (burst_config or {}).get("primaryStack", default_primary_stack(OFFLINE_ORGANIZATION))
    burst = run_stack(
        "burst", burst_config, stack_references={ref: primary.outputs}, secret_outputs={ref: primary.secret_outputs}
    )
    return primary, burst
