"""components/remote_secret.py: istiod's read-only way into the burst cluster, secret end to end."""

from __future__ import annotations

import yaml

from tools.mockrun import (
    FAKE_CA,
    FAKE_PRIVATE_ENDPOINTS,
    FAKE_READER_TOKEN,
    Resource,
    Run,
)


def names_created_before(run: Run, resource: Resource) -> set[str]:
    return {run.by_urn(urn).name for urn in run.created_before(resource)}


def test_remote_secret_token_lives_in_burst_and_kubeconfig_in_primary(burst_run: Run):
    token = burst_run.one("kubernetes:core/v1:Secret", "remote-secret-reader-token")
    assert token.get("type") == "kubernetes.io/service-account-token"
    assert token.get("metadata") == {
        "name": "istio-reader-service-account-token",
        "namespace": "istio-system",
        "annotations": {"kubernetes.io/service-account.name": "istio-reader-service-account"},
    }
    assert burst_run.named("istio-istiod").urn in token.dependencies

    secret = burst_run.one("kubernetes:core/v1:Secret", "remote-secret-secret")
    assert secret.get("metadata") == {
        "name": "istio-remote-secret-burst",
        "namespace": "istio-system",
        "labels": {"istio/multiCluster": "true"},
        "annotations": {"networking.istio.io/cluster": "burst"},
    }
    assert list(secret.get("stringData")) == ["burst"]
    assert secret.is_secret("stringData")
    kubeconfig = yaml.safe_load(secret.get("stringData.burst"))
    assert kubeconfig["clusters"][0]["cluster"] == {
        # istiod reaches the burst API server over the VPC, at its private endpoint.
        "server": f"https://{FAKE_PRIVATE_ENDPOINTS['meshburst-burst']}",
        "certificate-authority-data": FAKE_CA,
    }
    assert kubeconfig["users"][0]["user"] == {"token": FAKE_READER_TOKEN}
    assert kubeconfig["current-context"] == "burst"


def test_istiod_reaches_the_burst_api_server_at_its_private_endpoint(burst_run: Run):
    secret = burst_run.one("kubernetes:core/v1:Secret", "remote-secret-secret")
    assert secret.is_secret("stringData")
    kubeconfig = yaml.safe_load(secret.get("stringData.burst"))
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{FAKE_PRIVATE_ENDPOINTS['meshburst-burst']}"
    # Pulumi itself still talks to the public endpoint (from a laptop).
    assert "kubeconfig" in burst_run.secret_outputs


def test_remote_secret_waits_for_the_reader_rbac_of_remote_istiod(burst_run: Run):
    token = burst_run.one("kubernetes:core/v1:Secret", "remote-secret-reader-token")
    # base creates the reader service account; the istiod chart (remote profile) its ClusterRole and binding.
    assert {"istio-base", "istio-istiod"} <= names_created_before(burst_run, token)
