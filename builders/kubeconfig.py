"""Kubeconfig text, built by pure functions so tests can read exactly what kubectl and istiod get."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import yaml


def _kubeconfig(name: str, endpoint: str, ca_certificate: str, user: dict[str, Any]) -> str:
    server = endpoint if endpoint.startswith("https://") else f"https://{endpoint}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_certificate}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [{"name": name, "user": user}],
        "preferences": {},
    }
    return str(yaml.safe_dump(document, sort_keys=False))


def exec_plugin_kubeconfig(name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that gets short-lived tokens from gke-gcloud-auth-plugin (nothing long-lived is stored)."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "gke-gcloud-auth-plugin",
            "installHint": "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
            "provideClusterInfo": True,
        }
    }
    return _kubeconfig(name, endpoint, ca_certificate, user)


def token_kubeconfig(name: str, endpoint: str, ca_certificate: str, token: str) -> str:
    """A kubeconfig for a service-account token: what istiod in the primary uses to watch a remote."""
    if not token:
        raise ValueError(f"token_kubeconfig({name!r}): the service-account token is empty")
    return _kubeconfig(name, endpoint, ca_certificate, {"token": token})


def decode_token(data: Mapping[str, str] | None, secret: str) -> str:
    """The token the Kubernetes token controller put into a service-account-token Secret."""
    encoded = (data or {}).get("token")
    if not encoded:
        raise ValueError(f"Secret {secret} has no token yet: the token controller did not fill it")
    return base64.b64decode(encoded).decode()
