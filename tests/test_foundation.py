"""The two stacks under mocks: clusters, firewall, Istio primary/remote, remote secret and outputs."""

from __future__ import annotations

import yaml

from tests.harness import (
    FAKE_ADDRESSES,
    FAKE_CA,
    FAKE_ENDPOINTS,
    FAKE_POD_CIDRS,
    FAKE_READER_TOKEN,
    PROJECT_ID,
    Resource,
    Run,
    run_stack,
)
from tools.mockrun import FAKE_PRIVATE_ENDPOINTS

PRIMARY_OUTPUTS = {
    "clusterName",
    "zone",
    "kubeconfig",
    "podCidr",
    "nodeTag",
    "network",
    "istiodAddress",
    "ingressIp",
    "istioVersion",
    "meshId",
    "meshNetwork",
    "workerImage",
    "sharkUrl",
    "canaryWeight",
    "hashrUrl",
    "burstMode",
    "project",
    "hashrToken",
    "apiAccess",
}
BURST_OUTPUTS = {"clusterName", "kubeconfig", "podCidr", "nodeTag", "apiAccess"}


def test_primary_cluster_is_zonal_vpc_native_and_locked_down(primary_run: Run):
    cluster = primary_run.one("gcp:container/cluster:Cluster", "primary-cluster")
    assert cluster.get("name") == "meshburst-primary"
    assert cluster.get("location") == "us-west1-a"
    assert cluster.get("network") == "default"
    assert cluster.get("networkingMode") == "VPC_NATIVE"
    assert cluster.get("ipAllocationPolicy") == {}
    assert cluster.get("removeDefaultNodePool") is True
    assert cluster.get("enableLegacyAbac") is False
    assert cluster.get("masterAuth.clientCertificateConfig.issueClientCertificate") is False
    assert cluster.get("workloadIdentityConfig.workloadPool") == f"{PROJECT_ID}.svc.id.goog"
    assert cluster.get("enableShieldedNodes") is True
    assert cluster.get("releaseChannel.channel") == "REGULAR"
    assert cluster.get("loggingService") == "logging.googleapis.com/kubernetes"
    assert cluster.get("monitoringService") == "monitoring.googleapis.com/kubernetes"
    assert cluster.get("deletionProtection") is False


def test_primary_pool_has_four_fixed_nodes(primary_run: Run):
    pool = primary_run.one("gcp:container/nodePool:NodePool", "primary-pool")
    assert pool.get("nodeCount") == 4
    assert "autoscaling" not in pool.inputs
    assert pool.get("cluster") == "meshburst-primary"
    assert pool.get("management") == {"autoRepair": True, "autoUpgrade": True}
    config = pool.get("nodeConfig")
    assert config["machineType"] == "n1-standard-2"
    assert config["diskSizeGb"] == 100
    assert config["imageType"] == "COS_CONTAINERD"
    assert config["tags"] == ["meshburst-primary"]
    assert config["serviceAccount"] == f"meshburst-primary-nodes@{PROJECT_ID}.iam.gserviceaccount.com"
    assert config["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert config["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


def test_burst_pool_autoscales_from_min_to_max_starting_at_min(burst_run: Run):
    pool = burst_run.one("gcp:container/nodePool:NodePool", "burst-pool")
    assert pool.get("autoscaling") == {"minNodeCount": 1, "maxNodeCount": 5}
    assert pool.get("initialNodeCount") == 1
    assert "nodeCount" not in pool.inputs
    assert pool.get("nodeConfig.tags") == ["meshburst-burst"]


def test_pool_sizes_and_disk_follow_config():
    primary = run_stack("primary", {"nodeCount": "7", "diskSizeGb": "50", "machineType": "e2-standard-4"})
    pool = primary.one("gcp:container/nodePool:NodePool", "primary-pool")
    assert (pool.get("nodeCount"), pool.get("nodeConfig.diskSizeGb"), pool.get("nodeConfig.machineType")) == (
        7,
        50,
        "e2-standard-4",
    )
    cluster = run_stack("primary", {"deletionProtection": "true"}).one(
        "gcp:container/cluster:Cluster", "primary-cluster"
    )
    assert cluster.get("deletionProtection") is True


def test_nodes_run_as_their_own_account_with_only_node_roles(primary_run: Run):
    account = primary_run.one("gcp:serviceaccount/account:Account", "primary-nodes")
    assert account.get("accountId") == "meshburst-primary-nodes"
    # Image reads are granted on the one repository, not project-wide (tests/test_hardened_gke.py).
    grants = primary_run.of_type("gcp:projects/iAMMember:IAMMember")
    assert sorted(g.get("role") for g in grants) == ["roles/container.defaultNodeServiceAccount"]
    assert {g.get("member") for g in grants} == {
        f"serviceAccount:meshburst-primary-nodes@{PROJECT_ID}.iam.gserviceaccount.com"
    }
    pool = primary_run.one("gcp:container/nodePool:NodePool", "primary-pool")
    assert {g.urn for g in grants} <= set(pool.dependencies), "nodes must not start before their roles exist"


def test_kubeconfig_uses_the_exec_plugin_and_is_secret(primary_run: Run):
    assert "kubeconfig" in primary_run.secret_outputs
    config = yaml.safe_load(primary_run.outputs["kubeconfig"])
    assert config["clusters"][0]["cluster"] == {
        "server": f"https://{FAKE_ENDPOINTS['meshburst-primary']}",
        "certificate-authority-data": FAKE_CA,
    }
    assert config["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    provider = primary_run.one("pulumi:providers:kubernetes", "primary-k8s")
    assert provider.is_secret("kubeconfig")
    assert provider.get("kubeconfig") == primary_run.outputs["kubeconfig"]
    pool = primary_run.one("gcp:container/nodePool:NodePool", "primary-pool")
    assert pool.urn in provider.dependencies, "nothing is deployed before the node pool exists"


def kubernetes_resources(run: Run) -> list[Resource]:
    """Everything a stack does through a Kubernetes provider: objects, Helm releases and reads."""
    return [r for r in run.resources if r.type.startswith("kubernetes:")]


def test_every_kubernetes_object_of_a_stack_uses_its_own_cluster(primary_run: Run, burst_run: Run):
    for resource in kubernetes_resources(primary_run):
        assert primary_run.provider_name(resource) == "primary-k8s", resource.name
    # The burst stack writes exactly two objects into the primary: the remote secret and Redis's admission.
    into_primary = {"remote-secret-secret", "worker-redis-from-burst"}
    for resource in kubernetes_resources(burst_run):
        expected = "primary-access" if resource.name in into_primary else "burst-k8s"
        assert burst_run.provider_name(resource) == expected, resource.name


def test_firewall_allows_only_pod_cidrs_to_node_tags(burst_run: Run):
    [rule] = burst_run.of_type("gcp:compute/firewall:Firewall")
    assert rule.get("direction") == "INGRESS"
    assert rule.get("priority") == 900
    assert rule.get("network") == "default"
    assert [a["protocol"] for a in rule.get("allows")] == ["tcp", "udp", "icmp", "esp", "ah", "sctp"]
    assert all("ports" not in a for a in rule.get("allows"))
    assert rule.get("sourceRanges") == [FAKE_POD_CIDRS["meshburst-primary"], FAKE_POD_CIDRS["meshburst-burst"]]
    assert rule.get("targetTags") == ["meshburst-primary", "meshburst-burst"]
    assert "sourceTags" not in rule.inputs and "destinationRanges" not in rule.inputs


def test_istio_releases_use_official_charts_at_the_pinned_version(primary_run: Run):
    releases = {
        r.get("name"): r
        for r in primary_run.of_type("kubernetes:helm.sh/v3:Release")
        if r.get("repositoryOpts.repo") == "https://istio-release.storage.googleapis.com/charts"
    }
    assert set(releases) == {"istio-base", "istiod", "istio-ingressgateway", "istio-eastwestgateway"}
    for release in releases.values():
        assert release.get("repositoryOpts.repo") == "https://istio-release.storage.googleapis.com/charts"
        assert release.get("version") == "1.30.3"
        assert release.get("namespace") == "istio-system"
        assert release.get("skipAwait") is False
    assert {n: r.get("chart") for n, r in releases.items()} == {
        "istio-base": "base",
        "istiod": "istiod",
        "istio-ingressgateway": "gateway",
        "istio-eastwestgateway": "gateway",
    }
    assert run_stack("primary", {"istioVersion": "1.29.1"}).named("istio-istiod").get("version") == "1.29.1"


def test_istiod_on_primary_is_multicluster_and_external(primary_run: Run):
    values = primary_run.named("istio-istiod").get("values")
    assert values["global"] == {
        "meshID": "mesh1",
        "multiCluster": {"clusterName": "primary"},
        "network": "network1",
        "externalIstiod": True,
    }


def test_gateways_public_ingress_and_internal_eastwest(primary_run: Run):
    ingress = primary_run.named("istio-ingress").get("values")
    assert ingress["labels"]["istio"] == "ingressgateway"
    assert ingress["service"]["type"] == "LoadBalancer"
    assert [(p["name"], p["port"]) for p in ingress["service"]["ports"]] == [
        ("status-port", 15021),
        ("http2", 80),
        ("https", 443),
        ("http-hashr", 8080),
    ]
    eastwest = primary_run.named("istio-eastwest").get("values")
    assert eastwest["networkGateway"] == "network1"
    assert eastwest["labels"]["istio"] == "eastwestgateway"
    assert eastwest["service"]["annotations"]["networking.gke.io/load-balancer-type"] == "Internal"


def test_releases_are_ordered_so_crds_and_istiod_come_first(primary_run: Run):
    urn = {r.name: r.urn for r in primary_run.resources}
    deps = {r.name: set(r.dependencies) for r in primary_run.resources}
    assert urn["istio-istio-system"] in deps["istio-base"]
    assert urn["istio-base"] in deps["istio-istiod"]
    assert urn["istio-istiod"] in deps["istio-ingress"] and urn["istio-istiod"] in deps["istio-eastwest"]
    for cr in ("istio-istiod-gateway", "istio-istiod-vs"):
        assert {urn["istio-base"], urn["istio-eastwest"]} <= deps[cr]
    assert urn["istio-istiod"] in deps["istio-apps-namespace"]


def test_istiod_is_exposed_through_the_eastwest_gateway(primary_run: Run):
    gateway = primary_run.one("kubernetes:networking.istio.io/v1:Gateway", "istio-istiod-gateway")
    assert gateway.get("spec.selector") == {"istio": "eastwestgateway"}
    assert [(s["port"]["number"], s["tls"]["mode"]) for s in gateway.get("spec.servers")] == [
        (15012, "PASSTHROUGH"),
        (15017, "PASSTHROUGH"),
    ]
    vs = primary_run.one("kubernetes:networking.istio.io/v1:VirtualService", "istio-istiod-vs")
    assert vs.get("spec.gateways") == ["istiod-gateway"]
    assert [(t["match"][0]["port"], t["route"][0]["destination"]["port"]["number"]) for t in vs.get("spec.tls")] == [
        (15012, 15012),
        (15017, 443),
    ]
    assert {t["route"][0]["destination"]["host"] for t in vs.get("spec.tls")} == {
        "istiod.istio-system.svc.cluster.local"
    }


def test_apps_namespace_has_injection_in_both_clusters(primary_run: Run, burst_run: Run):
    for run in (primary_run, burst_run):
        ns = run.named("istio-apps-namespace")
        assert ns.get("metadata.name") == "meshburst"
        assert ns.get("metadata.labels") == {"istio-injection": "enabled"}


def test_burst_is_a_remote_of_the_primary(burst_run: Run):
    ns = burst_run.named("istio-istio-system")
    assert ns.get("metadata.annotations") == {"topology.istio.io/controlPlaneClusters": "primary"}
    releases = {r.get("name"): r for r in burst_run.of_type("kubernetes:helm.sh/v3:Release")}
    assert set(releases) == {"istio-base", "istiod"}
    assert releases["istio-base"].get("values") == {"profile": "remote"}
    values = releases["istiod"].get("values")
    assert values["profile"] == "remote"
    assert values["global"] == {
        "meshID": "mesh1",
        "multiCluster": {"clusterName": "burst"},
        "network": "network1",
        "configCluster": True,
        "remotePilotAddress": FAKE_ADDRESSES["meshburst-istiod"],
    }
    assert values["istiodRemote"] == {"injectionPath": "/inject/cluster/burst/net/network1"}


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


def test_primary_access_in_burst_stack_is_secret(burst_run: Run):
    provider = burst_run.one("pulumi:providers:kubernetes", "primary-access")
    assert provider.is_secret("kubeconfig")
    assert "meshburst-primary" in provider.get("kubeconfig")


def test_outputs_follow_the_contract(primary_run: Run, burst_run: Run):
    assert set(primary_run.outputs) == PRIMARY_OUTPUTS
    assert set(burst_run.outputs) == BURST_OUTPUTS
    assert primary_run.secret_outputs == {"kubeconfig", "hashrToken"}
    assert burst_run.secret_outputs == {"kubeconfig"}
    p = primary_run.outputs
    assert (p["clusterName"], p["zone"], p["podCidr"], p["nodeTag"], p["network"]) == (
        "meshburst-primary",
        "us-west1-a",
        FAKE_POD_CIDRS["meshburst-primary"],
        "meshburst-primary",
        "default",
    )
    assert (p["istiodAddress"], p["ingressIp"]) == (
        FAKE_ADDRESSES["meshburst-istiod"],
        FAKE_ADDRESSES["meshburst-ingress"],
    )
    assert (p["istioVersion"], p["meshId"], p["meshNetwork"]) == ("1.30.3", "mesh1", "network1")
    assert p["project"] == "meshburst-test-123"
    b = burst_run.outputs
    assert (b["clusterName"], b["podCidr"], b["nodeTag"]) == (
        "meshburst-burst",
        FAKE_POD_CIDRS["meshburst-burst"],
        "meshburst-burst",
    )


def test_burst_reads_the_primary_named_by_primary_stack(primary_run: Run):
    ref = "acme/meshburst/prod-primary"
    burst = run_stack(
        "burst",
        {"primaryStack": ref},
        stack_references={ref: primary_run.outputs},
        secret_outputs={ref: primary_run.secret_outputs},
    )
    [reference] = burst.of_type("pulumi:pulumi:StackReference")
    assert reference.name == ref


def test_every_component_child_is_parented_to_a_component(primary_run: Run, burst_run: Run):
    top_level = {"pulumi:pulumi:StackReference", "pulumi:providers:kubernetes::primary-access"}
    for run in (primary_run, burst_run):
        for resource in run.resources:
            if (
                resource.type.startswith("meshburst:")
                or resource.type in top_level
                or (f"{resource.type}::{resource.name}" in top_level)
            ):
                continue
            parent_type = resource.parent.split("::")[2].split("$")[-1]
            assert parent_type.startswith("meshburst:"), f"{resource.type} {resource.name} has parent {parent_type}"
