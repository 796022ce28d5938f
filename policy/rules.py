"""What a rule is: a pure function from a resource's type and properties to violation messages.

Properties are what Pulumi hands a policy pack: the resource's inputs with camelCase names, as the provider
schema spells them, numbers as floats and secrets unwrapped. The pack (policy/pack.py) only wraps rules as
pulumi-policy policies; tests call them directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Raised by pulumi-policy's property proxy when a rule reads a value that is unknown during a preview.
from pulumi_policy.proxy import UnknownValueError

from policy.exceptions import waived

Props = Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    name: str
    """The policy's name (kebab-case), as `pulumi preview` reports it and a waiver names it."""
    description: str
    """What it protects, and why."""
    resource_types: tuple[str, ...] | None
    """Pulumi type tokens it applies to; None: every resource."""
    check: Callable[[str, Props], list[str]]
    """Violation messages for one resource (empty: it complies)."""

    def violations(self, resource_type: str, props: Props) -> list[str]:
        if self.resource_types is not None and resource_type not in self.resource_types:
            return []
        kind, namespace, name = identity(resource_type, props)
        if waived(self.name, kind, namespace, name):
            return []
        return self.check(resource_type, props)


class StackResource(Protocol):
    """What a stack rule reads of each resource (pulumi_policy.PolicyResource has these)."""

    resource_type: str
    props: Props
    urn: str


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: Callable[[Sequence[StackResource]], list[tuple[str, str]]]
    """(URN of the offending resource, message) for every violation across the stack."""

    def violations(self, resources: Sequence[StackResource]) -> list[tuple[str, str]]:
        return self.check(resources)


def kind_of(resource_type: str) -> str:
    """`kubernetes:apps/v1:Deployment` -> `Deployment`."""
    return resource_type.rsplit(":", 1)[-1]


def identity(resource_type: str, props: Props) -> tuple[str, str, str]:
    """(kind, namespace, name) of a Kubernetes object; namespace defaults as the API server defaults it."""
    metadata = props.get("metadata")
    if not isinstance(metadata, Mapping):
        return kind_of(resource_type), "", ""
    return kind_of(resource_type), str(metadata.get("namespace") or "default"), str(metadata.get("name") or "")


def label(resource_type: str, props: Props) -> str:
    """How messages name a Kubernetes object: `Deployment meshburst/shark-v1`."""
    kind, namespace, name = identity(resource_type, props)
    return f"{kind} {namespace}/{name}"


def get(props: Any, path: str) -> Any:
    """The value at a dotted path of mappings, or None when a part is missing."""
    value = props
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def items(value: Any) -> list[Any]:
    """A list property as a list; missing (None) or not a list: empty."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


def number(value: Any) -> float | None:
    """Numbers arrive as floats over the wire; booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def show(value: Any) -> str:
    """A number as it was written (100, not 100.0); anything else as repr."""
    n = number(value)
    if n is not None and n.is_integer():
        return str(int(n))
    return repr(value)


def _children(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, child) of a mapping or list. Values unknown during preview (outputs of resources not created
    yet) are left out: a scan has nothing to judge there, and `pulumi up` analyzes them once known."""
    if isinstance(value, Mapping):
        keyed: Iterator[tuple[str, Any]] = ((f"{path}.{k}" if path else str(k), k) for k in value)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        keyed = ((f"{path}[{i}]", i) for i in range(len(value)))
    else:
        return
    for child_path, key in keyed:
        try:
            yield child_path, value[key]
        except UnknownValueError:
            continue


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar in a property tree with its path, e.g. `spec.template.spec.containers[0].image`."""
    if isinstance(value, Mapping) or (isinstance(value, Sequence) and not isinstance(value, str)):
        for child_path, child in _children(value, path):
            yield from leaves(child, child_path)
    else:
        yield path, value


def mappings(value: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping in a property tree with its path (the root is path "")."""
    if isinstance(value, Mapping):
        yield path, value
    for child_path, child in _children(value, path):
        yield from mappings(child, child_path)


def selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Whether a Kubernetes label selector (matchLabels and matchExpressions) selects these labels.

    An empty selector selects everything, as in a NetworkPolicy's podSelector.
    """
    if not isinstance(selector, Mapping):
        return False
    match_labels = selector.get("matchLabels") or {}
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for expression in items(selector.get("matchExpressions")):
        key, operator = expression.get("key"), expression.get("operator")
        values = set(items(expression.get("values")))
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True
