"""RemoteSecret: lets istiod in the primary watch a remote cluster's API server with a read-only token."""

from __future__ import annotations

from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s

from builders.istio import ISTIO_NAMESPACE
from resources.kubernetes import account_token_kubeconfig

# Created by the `base` chart (enableReaderRBAC) with read-only cluster access for istiod.
READER_SERVICE_ACCOUNT = "istio-reader-service-account"


def remote_secret_name(cluster: str) -> str:
    return f"istio-remote-secret-{cluster}"


def remote_secret_metadata(cluster: str) -> k8s.meta.v1.ObjectMetaArgsDict:
    """Metadata istiod looks for: the multiCluster label, and the cluster the kubeconfig is for."""
    return {
        "name": remote_secret_name(cluster),
        "namespace": ISTIO_NAMESPACE,
        "labels": {"istio/multiCluster": "true"},
        "annotations": {"networking.istio.io/cluster": cluster},
    }


class RemoteSecretArgs(TypedDict):
    cluster: str
    """Istio cluster name of the remote (burst)."""
    endpoint: pulumi.Input[str]
    """The remote's API server address as istiod reaches it: its private endpoint, over the VPC."""
    ca_certificate: pulumi.Input[str]
    """The remote's CA certificate (base64)."""
    remote_provider: k8s.Provider
    """Provider of the remote cluster, where the token is minted."""
    primary_provider: k8s.Provider
    """Provider of the primary cluster, where istiod reads the secret."""
    reader_ready: pulumi.Resource
    """The remote release that creates the reader service account."""


class RemoteSecret(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    """Token kubeconfig istiod uses for the remote (secret)."""

    def __init__(self, name: str, args: RemoteSecretArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:istio:RemoteSecret", name, None, opts)
        cluster = args["cluster"]
        self.kubeconfig = account_token_kubeconfig(
            f"{name}-reader-token",
            READER_SERVICE_ACCOUNT,
            cluster,
            args["endpoint"],
            args["ca_certificate"],
            pulumi.ResourceOptions(parent=self, provider=args["remote_provider"], depends_on=[args["reader_ready"]]),
        )
        k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=remote_secret_metadata(cluster),
            string_data={cluster: self.kubeconfig},
            opts=pulumi.ResourceOptions(parent=self, provider=args["primary_provider"]),
        )
        self.register_outputs({"kubeconfig": self.kubeconfig})
