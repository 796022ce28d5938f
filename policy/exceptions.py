"""The few justified exceptions to meshburst's workload rules, each with why: the one place they are written.

Both gates read this file: the policy pack (policy/) lets the named object skip the named policy, and the
checkov gate (tests/test_gates.py) allows exactly these checkov skips, which the workloads carry as
`checkov.io/skip` annotations with the same reason. To add an exception, add a `Waiver` here with its
reason; nothing else waives a rule.

Imports nothing outside the standard library: the Pulumi program, the test suite and the policy pack's own
virtualenv all load it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Waiver:
    kind: str
    """Kubernetes kind of the object, e.g. Deployment."""
    namespace: str
    name: str
    checkov_id: str | None
    """The checkov check the object skips (carried as a `checkov.io/skip` annotation), or None."""
    policy: str | None
    """The policy pack's policy it skips, or None when the pack's rule already allows the object."""
    reason: str
    """Why the rule does not apply; also the annotation's text."""

    @property
    def checkov_resource(self) -> str:
        """How checkov names the object in its report."""
        return f"{self.kind}.{self.namespace}.{self.name}"


WAIVERS: tuple[Waiver, ...] = (
    *(
        Waiver(
            kind="Deployment",
            namespace="meshburst",
            name=controller,
            checkov_id="CKV_K8S_38",
            policy="workload-service-account-token",
            reason="the controller writes its route's VirtualService and status through the Kubernetes API",
        )
        for controller in ("burstwatch", "canarywatch")
    ),
    Waiver(
        kind="Deployment",
        namespace="meshburst",
        name="redis",
        checkov_id="CKV_K8S_43",
        # An exact release tag satisfies the pack's workload-image-pinned; checkov wants a digest.
        policy=None,
        reason="the official Redis image, by exact release tag and pulled Always; not built here to pin",
    ),
)


def waived(policy: str, kind: str, namespace: str, name: str) -> bool:
    """Whether `policy` is waived for this object."""
    return any(w.policy == policy and (w.kind, w.namespace, w.name) == (kind, namespace, name) for w in WAIVERS)


def checkov_skips(namespace: str, name: str, kind: str = "Deployment") -> dict[str, str]:
    """checkov check ID -> reason for one object: what its `checkov.io/skip` annotations say."""
    return {
        w.checkov_id: w.reason
        for w in WAIVERS
        if w.checkov_id is not None and (w.kind, w.namespace, w.name) == (kind, namespace, name)
    }
