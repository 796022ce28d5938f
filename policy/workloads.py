"""Rules for every pod a workload runs: who it runs as, what it may do, what it may use, how it is checked.

They apply to every kind that carries a pod template, so an app a team adds gets the same standards as
meshburst's own (components/workload.py builds them this way).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from policy.rules import Props, Rule, get, items, label, number, show

POD_TEMPLATE_PATHS: dict[str, str] = {
    "kubernetes:apps/v1:Deployment": "spec.template.spec",
    "kubernetes:apps/v1:StatefulSet": "spec.template.spec",
    "kubernetes:apps/v1:DaemonSet": "spec.template.spec",
    "kubernetes:apps/v1:ReplicaSet": "spec.template.spec",
    "kubernetes:batch/v1:Job": "spec.template.spec",
    "kubernetes:batch/v1:CronJob": "spec.jobTemplate.spec.template.spec",
    "kubernetes:core/v1:Pod": "spec",
}
WORKLOAD_TYPES = tuple(POD_TEMPLATE_PATHS)
# checkov's CKV_K8S_40: UIDs below 10000 may collide with users on the node.
MIN_UID = 10000
SECCOMP_TYPES = ("RuntimeDefault", "Localhost")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# An exact release tag: 7.4.2, v1.30.3, 7.4.2-alpine. Not latest, not 7 or 7.4, which move.
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$")


def pod_spec(resource_type: str, props: Props) -> Mapping[str, Any]:
    spec = get(props, POD_TEMPLATE_PATHS[resource_type])
    return spec if isinstance(spec, Mapping) else {}


def containers(spec: Mapping[str, Any], init: bool = True) -> list[tuple[str, Mapping[str, Any]]]:
    """(field, container) for the pod's containers, and its init containers when `init`."""
    fields = ("containers", "initContainers") if init else ("containers",)
    return [(field, c) for field in fields for c in items(spec.get(field)) if isinstance(c, Mapping)]


def _effective(container: Mapping[str, Any], pod: Mapping[str, Any], key: str) -> Any:
    """A security setting as the kubelet applies it: the container's, else the pod's."""
    own = get(container, f"securityContext.{key}")
    return own if own is not None else get(pod, f"securityContext.{key}")


ContainerCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], str | None]


def _per_container(check: ContainerCheck, init: bool = True) -> Callable[[str, Props], list[str]]:
    """A rule from a check of one container (given the pod spec): one message per failing container."""

    def rule(resource_type: str, props: Props) -> list[str]:
        spec = pod_spec(resource_type, props)
        found = []
        for field, container in containers(spec, init):
            problem = check(container, spec)
            if problem is not None:
                what = "container" if field == "containers" else "init container"
                found.append(f"{label(resource_type, props)}: {what} {container.get('name')!r} {problem}")
        return found

    return rule


def _non_root(container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    uid = number(_effective(container, pod, "runAsUser"))
    if uid == 0:
        return "runs as root: securityContext.runAsUser is 0"
    if _effective(container, pod, "runAsNonRoot") is not True:
        return "may run as root: securityContext.runAsNonRoot is not true"
    return None


def _high_uid(container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    value = _effective(container, pod, "runAsUser")
    uid = number(value)
    if uid is None:
        return "has no securityContext.runAsUser: the image decides which user it runs as"
    if uid < MIN_UID:
        return f"runs as UID {show(value)}: use {MIN_UID} or above, clear of the node's own users"
    return None


def _read_only_root(container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    if get(container, "securityContext.readOnlyRootFilesystem") is not True:
        return "can write its root filesystem: set securityContext.readOnlyRootFilesystem true (emptyDir for scratch)"
    return None


def _no_privilege_escalation(container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    if get(container, "securityContext.privileged") is True:
        return "is privileged: securityContext.privileged gives it the node"
    if get(container, "securityContext.allowPrivilegeEscalation") is not False:
        return "may gain privileges (setuid): set securityContext.allowPrivilegeEscalation false"
    return None


def _capabilities_dropped(container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    drop = items(get(container, "securityContext.capabilities.drop"))
    added = items(get(container, "securityContext.capabilities.add"))
    if "ALL" not in drop:
        return "keeps the runtime's default capabilities: set securityContext.capabilities.drop [ALL]"
    if added:
        return f"adds capabilities {added}: meshburst's workloads need none"
    return None


def _seccomp(container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    profile = _effective(container, pod, "seccompProfile.type")
    if profile not in SECCOMP_TYPES:
        return f"has seccomp profile {profile!r}: set securityContext.seccompProfile.type RuntimeDefault"
    return None


def _resources(container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    missing = [
        f"{kind}.{resource}"
        for kind in ("requests", "limits")
        for resource in ("cpu", "memory")
        if get(container, f"resources.{kind}.{resource}") in (None, "")
    ]
    return f"has no resources.{', resources.'.join(missing)}" if missing else None


def _probes(container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    missing = [probe for probe in ("readinessProbe", "livenessProbe") if not container.get(probe)]
    return f"has no {' or '.join(missing)}" if missing else None


def image_pinned(image: Any) -> bool:
    """Pinned by digest, or by an exact release tag (not latest, not a moving major or minor)."""
    if not isinstance(image, str) or not image:
        return False
    if DIGEST.search(image):
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and bool(EXACT_TAG.match(last.rsplit(":", 1)[1]))


def _image(container: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    image = container.get("image")
    if image_pinned(image):
        return None
    return f"uses image {image!r}: pin it by digest (@sha256:...) or an exact release tag (e.g. 7.4.2)"


def _service_account_token(resource_type: str, props: Props) -> list[str]:
    if pod_spec(resource_type, props).get("automountServiceAccountToken") is False:
        return []
    return [
        f"{label(resource_type, props)}: mounts a service-account token (automountServiceAccountToken is not "
        "false); only a workload that calls the Kubernetes API gets one, with a waiver in policy/exceptions.py"
    ]


RULES: tuple[Rule, ...] = (
    Rule(
        "workload-non-root",
        "Containers run as a non-root user (runAsNonRoot, runAsUser not 0): a process that escapes its container "
        "as root owns the node.",
        WORKLOAD_TYPES,
        _per_container(_non_root),
    ),
    Rule(
        "workload-high-uid",
        f"Containers run as a UID of {MIN_UID} or above: a low UID may match a real user on the node, and the "
        "image's default user is not a decision anyone reviewed.",
        WORKLOAD_TYPES,
        _per_container(_high_uid),
    ),
    Rule(
        "workload-read-only-root",
        "Containers have a read-only root filesystem: an intruder cannot drop tools or change the app; scratch "
        "space is an emptyDir.",
        WORKLOAD_TYPES,
        _per_container(_read_only_root),
    ),
    Rule(
        "workload-no-privilege-escalation",
        "Containers are not privileged and cannot gain privileges (allowPrivilegeEscalation false): setuid "
        "binaries cannot lift a process above its user.",
        WORKLOAD_TYPES,
        _per_container(_no_privilege_escalation),
    ),
    Rule(
        "workload-capabilities-dropped",
        "Containers drop ALL Linux capabilities and add none: the apps bind high ports and need no kernel powers.",
        WORKLOAD_TYPES,
        _per_container(_capabilities_dropped),
    ),
    Rule(
        "workload-seccomp",
        "Containers run under the RuntimeDefault (or a Localhost) seccomp profile: the kernel refuses the "
        "syscalls container escapes use.",
        WORKLOAD_TYPES,
        _per_container(_seccomp),
    ),
    Rule(
        "workload-resources",
        "Containers request and limit CPU and memory: the scheduler places them honestly, and one runaway pod "
        "cannot starve its node (and the mesh's sidecars) of memory.",
        WORKLOAD_TYPES,
        _per_container(_resources),
    ),
    Rule(
        "workload-probes",
        "Containers have readiness and liveness probes: the mesh sends traffic only to ready pods, and a hung "
        "process is restarted.",
        WORKLOAD_TYPES,
        _per_container(_probes, init=False),
    ),
    Rule(
        "workload-image-pinned",
        "Images are pinned by digest or an exact release tag: what was reviewed is what runs, and a pushed tag "
        "cannot change a running app.",
        WORKLOAD_TYPES,
        _per_container(_image),
    ),
    Rule(
        "workload-service-account-token",
        "Pods mount no service-account token (automountServiceAccountToken false) unless the workload calls the "
        "Kubernetes API: a stolen token is a key to the cluster.",
        WORKLOAD_TYPES,
        _service_account_token,
    ),
)
