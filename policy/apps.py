"""Cross-resource rules for the apps namespace: every workload there is fenced and protected from drains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policy.rules import StackResource, StackRule, get, identity, label, selects

# The namespace meshburst's apps run in (components/istio_values.py APPS_NAMESPACE; a test keeps them equal).
APPS_NAMESPACE = "meshburst"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def _fenced(resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    def in_apps(r: StackResource) -> bool:
        return identity(r.resource_type, r.props)[1] == APPS_NAMESPACE

    policies = [get(r.props, "spec.podSelector") for r in resources if r.resource_type == NETWORK_POLICY and in_apps(r)]
    budgets = [get(r.props, "spec.selector") for r in resources if r.resource_type == PDB and in_apps(r)]
    found = []
    for r in resources:
        if r.resource_type != DEPLOYMENT or not in_apps(r):
            continue
        labels = get(r.props, "spec.template.metadata.labels")
        labels = labels if isinstance(labels, Mapping) else {}
        missing = [
            what
            for what, selectors in (("NetworkPolicy", policies), ("PodDisruptionBudget", budgets))
            if not any(selects(selector, labels) for selector in selectors)
        ]
        if missing:
            found.append(
                (
                    r.urn,
                    f"{label(r.resource_type, r.props)}: no {' and no '.join(missing)} selects its pods "
                    f"(labels {dict(labels)})",
                )
            )
    return found


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "apps-network-policy-and-pdb",
        f"Every Deployment in the apps namespace ({APPS_NAMESPACE}) has a NetworkPolicy selecting its pods (only "
        "named peers reach it) and a PodDisruptionBudget (node drains and upgrades never take all its pods at once).",
        _fenced,
    ),
)
