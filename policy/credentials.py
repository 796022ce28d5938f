"""Kubeconfigs and tokens travel only where Pulumi always keeps them secret.

A policy cannot see whether a value is a Pulumi secret: pulumi-policy's validation hands policies plain
values (the engine sends secrets marked, and the SDK unwraps them before a policy runs). So this rule checks
what it can see, the content: a kubeconfig or a bearer token may appear only in a Kubernetes Secret's
`data`/`stringData` (pulumi-kubernetes always stores those as secrets, whatever the program passes), and a
provider's kubeconfig must carry no credential at all (an exec plugin fetches one when needed). Whether the
program also marks its own kubeconfig outputs secret is checked by the test suite, which sees secretness.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pulumi_policy.proxy import UnknownValueError

from policy.rules import Props, Rule, leaves, mappings

SECRET = "kubernetes:core/v1:Secret"
K8S_PROVIDER = "pulumi:providers:kubernetes"
# Fields pulumi-kubernetes always makes secret (pulumi_kubernetes.core.v1.Secret: additional_secret_outputs).
ALWAYS_SECRET = {SECRET: ("data", "stringData")}
KUBECONFIG_KIND = re.compile(r"""["']?kind["']?\s*:\s*["']?Config\b""")
# Header and payload of a JSON Web Token (service-account and OIDC tokens): base64url of '{"'.
JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}")
# PEM private keys: TLS keys, and the one inside a service-account key file (a provider's `credentials`).
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")
# A kubeconfig user's static credentials; `exec` and `auth-provider` users hold none.
EMBEDDED_CREDENTIAL = re.compile(r"""(?:^|[\s{,"'])(token|client-key-data|client-key|password)["']?\s*:""")
CREDENTIAL_NAME = re.compile(r"(?i)(^|_)(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|KUBECONFIG|CREDENTIALS?)$")


def is_kubeconfig(text: str) -> bool:
    return "clusters" in text and "contexts" in text and bool(KUBECONFIG_KIND.search(text))


def _allowed(resource_type: str, path: str) -> bool:
    return any(path == f or path.startswith((f"{f}.", f"{f}[")) for f in ALWAYS_SECRET.get(resource_type, ()))


def _check(resource_type: str, props: Props) -> list[str]:
    found = []
    for path, value in leaves(props):
        if not isinstance(value, str) or _allowed(resource_type, path):
            continue
        if resource_type == K8S_PROVIDER and path == "kubeconfig":
            credential = EMBEDDED_CREDENTIAL.search(value)
            if credential:
                found.append(
                    f"kubeconfig embeds a credential ({credential.group(1)}): use an exec plugin "
                    "(gke-gcloud-auth-plugin), so no credential sits in the stack's state"
                )
        elif is_kubeconfig(value):
            found.append(f"{path} holds a kubeconfig: put it in a Kubernetes Secret's stringData, which stays secret")
        elif JWT.search(value):
            found.append(f"{path} holds a bearer token: put it in a Kubernetes Secret's stringData, which stays secret")
        elif PRIVATE_KEY.search(value):
            found.append(f"{path} holds a private key: put it in a Kubernetes Secret, or use workload identity")
    # Environment variables named like credentials must come from a Secret (valueFrom.secretKeyRef).
    for path, entry in mappings(props):
        name = _env_literal(entry)
        if name is not None and CREDENTIAL_NAME.search(name) and not _allowed(resource_type, path):
            found.append(f"{path} sets {name} to a literal value: read it from a Secret (valueFrom.secretKeyRef)")
    return found


def _env_literal(entry: Mapping[str, object]) -> str | None:
    """The name of an env-style {name, value} entry that sets a non-empty literal value; else None."""
    try:
        if set(entry) - {"name", "value", "valueFrom"} or "valueFrom" in entry:
            return None
        name, value = entry.get("name"), entry.get("value")
    except UnknownValueError:  # known once the resource it comes from exists; `pulumi up` checks it then
        return None
    return name if isinstance(name, str) and isinstance(value, str) and value else None


RULES: tuple[Rule, ...] = (
    Rule(
        "credentials-secret",
        "Kubeconfigs, tokens and private keys live only in Kubernetes Secrets (which Pulumi always encrypts in "
        "state), and a provider's kubeconfig holds no credential: anything else would be readable in the state, "
        "the preview and the cluster's object specs.",
        None,
        _check,
    ),
)
